"""The results page: claims are judged from the stage outputs, missing stages read "not run",
the hand-written prose around the generated block survives a rerun, and figures are written."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from logit_inversion.reproduction import report

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)


def _method(kind, ident, ssim, speed):
    return {"kind": kind, "ident_l2": ident, "ident_ssim": ident, "ssim": ssim, "psnr": 12.0,
            "images_per_second": speed}


def _evaluation(root, name, ours_ident, ours_ssim, baselines=True):
    models = {f"{root}/inverters/{name}": _method("inverter", ours_ident, ours_ssim, 400.0)}
    if baselines:
        models["optimize:steps=100"] = _method("optimization", 0.2, 0.1, 4.0)
        models[f"{root}/dnb/{name}"] = _method("inverter", 0.15, 0.05, 100.0)
    _write(os.path.join(root, "evaluation", name, "metrics.json"),
           {"chance": 0.1, "num_images": 1000, "models": models})


def _invariance(fraction, half_width, pixel_std=0.05, images=256, **extra):
    """An invariance summary: ε explains `fraction` of the pixel variance, ± `half_width`."""
    return {"summary": {"mean_pixel_std": pixel_std, "images": images, "samples": 8,
                        "epsilon_diversity": 0.5, "generator_ignores_noise": False,
                        "epsilon_variance_fraction": fraction,
                        "epsilon_variance_fraction_low": fraction - half_width,
                        "epsilon_variance_fraction_high": fraction + half_width,
                        "epsilon_variance_fraction_images": images, **extra}}


def _analysis(root, name, pixel_std, recovered, fraction=0.5, intervals=False):
    """Analysis summaries of one inverter; factor records without `intervals` are of the
    earlier constant-guess metric."""
    folder = os.path.join(root, "analysis", name)
    _write(os.path.join(folder, "invariance.json"), _invariance(fraction, 0.03, pixel_std))
    _write(os.path.join(folder, "misclassified.json"), {"summary": {
        "scanned": 1000, "misclassified": 40, "recon_as_prediction": 0.8}})
    _write(os.path.join(folder, "adversarial.json"), {"summary": {
        **_attack("untargeted_eps0.0314", 32, 0.2), **_attack("untargeted_eps0.0627", 40, 0.3),
        **_attack("targeted_eps0.0627", 50, 0.9)}})
    _write(os.path.join(folder, "factors.json"), {"summary": {
        **{f"{f}_recovered": recovered for f in report.FACTORS},
        **({f"{f}_recovered_{end}": recovered + delta for f in report.FACTORS
            for end, delta in (("low", -0.05), ("high", 0.05))} if intervals else {})}})
    Image.new("RGB", (40, 30), (200, 10, 10)).save(os.path.join(folder, "reconstructions.png"))


def _attack(key, successes, rate, images=64):
    """An adversarial summary entry: `successes` of `images` attacks moved Φ's top-1."""
    prefix = f"pgd_linf_{key}"
    return {f"{prefix}_success": successes / images, f"{prefix}_successes": successes,
            f"{prefix}_recon_as_adversarial": rate if successes else None}


@pytest.fixture
def root(tmp_path):
    root = str(tmp_path / "reproduce")
    _evaluation(root, "cifar10_standard", 0.30, 0.20)
    _evaluation(root, "cifar10_robust", 0.60, 0.30)
    _evaluation(root, "shapes_standard", 0.11, 0.02)  # within 2 s.e. of chance: not evidence
    _analysis(root, "cifar10_standard", 0.05, 0.0, fraction=0.70)
    _analysis(root, "cifar10_robust", 0.02, 0.0, fraction=0.50)
    _analysis(root, "shapes_standard", 0.04, 0.5)
    _write(os.path.join(root, "stages.json"), [
        {"stage": "invert_cifar10_standard", "seconds": 1800.0, "finished_utc": "t1"},
        {"stage": "invert_cifar10_standard", "seconds": 600.0, "finished_utc": "t2"}])
    return root


def _rows(root, claim):
    return [r for r in report.claim_rows(report.load(root)) if r[0] == claim]


