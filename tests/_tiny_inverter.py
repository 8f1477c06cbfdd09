"""A tiny real `LogitInverter` for the export and serving tests, built in a second or two.

Its classifier is a TF Hub-format SavedModel written to a temporary folder, loaded through
`load_classifier` exactly like the shipped ones; G and D have 32 px BigGAN layouts with two
channels per unit width. Replace by `logit_inversion.testing.tiny_inverter` once it exists.
"""

import json

import tensorflow as tf

from logit_inversion.classifiers import load_classifier
from logit_inversion.models.discriminator import Discriminator
from logit_inversion.models.generator import Generator
from logit_inversion.models.inverter import LogitInverter

NUM_CLASSES = 5
NOISE_DIM = 8
RESOLUTION = 32


class _TinyClassifier(tf.Module):
    """Logits from a fixed linear map of 4×4 average-pooled 16 px images."""

    def __init__(self):
        super().__init__()
        self.kernel = tf.Variable(
            tf.random.stateless_normal([4 * 4 * 3, NUM_CLASSES], seed=[1, 2])
        )

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
    def __call__(self, images):
        pooled = tf.nn.avg_pool2d(images, 4, 4, "VALID")
        return tf.reshape(pooled, [-1, 4 * 4 * 3]) @ self.kernel


def tiny_inverter(directory):
    """A built `LogitInverter` whose classifier is saved under `directory` (a pathlib.Path)."""
    classifier_dir = directory / "tiny_classifier"
    tf.saved_model.save(_TinyClassifier(), str(classifier_dir))
    metadata = {"input_size": 16, "value_range": [0.0, 1.0], "num_classes": NUM_CLASSES}
    (classifier_dir / "metadata.json").write_text(json.dumps(metadata))
    inverter = LogitInverter(
        load_classifier(str(classifier_dir)),
        Generator(RESOLUTION, ch=2, noise_dim=NOISE_DIM, embed_dim=4, attention_resolution=0),
        Discriminator(RESOLUTION, ch=2, attention_resolution=0),
    )
    inverter.build_all(batch_size=2)
    return inverter
