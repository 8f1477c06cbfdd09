"""Tests for `logit_inversion.analysis`: each experiment's numbers on the session's tiny
inverter, opened both from its training workdir and from its export, and the figures' layout.

The inverter is untrained (a tiny random generator over the tiny random classifier): the
tests check that the numbers are consistent with their definitions, not that they are good.
"""

import io
import types

import numpy as np
import tensorflow as tf
import pytest
from PIL import Image

from logit_inversion.analysis import (adversarial, common, compare, data as analysis_data,
                                      factor_regressor, factors, interpolation, invariance,
                                      manipulations, misclassified, model as analysis_model, ood,
                                      reconstructions, render)
from logit_inversion.serving import export

TILE = 32 * render.SCALE


@pytest.fixture(scope="module")
def inverters(tiny_inverter, tiny_export):
    """The session's tiny inverter as a workdir and as an export, both opened for analysis."""
    return types.SimpleNamespace(
        workdir=tiny_inverter.workdir, export=tiny_export.model_dir, version=tiny_export.version,
        from_workdir=analysis_model.open_model(tiny_inverter.workdir),
        from_export=analysis_model.open_model(tiny_export.model_dir))


@pytest.fixture(scope="module")
def images(shapes_data_dir):
    return analysis_data.load_images("shapes", "test", 32, 16, shapes_data_dir)


@pytest.fixture(scope="module")
def regressor(tmp_path_factory, shapes_data_dir):
    """A tiny factor regressor, trained for seconds on the tiny `shapes` train split."""
    path = tmp_path_factory.mktemp("factors") / "tiny_factors"
    factor_regressor.train_regressor(str(path), data_dir=shapes_data_dir, epochs=8,
                                     batch_size=32, width=8, dense=32, learning_rate=3e-3,
                                     verbose=0)
    return factor_regressor.load_regressor(str(path))


