"""The package's folders follow the pipeline: no subpackage imports one that the pipeline puts
after it (imports inside functions included), so the import graph between them has no cycle.

A new subpackage or top-level module gets a place in `LAYERS`."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "logit_inversion"

# Bottom first. A module may import its own layer's and earlier layers' modules only; the
# names that share a layer (a tuple) may not import each other.
LAYERS = [
    ("files", "_tf_private"),    # atomic writes; the fenced private TensorFlow entry points
    ("visualize",),              # image grids
    ("configs",),                # every config key, its one default and its validation
    ("data",),
    ("classifiers",),            # the frozen classifier Φ
    ("models",),                 # G, D, the inverter
    ("training",),               # config → trained workdir
    ("serving",),                # export, loading, client, reconstructions of a split
    ("evaluation",),
    ("analysis",),
    ("testing",),                # tiny stand-ins for tests, examples and benchmarks
    ("benchmarks", "reproduction", "explore"),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}

# Upward imports still to be moved: (importing file, imported subpackage) → why it stands.
# An entry that no longer matches an import fails the test, so the list only shrinks.
KNOWN_UPWARD = {}


def _unit(module):
    """`logit_inversion.x.y` → `x` (a subpackage or top-level module), else None."""
    parts = module.split(".")
    return parts[1] if parts[0] == PACKAGE and len(parts) > 1 else None


def _imports(path):
    """(line, imported module) for every import statement of the file, at any depth."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module == PACKAGE:   # from logit_inversion import files, training
                for alias in node.names:
                    yield node.lineno, f"{PACKAGE}.{alias.name}"
            else:
                yield node.lineno, node.module


def _package_files():
    for folder, _, names in os.walk(os.path.join(ROOT, PACKAGE)):
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, ROOT), path


def _upward():
    found = {}
    for relative, path in _package_files():
        parts = relative[:-3].split(os.sep)
        if parts[1] == "__init__":   # the package's face: lazy names of every layer
            continue
        source = parts[1]
        for line, module in _imports(path):
            target = _unit(module)
            if target is None or target == source:
                continue
            if RANK[target] >= RANK[source]:
                found.setdefault((relative.replace(os.sep, "/"), target), []).append(
                    f"{relative}:{line} imports {module}")
    return found


def test_every_subpackage_has_a_layer():
    units = {relative[:-3].split(os.sep)[1] for relative, _ in _package_files()}
    assert units - {"__init__"} <= set(RANK), sorted(units - set(RANK) - {"__init__"})


def test_no_subpackage_imports_a_later_one():
    found = _upward()
    new = {key: lines for key, lines in found.items() if key not in KNOWN_UPWARD}
    assert not new, [line for lines in new.values() for line in lines]
    stale = set(KNOWN_UPWARD) - set(found)
    assert not stale, f"moved: take these off KNOWN_UPWARD: {sorted(stale)}"
