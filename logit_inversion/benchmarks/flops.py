"""FLOPs of one training step and parameter counts, per network (G, D, Φ).

One training step is what `LogitInverter.train_step` does: `d_steps` discriminator updates
and one generator update, forward and backward. The count comes from the traced step:

- **G, D and the rest** (losses, Adam, EMA update): `train_step` is traced to a concrete
  function at a fixed batch and TF's profiler (`tf.compat.v1.profiler`, the float-op
  registry) counts every op with a registered FLOP formula: Conv2D and its two backprop
  ops, MatMul/BatchMatMul (2 FLOPs per multiply-add), and elementwise ops (Add, Mul, Rsqrt,
  ...; 1 per element). Ops are assigned to a network by their name scope (Keras names the
  backward ops `gradient_tape/<forward scope>`). Ops with no formula (pooling grads of some
  kinds, resizes, random numbers, copies) count 0.
- **Φ** is a loaded SavedModel: its body is a function call that the profiler does not
  enter. The traced step tells how many images go through Φ forward and how many are
  back-propagated to Φ's input; the FLOPs per image come from XLA's HLO of Φ (every
  convolution and dot, weight gradients excluded because Φ is frozen) or, for the TF Hub
  ImageNet classifiers that cannot be downloaded here, from the model's paper
  (`PUBLISHED`). Backward-to-input is taken as equal to one forward pass for those.

Big configs are traced at two small batches and extrapolated: every count is affine in the
batch size (per-example work plus per-parameter work such as spectral norm and Adam).

Example:
    >>> from logit_inversion.benchmarks import flops
    >>> result = flops.count_config(config)        # an ml_collections config
    >>> result["flops"]["total"]                   # FLOPs per training step
"""

import collections
import contextlib
import os
import re
import tempfile

import numpy as np
import tensorflow as tf

from logit_inversion.classifiers import inline

# Φ forward cost per image at the classifier's own input size, for registry models that
# cannot be loaded offline. The papers give multiply-adds; 1 multiply-add = 2 FLOPs.
PUBLISHED = {
    "resnet50_v2": {
        "forward_flops_per_image": 2 * 3.8e9, "params": 25.6e6, "input_size": 224,
        "source": "He et al. 2016, 'Deep Residual Learning for Image Recognition', Table 1 "
                  "(ResNet-50: 3.8e9 multiply-adds at 224 px; the v2 pre-activation variant "
                  "has the same convolutions), 25.6 M parameters"},
    "resnet152_v2": {
        "forward_flops_per_image": 2 * 11.3e9, "params": 60.2e6, "input_size": 224,
        "source": "He et al. 2016, 'Deep Residual Learning for Image Recognition', Table 1 "
                  "(ResNet-152: 11.3e9 multiply-adds at 224 px), 60.2 M parameters"},
    "inception_v3": {
        "forward_flops_per_image": 2 * 5.0e9, "params": 23.8e6, "input_size": 299,
        "source": "Szegedy et al. 2016, 'Rethinking the Inception Architecture for Computer "
                  "Vision' (about 5e9 multiply-adds per 299 px image), 23.8 M parameters"},
}

MATMUL_OPS = frozenset({"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Conv2D",
                        "Conv2DBackpropInput", "Conv2DBackpropFilter"})
_CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
NETWORKS = ("G", "D", "Φ", "other")


# ---- counting a traced graph ----------------------------------------------------------

def _op_flops(graph):
    """[(op name, op type, FLOPs)] for every op of `graph` with a registered FLOP count."""
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    root = tf.compat.v1.profiler.profile(graph=graph, cmd="scope", options=options)
    found, stack = [], list(root.children)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.float_ops:
            found.append((node.name, graph.get_operation_by_name(node.name).type,
                          int(node.float_ops)))
    return found


def _network_of(op_name, scopes):
    """The network ("G", "D", "Φ" or "other") an op belongs to, from its name scope.

    `scopes` maps a network to its layer name; Keras suffixes repeated calls (`generator_3`)
    and prefixes backward ops with `gradient_tape/`.
    """
    for part in op_name.split("/"):
        base = re.sub(r"_\d+$", "", part)
        for network, scope in scopes.items():
            if base == scope:
                return network
    return "other"


