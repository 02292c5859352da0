"""Fixtures shared by tests/ml and tests/site."""

import os

import pytest


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """An untrained 62-class model of the shipped architecture, saved once per session (fast to build and load)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from ml.model import build_model

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_model(width=4, dense=16).save(path)
    return path
