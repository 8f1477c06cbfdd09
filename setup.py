"""Install with `pip install -e .` (the Makefile does this); `[test]` adds the test tools."""

from setuptools import find_packages, setup

setup(
    name="logit_inversion",
    version="0.1.0",
    description=("Feedforward inversion of frozen image classifiers with a logit-conditioned "
                 "BigGAN (Teterwak et al., ICML 2021), in TensorFlow 2 + Keras 3."),
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["logit_inversion", "logit_inversion.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.10,<4",
        "tensorflow-hub>=0.16,<0.17",
        "tensorflow-datasets>=4.9,<5",
        "absl-py>=2,<3",
        "ml-collections>=1,<2",
        "pillow>=10",
        "tensorboard>=2.20",
        "numpy>=1.26",
        # TFDS 4.9 imports it when preparing a dataset from source (our shapes builder).
        "importlib_resources",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3", "tensorflow-serving-api>=2.21,<2.22"],
        "serving": ["tensorflow-serving-api>=2.21,<2.22"],
        # bin/explore: the browser app, and the browser driver its test uses.
        "explore": ["gradio>=6,<7", "playwright>=1.40"],
    },
    scripts=[],
)
