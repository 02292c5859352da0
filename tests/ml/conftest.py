import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("EMNIST_DATA_DIR", REPO.parent / "shared" / "data" / "emnist"))
SHIPPED_MODEL = REPO / "ml" / "artifacts" / "emnist_cnn.keras"


def require_or_skip(message: str) -> None:
    """Skip with ``message``; fail instead under REQUIRE_SERVICES=1 (CI), where nothing may be missing."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message + "; REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data():
    if not (SHARED_DATA / "emnist-byclass-test-dev.npz").exists():
        require_or_skip(f"shared EMNIST data not found at {SHARED_DATA} (set EMNIST_DATA_DIR)")
    return SHARED_DATA


def letter_l_upright(size: int = 200, thickness: int = 20) -> np.ndarray:
    """An upright "L": a vertical bar on the left and a horizontal bar at the bottom (float 0..1)."""
    ink = np.zeros((size, size), dtype=np.float32)
    top, left = size // 4, size // 3
    ink[top : top + size // 2, left : left + thickness] = 1.0
    ink[top + size // 2 - thickness : top + size // 2, left : left + size // 3] = 1.0
    return ink
