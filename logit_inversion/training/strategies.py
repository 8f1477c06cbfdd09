"""From a strategy name (the `--strategy` flag) to a `tf.distribute.Strategy`."""

import socket
from urllib.parse import urlparse

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "tpu")


def get_strategy(name="default", tpu=None):
    """Returns the strategy called `name`; `tpu` names the TPU (address or Cloud TPU name).

    Raises ValueError for an unknown name and RuntimeError, in one line, when
    `name="tpu"` but no TPU can be reached.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}. "
                         f"Received: strategy={name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _tpu_strategy(tpu)


def _check_reachable(address, timeout=5.0):
    """Fails fast on a dead grpc:// address: TF's own connect would wait forever."""
    url = urlparse(address)
    try:
        socket.create_connection((url.hostname, url.port or 8470), timeout=timeout).close()
    except OSError as e:
        raise RuntimeError(f"cannot open {url.hostname}:{url.port or 8470} ({e.strerror or e})")


def _tpu_strategy(tpu):
    try:
        if tpu and tpu.startswith("grpc://"):
            _check_reachable(tpu)
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        if not tf.config.list_logical_devices("TPU"):
            raise RuntimeError("no TPU devices visible after initialisation")
        return tf.distribute.TPUStrategy(resolver)
    except Exception as e:  # the resolver raises many types; all mean "no TPU here"
        reason = str(e).strip().splitlines()[0].rstrip(".") if str(e).strip() else type(e).__name__
        raise RuntimeError(f"--strategy=tpu but no TPU is reachable (tpu={tpu!r}): {reason}. "
                           "Pass --tpu=<name or grpc://address>, or use --strategy=default.") from None
