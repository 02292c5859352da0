"""The stored 28x28 input: one decoding for every reader, one rendering for people (recognition/images.py)."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from recognition.images import input28_array, input28_data_url
from recognition.models import Submission


def emnist_input() -> np.ndarray:
    """A (28, 28) uint8 input, EMNIST orientation, with ink only in row 3 (so column 3 upright)."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[3, 5:20] = 255
    return image


def test_it_decodes_stored_bytes_and_a_postgres_memoryview_alike():
    stored = emnist_input().tobytes()
    for data in (stored, memoryview(stored)):
        array = input28_array(data)
        assert array.shape == (28, 28) and array.dtype == np.uint8
        assert np.array_equal(array, emnist_input())


@pytest.mark.parametrize("size", [0, 783, 785, 28 * 28 * 3])
def test_it_rejects_a_stored_input_of_the_wrong_size(size):
    with pytest.raises(ValueError, match=f"Stored input is {size} bytes, not 28x28."):
        input28_array(bytes(size))


def test_the_data_url_is_an_upright_png_of_what_the_model_saw():
    url = input28_data_url(Submission(input28=emnist_input().tobytes()))
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    png = Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))
    assert png.mode == "L" and png.size == (28, 28)
    # EMNIST's row 3 is column 3 for people: the transpose, not the stored array.
    assert np.array_equal(np.asarray(png), emnist_input().T)