def test_claims_are_judged_from_the_outputs(root):
    ident = {r[2].split(":")[0]: r[3] for r in _rows(root, "Identification above chance")}
    assert ident["cifar10_standard"] == "agrees" and ident["cifar10_robust"] == "agrees"
    # 0.11 on 1,000 images: the Wilson interval [0.092, 0.131] holds chance 0.10.
    assert ident["shapes_standard"] == "within noise"
    assert "n=1000" in {r[2].split(":")[0]: r[2] for r in
                        _rows(root, "Identification above chance")}["shapes_standard"]
    assert ident["shapes_wide"] == report.NOT_RUN
    robust = _rows(root, "Robust keeps more")
    assert robust[0][3] == "agrees" and "0.300 → 0.600" in robust[0][2]
    assert robust[1][3] == report.NOT_RUN  # no shapes_robust evaluation
    noise = _rows(root, "Noise matters more for standard")
    assert noise[0][3] == "agrees" and "per-pixel std 0.0500 vs 0.0200" in noise[0][2]
    assert "ε-variance fraction 0.700 [0.670, 0.730] vs 0.500 [0.470, 0.530]" in noise[0][2]
    assert "n=256 and 256 images × 8 ε" in noise[0][2]
    beats = {r[2].split(":")[0]: r for r in _rows(root, "Feedforward beats prior methods")}
    assert beats["cifar10_standard"][3] == "agrees"
    assert "100× faster" in beats["cifar10_standard"][2]
    assert beats["shapes_standard"][3] == "disagrees"  # 0.11 < optimization's 0.2
    wrong = _rows(root, "Reconstructions follow wrong logits")[0]
    assert "pgd_linf_targeted_eps0.0627 drawn as the adversarial class (Φ) 0.900" in wrong[2]
    assert "n=50 successful attacks" in wrong[2] and wrong[3] == "agrees"
    assert "pgd_linf_untargeted_eps0.0627: 0.300 of 40 successful" in wrong[2]
    assert "no second classifier" in wrong[2]


def test_no_verdict_rests_on_a_failed_attack(root):
    folder = os.path.join(root, "analysis", "cifar10_standard")
    _write(os.path.join(folder, "adversarial.json"), {"summary": {
        **_attack("untargeted_eps0.0627", 0, None), **_attack("targeted_eps0.0627", 0, None)}})
    wrong = _rows(root, "Reconstructions follow wrong logits")[0]
    assert "pgd_linf_targeted_eps0.0627: not tested: no attack succeeded" in wrong[2]
    assert "pgd_linf_untargeted_eps0.0627: not tested: no attack succeeded" in wrong[2]
    assert wrong[3] == "agrees"   # the misclassified images alone: 32/40, interval above 1/2
    _write(os.path.join(folder, "misclassified.json"), {"summary": {
        "scanned": 1000, "misclassified": 0}})
    assert _rows(root, "Reconstructions follow wrong logits")[0][3] == "not tested"
    # An analysis recorded before success counts reads as untested, not as a score.
    _write(os.path.join(folder, "adversarial.json"), {"summary": {
        "pgd_linf_targeted_eps0.0627_success": 0.0,
        "pgd_linf_targeted_eps0.0627_recon_as_adversarial": 1.0}})
    wrong = _rows(root, "Reconstructions follow wrong logits")[0]
    assert wrong[3] == "not tested"
    assert f"pgd_linf_targeted_eps0.0627: {report.NOT_COUNTED_ATTACK}" in wrong[2]


def test_a_second_classifier_must_agree_too(root):
    folder = os.path.join(root, "analysis", "cifar10_standard")
    _write(os.path.join(folder, "misclassified.json"), {"summary": {
        "scanned": 1000, "misclassified": 40, "recon_as_prediction": 0.8,
        "second_on_recon_prediction": 0.1}})
    wrong = _rows(root, "Reconstructions follow wrong logits")[0]
    assert "(second) 0.100" in wrong[2] and wrong[3] == "disagrees"
    _write(os.path.join(folder, "misclassified.json"), {"summary": {
        "scanned": 1000, "misclassified": 40, "recon_as_prediction": 0.8,
        "second_on_recon_prediction": 0.55}})
    assert _rows(root, "Reconstructions follow wrong logits")[0][3] == "within noise"


def test_no_noise_verdict_for_a_generator_that_ignores_its_noise(root):
    # The standard inverter's samples barely differ: its small std says nothing about Φ, and
    # the collapse check wins over intervals that would otherwise give a verdict.
    path = os.path.join(root, "analysis", "cifar10_standard", "invariance.json")
    _write(path, _invariance(0.9, 0.01, generator_ignores_noise=True))
    noise = _rows(root, "Noise matters more for standard")[0]
    assert noise[3] == "not testable: the generator ignores ε"
    assert "cifar10_standard: ε-diversity below 0.2" in noise[2]


@pytest.mark.parametrize("standard, robust, verdict", [
    ((0.70, 0.03), (0.50, 0.03), "agrees"),         # separated, standard varies more
    ((0.50, 0.03), (0.70, 0.03), "disagrees"),      # separated, robust varies more
    ((0.55, 0.04), (0.50, 0.04), "within noise"),   # overlapping intervals
])
def test_noise_verdict_needs_the_difference_interval_to_exclude_zero(root, standard, robust,
                                                                     verdict):
    folder = os.path.join(root, "analysis")
    # The pixel std points the other way each time: it must not decide.
    _write(os.path.join(folder, "cifar10_standard", "invariance.json"),
           _invariance(*standard, pixel_std=0.01 if verdict == "agrees" else 0.2))
    _write(os.path.join(folder, "cifar10_robust", "invariance.json"),
           _invariance(*robust, pixel_std=0.1))
    assert _rows(root, "Noise matters more for standard")[0][3] == verdict


