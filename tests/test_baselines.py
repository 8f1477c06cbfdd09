"""The optimization baseline, model specs, and `bin/evaluate` end to end on tiny models."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from logit_inversion.evaluation.baselines import optimization

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_total_variation_known_values():
    flat = tf.ones((1, 4, 4, 3))
    assert float(optimization.total_variation(flat)[0]) == 0.0
    # Vertical stripes 0, 1, 0, 1: every horizontal difference is ±1, vertical ones 0, so the
    # mean of Δx² + Δy² over the 3×3 interior grid is 1.
    stripes = tf.tile(tf.constant([0.0, 1.0, 0.0, 1.0])[None, None, :, None], (1, 4, 1, 3))
    assert float(optimization.total_variation(stripes)[0]) == pytest.approx(1.0)
    assert float(optimization.total_variation(stripes, beta=1.0)[0]) == pytest.approx(1.0, 1e-3)


def test_range_penalty_is_zero_inside_and_quadratic_outside():
    assert float(optimization.range_penalty(tf.fill((1, 2, 2, 3), 0.9))[0]) == 0.0
    assert float(optimization.range_penalty(tf.fill((1, 2, 2, 3), -1.5))[0]) == pytest.approx(0.25)


def test_parse_spec_defaults_overrides_and_errors():
    assert optimization.parse_spec("optimize") == optimization.DEFAULTS
    spec = optimization.parse_spec("optimize:steps=1000,tv=0.1")
    assert spec["steps"] == 1000 and isinstance(spec["steps"], int) and spec["tv"] == 0.1
    with pytest.raises(ValueError, match="Received: 'stesp=3'"):
        optimization.parse_spec("optimize:stesp=3")
    with pytest.raises(ValueError, match="steps='many'"):
        optimization.parse_spec("optimize:steps=many")
    with pytest.raises(ValueError, match="steps=0"):
        optimization.parse_spec("optimize:steps=0")


def test_optimization_matches_the_target_logits(tiny_classifier_path):
    from logit_inversion.classifiers import load_classifier

    classifier = load_classifier(tiny_classifier_path)
    targets = classifier(tf.random.stateless_uniform((6, 32, 32, 3), (1, 2), -1, 1))
    inverter = optimization.OptimizationInverter(classifier, steps=40, lr=0.05, tv=0.0)
    start = inverter.losses(inverter.init * tf.random.stateless_normal((6, 32, 32, 3), (0, 17)),
                            targets)[1]
    images, recorded = inverter.invert(targets, seed=0, record_steps=(5, 40))
    assert images.shape == (6, 32, 32, 3) and sorted(recorded) == [5, 40]
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0
    end = inverter.losses(images, targets)[1]
    assert float(tf.reduce_mean(end)) < 0.2 * float(tf.reduce_mean(start))
    assert inverter.seconds_per_step > 0
    # Independent per image: the same seed and targets give the same first image in any batch.
    alone = optimization.OptimizationInverter(classifier, steps=40, lr=0.05, tv=0.0)
    np.testing.assert_allclose(alone.invert(targets, seed=0)[:1], images[:1], atol=1e-4)


def test_tv_prior_makes_smoother_images(tiny_classifier_path):
    from logit_inversion.classifiers import load_classifier

    classifier = load_classifier(tiny_classifier_path)
    targets = classifier(tf.random.stateless_uniform((4, 32, 32, 3), (3, 4), -1, 1))
    rough = optimization.OptimizationInverter(classifier, steps=20, tv=0.0, init=0.5)
    smooth = optimization.OptimizationInverter(classifier, steps=20, tv=5.0, init=0.5)
    def tv(inverter):
        return float(tf.reduce_mean(optimization.total_variation(inverter.invert(targets))))
    assert tv(smooth) < 0.5 * tv(rough)


def test_bad_model_spec_is_a_one_line_error(tmp_path):
    from logit_inversion.evaluation.models import load_model

    with pytest.raises(ValueError, match=r"Received: model=.*nowhere$"):
        load_model(str(tmp_path / "nowhere"))


def test_evaluate_scores_a_workdir_and_the_baseline(tiny_config, tiny_inverter, tmp_path):
    from logit_inversion.evaluation import evaluate

    # A workdir as `bin/train` leaves it, without the training (it is not what is tested).
    workdir = tiny_inverter.workdir
    results = evaluate.evaluate(
        [workdir, "optimize:steps=3"], data_dir=tiny_config.data_dir, num_images=64,
        num_distractors=3, feature_layer="logits", diversity_images=4, diversity_samples=2)
    assert list(results["models"]) == [workdir, "optimize:steps=3"]
    assert results["chance"] == 0.25 and "ms_ssim" in results["skipped"]
    assert results["feature_space"].startswith("logits of ")
    for metrics in results["models"].values():
        assert 0.0 <= metrics["top1_agreement"] <= 1.0
        assert 0.0 <= metrics["ident_l2"] <= 1.0 and 0.0 <= metrics["ident_ssim_reverse"] <= 1.0
        assert metrics["fd"] >= -1e-6 and metrics["diversity"] >= 0.0
    assert results["models"][workdir]["diversity"] > 0.0   # the GAN inverter uses its noise
    out = str(tmp_path / "eval")
    evaluate.write_results(results, out)
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["models"][workdir]["top1_agreement"] == (
            results["models"][workdir]["top1_agreement"])
    table = open(os.path.join(out, "metrics.md")).read()
    assert table.count("\n| `") == 2 and "ident. L2" in table and "ms_ssim not computed" in table


@pytest.mark.processes
def test_bin_evaluate_bad_spec_is_a_one_line_error_and_writes_nothing(tmp_path):
    out = str(tmp_path / "eval")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "evaluate"),
                           "--model=optimize:stesp=3", f"--output={out}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("bin/evaluate: error: Expected key=value"), last
    assert not os.path.exists(out)


def test_invert_benchmark_reports_speed_and_identification(tiny_config, tiny_inverter):
    from logit_inversion.benchmarks import invert

    workdir = tiny_inverter.workdir
    result = invert.run({"workdir": workdir, "data_dir": tiny_config.data_dir,
                         "num_images": 64, "num_distractors": 3, "steps": (2, 4),
                         "repeats": 2})
    assert [row["steps"] for row in result["optimization"]["by_steps"]] == [2, 4]
    ff = result["feedforward"]
    assert ff["images_per_second"] > 0 and 0.0 <= ff["identification"]["l2"] <= 1.0
    slower = [row["images_per_second"] for row in result["optimization"]["by_steps"]]
    assert slower[1] < slower[0]          # more steps, fewer images per second
    assert result["speed_ratio_at_reference_steps"] > result["optimization"]["by_steps"][1][
        "speed_ratio"]
    assert "optimization, 4 steps" in invert.table(result)
    with pytest.raises(ValueError, match="Unknown invert benchmark options"):
        invert.run({"workdri": workdir})


def test_feature_loss_known_values():
    from logit_inversion.models.inverter import feature_loss

    a = tf.constant([[3.0, 4.0]])
    assert float(feature_loss(a, a)) == 0.0
    assert float(feature_loss(a, 2 * a)) == pytest.approx(0.25)   # ‖a − 2a‖² / ‖2a‖²


def test_dosovitskiy_brox_config_trains_a_deterministic_decoder(tiny_config):
    from logit_inversion import training
    from logit_inversion.configs import dosovitskiy_brox

    dnb = dosovitskiy_brox.get_config()
    assert dnb.deterministic and dnb.feature_weight > 0 and dnb.pixel_weight > 0
    assert dnb.consistency_weight == 0.0 and dnb.feature_layer == "penultimate"
    for key in ("deterministic", "pixel_weight", "feature_weight", "consistency_weight"):
        tiny_config[key] = dnb[key]
    tiny_config.feature_layer = "logits"      # the tiny classifier has no layers to pick
    inverter = training.build_inverter(tiny_config)
    training.compile_inverter(inverter, tiny_config)
    assert inverter.deterministic and inverter.feature_extractor is not None
    assert float(tf.reduce_max(tf.abs(inverter.sample_noise(3, seed=(1, 2))))) == 0.0
    images = tf.random.stateless_uniform((8, 32, 32, 3), (0, 1), -1, 1)
    logs = inverter.train_step({"image": images})
    assert np.isfinite(float(logs["g_loss"]))
    first, second = inverter(images[:2]), inverter(images[:2])
    np.testing.assert_array_equal(first.numpy(), second.numpy())   # no noise: deterministic
    assert inverter.get_config()["deterministic"] is True


def test_feature_weight_without_extractor_is_an_error(tiny_config):
    from logit_inversion.models.inverter import LogitInverter

    with pytest.raises(ValueError, match="feature_extractor=None"):
        LogitInverter(None, None, None, feature_weight=1.0)
