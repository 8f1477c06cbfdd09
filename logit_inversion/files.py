"""Atomic writes on any filesystem TensorFlow speaks: local paths, `gs://`, `ram://`, ...

Every file the package writes into a workdir or an export folder goes through `tf.io.gfile`,
so a `--workdir=gs://bucket/run` works as a local one does. Atomicity is "write aside, then
rename into place": a reader sees the old file or the new one, never half of one.

- Local disks: `rename(2)` is atomic, for files and folders.
- Object stores (GCS): a rename is a server-side copy followed by a delete. A single object
  appears at once, so files stay atomic; a folder is many objects, so it is moved file by file,
  with the files that mark it complete (`saved_model.pb`) copied last.
"""

import os
import posixpath

import tensorflow as tf

gfile = tf.io.gfile


def is_local(path):
    """Whether `path` is on the local filesystem (no `scheme://` prefix)."""
    return "://" not in os.fspath(path)


def join(path, *parts):
    """`os.path.join` for local paths, `/`-joins for `gs://`-style URLs."""
    path = os.fspath(path)
    return os.path.join(path, *parts) if is_local(path) else posixpath.join(path, *parts)


def write_atomic(path, data):
    """Writes `data` (str or bytes) to `path` through a temporary file beside it."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with gfile.GFile(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    if is_local(tmp):
        # GFile has no fsync; without one a power cut after the rename can leave an empty
        # file in place of the old one on some local filesystems.
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    gfile.rename(tmp, path, overwrite=True)


def read_text(path):
    with gfile.GFile(path, "r") as f:
        return f.read()


def list_names(folder):
    """The names in `folder`, without the trailing `/` object stores put on sub-folders."""
    return [name.rstrip("/") for name in gfile.listdir(folder)]


def move_folder(src, dst):
    """Moves the folder `src` to `dst`, which must not exist.

    Raises:
        tf.errors.AlreadyExistsError (or OSError on a local disk) when `dst` exists.
    """
    if is_local(src) and is_local(dst):
        # Atomic, and fails when `dst` is taken (a non-empty folder).
        os.rename(src, dst)
        return
    if gfile.exists(dst):
        raise tf.errors.AlreadyExistsError(None, None, f"{dst} exists")
    # Not atomic on object stores (and `ram://` renames only the folder entry, not its
    # files): copy file by file, the SavedModel's own files last, so a reader that finds
    # `saved_model.pb` finds its variables too; then delete the source.
    files = []
    for folder, _, names in gfile.walk(src):
        rel = folder[len(src):].strip("/")
        gfile.makedirs(join(dst, rel) if rel else dst)   # empty folders (assets/) too
        files += [posixpath.join(rel, name) if rel else name for name in names]
    last = ("saved_model.pb", "fingerprint.pb")
    for rel in sorted(files, key=lambda f: (f in last, f)):
        gfile.copy(join(src, rel), join(dst, rel), overwrite=False)
    gfile.rmtree(src)
