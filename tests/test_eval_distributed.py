"""Held-out agreement under MirroredStrategy equals the single-device value."""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_mirrored_agreement_equals_single_device(tiny_classifier_path, shapes_data_dir,
                                                 tmp_path):
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "_eval_distributed.py"), tiny_classifier_path,
         shapes_data_dir, str(tmp_path)], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    [line] = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
    result = json.loads(line[len("RESULT "):])
    assert result["replicas"] == 2 and result["eval_batch"] % 2 == 0
    single, mirrored = result["single"], result["mirrored"]
    assert single["eval_examples"] == mirrored["eval_examples"] == 44
    assert mirrored["agreement"] == single["agreement"], result
    assert "ran out of data" not in out.stderr


def test_eval_batch_is_a_multiple_of_the_replica_count():
    from logit_inversion import testing
    from logit_inversion.training.trainer import eval_batch_size
    config = testing.tiny_config("unused", None, eval_examples=2000)
    assert [eval_batch_size(config, r) for r in (1, 2, 3, 8, 128)] == [100, 100, 99, 96, 128]
    config.eval_examples = 10
    assert [eval_batch_size(config, r) for r in (1, 4)] == [10, 8]
