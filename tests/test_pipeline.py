"""Tests for `build_dataset` on TFDS sources, using a tiny builder prepared in a temp dir."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from logit_inversion.data import pipeline, shapes

NUM_TRAIN = 42  # not a multiple of the batch size, to see drop_remainder
# The shared data folder beside the checkout, if there is one (CIFAR-10 prepared offline).
SHARED_TFDS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "..", "shared", "data", "tfds")


class TinyImages(tfds.core.GeneratorBasedBuilder):
    """42 non-square images whose `index` feature says which example they are."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "label": tfds.features.ClassLabel(num_classes=3),
                "index": tf.int32,
                "brightness": tf.float32,
            }),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(NUM_TRAIN), "test": self._generate_examples(9)}

    def _generate_examples(self, n):
        rng = np.random.default_rng(n)
        for i in range(n):
            height, width = (20, 30) if i % 2 else (30, 20)
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            # Flat black and white quadrants: the full range, so a broken scaling leaves [-1, 1].
            image[: height // 2, : width // 2] = 0
            image[height // 2 :, width // 2 :] = 255
            yield i, {"image": image, "label": i % 3, "index": i, "brightness": image.mean() / 255}


class OfflineImages(tfds.core.GeneratorBasedBuilder):
    """A builder whose download always fails, as on a machine without internet."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 3))}))

    def _split_generators(self, dl_manager):
        raise ConnectionError("Failed to reach the download host\nsecond line")

    def _generate_examples(self):
        yield from ()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tfds"))
    tfds.builder("tiny_images", data_dir=path).download_and_prepare()
    return path


def _indices(dataset, num_batches=None):
    batches = dataset if num_batches is None else dataset.take(num_batches)
    return [int(i) for batch in batches for i in batch["index"].numpy()]


def _build(data_dir, **kwargs):
    options = dict(resolution=16, batch_size=4, data_dir=data_dir, extra_features=["index"])
    options.update(kwargs)
    return pipeline.build_dataset("tiny_images", options.pop("split", "train"), **options)


def test_batches_have_static_shapes_and_model_range(data_dir):
    dataset = _build(data_dir, extra_features=["index", "brightness"])
    spec = dataset.element_spec
    assert set(spec) == {"image", "label", "index", "brightness"}
    assert spec["image"].shape == (4, 16, 16, 3) and spec["image"].dtype == tf.float32
    assert spec["label"].shape == (4,) and spec["label"].dtype == tf.int32
    assert spec["brightness"].shape == (4,) and spec["brightness"].dtype == tf.float32
    for batch in dataset.take(5):
        images = batch["image"].numpy()
        assert images.min() >= -1.0 and images.max() <= 1.0
        assert images.min() < -0.99 and images.max() > 0.99  # really rescaled, not just clipped
        np.testing.assert_array_equal(batch["label"].numpy(), batch["index"].numpy() % 3)


def test_training_shuffle_is_seeded_and_repeats(data_dir):
    first = _indices(_build(data_dir, seed=1), 20)  # 80 examples: repeats past one epoch
    assert len(first) == 80 and set(first) == set(range(NUM_TRAIN))
    assert first == _indices(_build(data_dir, seed=1), 20)
    assert first != _indices(_build(data_dir, seed=2), 20)


def test_eval_is_a_single_ordered_pass_without_remainder(data_dir):
    indices = _indices(_build(data_dir, training=False))
    assert len(indices) == (NUM_TRAIN // 4) * 4
    assert len(set(indices)) == len(indices)
    assert indices == _indices(_build(data_dir, training=False, seed=5))


@pytest.mark.parametrize("training", [True, False])
def test_autotuning_model_is_off_and_stays_off_under_later_options(data_dir, training):
    # Its model thread can hold up the iterator's destruction for up to a minute (pipeline.py).
    dataset = _build(data_dir, training=training)
    assert dataset.options().autotune.enabled is False
    later = tf.data.Options()
    later.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    assert dataset.with_options(later).options().autotune.enabled is False


def test_split_slices(data_dir):
    head = _indices(_build(data_dir, split="train[:50%]", training=False, batch_size=1))
    tail = _indices(_build(data_dir, split="train[50%:]", training=False, batch_size=1))
    assert len(head) == len(tail) == NUM_TRAIN // 2
    assert set(head) | set(tail) == set(range(NUM_TRAIN)) and not set(head) & set(tail)


@pytest.mark.parametrize("training", [False, True])
def test_input_context_shards_disjoint_halves(data_dir, training):
    shards = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        dataset = _build(data_dir, batch_size=8, input_context=context, training=training)
        assert dataset.element_spec["image"].shape[0] == 4  # per-replica batch
        shards.append(set(_indices(dataset, 10)))
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(range(NUM_TRAIN)) if training else len(shards[0] | shards[1]) == 40


def test_center_crop_and_resize():
    columns = tf.broadcast_to(tf.cast(tf.range(6), tf.uint8)[None, :, None], [4, 6, 3])
    cropped = pipeline.center_crop_and_resize(columns, 4)
    np.testing.assert_array_equal(cropped[0, :, 0].numpy(), [1, 2, 3, 4])  # middle columns
    tall = tf.transpose(columns, [1, 0, 2])
    np.testing.assert_array_equal(pipeline.center_crop_and_resize(tall, 4)[:, 0, 0].numpy(), [1, 2, 3, 4])
    one_pixel = tf.constant([[[10, 20, 30]]], tf.uint8)
    upsampled = pipeline.center_crop_and_resize(one_pixel, 8)
    assert upsampled.shape == (8, 8, 3)
    np.testing.assert_allclose(upsampled.numpy(), np.broadcast_to([10.0, 20.0, 30.0], (8, 8, 3)))
    # Already at the resolution, with the size known statically or only at run time: unchanged.
    image = tf.random.uniform([5, 5, 3], 0, 255)
    np.testing.assert_array_equal(pipeline.center_crop_and_resize(image, 5).numpy(), image.numpy())
    dynamic = tf.function(lambda x: pipeline.center_crop_and_resize(x, 5),
                          input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
    np.testing.assert_array_equal(dynamic(image).numpy(), image.numpy())


def test_to_model_range():
    values = pipeline.to_model_range(tf.constant([0, 127.5, 255, 300]))
    np.testing.assert_allclose(values.numpy(), [-1.0, 0.0, 1.0, 1.0])


def test_is_folder_source(tmp_path):
    os.makedirs(tmp_path / "cifar10")
    for source in ["/data/x", "./x", "../x", "~/x", "folder:x", str(tmp_path / "cifar10")]:
        assert pipeline.is_folder_source(source), source
    for source in ["cifar10", "imagenet_resized/64x64", "shapes"]:
        assert not pipeline.is_folder_source(source), source


def test_unknown_dataset_names_close_matches():
    with pytest.raises(ValueError, match=r"'cifar1O' is not a registered TFDS dataset nor an existing folder.*cifar10"):
        pipeline.build_dataset("cifar1O", "train", resolution=32, batch_size=2)


def test_unprepared_dataset_fails_in_one_line(tmp_path):
    with pytest.raises(ValueError) as error:
        pipeline.build_dataset("offline_images", "train", resolution=8, batch_size=2, data_dir=str(tmp_path))
    message = str(error.value)
    assert "\n" not in message
    assert "offline_images" in message and str(tmp_path) in message and "is it prepared?" in message
    assert "Failed to reach the download host" in message


def test_bad_split_is_one_line(data_dir):
    with pytest.raises(ValueError, match=r"splits: \['test', 'train'\].*split=validation$"):
        _build(data_dir, split="validation")


def test_unknown_extra_feature(data_dir):
    with pytest.raises(ValueError, match="extra_features.*shape_hue"):
        _build(data_dir, extra_features=["shape_hue"])


def test_bad_arguments(data_dir):
    with pytest.raises(ValueError, match="resolution=0"):
        _build(data_dir, resolution=0)
    with pytest.raises(ValueError, match="batch_size=0"):
        _build(data_dir, batch_size=0)


def test_missing_shapes_module_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "logit_inversion.data.shapes", None)  # import now fails
    with pytest.raises(ValueError, match="shapes.py"):
        pipeline.build_dataset("shapes", "train", resolution=32, batch_size=2)


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED_TFDS, "cifar10")), reason="no shared CIFAR-10")
def test_cifar10_from_shared_data_dir():
    dataset = pipeline.build_dataset("cifar10", "test", resolution=32, batch_size=16,
                                     data_dir=SHARED_TFDS, training=False)
    batch = next(iter(dataset))
    assert batch["image"].shape == (16, 32, 32, 3) and batch["label"].shape == (16,)
    assert -1.0 <= batch["image"].numpy().min() and batch["image"].numpy().max() <= 1.0
    assert set(batch["label"].numpy()) <= set(range(10))


def test_shapes_passes_its_nuisance_factors_through(tmp_path):
    shapes.build_shapes(str(tmp_path), train_size=40, test_size=10)
    factors = ["shape_hue", "background_hue", "position_x", "position_y", "scale", "rotation"]
    dataset = pipeline.build_dataset("shapes", "test", resolution=32, batch_size=5, data_dir=str(tmp_path),
                                     training=False, extra_features=factors)
    batches = list(dataset)
    assert len(batches) == 2
    for name in factors:
        assert batches[0][name].shape == (5,) and batches[0][name].dtype == tf.float32, name
    assert batches[0]["image"].shape == (5, 32, 32, 3) and batches[0]["label"].dtype == tf.int32


def test_typo_of_this_packages_dataset_suggests_it_first(monkeypatch):
    # As in a fresh process, where TFDS does not know `shapes` until data/shapes.py is imported.
    builders = tfds.list_builders
    monkeypatch.setattr(tfds, "list_builders",
                        lambda **kwargs: [n for n in builders(**kwargs) if n != "shapes"])
    with pytest.raises(ValueError) as error:
        pipeline.build_dataset("shpaes", "train", resolution=32, batch_size=2)
    message = str(error.value)
    assert message.startswith("'shpaes' is not a registered TFDS dataset nor an existing folder; "
                              "did you mean shapes, "), message
    assert "\n" not in message
