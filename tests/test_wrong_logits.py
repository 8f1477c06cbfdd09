"""Honest wrong-logit tests: adversarial reconstructions count only attacks that changed Φ's
top-1, say "not tested" when none did, and a second classifier judges beside Φ."""

import numpy as np
import pytest

from logit_inversion.analysis import adversarial, common, data as analysis_data, misclassified
from logit_inversion.analysis import model as analysis_model


@pytest.fixture(scope="module")
def model(tiny_inverter):
    return analysis_model.open_model(tiny_inverter.workdir)


@pytest.fixture(scope="module")
def images(shapes_data_dir):
    return analysis_data.load_images("shapes", "test", 32, 16, shapes_data_dir)


def test_no_successful_attack_reads_not_tested_instead_of_a_score(model, images):
    # A radius far below one uint8 step cannot move Φ's top-1.
    result = adversarial.run(model, images, linf_epsilons=(1e-7,), l2_epsilons=(1e-7,),
                             steps=2, max_images=8)
    for row in result["tables"]["attacks"]:
        assert row["successes"] == 0 and row["success_rate"] == 0.0
        assert row["status"] == adversarial.NOT_TESTED
        assert row["recon_as_adversarial"] is None and row["recon_as_true"] is None
        assert row["recon_as_adversarial_low"] is None
    summary = result["summary"]
    statuses = [v for k, v in summary.items() if k.endswith("_status")]
    assert len(statuses) == 4 and set(statuses) == {adversarial.NOT_TESTED}
    assert all(v is None for k, v in summary.items() if k.endswith("_recon_as_adversarial"))
    assert adversarial.render_figure(model, result).height > 0


def test_reconstruction_rates_count_successful_attacks_only(model, images):
    result = adversarial.run(model, images, linf_epsilons=(0.0, 32 / 255),
                             l2_epsilons=(0.0, 4.0), steps=3, max_images=8,
                             second_classifier=model.classify, second_name="Φ again")
    rows = result["tables"]["attacks"]
    assert any(r["successes"] for r in rows)
    for row in rows:
        assert row["successes"] == round(row["success_rate"] * row["images"])
        if row["epsilon"] == 0:   # x_adv = x: Φ's top-1 cannot change
            assert row["status"] == adversarial.NOT_TESTED
        if row["successes"]:
            assert row["recon_as_adversarial_low"] <= row["recon_as_adversarial"]
            assert row["recon_as_adversarial"] <= row["recon_as_adversarial_high"]
            # Φ as the second judge reads what Φ read; x_adv shows Φ the adversarial class.
            assert row["second_recon_as_adversarial"] == row["recon_as_adversarial"]
            assert row["second_adv_as_adversarial"] == 1.0
    assert result["summary"]["second_classifier"] == "Φ again"


def test_a_second_classifier_over_other_classes_is_refused(model, images):
    def three_classes(x):
        return np.zeros((len(x), 3), np.float32)

    with pytest.raises(ValueError, match=r"over Φ's 6 classes.*shape \(1, 3\)"):
        adversarial.run(model, images, linf_epsilons=(0.0,), l2_epsilons=(0.0,), max_images=2,
                        second_classifier=three_classes)
    with pytest.raises(ValueError, match=r"over Φ's 6 classes.*shape \(1, 3\)"):
        misclassified.run(model, images, second_classifier=three_classes)


def test_misclassified_reports_both_judges_with_intervals(model, images):
    result = misclassified.run(model, images, seed=0, second_classifier=model.classify,
                               second_name="Φ again")
    s = result["summary"]
    predicted = common.top1(model.classify(images.images))
    assert s["misclassified"] == int(np.sum(predicted != images.labels)) > 0
    assert s["status"] == "tested"
    assert s["second_on_recon_prediction"] == s["recon_as_prediction"]
    assert s["recon_as_prediction_low"] <= s["recon_as_prediction"] <= s["recon_as_prediction_high"]
    assert s["second_on_originals_true"] == 0.0


def test_misclassified_without_a_mistake_reads_not_tested(model, images):
    # Labels set to Φ's own predictions: Φ makes no mistake on these images.
    agreeing = analysis_data.Images(images.images, common.top1(model.classify(images.images)),
                                    source="Φ's predictions as labels")
    s = misclassified.run(model, agreeing, seed=0)["summary"]
    assert s["misclassified"] == 0 and s["status"] == misclassified.NOT_TESTED
    assert "recon_as_prediction" not in s