def graph_flops(graph, scopes):
    """FLOPs of a traced graph per network, split into matmul-class and other ops.

    Args:
        graph: a `tf.Graph` with static shapes (e.g. `concrete_function.graph`).
        scopes: {network: layer name}, e.g. {"G": "generator", "D": "discriminator"}.

    Returns:
        {network: {"matmul": FLOPs of conv/matmul ops, "other": FLOPs of other ops}}
        for every network in `scopes` and "other".
    """
    counts = {n: {"matmul": 0, "other": 0} for n in (*scopes, "other")}
    for name, op_type, value in _op_flops(graph):
        if not any(t.consumers() for t in graph.get_operation_by_name(name).outputs):
            # Never computed: e.g. the frozen classifier's weight gradients, which its
            # inlined gradient builds and nothing reads.
            continue
        kind = "matmul" if op_type in MATMUL_OPS else "other"
        counts[_network_of(name, scopes)][kind] += value
    return counts


def classifier_images(graph, scope):
    """(images through Φ forward, images back-propagated to Φ's input, and the part of each
    whose ops are in the graph itself) in a traced step.

    Φ is an opaque function call when it is a loaded SavedModel called as such: a call op
    under Φ's name scope is a forward pass of its input's batch; a top-level call op fed by
    one is its backward pass. A loaded classifier inlined into the step
    (`classifiers/inline.py`) has its ops in the graph, counted by `graph_flops`; its input
    and its input's gradient are marked by named identities, counted here.
    """
    forward, backward, calls = 0, 0, {}
    inlined = [0, 0]
    for op in graph.get_operations():
        # A loaded classifier inlined into the step (classifiers/inline.py) marks its input
        # and its input's gradient with named identities.
        marker = re.sub(r"_\d+$", "", op.name.rsplit("/", 1)[-1])
        if op.type == "Identity" and marker in (inline.INPUT_NAME, inline.GRADIENT_NAME):
            if _network_of(op.name, {"Φ": scope}) == "Φ":
                inlined[marker != inline.INPUT_NAME] += op.inputs[0].shape[0]
            continue
        if op.type not in _CALL_OPS:
            continue
        if _network_of(op.name, {"Φ": scope}) == "Φ":
            batch = op.inputs[0].shape[0]
            forward += batch
            calls[op.name] = batch
        else:
            sources = [t.op.name for t in op.inputs if t.op.name in calls]
            if sources:
                backward += calls[sources[0]]
    return forward + inlined[0], backward + inlined[1], inlined[0], inlined[1]


# ---- Φ per image, from XLA's HLO ------------------------------------------------------

_SHAPE = r"\w+\[([\d,]*)\]"


def _dims(text):
    return [int(d) for d in text.split(",") if d]


def hlo_flops(hlo_text, scopes=None):
    """2 × multiply-adds of every `convolution` and `dot` in an HLO module's text.

    A convolution's output element sums over the kernel's window and input features, i.e.
    over every kernel element but the output-feature dimension; a dot's over its lhs
    contracting dimensions.

    Args:
        hlo_text: HLO text (`experimental_get_compiler_ir(...)(stage="hlo")`).
        scopes: optional {network: layer name}; then returns {network: FLOPs} (plus
            "other"), assigned by the TF op name XLA keeps in each instruction's metadata.
    """
    conv = re.compile(rf"= {_SHAPE}\S* convolution\({_SHAPE}\S* %\S+, {_SHAPE}\S* %\S+\).*"
                      r"dim_labels=\w+_(\w+)->")
    dot = re.compile(rf"= {_SHAPE}\S* dot\({_SHAPE}\S* %\S+, {_SHAPE}\S* %\S+\).*"
                     r"lhs_contracting_dims=\{([\d,]*)\}")
    totals = collections.Counter()
    for line in hlo_text.splitlines():
        if m := conv.search(line):
            out, kernel, labels = _dims(m[1]), _dims(m[3]), m[4]
            value = 2 * int(np.prod(out)) * int(np.prod(kernel)) // kernel[labels.index("o")]
        elif m := dot.search(line):
            out, lhs = _dims(m[1]), _dims(m[2])
            value = 2 * int(np.prod(out)) * int(np.prod([lhs[int(i)] for i in _dims(m[4])]))
        else:
            continue
        name = re.search(r'op_name="([^"]*)"', line)
        network = _network_of(name[1], scopes) if scopes and name else "other"
        totals[network] += value
    if scopes is None:
        return totals["other"]
    return {n: totals[n] for n in (*scopes, "other")}


