import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("EMNIST_DATA_DIR", REPO.parent / "shared" / "data" / "emnist"))
SHIPPED_MODEL = REPO / "ml" / "artifacts" / "emnist_cnn.keras"


@pytest.fixture(scope="session")
def shared_data():
    if not (SHARED_DATA / "emnist-byclass-test-dev.npz").exists():
        pytest.skip(f"shared EMNIST data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """An untrained model of the real architecture, saved once per session (fast to build)."""
    import keras

    from ml.model import build_model

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_model(width=4, dense=16).save(path)
    return path


def letter_l_upright(size: int = 200, thickness: int = 20) -> np.ndarray:
    """An upright "L": a vertical bar on the left and a horizontal bar at the bottom (float 0..1)."""
    ink = np.zeros((size, size), dtype=np.float32)
    top, left = size // 4, size // 3
    ink[top : top + size // 2, left : left + thickness] = 1.0
    ink[top + size // 2 - thickness : top + size // 2, left : left + size // 3] = 1.0
    return ink
