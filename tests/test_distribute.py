"""What a TPU run relies on, checked on CPU: MirroredStrategy over two logical devices, XLA
compilation, and mixed bfloat16 — each in a fresh process because they are global settings."""

import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(mode, classifier, data_dir):
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "_distributed_steps.py"), mode, classifier, data_dir],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(l[len("RESULT "):]) for l in out.stdout.splitlines()
            if l.startswith("RESULT ")]


def test_mirrored_two_replicas_stay_identical(tiny_classifier_path, shapes_data_dir):
    [result] = _run("mirrored", tiny_classifier_path, shapes_data_dir)
    assert result["replicas"] == 2
    assert result["g_steps"] == 4
    assert all(np.isfinite(v) for v in result["logs"].values())
    assert result["num_variables"] > 50
    assert result["max_replica_difference"] < 1e-6


def test_train_step_compiles_with_xla_and_bfloat16(tiny_classifier_path, shapes_data_dir):
    results = _run("jit", tiny_classifier_path, shapes_data_dir)
    assert [r["mode"] for r in results] == ["jit", "jit_bf16"]
    for result in results:
        assert result["g_steps"] == 4
        assert all(np.isfinite(v) for v in result["logs"].values()), result
    assert [r["compute_dtype"] for r in results] == ["float32", "bfloat16"]