def xla_step_flops(inverter, batch_size, d_steps):
    """Conv/dot FLOPs of the whole train step as XLA lowers it, per network: a second,
    independent count of the same step (Φ's calls inlined). Needs an XLA-compilable step."""
    spec = tf.zeros((batch_size * d_steps, inverter.resolution, inverter.resolution, 3))
    step = tf.function(inverter.train_step, jit_compile=True)
    text = step.experimental_get_compiler_ir({"image": spec})(stage="hlo")
    scopes = {"G": inverter.generator.name, "D": inverter.discriminator.name,
              "Φ": inverter.classifier.name}
    return hlo_flops(text, scopes)


def classifier_flops_per_image(classifier, resolution):
    """Φ's (forward, backward-to-input) FLOPs per image of `resolution` px, from XLA's HLO.

    Counted on one image: XLA inlines the SavedModel's functions, and the frozen weights'
    gradients are never built, as in the training step.
    """
    images = tf.zeros((1, resolution, resolution, 3))

    def forward(x):
        return classifier(x)

    def forward_and_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = classifier(x)
        return logits, tape.gradient(logits, x)

    counts = [hlo_flops(tf.function(f, jit_compile=True)
                        .experimental_get_compiler_ir(images)(stage="hlo"))
              for f in (forward, forward_and_backward)]
    return counts[0], counts[1] - counts[0]


# ---- parameters ------------------------------------------------------------------------

def _count(variables):
    return int(sum(np.prod(v.shape) for v in variables))


def classifier_params(classifier):
    """Number of Φ's weights: every variable reachable from the loaded model (batch-norm
    statistics included, as in the shipped classifiers' `metadata.json`)."""
    found = {id(v): v for v in tf.train.TrackableView(classifier.model).descendants()
             if isinstance(v, tf.Variable)}
    return _count(found.values())


# ---- one config --------------------------------------------------------------------------

@contextlib.contextmanager
def _stand_in_classifier(config):
    """Yields a config whose classifier can be built offline: registry models in
    `PUBLISHED` are replaced by a tiny classifier with the same input size and logits."""
    from logit_inversion import testing
    from logit_inversion.classifiers import frozen
    if config.classifier not in PUBLISHED:
        yield config, None
        return
    spec = frozen.REGISTRY[config.classifier][1]
    with tempfile.TemporaryDirectory() as tmp:
        path = testing.save_tiny_classifier(os.path.join(tmp, "phi"), spec.num_classes,
                                            spec.input_size)
        stand_in = config.copy_and_resolve_references()
        stand_in.classifier = path
        yield stand_in, PUBLISHED[config.classifier]


def trace_step(inverter, batch_size, d_steps, step=None):
    """The concrete function of the train step for `batch_size` images per D step.

    `step` is a `tf.function` of `inverter.train_step` to reuse (its trace is cached, so a
    benchmark that then runs it with a batch of this shape times the very graph counted).
    """
    r = inverter.resolution
    spec = {"image": tf.TensorSpec((batch_size * d_steps, r, r, 3), tf.float32)}
    return (step or tf.function(inverter.train_step)).get_concrete_function(spec)


def step_counts(inverter, batch_size, d_steps, step=None):
    """Per-network FLOPs and Φ image counts of one traced train step (see `graph_flops`)."""
    graph = trace_step(inverter, batch_size, d_steps, step).graph
    scopes = {"G": inverter.generator.name, "D": inverter.discriminator.name,
              "G_ema": inverter.ema_generator.name, "Φ": inverter.classifier.name}
    counts = graph_flops(graph, scopes)
    ema = counts.pop("G_ema")   # the EMA update is elementwise work on G's weights
    counts["G"] = {k: counts["G"][k] + ema[k] for k in counts["G"]}
    forward, backward, inlined_forward, inlined_backward = classifier_images(
        graph, inverter.classifier.name)
    return counts, (forward + sampled_agreement_images(inverter, batch_size), backward,
                    inlined_forward, inlined_backward)


