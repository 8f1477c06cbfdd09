"""Tests for `serving_client`: the requests it builds, and round trips through a stand-in server.

The stand-in (`_FakeTFServing`) answers gRPC `Predict` and REST `:predict` on loopback by
running the requested signature of a real export, converting tensors the way TF Serving's
documentation describes (TensorProtos; JSON row and columnar forms, `{"b64": ...}` for bytes,
base64 for outputs named `*_bytes`). It is not TF Serving; it checks that the requests carry
the right signature name, keys, dtypes and shapes, and that `send_grpc`/`send_rest` work.
"""

import base64
import concurrent.futures
import http.server
import json
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from logit_inversion.serving import client as serving_client

MODEL = "demo"


@pytest.fixture(scope="module")
def server(tiny_export):
    fake = _FakeTFServing(tf.saved_model.load(tiny_export.version))
    yield fake
    fake.stop()


def _images(batch=2, height=20, width=24):
    return np.random.default_rng(0).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)


# ---- requests ---------------------------------------------------------------------------


def _dims(proto):
    return [dim.size for dim in proto.tensor_shape.dim]


def test_grpc_requests_carry_signature_keys_dtypes_and_shapes():
    images = _images()
    request = serving_client.reconstruct_request(MODEL, images, seed=[1, 2], version=3)
    assert request.model_spec.name == MODEL
    assert request.model_spec.signature_name == "reconstruct"
    assert request.model_spec.version.value == 3
    assert set(request.inputs) == {"images", "seed"}
    assert request.inputs["images"].dtype == types_pb2.DT_UINT8
    assert _dims(request.inputs["images"]) == [2, 20, 24, 3]
    assert request.inputs["seed"].dtype == types_pb2.DT_INT64
    assert _dims(request.inputs["seed"]) == [2]
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["images"]), images)

    request = serving_client.classify_request(MODEL, images)
    assert request.model_spec.signature_name == "classify"
    assert not request.model_spec.HasField("version")
    assert {key: proto.dtype for key, proto in request.inputs.items()} == {
        "images": types_pb2.DT_UINT8
    }

    request = serving_client.generate_request(MODEL, np.zeros((2, 6)), np.zeros((2, 16)))
    assert request.model_spec.signature_name == "generate"
    assert {key: (proto.dtype, _dims(proto)) for key, proto in request.inputs.items()} == {
        "logits": (types_pb2.DT_FLOAT, [2, 6]), "noise": (types_pb2.DT_FLOAT, [2, 16])
    }

    request = serving_client.reconstruct_encoded_request(MODEL, [b"\x89PNG1", b"\xff\xd8\xff2"])
    assert request.model_spec.signature_name == "reconstruct_encoded"
    assert request.inputs["images_bytes"].dtype == types_pb2.DT_STRING
    assert list(request.inputs["images_bytes"].string_val) == [b"\x89PNG1", b"\xff\xd8\xff2"]


def test_grpc_request_rejects_unknown_signatures_and_keys():
    with pytest.raises(ValueError, match="Received: signature_name=predict"):
        serving_client.predict_request(MODEL, "predict", {"images": _images()})
    with pytest.raises(ValueError, match=r"Expected the inputs \['images', 'seed'\]"):
        serving_client.predict_request(MODEL, "reconstruct", {"images": _images()})


def test_rest_bodies_and_url():
    images = _images(batch=1, height=2, width=2)
    body = serving_client.reconstruct_body(images, seed=7)
    assert body == {
        "signature_name": "reconstruct",
        "inputs": {"images": images.tolist(), "seed": 7},
    }
    json.dumps(body)  # plain JSON types only
    body = serving_client.generate_body(np.ones((1, 2)), np.zeros((1, 3)))
    assert body == {
        "signature_name": "generate",
        "inputs": {"logits": [[1.0, 1.0]], "noise": [[0.0, 0.0, 0.0]]},
    }
    assert serving_client.classify_body(images)["signature_name"] == "classify"
    body = serving_client.reconstruct_encoded_body([b"\x89PNG", b"\xff\xd8\xff"])
    assert body == {
        "signature_name": "reconstruct_encoded",
        "instances": [
            {"images_bytes": {"b64": base64.b64encode(b"\x89PNG").decode()}},
            {"images_bytes": {"b64": base64.b64encode(b"\xff\xd8\xff").decode()}},
        ],
    }
    assert serving_client.rest_url("localhost", MODEL) == (
        "http://localhost:8501/v1/models/demo:predict"
    )
    assert serving_client.rest_url("host", MODEL, port=9000, version=2) == (
        "http://host:9000/v1/models/demo/versions/2:predict"
    )


# ---- round trips through the stand-in server ---------------------------------------------


