"""The frozen classifier Φ: loading any handle as a Keras layer (`frozen`), training the small
classifiers this package ships (`training`), and the attacks used to make them robust
(`adversarial`)."""

from logit_inversion.classifiers.frozen import (  # noqa: F401
    CIFAR10_CLASS_NAMES, METADATA_FILENAME, REGISTRY, SAVEDMODELS_DIR, SHAPES_CLASS_NAMES,
    ClassifierSpec, FrozenClassifier, load_classifier)