def test_a_noise_record_without_the_fraction_interval_gets_no_verdict(root):
    # Recorded before the fraction had an interval: pixel std alone once gave a verdict by a
    # 10 % rule; now it is shown, not judged.
    path = os.path.join(root, "analysis", "cifar10_robust", "invariance.json")
    _write(path, {"summary": {"mean_pixel_std": 0.02, "images": 64}})
    noise = _rows(root, "Noise matters more for standard")[0]
    assert noise[3] == report.NOT_RERUN
    assert "per-pixel std 0.0500 vs 0.0200 on 256 images" in noise[2]


def _write_stages(root, evaluations):
    """`stages.json` with one 60 s evaluation stage per (inverter, finished UTC)."""
    _write(os.path.join(root, "stages.json"),
           [{"stage": f"evaluate_{name}", "seconds": 60.0, "finished_utc": when}
            for name, when in evaluations])


def test_rows_measured_with_the_earlier_metrics_say_so_and_are_counted_apart(root, tmp_path):
    new = report.METRICS_SINCE
    _write_stages(root, [("cifar10_standard", "2026-12-01 19:52:34"),
                         ("cifar10_standard", f"{new} 05:00:00"),
                         ("cifar10_robust", f"{new} 05:10:00"),
                         ("shapes_standard", "2026-12-01 21:05:15")])
    ident = {r[2].split(":")[0]: r for r in _rows(root, "Identification above chance")}
    assert ident["cifar10_standard"][4] == report.METRICS_SINCE   # the rerun counts
    assert ident["shapes_standard"][4] == "2026-12-01"
    # A pair is as old as its older half.
    _write_stages(root, [("cifar10_standard", "2026-12-01 19:52:34"),
                         ("cifar10_robust", f"{new} 05:10:00"),
                         ("shapes_standard", "2026-12-01 21:05:15")])
    assert _rows(root, "Robust keeps more")[0][4] == "2026-12-01"
    page = str(tmp_path / "results.md")
    report.write(root, page, str(tmp_path / "figures"))
    text = open(page).read()
    assert "| shapes_standard | L2 0.110" in text
    assert f"| within noise | 2026-12-01, {report.EARLIER} |" in text
    # cifar10_robust has no stage record, so it counts as current; the other two do not.
    assert ("| Identification above chance | far above chance | agrees × 1, not run × 3 | "
            "agrees × 1, within noise × 1 |") in text
    assert f"Rows measured before {report.METRICS_SINCE} (2026-12-01)" in text


def test_factor_records_with_intervals_are_drawn(root, tmp_path):
    _write(os.path.join(root, "analysis", "shapes_standard", "factors.json"), {"summary": {
        **{f"{f}_recovered": 0.4 for f in report.FACTORS},
        **{f"{f}_recovered_low": 0.3 for f in report.FACTORS},
        **{f"{f}_recovered_high": 0.5 for f in report.FACTORS}, "images": 1000}})
    written = report.write(root, str(tmp_path / "results.md"), str(tmp_path / "figures"))
    assert "factors.png" in written
    assert "| shapes_standard | 0.40 [0.30, 0.50] kept, n=1000 |" in \
        open(tmp_path / "results.md").read()


def test_close_robust_and_standard_are_within_noise(tmp_path):
    root = str(tmp_path)
    _evaluation(root, "cifar10_standard", 0.30, 0.2)
    _evaluation(root, "cifar10_robust", 0.31, 0.2)
    assert _rows(root, "Robust keeps more")[0][3] == "within noise"
    # 0.30 and 0.31 are above twice chance; 0.15 would be above the noise but not "far".
    _evaluation(root, "cifar10_standard", 0.15, 0.2)
    assert _rows(root, "Identification above chance")[0][3].startswith("weakly agrees")