def _png_size(image):
    """Size of the PNG file of `image`, decoded again (checks the bytes are a valid PNG)."""
    data = render.png_bytes(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = Image.open(io.BytesIO(data))
    decoded.verify()
    return decoded.size


# ---- the model adapter ------------------------------------------------------------------


def test_workdir_and_export_give_the_same_interface(inverters, images):
    a, b = inverters.from_workdir, inverters.from_export
    assert (a.kind, b.kind) == ("workdir", "export")
    assert (a.resolution, a.num_classes, a.noise_dim) == (b.resolution, b.num_classes, b.noise_dim)
    assert a.differentiable and b.differentiable, "a new export carries classify_float"
    # Φ is the same frozen classifier in both.
    np.testing.assert_allclose(a.classify(images.images), b.classify(images.images), atol=1e-4)
    logits = a.classify(images.images)
    for model in (a, b):
        generated = model.generate(logits, model.noise(len(logits), seed=3))
        assert generated.shape == images.images.shape
        # Both return the export's uint8 grid, mapped back to [-1, 1].
        grid = (generated + 1.0) * 127.5
        np.testing.assert_allclose(grid, np.round(grid), atol=1e-3)


def test_a_restored_workdir_generates_what_its_export_does(tiny_inverter, inverters, images):
    # Restoring a workdir with standing statistics draws them again, so the fixture's export
    # (of the in-memory inverter) would differ from it slightly: the same checkpoint under a
    # config without them restores to exactly the exported weights.
    a = analysis_model.open_model(tiny_inverter.fixed_stats_workdir)
    b = inverters.from_export
    assert a.kind == "workdir" and b.kind == "export"
    logits = a.classify(images.images)
    noise = a.noise(len(logits), seed=3)
    # Float rounding may move a pixel by one uint8 step.
    assert np.abs(a.generate(logits, noise) - b.generate(logits, noise)).max() <= 1 / 127.5 + 1e-6


def test_open_model_rejects_a_folder_that_is_neither(tmp_path):
    with pytest.raises(ValueError, match="Received: path="):
        analysis_model.open_model(str(tmp_path))


def test_classify_float_signature_matches_classify(inverters, images):
    import tensorflow as tf
    loaded = tf.saved_model.load(inverters.version)
    uint8 = export.to_uint8(images.images)
    by_uint8 = loaded.classify(uint8)["logits"].numpy()
    by_float = loaded.signatures[export.CLASSIFY_FLOAT](images=tf.constant(images.images))
    np.testing.assert_allclose(by_float["logits"].numpy(), by_uint8, atol=1e-4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="float32 model images"):
        loaded.classify_float(tf.zeros([1, 8, 8, 3]))


# ---- experiments: numbers ---------------------------------------------------------------


def test_reconstructions_numbers(inverters, images):
    model = inverters.from_workdir
    result = reconstructions.run(model, images, seed=1, show=4)
    s = result["summary"]
    logits = model.classify(images.images)
    recon = model.generate(logits, model.noise(len(images), 1))
    assert s["top1_agreement"] == common.agreement(logits, model.classify(recon))
    assert s["top5_agreement"] >= s["top1_agreement"]
    assert -1 <= s["logit_cosine"] <= 1 and s["logit_relative_l2"] >= 0
    assert s["pixel_distance"] == pytest.approx(common.pixel_distance(images.images, recon).mean())
    # Deterministic: the same seed gives the same reconstructions.
    np.testing.assert_array_equal(reconstructions.run(model, images, seed=1, show=4)["arrays"]
                                  ["reconstructions"], result["arrays"]["reconstructions"])
    width, height = _png_size(reconstructions.render_figure(model, result))
    assert width >= 4 * TILE and height >= 2 * TILE


def test_invariance_std_is_zero_with_fixed_noise_and_positive_otherwise(inverters, images):
    model = inverters.from_workdir
    fixed = np.repeat(model.noise(1, seed=0), 4, axis=0)
    result = invariance.run(model, images, noise=fixed, show=2)
    assert result["summary"]["mean_pixel_std"] == 0.0
    assert result["summary"]["max_pixel_std"] == 0.0
    # Equal samples all share one class, so per-sample and all-sample agreement coincide.
    assert result["summary"]["sample_agreement"] == result["summary"]["all_samples_agree"]
    varied = invariance.run(model, images, samples=4, seed=0, show=2)
    assert varied["summary"]["mean_pixel_std"] > 0
    assert varied["arrays"]["std"].shape == (2, 32, 32)
    width, height = _png_size(invariance.render_figure(model, varied))
    assert width >= (4 + 2) * TILE and height >= 2 * TILE  # original, 4 samples, std; 2 rows


def test_identity_manipulations_reproduce_the_base_reconstruction(inverters, images):
    model = inverters.from_export
    result = manipulations.run(model, images, seed=2, show=1)
    rows = {(r["sweep"], r["value"]): r for r in result["tables"]["sweeps"]}
    for sweep, value in manipulations.IDENTITY.items():
        assert rows[(sweep, value)]["pixel_change"] == 0.0, sweep
        shown = dict((v, x) for v, x, _ in result["arrays"]["shown"][sweep])
        np.testing.assert_array_equal(shown[value], result["arrays"]["base"])
    assert rows[("scale", 0.0)]["pixel_change"] > 0  # zero logits do change the picture
    assert rows[("scale", 2.0)]["edited_logits_top1_agreement"] == 1.0  # argmax kept by s > 0
    assert result["summary"]["identity_pixel_change"] == 0.0
    # Claims (c) and (d): changes from the base with intervals; none at the identity.
    for sweep, value in manipulations.IDENTITY.items():
        row = rows[(sweep, value)]
        assert row["contrast_change"] == row["sharpness_change"] == 0.0
        assert row["class_change_rate"] == 0.0 and row["class_change_rate_low"] == 0.0
    for row in result["tables"]["sweeps"]:
        for key in ("pixel_change", "contrast_change", "sharpness_change", "class_change_rate"):
            assert row[f"{key}_low"] <= row[key] + 1e-12 <= row[f"{key}_high"] + 2e-12, (row, key)
    summary = result["summary"]
    assert summary["shift_pixel_change_per_unit"] > 0
    assert summary["gaussian_pixel_change_per_unit_low"] <= summary[
        "gaussian_pixel_change_per_unit"] <= summary["gaussian_pixel_change_per_unit_high"]
    width, height = _png_size(manipulations.render_figure(model, result))
    assert width >= 6 * TILE and height >= 3 * TILE  # original + 5 values; 3 sweeps


def test_sharpness_is_lower_for_a_blurred_image():
    # Stripes two pixels wide: a blur lowers every step between them.
    rows = np.arange(16)[None, :, None, None]
    image = np.where(rows // 2 % 2, 1.0, -1.0) * np.ones((1, 16, 16, 3))
    blurred = (image + np.roll(image, 1, axis=1) + np.roll(image, -1, axis=1)) / 3
    assert manipulations.sharpness(image)[0] > manipulations.sharpness(blurred)[0] > 0


def test_interpolation_ends_at_the_endpoints(inverters, images):
    model = inverters.from_workdir
    assert interpolation.choose_pairs([0, 1, 0, 1, 2], same=1, different=1) == [(0, 2), (0, 1)]
    result = interpolation.run(model, images, seed=0, steps=5, same=1, different=1)
    logits = model.classify(images.images)
    noise = model.noise(len(images), 0)
    for (a, _), frames in zip(result["arrays"]["pairs"], result["arrays"]["frames"]):
        # Batches of different sizes may round one pixel differently: one uint8 step, 2/255.
        np.testing.assert_allclose(frames[0], model.generate(logits[a:a + 1], noise[a:a + 1])[0],
                                   rtol=0, atol=2 / 255 + 1e-6)
    for row in result["tables"]["pairs"]:
        assert row["same_class"] == (row["class_a"] == row["class_b"])
        assert row["mean_pixel_step"] <= row["max_pixel_step"]
        if not row["same_class"]:
            assert row["logit_switch_alpha"] is not None  # the logits' own argmax must switch
    width, _ = _png_size(interpolation.render_figure(model, result))
    assert width >= (5 + 2) * TILE


def test_attack_success_rises_with_epsilon_and_stays_in_the_ball(inverters, images):
    model = inverters.from_export  # gradients through the exported classify_float
    epsilons = (0.0, 2 / 255, 32 / 255)
    result = adversarial.run(model, images, linf_epsilons=epsilons, l2_epsilons=(0.0, 0.5, 4.0),
                             steps=3, max_images=8)
    table = result["tables"]["attacks"]
    for method in adversarial.METHODS:
        for norm in adversarial.NORMS:
            for goal in adversarial.GOALS:
                rates = [r["success_rate"] for r in table
                         if (r["method"], r["norm"], r["goal"]) == (method, norm, goal)]
                # PGD rises step by step; one FGSM step may overshoot, so only its ends.
                if method == "pgd":
                    assert rates == sorted(rates), (method, norm, goal, rates)
                assert rates[-1] >= rates[0], (method, norm, goal, rates)
    pgd_linf = [r for r in table if (r["method"], r["norm"], r["goal"]) == ("pgd", "linf", "untargeted")]
    assert pgd_linf[-1]["success_rate"] > pgd_linf[0]["success_rate"]
    for r in table:
        assert r["perturbation"] <= r["epsilon"] + 1e-5
        if r["epsilon"] == 0:
            assert r["recon_pixel_distance"] == 0.0
    width, height = _png_size(adversarial.render_figure(model, result))
    assert width >= 6 * TILE and height >= 8 * TILE  # 3 ε × (x_adv, G); 8 attack rows


def test_misclassified_counts_and_second_classifier(inverters, images):
    model = inverters.from_workdir
    result = misclassified.run(model, images, seed=0, second_classifier=model.classify,
                               second_name="self")
    s = result["summary"]
    predicted = common.top1(model.classify(images.images))
    assert s["misclassified"] == int(np.sum(predicted != images.labels)) > 0
    assert s["recon_as_prediction"] + s["recon_as_true"] <= 1.0
    # Φ itself as the second classifier gets every misclassified original wrong, by definition.
    assert s["second_on_originals_true"] == 0.0
    assert _png_size(misclassified.render_figure(model, result))[1] >= 2 * TILE


def test_ood_groups_and_auroc(inverters, images):
    model = inverters.from_workdir
    assert ood.auroc([2, 3], [0, 1]) == 1.0 and ood.auroc([1, 1], [1, 1]) == 0.5
    synthetic, names = ood.synthetic_inputs(32)
    assert synthetic.shape == (len(names), 32, 32, 3)
    assert synthetic.min() >= -1 and synthetic.max() <= 1
    result = ood.run(model, images, external=images.take(4))
    groups = result["tables"]["groups"]
    assert [g["group"].split(" ")[0] for g in groups] == ["in-distribution", "synthetic", "external"]
    # The external "OOD" set is the in-distribution images themselves: same logit norms.
    assert groups[2]["logit_norm"] == pytest.approx(
        np.linalg.norm(model.classify(images.images[:4]), axis=-1).mean(), rel=1e-5)
    assert 0 <= result["summary"]["max_softmax_auroc"] <= 1
    assert _png_size(ood.render_figure(model, result))[1] >= 6 * TILE


def test_compare_an_export_with_its_own_version_folder(inverters, images):
    models = [inverters.from_export, analysis_model.open_model(inverters.version)]
    assert models[0].name != models[1].name
    result = compare.run(models, images.take(8), seed=0, samples=2)
    rows = result["tables"]["models"]
    assert len(rows) == 2
    for key in ("top1_agreement", "pixel_distance", "mean_pixel_std"):
        assert rows[0][key] == pytest.approx(rows[1][key], abs=2e-3), key
    assert len(result["tables"]["cross_reading"]) == 2
    width, height = _png_size(compare.render_figure(models, result))
    assert width >= 8 * TILE and height >= 3 * TILE  # originals + one row per model


# ---- factors ----------------------------------------------------------------------------


def test_factor_errors_are_zero_for_the_truth_and_respect_symmetry():
    labels = np.array([1, 2, 3, 5, 0])  # square, triangle, plus, star, circle
    rng = np.random.default_rng(0)
    from logit_inversion.data import shapes
    true = shapes.sample_factors(rng, len(labels))
    targets, mask = factor_regressor.encode_targets(true, labels)
    assert mask[4, 7:].sum() == 0  # a circle has no rotation target
    decoded = factor_regressor.decode_predictions(targets, labels)
    errors = factor_regressor.factor_errors(decoded, true, labels)
    assert all(value < 1e-3 for value in errors.values()), errors
    turned = dict(true)
    # A quarter turn of a square or a plus, a third of a triangle, a fifth of a star: no change.
    turned["rotation"] = true["rotation"] + 2 * np.pi / np.array([4, 3, 4, 5, 1])
    assert factor_regressor.factor_errors(turned, true, labels)["rotation"] < 1e-3
    off = dict(true, shape_hue=np.mod(true["shape_hue"] + 0.25, 1.0))
    assert factor_regressor.factor_errors(off, true, labels)["shape_hue"] == pytest.approx(90.0, abs=1e-3)


def test_factor_regressor_beats_chance_on_originals(inverters, shapes_data_dir, regressor):
    model = inverters.from_workdir
    network, metadata = regressor
    pool = analysis_data.load_images("shapes", "test", 32, 64, shapes_data_dir)
    result = factors.run(model, pool, seed=0, regressor=regressor, show=4, resamples=100)
    rows = {r["factor"]: r for r in result["tables"]["factors"]}
    assert set(rows) == set(factor_regressor.FACTOR_NAMES)
    chance = metadata["chance_error"]
    for name in ("shape_hue", "background_hue"):
        assert rows[name]["original_truth_error"] < 0.5 * chance[name], rows[name]
    ratios = [r["original_truth_error"] / chance[r["factor"]] for r in rows.values()]
    assert np.mean(ratios) < 0.8, ratios
    for row in rows.values():   # every number says how many images it rests on
        assert 0 < row["images"] <= 64
        if row["recovered"] is not None:
            assert row["recovered_low"] <= row["recovered"] <= row["recovered_high"]
            assert result["summary"][f"{row['factor']}_recovered_low"] == row["recovered_low"]
    width, height = _png_size(factors.render_figure(model, result))
    assert width >= 4 * TILE and height >= 2 * TILE + 150  # two rows of tiles and the bar chart


# ---- rendering --------------------------------------------------------------------------


def test_grid_places_every_tile_where_the_layout_says():
    # Coloured, not grey: anti-aliased (grey) caption text never shares a tile's colour.
    tiles = [np.full((32, 32, 3), (v, 255 - v, 37), np.uint8) for v in (10, 60, 110, 160, 210, 250)]
    rows = [[render.Cell(tiles[i * 3 + j], caption="x") for j in range(3)] for i in range(2)]
    figure = render.grid(rows, row_labels=["a", "b"])
    pixels = np.asarray(figure)
    # Find each tile by its value: exactly a TILE × TILE block, columns and rows in order.
    positions = []
    for tile in tiles:
        ys, xs = np.nonzero((pixels == tile[0, 0]).all(-1))
        assert ys.max() - ys.min() + 1 == TILE and xs.max() - xs.min() + 1 == TILE
        positions.append((ys.min(), xs.min()))
    assert positions[0][0] == positions[1][0] == positions[2][0] < positions[3][0]
    assert positions[0][1] < positions[1][1] < positions[2][1]
    assert positions[0][1] == positions[3][1]
    assert figure.width >= 3 * TILE and figure.height >= 2 * TILE


def test_heatmap_maps_zero_and_max_to_the_ends_of_the_ramp():
    values = np.array([[0.0, 1.0]])
    image = np.asarray(render.heatmap(values, vmax=1.0, scale=1))
    np.testing.assert_array_equal(image[0, 0], render._RAMP[0])
    np.testing.assert_array_equal(image[0, 1], render._RAMP[-1])


def test_layer_probe_ridge_r2_reads_linear_factors_and_not_noise():
    from logit_inversion.analysis import layer_probe
    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(size=(400, 8)), rng.normal(size=(200, 8))
    w = rng.normal(size=(8, 2))
    y_train = np.c_[x_train @ w, rng.normal(size=(400, 1))]
    y_test = np.c_[x_test @ w, rng.normal(size=(200, 1))]
    r2 = layer_probe.ridge_r2(x_train, y_train, x_test, y_test, alpha=1e-3)
    assert np.all(r2[:2] > 0.999)            # linear in x: read exactly
    assert abs(r2[2]) < 0.1                  # independent noise: nothing to read


def test_layer_probe_hues_are_circular():
    from logit_inversion.analysis import layer_probe
    factors = {k: np.array([0.0, 0.25, 0.999]) for k in layer_probe.FACTORS}
    targets = layer_probe.factor_targets(factors)
    assert targets.shape == (3, 7)           # two hues as cos/sin + three plain factors
    # Hue 0.999 turns is next to hue 0: their (cos, sin) columns nearly agree.
    assert np.allclose(targets[0, :2], targets[2, :2], atol=0.01)
    r2 = layer_probe.per_factor(np.arange(7.0))
    assert r2["shape_hue"] == 0.5 and r2["background_hue"] == 2.5 and r2["scale"] == 6.0


def test_agreement_uses_the_class_logits_of_a_non_logit_inverter():
    from logit_inversion.analysis.model import AnalysisModel
    images = np.zeros((4, 8, 8, 3), np.float32)
    images[:, 0, 0, 0] = [0.0, 0.5, 0.9, 0.1]
    recon = images.copy()
    recon[3, 0, 0, 0] = 0.9        # one reconstruction drifts to another class
    # The conditioning vectors (e.g. penultimate features) have arg-maxes unrelated to the
    # classes; the class logits are a function of the pixel that differs.
    vectors = np.eye(5, dtype=np.float32)[[0, 1, 2, 3]]
    recon_vectors = np.eye(5, dtype=np.float32)[[4, 4, 4, 4]]

    def class_logits(x):
        return tf.one_hot(tf.cast(x[:, 0, 0, 0] * 2.0, tf.int32), 3)

    kwargs = dict(name="m", path="p", kind="workdir", classify_fn=None, logits_fn=None,
                  generate_fn=None, resolution=8, num_classes=5, noise_dim=2,
                  class_names=list("abcde"))
    def agreement(model):
        return common.agreement(model.class_logits(images, vectors),
                                model.class_logits(recon, recon_vectors))

    assert agreement(AnalysisModel(**kwargs)) == 0.0
    assert agreement(AnalysisModel(**kwargs, class_logits_fn=class_logits)) == 0.75
