"""A loaded SavedModel classifier, inlined into the caller's graph so XLA keeps its weights
(and everything upstream of its input) as runtime parameters.

Why: a function restored by `tf.saved_model.load` is called as a function-call node. When
a loss is differentiated through it, TensorFlow splits it into a forward function and a
backward function, and passes the forward's intermediates across the boundary, constants
included (e.g. a `Mean`'s reduction axes, which the gradient's `Reshape` needs as a
compile-time constant). XLA's constant analysis works node by node: to make that one
output constant it marks the whole forward call as compile-time constant, and with it the
call's inputs: the classifier's weights, the generator's image, and through it the
generator's weights and the step counter. Each weight update is then a new program, so a
jit-compiled train step recompiles at every call.

Importing the classifier's graph, with its nested function calls inlined, into the caller's
graph leaves plain ops whose gradients are built in place, where the constants stay
constants and the variables stay resource parameters. The restored call is still used in
eager mode (forward only), where there is nothing to compile.

The nested calls are inlined by Grappler's function inliner, reached through one private
TensorFlow helper, fenced in `logit_inversion/_tf_private.py`; `tests/test_inline.py` and
`tests/test_tf_private.py` fail loudly if a TensorFlow upgrade removes or changes it.
"""

import tensorflow as tf

from logit_inversion import _tf_private

# Grappler's function inlining of a concrete function's graph, as the SavedModel-to-constants
# converter runs it: `concrete_function` → its GraphDef with every nested call inlined.
_inline_functions = _tf_private.inline_functions


# Names of the identity ops on the inlined classifier's input and on its input's gradient.
INPUT_NAME = "classifier_input"
GRADIENT_NAME = "classifier_input_gradient"


class InlinedGraph:
    """`fn(images) -> logits` whose graph-mode calls import `fn`'s inlined graph.

    Args:
        fn: a callable taking one float32 image batch `[batch, size, size, 3]` and returning
            one float32 logits tensor (e.g. a restored TF Hub object, or a signature caller
            that picks the logits from its dict).
        input_size: the height and width of the images `fn` takes.
        variables: the variables `fn` reads (e.g. every `tf.Variable` of the loaded object).
            Each call reads them as well, so that the calling function lists them among the
            variables it uses, as it would for the restored call: Keras's `ExportArchive`
            tracks, and a SavedModel export then maps, exactly those.

    Raises:
        ValueError: when the traced graph still holds function calls after inlining, or its
            output is not one tensor (the caller then keeps the restored call).
    """

    def __init__(self, fn, input_size, variables=()):
        self._fn = fn
        spec = tf.TensorSpec([None, input_size, input_size, 3], tf.float32)
        traced = tf.function(lambda images: fn(images)).get_concrete_function(spec)
        if len(traced.outputs) != 1:
            raise ValueError(
                f"Expected the classifier to return one tensor. Received: {len(traced.outputs)} "
                "outputs")
        graph_def = _inline_functions(traced)
        calls = sorted({node.op for node in graph_def.node
                        if node.op in ("PartitionedCall", "StatefulPartitionedCall")})
        if calls:
            raise ValueError(f"Function calls remain after inlining: {calls}")
        self._input_name = traced.inputs[0].name
        self._capture_names = [t.name for t in traced.graph.internal_captures]
        # What the graph reads from outside: the classifier's variable handles (and any
        # captured tensor), passed in at every call so they stay runtime parameters.
        self._captures = list(traced.captured_inputs)
        self._variables = [next((v for v in variables if v.handle is capture), None)
                           for capture in self._captures]
        self._output_name = traced.outputs[0].name
        # Mapped placeholders are dropped: once their uses are remapped they would be dangling
        # nodes, and XLA refuses a Placeholder op in a compiled program.
        mapped = {name.split(":")[0] for name in [self._input_name, *self._capture_names]}
        kept = [node for node in graph_def.node if node.name not in mapped]
        for node in kept:
            if node.op == "Const":
                # The inliner gives each constant a control input on the call's input node;
                # once imported after the caller's own arithmetic, Grappler's constant folding
                # can push such a constant up into that arithmetic and close a cycle (the
                # function then runs unoptimized). A constant needs no ordering.
                data = [name for name in node.input if not name.startswith("^")]
                del node.input[:]
                node.input.extend(data)
        del graph_def.node[:]
        graph_def.node.extend(kept)
        self._graph_def = graph_def

    def __call__(self, images):
        if tf.executing_eagerly():
            return self._fn(images)
        return self._imported(images)

    def _imported(self, images):
        graph_def, input_name, output_name = self._graph_def, self._input_name, self._output_name
        captures = [tf.identity(capture) for capture in self._captures]
        for variable in self._variables:
            if variable is not None:
                variable.value()  # registers the use (see `variables`); XLA drops the read
        input_map = dict(zip(self._capture_names, captures))

        @tf.custom_gradient
        def logits_of(images):
            # Named so that a reader of the traced step (benchmarks/flops.py) can count the
            # images through the classifier and back to its input.
            images = tf.identity(images, name=INPUT_NAME)
            scope = tf.get_current_name_scope()
            (logits,) = tf.graph_util.import_graph_def(
                graph_def, input_map={**input_map, input_name: images},
                return_elements=[output_name], name="inlined_classifier")

            def grad(upstream):
                # The imported ops are plain graph ops, so the symbolic gradient is built
                # here, in the caller's graph (a tape does not see imported ops).
                (gradient,) = tf.gradients(logits, images, grad_ys=upstream)
                gradient = tf.zeros_like(images) if gradient is None else gradient
                # Under the forward's name scope (the classifier's), not the tape's.
                with tf.name_scope(f"{scope}/" if scope else ""):
                    return tf.identity(gradient, name=GRADIENT_NAME)

            return logits, grad

        return logits_of(images)
