"""What XLA compiled, read from its dump folder (`XLA_FLAGS=--xla_dump_to=DIR`).

A jit-compiled function that XLA compiles again at every call leaves one module per call in
the dump; one whose variables are lowered as compile-time constants shows them in the
pre-optimisation HLO as `constant(...)` instructions whose metadata names a
`ReadVariableOp`. Both are read here from files TensorFlow writes, not from timings, so the
compile-count tests and `bin/benchmark train` see a recompile however fast the machine is.

`XLA_FLAGS` is read once, when TensorFlow first uses XLA in a process: set it (with
`dump_flags`) before importing TensorFlow, e.g. in a subprocess.
"""

import os
import re
from pathlib import Path

_BEFORE = "before_optimizations.txt"
_CONSTANT_READ = re.compile(r"=\s*\S+\s+constant\(.*op_type=\"ReadVariableOp\"")


def dump_flags(directory):
    """`XLA_FLAGS` that dump each compiled module's HLO (before optimisation only) to
    `directory`, kept beside any flags already set."""
    flags = os.environ.get("XLA_FLAGS", "")
    return f"{flags} --xla_dump_to={directory} --xla_dump_hlo_pass_re=NONE".strip()


def modules(directory, function_name):
    """The pre-optimisation HLO files of every compile of the traced Python function
    `function_name` (one per compile)."""
    pattern = re.compile(rf"_inference_{re.escape(function_name)}_\d+_")
    return sorted(p for p in Path(directory).glob(f"*{_BEFORE}") if pattern.search(p.name))


def compile_count(directory, function_name):
    """How many times XLA compiled `function_name`."""
    return len(modules(directory, function_name))


def constant_variable_reads(hlo_text):
    """The HLO lines where a variable read became a compile-time constant."""
    return [line.strip() for line in hlo_text.splitlines() if _CONSTANT_READ.search(line)]


def summary(directory, function_name):
    """`{"compiles", "constant_variable_reads", "hlo_instructions"}` of `function_name`'s
    dump; the last two read from its first module."""
    files = modules(directory, function_name)
    text = files[0].read_text() if files else ""
    instructions = sum(1 for line in text.splitlines() if re.match(r"\s+(ROOT )?%\S+ = ", line))
    return {"compiles": len(files), "constant_variable_reads": len(constant_variable_reads(text)),
            "hlo_instructions": instructions}
