"""What a TPU run relies on, checked on CPU: MirroredStrategy over two logical devices, XLA
compilation, and mixed bfloat16 — each in a fresh process because they are global settings."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(mode, classifier, data_dir, workdir):
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "_distributed_steps.py"), mode, classifier, data_dir,
         str(workdir)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(l[len("RESULT "):]) for l in out.stdout.splitlines()
            if l.startswith("RESULT ")], out.stderr


@pytest.fixture(scope="module")
def mirrored(tiny_classifier_path, shapes_data_dir, tmp_path_factory):
    """One two-replica process for all the MirroredStrategy checks (`stderr`: its log)."""
    [result], stderr = _run("mirrored", tiny_classifier_path, shapes_data_dir,
                            tmp_path_factory.mktemp("mirrored"))
    return dict(result, stderr=stderr)


@pytest.mark.processes
def test_mirrored_two_replicas_stay_identical(mirrored):
    assert mirrored["replicas"] == 2
    assert mirrored["g_steps"] == 4
    assert all(np.isfinite(v) for v in mirrored["logs"].values())
    assert mirrored["num_variables"] > 50
    assert mirrored["max_replica_difference"] < 1e-6


@pytest.mark.processes
def test_each_replica_draws_its_own_repeatable_noise(mirrored):
    assert mirrored["noise_replicas_differ"]
    assert mirrored["noise_repeats"]
    assert mirrored["noise_steps_differ"]


@pytest.mark.processes
def test_replica_identical_state_is_not_all_reduced(mirrored):
    # Spectral-norm vectors and moving statistics of G, G_ema and D.
    assert mirrored["num_replica_identical"] > 30
    assert mirrored["aggregations"] == ["ONLY_FIRST_REPLICA"]


@pytest.mark.processes
def test_held_out_metrics_count_every_replicas_images(mirrored):
    """9 images in batches of 4 on two replicas (one replica's last batch is empty): the
    reported metrics are the single-device means over the same 9 images."""
    reported, expected = mirrored["eval_reported"], mirrored["eval_expected"]
    assert set(reported) == set(expected)
    for name in expected:
        assert reported[name] == pytest.approx(expected[name], rel=1e-4, abs=1e-5), name


@pytest.mark.processes
def test_standing_stats_under_two_replicas(mirrored):
    assert mirrored["standing_batches"] == 2
    assert mirrored["standing_finite"]
    assert mirrored["standing_replica_difference"] < 1e-6


@pytest.mark.processes
def test_held_out_agreement_under_two_replicas_equals_single_device(mirrored):
    result = mirrored["held_out_evaluation"]
    assert result["replicas"] == 2 and result["eval_batch"] % 2 == 0
    single, two = result["single"], result["mirrored"]
    assert single["eval_examples"] == two["eval_examples"] == 44
    assert two["agreement"] == single["agreement"], result
    assert "ran out of data" not in mirrored["stderr"]


def test_eval_batch_is_a_multiple_of_the_replica_count():
    from logit_inversion import testing
    from logit_inversion.training.trainer import eval_batch_size
    config = testing.tiny_config("unused", None, eval_examples=2000)
    assert [eval_batch_size(config, r) for r in (1, 2, 3, 8, 128)] == [100, 100, 99, 96, 128]
    config.eval_examples = 10
    assert [eval_batch_size(config, r) for r in (1, 4)] == [10, 8]


@pytest.mark.slow  # XLA's CPU compile of the step takes minutes
def test_train_step_compiles_with_xla_and_bfloat16(tiny_classifier_path, shapes_data_dir,
                                                   tmp_path):
    results, _ = _run("jit", tiny_classifier_path, shapes_data_dir, tmp_path)
    assert [r["mode"] for r in results] == ["jit", "jit_bf16"]
    for result in results:
        assert result["g_steps"] == 4
        assert all(np.isfinite(v) for v in result["logs"].values()), result
    assert [r["compute_dtype"] for r in results] == ["float32", "bfloat16"]
