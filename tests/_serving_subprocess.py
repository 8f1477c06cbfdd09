"""Calls every serving signature of an exported inverter the way TF Serving would.

Run by tests/test_serving_load.py in a separate Python process that imports TensorFlow and
numpy only, never `logit_inversion`: what works here works for a client that has nothing but
the SavedModel. It knows only the serving contract (signature names, input and output keys,
dtypes), loads the model with `tf.saved_model.load`, calls `.signatures[name](**inputs)`,
saves inputs and outputs to an .npz file for the test to compare, and prints a JSON summary.

Usage: python tests/_serving_subprocess.py SAVED_MODEL_DIR OUTPUT_NPZ
"""

import json
import sys

import numpy as np
import tensorflow as tf


def main(saved_model_dir, output_npz):
    model = tf.saved_model.load(saved_model_dir)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 40, 30, 3), dtype=np.uint8)
    seed = np.array([11, 12], np.int64)
    encoded = np.array([tf.io.encode_png(image).numpy() for image in images], dtype=object)
    arrays = {"inputs/images": images, "inputs/seed": seed}
    summary = {}

    def call(name, **inputs):
        signature = model.signatures[name]
        outputs = signature(**{key: tf.constant(value) for key, value in inputs.items()})
        summary[name] = {
            key: [value.dtype.name, value.shape.as_list()] for key, value in outputs.items()
        }
        for key, value in outputs.items():
            arrays[f"{name}/{key}"] = value.numpy()
        return outputs

    call("serving_default", images=images)
    reconstructed = call("reconstruct", images=images, seed=seed)
    encoded_outputs = call("reconstruct_encoded", images_bytes=encoded)
    call("classify", images=images)
    call(
        "generate",
        logits=reconstructed["logits"].numpy(),
        noise=reconstructed["noise"].numpy(),
    )
    # String outputs are decoded here, so the .npz holds numbers only.
    arrays["reconstruct_encoded/reconstructions_bytes"] = np.stack(
        [tf.io.decode_png(png).numpy() for png in encoded_outputs["reconstructions_bytes"]]
    )
    try:
        model.signatures["classify"](images=tf.constant(images[0]))
        summary["invalid_argument"] = None
    except tf.errors.InvalidArgumentError as error:
        summary["invalid_argument"] = error.message
    summary["imported_logit_inversion"] = any(
        name.split(".")[0] == "logit_inversion" for name in sys.modules
    )
    np.savez(output_npz, **arrays)
    print(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:])
