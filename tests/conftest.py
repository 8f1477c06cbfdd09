"""Shared fixtures: a tiny classifier and a tiny `shapes` dataset, built once per session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_classifier_path(tmp_path_factory):
    from logit_inversion import testing
    return testing.save_tiny_classifier(str(tmp_path_factory.mktemp("clf") / "tiny"))


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    from logit_inversion.data.shapes import build_shapes
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    build_shapes(data_dir, train_size=256, test_size=64)
    return data_dir


@pytest.fixture
def tiny_config(tiny_classifier_path, shapes_data_dir):
    from logit_inversion import testing
    return testing.tiny_config(tiny_classifier_path, shapes_data_dir)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: minutes-long checks left out of `make test`; run with `make test-slow`.")
