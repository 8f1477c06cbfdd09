"""Requests to an inverter served by TF Serving, over gRPC (port 8500) and REST (port 8501).

gRPC requests are `PredictRequest` protos whose inputs are `TensorProto`s; REST bodies are JSON
dicts, in the columnar form (`"inputs"`) for arrays and the row form (`"instances"`) for
encoded pictures, whose bytes travel as `{"b64": ...}`. Signature names and input keys are the
ones `logit_inversion.serving.export` writes.

Example:
    >>> request = reconstruct_request("demo", images, seed=[1, 2])
    >>> outputs = send_grpc(grpc.insecure_channel("localhost:8500"), request)
    >>> body = reconstruct_encoded_body([open("cat.jpg", "rb").read()])
    >>> response = send_rest(rest_url("localhost", "demo"), body)
    >>> png = decode_b64_outputs(response)[0]["reconstructions_bytes"]
"""

import base64

import numpy as np
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from logit_inversion.serving import export

# gRPC: one input key → its dtype, per signature.
_INPUT_DTYPES = {
    export.SERVING_DEFAULT: {"images": tf.uint8},
    export.RECONSTRUCT: {"images": tf.uint8, "seed": tf.int64},
    export.RECONSTRUCT_ENCODED: {"images_bytes": tf.string},
    export.CLASSIFY: {"images": tf.uint8},
    export.GENERATE: {"logits": tf.float32, "noise": tf.float32},
}


def predict_request(model_name, signature_name, inputs, version=None):
    """A gRPC `PredictRequest` for one signature.

    Args:
        model_name: the served model's name (TF Serving's `MODEL_NAME`).
        signature_name: one of `export.SIGNATURES`.
        inputs: a dict from the signature's input keys to arrays, cast to the signature's
            dtypes.
        version: a version number, or None for the newest.
    """
    expected = _INPUT_DTYPES.get(signature_name)
    if expected is None:
        raise ValueError(
            f"Expected a signature name in {export.SIGNATURES}. "
            f"Received: signature_name={signature_name}"
        )
    if set(inputs) != set(expected):
        raise ValueError(
            f"Expected the inputs {sorted(expected)} for signature '{signature_name}'. "
            f"Received: inputs with keys {sorted(inputs)}"
        )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value, dtype=expected[key]))
    return request


def reconstruct_request(model_name, images, seed=export.DEFAULT_SEED, version=None):
    """`reconstruct`: uint8 images `[B, H, W, 3]` and an int64 seed, scalar or `[B]`."""
    return predict_request(
        model_name, export.RECONSTRUCT, {"images": images, "seed": seed}, version
    )


def reconstruct_encoded_request(model_name, encoded_images, version=None):
    """`reconstruct_encoded`: a list of JPEG/PNG file contents (bytes)."""
    return predict_request(
        model_name, export.RECONSTRUCT_ENCODED, {"images_bytes": list(encoded_images)}, version
    )


def classify_request(model_name, images, version=None):
    """`classify`: uint8 images `[B, H, W, 3]`."""
    return predict_request(model_name, export.CLASSIFY, {"images": images}, version)


def generate_request(model_name, logits, noise, version=None):
    """`generate`: float32 logits `[B, K]` and noise `[B, Z]`."""
    return predict_request(
        model_name, export.GENERATE, {"logits": logits, "noise": noise}, version
    )


def send_grpc(channel, request, timeout=30.0):
    """Sends `request` over a `grpc` channel; returns its outputs as a dict of numpy arrays."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(request, timeout)
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def rest_url(host, model_name, port=8501, version=None):
    """TF Serving's REST predict URL, e.g. `http://localhost:8501/v1/models/demo:predict`."""
    versioned = f"/versions/{int(version)}" if version is not None else ""
    return f"http://{host}:{port}/v1/models/{model_name}{versioned}:predict"


def rest_body(signature_name, inputs):
    """A columnar REST body: `{"signature_name": ..., "inputs": {key: nested lists}}`."""
    return {
        "signature_name": signature_name,
        "inputs": {key: np.asarray(value).tolist() for key, value in inputs.items()},
    }


def reconstruct_body(images, seed=export.DEFAULT_SEED):
    """REST `reconstruct`: uint8 images `[B, H, W, 3]` and a seed, scalar or `[B]`."""
    return rest_body(
        export.RECONSTRUCT,
        {"images": np.asarray(images, np.uint8), "seed": np.asarray(seed, np.int64)},
    )


def reconstruct_encoded_body(encoded_images):
    """REST `reconstruct_encoded`: one `{"images_bytes": {"b64": ...}}` instance per picture."""
    return {
        "signature_name": export.RECONSTRUCT_ENCODED,
        "instances": [
            {"images_bytes": {"b64": base64.b64encode(data).decode("ascii")}}
            for data in encoded_images
        ],
    }


def classify_body(images):
    """REST `classify`: uint8 images `[B, H, W, 3]`."""
    return rest_body(export.CLASSIFY, {"images": np.asarray(images, np.uint8)})


def generate_body(logits, noise):
    """REST `generate`: float32 logits `[B, K]` and noise `[B, Z]`."""
    return rest_body(
        export.GENERATE,
        {"logits": np.asarray(logits, np.float32), "noise": np.asarray(noise, np.float32)},
    )


def send_rest(url, body, timeout=30.0):
    """POSTs `body` as JSON to `url`; returns the decoded response, or raises with its error."""
    response = requests.post(url, json=body, timeout=timeout)
    if not response.ok:
        raise ValueError(f"TF Serving answered {response.status_code}. Received: {response.text}")
    return response.json()


def decode_b64_outputs(response):
    """Row-form response → a list of dicts per instance, with `{"b64": ...}` values as bytes.

    TF Serving base64-encodes string outputs whose key ends in `_bytes`, such as
    `reconstructions_bytes` (PNG files).
    """
    predictions = response["predictions"]
    return [
        {key: _maybe_b64(value) for key, value in prediction.items()}
        for prediction in predictions
    ]


def _maybe_b64(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value
