"""A quick look at a `--model` path before TensorFlow loads (seconds on a small machine), so a
path that cannot be an inverter is refused at once. Only local paths are judged; a remote
one (`gs://…`) and anything that looks like a model go on to the real loader, which has the
last word."""

import os

_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def not_an_inverter(path):
    """Why the local `path` cannot be a `bin/train` workdir or an exported inverter, or None
    when it may be one (or is not local)."""
    path = os.fspath(path)
    if "://" in path:
        return None
    if not os.path.exists(path):
        return "no such file or folder"
    if not os.path.isdir(path):
        return "a file, not a folder"
    names = set(os.listdir(path))
    if "config.json" in names or names & set(_SAVED_MODEL_FILES):
        return None
    if any(n.isdigit() and os.path.isdir(os.path.join(path, n)) for n in names):
        return None   # a model folder of versions: the loader checks the newest
    return "neither a bin/train workdir (no config.json) nor an exported SavedModel"
