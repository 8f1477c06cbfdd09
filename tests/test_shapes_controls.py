"""The factor audit's controls on `shapes`: label modes that split each shape by a nuisance
factor (their classes and labels follow the factors, in numpy and in `tf.data`), the shipped
positive-control classifier (`shapes_quadrant`) and the reproduction stages that invert both
controls."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from logit_inversion.classifiers import frozen, preflight, training as classifier_training
from logit_inversion.data import shapes
from logit_inversion.reproduction import stages

EXPECTED_CLASSES = {"shape": 6, "shape_side": 12, "shape_quadrant": 24, "shape_hue": 24}


def test_label_modes_have_the_expected_classes():
    assert set(shapes.LABEL_MODES) == set(EXPECTED_CLASSES)
    for mode, count in EXPECTED_CLASSES.items():
        names = shapes.label_names(mode)
        assert len(names) == len(set(names)) == count, mode
        assert shapes.label_mode_of(names) == mode
    assert shapes.label_names("shape") == shapes.CLASS_NAMES
    assert shapes.label_names("shape_quadrant")[:4] == (
        "circle_top_left", "circle_top_right", "circle_bottom_left", "circle_bottom_right")
    assert shapes.label_mode_of(("cat", "dog")) is None
    with pytest.raises(ValueError, match="label_mode='shape_colour'"):
        shapes.label_names("shape_colour")


def test_relabel_follows_the_factors():
    labels, factors, _ = shapes.generate_split(seed=1, n=2000)
    middle = shapes.POSITION_MIDDLE
    left, top = factors["position_x"] < middle, factors["position_y"] < middle
    quadrant = shapes.relabel(labels, factors, "shape_quadrant")
    # Each class: one shape, one quadrant; every class occurs.
    np.testing.assert_array_equal(quadrant // 4, labels)
    np.testing.assert_array_equal(quadrant % 4, 2 * (~top) + (~left))
    assert set(quadrant) == set(range(24))
    names = np.array(shapes.label_names("shape_quadrant"))[quadrant]
    for name, shape, is_top, is_left in zip(names, labels, top, left):
        assert name == "_".join((shapes.CLASS_NAMES[shape], "top" if is_top else "bottom",
                                 "left" if is_left else "right"))
    side = shapes.relabel(labels, factors, "shape_side")
    np.testing.assert_array_equal(side, 2 * labels + (~left))
    hue = shapes.relabel(labels, factors, "shape_hue")
    np.testing.assert_array_equal(hue, 4 * labels + np.floor(factors["shape_hue"] * 4))
    np.testing.assert_array_equal(shapes.relabel(labels, factors, "shape"), labels)
    # The tf.data version agrees, value for value.
    for mode in shapes.LABEL_MODES:
        np.testing.assert_array_equal(
            shapes.relabel_tf(labels, factors, mode).numpy(),
            shapes.relabel(labels, factors, mode))


def test_classifier_data_carries_the_label_mode(shapes_data_dir):
    examples = tfds.as_numpy(tfds.load("shapes", split="test", data_dir=shapes_data_dir,
                                       batch_size=-1))
    expected = shapes.relabel(examples["label"], examples, "shape_quadrant")
    batches = classifier_training.load_dataset("shapes", "test", shapes_data_dir, batch_size=16,
                                               label_mode="shape_quadrant")
    labels = np.concatenate([label.numpy() for _, label in batches])
    np.testing.assert_array_equal(labels, expected)
    with pytest.raises(ValueError, match="shapes dataset only"):
        classifier_training.train_classifier("unused", dataset="cifar10",
                                             label_mode="shape_side")


def test_tiny_label_mode_classifier(shapes_data_dir, tmp_path):
    output = tmp_path / "tiny_side"
    metadata = classifier_training.train_classifier(
        output, data_dir=shapes_data_dir, epochs=1, batch_size=64, width=4, eval_pgd_steps=1,
        command="train tiny", verbose=0, label_mode="shape_side")
    assert metadata["num_classes"] == 12 and metadata["label_mode"] == "shape_side"
    clf = frozen.load_classifier(str(output))
    assert clf.num_classes == 12 and clf.spec.class_names == shapes.label_names("shape_side")
    # Scored against its own classes, read from its class names.
    results = classifier_training.evaluate_classifier(str(output), data_dir=shapes_data_dir,
                                                      epsilon=0.0, pgd_steps=0)
    assert results["label_mode"] == "shape_side"
    assert results["clean_accuracy"] == metadata["test_accuracy"]


_SHIPPED = Path(frozen.REGISTRY["shapes_quadrant"][0])


@pytest.mark.skipif(not (_SHIPPED / "saved_model.pb").exists(),
                    reason="savedmodels/shapes_quadrant is not in this checkout")
def test_shipped_positive_control_loads_and_classifies(shapes_data_dir):
    clf = frozen.load_classifier("shapes_quadrant")
    assert clf.num_classes == 24
    assert clf.spec.class_names == shapes.label_names("shape_quadrant")
    # The pre-flight check scores it against the quadrant labels, not the 6 shapes.
    report = preflight.check_classifier(clf, "shapes", "test", shapes_data_dir, num_examples=64)
    assert report["label_mode"] == "shape_quadrant" and report["num_data_classes"] == 24
    assert report["status"] == "ok" and report["accuracy"] > 0.8


def test_control_stages_train_ship_and_audit_both_inverters():
    controls = stages.select(stages.stages("r"), "control")
    assert [s.name for s in controls] == [
        f"control_{role}_{step}" for role in ("positive", "negative")
        for step in ("invert", "export", "factors")]
    positive = {s.name.split("_")[-1]: s for s in controls if "positive" in s.name}
    train = positive["invert"].commands[0]
    assert train[1:] == ["bin/train", "--config=logit_inversion/configs/demo.py",
                         "--config.cpu_bfloat16=off", "--config.classifier=shapes_quadrant",
                         "--workdir=r/controls/shapes_quadrant"]
    assert "savedmodels/inverter_shapes_quadrant/metadata.json" in positive["export"].outputs
    assert "--stage=control_positive_invert" in positive["export"].commands[1]
    audit = positive["factors"].commands[0]
    assert "--model=savedmodels/inverter_shapes_quadrant" in audit
    assert "--experiment=factors" in audit
    negative = stages.select(stages.stages("r"), "control_negative_invert")[0]
    assert "--config.classifier=shapes" in negative.commands[0]