def sampled_agreement_images(inverter, batch_size):
    """Images per step through Φ for the training agreement when it is sampled every
    `agreement_every` steps: that call sits in a `tf.cond` branch, which the graph walk of
    `classifier_images` does not enter, so it is added here at its average rate."""
    every = getattr(inverter, "agreement_every", 1)
    if every == 1 or not (inverter.agreement_needs_own_pass or _before_consistency(inverter)):
        return 0
    # Another layer's inverter measures agreement on the logits of the images and fakes.
    return (2 if hasattr(inverter.classifier, "logits") else 1) * batch_size / every


def _before_consistency(inverter):
    """True while the traced step runs before `consistency_start`: Φ then sees no fakes except
    for the sampled agreement (`LogitInverter._consistency`)."""
    start = getattr(inverter, "consistency_start", 0)
    return bool(start) and int(inverter.g_optimizer.iterations) < start


def _affine(at_1, at_2, b1, b2, b):
    """Value at batch b of a quantity affine in the batch, from its values at b1 and b2.

    True division: some quantities are fractional (Φ's images per step when the agreement is
    sampled every few steps), and floor division would round them down."""
    value = at_1 + (at_2 - at_1) * (b - b1) / (b2 - b1)
    return int(round(value)) if isinstance(at_1, int) and isinstance(at_2, int) else value


def count_config(config, trace_batches=None):
    """FLOPs per training step and parameters of the inverter a config describes.

    Registry classifiers that cannot be loaded offline (`PUBLISHED`) are replaced by a
    stand-in of the same input size and logits while tracing; their cost is the published
    one.

    Args:
        config: an ml_collections config (see `logit_inversion/configs/`).
        trace_batches: see `count_inverter`.

    Returns:
        See `count_inverter`.
    """
    from logit_inversion import training
    with _stand_in_classifier(config) as (traceable, published):
        inverter = training.build_inverter(traceable)
        training.compile_inverter(inverter, traceable)
        result = count_inverter(inverter, config, trace_batches, published)
    result["classifier"] = config.classifier
    return result


def count_inverter(inverter, config, trace_batches=None, published=None, step=None):
    """FLOPs per training step and parameters of a built inverter.

    Args:
        inverter: a built and compiled `LogitInverter`.
        config: its config (batch_size, d_steps, resolution).
        trace_batches: per-D-step batch sizes to trace at; None traces at the config's own
            batch if it is ≤ 64, else at 2 and 4 and extrapolates (affine in the batch).
        published: a `PUBLISHED` entry for Φ, or None to count Φ from XLA's HLO.
        step: optional `tf.function` of `inverter.train_step` to trace (see `trace_step`).

    The step counted is the one the inverter runs next: before `consistency_start` that is a
    step without Φ on the fakes ("phase": "before_consistency"), from then on the full step
    ("phase": "full"). A benchmark timing the same traced step times that phase.

    Returns:
        A dict: "flops" {G, D, Φ, other, total}, "matmul_flops" (the conv/matmul part, same
        keys), "params" {G, D, Φ}, "phi" (how Φ was counted), "batch_size", "d_steps",
        "resolution", "traced_at" (batch sizes traced), "phase" and "method".
    """
    batch, d_steps = config.batch_size, config.d_steps
    if trace_batches is None:
        trace_batches = (batch,) if batch <= 64 else (2, 4)
    if len(trace_batches) not in (1, 2) or (len(trace_batches) == 1
                                            and trace_batches[0] != batch):
        raise ValueError("trace_batches must be the config's batch size or two batch "
                         f"sizes to extrapolate from. Received: trace_batches={trace_batches}")
    # The diversity term draws batch // 2 second samples, so a step's count is affine in the
    # batch over even batches only.
    if (len(trace_batches) == 2 and getattr(inverter, "diversity_weight", 0)
            and any(b % 2 for b in trace_batches)):
        raise ValueError("with the diversity term on, trace_batches must be even (it draws "
                         f"batch // 2 second samples). Received: trace_batches={trace_batches}")
    traced = [step_counts(inverter, b, d_steps, step) for b in trace_batches]
    if published is None:
        phi_fwd, phi_bwd = classifier_flops_per_image(inverter.classifier, config.resolution)
        phi_params = classifier_params(inverter.classifier)
        phi_source = "XLA HLO of the loaded classifier (convolutions and dots)"
    else:
        phi_fwd = phi_bwd = int(published["forward_flops_per_image"])
        phi_params = int(published["params"])
        phi_source = published["source"] + "; backward-to-input taken as 1 forward"
    params = {"G": _count(inverter.generator.trainable_weights),
              "D": _count(inverter.discriminator.trainable_weights), "Φ": phi_params}

    def at_batch(get):
        values = [get(t) for t in traced]
        if len(values) == 1:
            return values[0]
        return _affine(values[0], values[1], trace_batches[0], trace_batches[1], batch)

    flops, matmul = {}, {}
    for network in ("G", "D", "other"):
        matmul[network] = at_batch(lambda t, n=network: t[0][n]["matmul"])
        flops[network] = matmul[network] + at_batch(lambda t, n=network: t[0][n]["other"])
    images_fwd = at_batch(lambda t: t[1][0])
    images_bwd = at_batch(lambda t: t[1][1])
    # Images whose Φ ops are in the graph are counted there (graph_flops); the rest (calls,
    # and the sampled agreement's pass inside a tf.cond) at Φ's per-image cost.
    called = ((images_fwd - at_batch(lambda t: t[1][2])) * phi_fwd
              + (images_bwd - at_batch(lambda t: t[1][3])) * phi_bwd)
    # A Φ whose ops are in the graph itself (not a SavedModel call) is counted directly.
    matmul["Φ"] = at_batch(lambda t: t[0]["Φ"]["matmul"]) + called
    flops["Φ"] = matmul["Φ"] + at_batch(lambda t: t[0]["Φ"]["other"])
    flops["total"] = sum(flops[n] for n in ("G", "D", "Φ", "other"))
    matmul["total"] = sum(matmul[n] for n in ("G", "D", "Φ", "other"))
    return {
        "batch_size": batch, "d_steps": d_steps, "resolution": config.resolution,
        "classifier": config.classifier, "flops": flops, "matmul_flops": matmul,
        "params": params,
        "phi": {"forward_flops_per_image": int(phi_fwd),
                "backward_flops_per_image": int(phi_bwd),
                "images_forward_per_step": round(images_fwd, 1),
                "images_backward_per_step": int(images_bwd), "source": phi_source},
        "traced_at": list(trace_batches),
        "phase": "before_consistency" if _before_consistency(inverter) else "full",
        "method": "TF profiler float-op registry on the traced train_step (G, D, other); "
                  "Φ: FLOPs per image × images through Φ in the traced step",
    }


