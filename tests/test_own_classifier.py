"""Each inverter is scored with its own classifier: two tiny inverters of two different tiny
classifiers, evaluated together, get the numbers each gets alone (`bin/evaluate`, `bin/analyze
compare`), and each row names its classifier."""

import os

import pytest

from logit_inversion import testing


def _workdir(config, path):
    from logit_inversion import training
    from logit_inversion.training import checkpoints

    inverter = training.build_inverter(config)
    training.compile_inverter(inverter, config)
    os.makedirs(path)
    checkpoints.record_config(path, config)
    checkpoints.make_manager(inverter, path, 1).save()
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tiny_classifier_path, shapes_data_dir, tiny_inverter):
    """Two untrained inverters: the session's, of its tiny classifier, and one of another."""
    root = tmp_path_factory.mktemp("own_classifier")
    other = testing.save_tiny_classifier(str(root / "other_classifier"), seed=1)
    a = tiny_inverter.workdir
    b = _workdir(testing.tiny_config(other, shapes_data_dir, **{"model.noise_dim": 8}),
                 str(root / "b"))
    return {"a": a, "b": b, "classifier_a": tiny_classifier_path, "classifier_b": other,
            "data_dir": shapes_data_dir}


_EVAL = dict(num_images=48, num_distractors=1, feature_layer="logits", diversity_images=2,
             diversity_samples=2)
_OWN = ("top1_agreement", "top5_agreement", "logit_cosine", "logit_relative_l2",
        "label_accuracy", "psnr", "ssim", "ident_l2")


def test_evaluate_gives_every_inverter_the_logits_of_its_own_classifier(pair):
    from logit_inversion.evaluation import evaluate

    together = evaluate.evaluate([pair["a"], pair["b"]], data_dir=pair["data_dir"], **_EVAL)
    alone = evaluate.evaluate([pair["b"]], data_dir=pair["data_dir"], **_EVAL)
    rows = together["models"]
    assert rows[pair["a"]]["classifier"] == pair["classifier_a"]
    assert rows[pair["b"]]["classifier"] == pair["classifier_b"]
    assert together["classifiers"] == sorted([pair["classifier_a"], pair["classifier_b"]])
    for key in _OWN:   # the second inverter is not fed the first one's logits
        assert rows[pair["b"]][key] == pytest.approx(alone["models"][pair["b"]][key]), key
    table = evaluate.markdown_table(together)
    for spec, handle in ((pair["a"], pair["classifier_a"]), (pair["b"], pair["classifier_b"])):
        assert f"| `{spec}` | `{handle}` |" in table
    assert "shared by every row" in table


def test_a_classifier_flag_that_contradicts_a_model_is_refused_in_one_line(pair):
    from logit_inversion.evaluation import evaluate

    with pytest.raises(ValueError, match=r"^\S+/b inverts classifier .*other_classifier.*not "
                                         r"--classifier.*Received: classifier=") as error:
        evaluate.evaluate([pair["a"], pair["b"]], data_dir=pair["data_dir"],
                          classifier=pair["classifier_a"], **_EVAL)
    assert "\n" not in str(error.value)
    # The same classifier, spelled as another path to the same folder, is not a mix.
    same = os.path.join(pair["classifier_a"], "..", os.path.basename(pair["classifier_a"]))
    assert evaluate.same_classifier(same, pair["classifier_a"])


def test_compare_scores_every_inverter_with_its_own_classifier(pair):
    from logit_inversion.analysis import compare, data as analysis_data, model as analysis_model

    models = [analysis_model.open_model(pair["a"]), analysis_model.open_model(pair["b"])]
    images = analysis_data.load_images("shapes", "test", 32, 8, pair["data_dir"])
    together = compare.run(models, images, seed=0, samples=2, show=2)
    alone = compare.run(models[1:], images, seed=0, samples=2, show=2)
    rows = together["tables"]["models"]
    assert [r["classifier"] for r in rows] == [pair["classifier_a"], pair["classifier_b"]]
    assert rows[1]["top1_agreement"] == alone["tables"]["models"][0]["top1_agreement"]
    assert rows[1]["pixel_distance"] == pytest.approx(
        alone["tables"]["models"][0]["pixel_distance"])
    assert models[1].describe()["classifier"] == pair["classifier_b"]
    assert compare.render_figure(models, together).height > 0