def test_variants_are_judged_against_the_standard_shapes_inverter(root):
    rows = {r[2].split(" ")[0]: r for r in _rows(root, "Architecture and optimizer matter")}
    assert rows["shapes_wide"][3] == report.NOT_RUN
    _evaluation(root, "shapes_wide", 0.25, 0.05)      # 0.25 vs 0.11: far beyond 2 s.e.
    _evaluation(root, "shapes_adam", 0.12, 0.02)      # 0.12 vs 0.11: noise
    _analysis(root, "shapes_wide", 0.04, 0.1)
    rows = {r[2].split(" ")[0]: r for r in _rows(root, "Architecture and optimizer matter")}
    assert rows["shapes_wide"][3] == "agrees"
    assert "ident. L2 0.250 vs 0.110" in rows["shapes_wide"][2]
    # Factors of the earlier metric are not set against each other.
    assert "changed most" not in rows["shapes_wide"][2]
    _analysis(root, "shapes_wide", 0.04, 0.1, intervals=True)
    _analysis(root, "shapes_standard", 0.04, 0.5, intervals=True)
    rows = {r[2].split(" ")[0]: r for r in _rows(root, "Architecture and optimizer matter")}
    assert "changed most: shape_hue 0.10 vs 0.50" in rows["shapes_wide"][2]
    assert rows["shapes_adam"][3] == "within noise"
    assert "changed most" not in rows["shapes_adam"][2]   # no factors analysis of it


def test_page_keeps_the_prose_and_figures_are_written(root, tmp_path):
    page = str(tmp_path / "results.md")
    with open(page, "w") as f:
        f.write(f"# Results\n\nHand-written intro.\n\n{report.BEGIN}\nold table\n{report.END}\n"
                "\nHand-written discussion.\n")
    written = report.write(root, page, str(tmp_path / "figures"))
    text = open(page).read()
    assert "Hand-written intro." in text and "Hand-written discussion." in text
    assert "old table" not in text and text.count(report.BEGIN) == 1
    assert "| invert_cifar10_standard | 10.0 | t2 |  |" in text  # the last run of a stage
    assert "| shapes_standard | old metric: 0.50 |" in text
    # Factor records of the earlier metric only: no chart rather than an empty one.
    assert "factors.png" not in written
    for name in ("identification.png", "baselines.png", "robust_vs_standard.png"):
        assert name in written
        with Image.open(tmp_path / "figures" / name) as image:
            assert image.width <= 1200
    report.write(root, page, str(tmp_path / "figures"))
    assert open(page).read() == text  # rerunning changes nothing


def test_a_page_with_one_marker_is_refused(root, tmp_path):
    page = tmp_path / "results.md"
    page.write_text(f"{report.BEGIN}\nno end\n")
    with pytest.raises(ValueError, match="only one of the results markers"):
        report.write(root, str(page), str(tmp_path / "figures"))
    assert page.read_text() == f"{report.BEGIN}\nno end\n"


def test_report_flag_needs_a_root_or_a_ledger(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(_ROOT, "bin", "reproduce"), "--report",
                           f"--root={tmp_path / 'missing'}", f"--page={tmp_path / 'r.md'}",
                           f"--ledger={tmp_path / 'missing.json'}"],
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert "Received: root=" in done.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "r.md").exists()


def test_the_ledger_keeps_what_a_fresh_checkout_lacks(root, tmp_path):
    page, ledger = str(tmp_path / "results.md"), str(tmp_path / "measurements.json")
    report.write(root, page, str(tmp_path / "figures"), ledger)
    full = open(page).read()
    # A new session: the run outputs are gone, the committed ledger is not.
    report.write(str(tmp_path / "no_runs"), page, str(tmp_path / "figures"), ledger)
    assert open(page).read() == full
    recorded = json.load(open(ledger))
    assert set(recorded["analysis"]["cifar10_robust"]["invariance"]) == {"summary"}
    assert len(recorded["stages"]) == 2   # merged once, not appended again

    # A stage measured again replaces its recorded numbers; the others stay.
    later = str(tmp_path / "later")
    _evaluation(later, "cifar10_robust", 0.45, 0.30)
    _write(os.path.join(later, "stages.json"), [
        {"stage": "evaluate_cifar10_robust", "seconds": 60.0, "finished_utc": "t3"}])
    report.write(later, page, str(tmp_path / "figures"), ledger)
    rows = {r[2].split(":")[0]: r[2] for r in report.claim_rows(report.load(later, ledger))
            if r[0] == "Identification above chance"}
    assert "L2 0.450" in rows["cifar10_robust"] and "L2 0.300" in rows["cifar10_standard"]
    assert [r["stage"] for r in json.load(open(ledger))["stages"]][-1] == "evaluate_cifar10_robust"


def test_half_a_pair_leaves_the_committed_figure(root, tmp_path):
    figures = tmp_path / "figures"
    report.write(root, str(tmp_path / "results.md"), str(figures))
    before = (figures / "robust_vs_standard.png").read_bytes()
    os.remove(os.path.join(root, "analysis", "cifar10_robust", "reconstructions.png"))
    written = report.write(root, str(tmp_path / "results.md"), str(figures))
    assert "robust_vs_standard.png" not in written
    assert (figures / "robust_vs_standard.png").read_bytes() == before