# ---- the benchmark ---------------------------------------------------------------------

CONFIGS = ("demo", "cifar10", "imagenet64", "imagenet128")
DEFAULTS = {"xla_check": False}


def run(configs=None, args=None):
    """`bin/benchmark flops`: FLOPs per training step and parameters for each config.

    Args:
        configs: {name: config}; default the four shipped configs.
        args: {"xla_check": also count the step from XLA's HLO, where it compiles}.

    Returns:
        {name: `count_config` result (plus "xla_check" when asked)}.
    """
    import importlib
    options = {**DEFAULTS, **(args or {})}
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown flops benchmark options {sorted(unknown)}; known: "
                         f"{sorted(DEFAULTS)}. Received: args={args}")
    if configs is None:
        configs = {name: importlib.import_module(f"logit_inversion.configs.{name}")
                   .get_config() for name in CONFIGS}
    results = {}
    for name, config in configs.items():
        results[name] = count_config(config)
        if options["xla_check"] and config.classifier not in PUBLISHED:
            from logit_inversion import training
            inverter = training.build_inverter(config)
            training.compile_inverter(inverter, config)
            results[name]["xla_check"] = xla_step_flops(inverter, config.batch_size,
                                                        config.d_steps)
    return results


def table(results):
    """Markdown table of `run`'s results: GFLOP per step and parameters (M)."""
    lines = ["| config | batch × d_steps | G GFLOP | D GFLOP | Φ GFLOP | other GFLOP | "
             "total GFLOP/step | G params | D params | Φ params |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        f, p = r["flops"], r["params"]
        params = [f"{p[n] / 1e6:.2f} M" if p[n] is not None else "?" for n in ("G", "D", "Φ")]
        lines.append(f"| {name} | {r['batch_size']} × {r['d_steps']} | "
                     + " | ".join(f"{f[n] / 1e9:,.1f}" for n in ("G", "D", "Φ", "other"))
                     + f" | {f['total'] / 1e9:,.1f} | " + " | ".join(params) + " |")
    return "\n".join(lines)