def test_grpc_round_trip_for_every_signature(server):
    channel = grpc.insecure_channel(server.grpc_target)
    images = _images()
    out = serving_client.send_grpc(
        channel, serving_client.reconstruct_request(MODEL, images, seed=[1, 2])
    )
    assert out["reconstructions"].dtype == np.uint8 and out["reconstructions"].shape[0] == 2
    logits = serving_client.send_grpc(channel, serving_client.classify_request(MODEL, images))
    np.testing.assert_allclose(logits["logits"], out["logits"], atol=1e-6)
    generated = serving_client.send_grpc(
        channel, serving_client.generate_request(MODEL, out["logits"], out["noise"])
    )
    np.testing.assert_array_equal(generated["images"], out["reconstructions"])
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    encoded = serving_client.send_grpc(
        channel, serving_client.reconstruct_encoded_request(MODEL, pngs)
    )
    default = server.model.signatures["serving_default"](images=tf.constant(images))
    for png, expected in zip(encoded["reconstructions_bytes"], default["reconstructions"]):
        np.testing.assert_array_equal(tf.io.decode_png(png), expected)


def test_grpc_error_is_invalid_argument(server):
    channel = grpc.insecure_channel(server.grpc_target)
    request = serving_client.classify_request(MODEL, _images()[0])  # no batch dimension
    with pytest.raises(grpc.RpcError) as error:
        serving_client.send_grpc(channel, request)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "`images` must be uint8 RGB images" in error.value.details()


def test_rest_round_trip(server):
    url = serving_client.rest_url("127.0.0.1", MODEL, port=server.rest_port)
    images = _images()
    outputs = serving_client.send_rest(url, serving_client.reconstruct_body(images, [1, 2]))
    grpc_outputs = serving_client.send_grpc(
        grpc.insecure_channel(server.grpc_target),
        serving_client.reconstruct_request(MODEL, images, seed=[1, 2]),
    )
    np.testing.assert_array_equal(
        np.array(outputs["outputs"]["reconstructions"], np.uint8), grpc_outputs["reconstructions"]
    )
    jpeg = tf.io.encode_jpeg(images[0]).numpy()
    response = serving_client.send_rest(url, serving_client.reconstruct_encoded_body([jpeg]))
    (prediction,) = serving_client.decode_b64_outputs(response)
    picture = tf.io.decode_png(prediction["reconstructions_bytes"]).numpy()
    assert picture.shape[-1] == 3 and len(prediction["logits"]) == 6
    with pytest.raises(ValueError, match="400.*must hold encoded JPEG or PNG"):
        serving_client.send_rest(url, serving_client.reconstruct_encoded_body([b"text"]))


# ---- the stand-in server ------------------------------------------------------------------


class _FakeTFServing:
    """gRPC and REST `predict` for one loaded SavedModel, on loopback ports."""

    def __init__(self, model):
        self.model = model
        self._grpc = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self), self._grpc
        )
        self.grpc_target = f"127.0.0.1:{self._grpc.add_insecure_port('127.0.0.1:0')}"
        self._grpc.start()
        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RestHandler)
        self._http.fake = self
        self.rest_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def predict(self, signature_name, inputs):
        """Runs a signature on numpy inputs cast to its dtypes, as TF Serving would."""
        signature = self.model.signatures[signature_name or "serving_default"]
        specs = signature.structured_input_signature[1]
        if set(inputs) != set(specs):
            raise tf.errors.InvalidArgumentError(None, None, "input size does not match signature")
        tensors = {key: tf.constant(value, specs[key].dtype) for key, value in inputs.items()}
        return {key: value.numpy() for key, value in signature(**tensors).items()}

    def stop(self):
        self._grpc.stop(None)
        self._http.shutdown()


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, fake):
        self.fake = fake

    def Predict(self, request, context):  # noqa: N802 (gRPC's name)
        if request.model_spec.name != MODEL:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no model {request.model_spec.name}")
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        try:
            outputs = self.fake.predict(request.model_spec.signature_name, inputs)
        except tf.errors.InvalidArgumentError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
        response = predict_pb2.PredictResponse()
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response


def _from_json(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    return value


def _to_json(key, value):
    if key.endswith("_bytes"):
        return [{"b64": base64.b64encode(item).decode("ascii")} for item in value]
    return value.tolist()


class _RestHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != f"/v1/models/{MODEL}:predict":
            return self._reply(404, {"error": f"no model at {self.path}"})
        if "instances" in body:  # row form: one dict per instance, stacked per key
            instances = body["instances"]
            inputs = {key: [_from_json(row[key]) for row in instances] for key in instances[0]}
        else:  # columnar form
            inputs = {key: _from_json(value) for key, value in body["inputs"].items()}
        try:
            outputs = self.server.fake.predict(body.get("signature_name"), inputs)
        except tf.errors.InvalidArgumentError as error:
            return self._reply(400, {"error": error.message})
        columns = {key: _to_json(key, value) for key, value in outputs.items()}
        if "instances" in body:
            rows = [dict(zip(columns, row)) for row in zip(*columns.values())]
            return self._reply(200, {"predictions": rows})
        return self._reply(200, {"outputs": columns})

    def _reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass  # keep test output quiet
