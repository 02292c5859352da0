"""The stored 28x28 model input (``Submission.input28``): one decoding, one rendering for people.

``input28`` is 784 bytes, uint8, row-major, in EMNIST's own orientation (transposed: ``.T`` is
upright), ink high and background 0, exactly what the model saw.
"""

import base64
import io

import numpy as np
from PIL import Image

from recognition.models import Submission

INPUT28_SHAPE = (28, 28)


def input28_array(data: bytes | memoryview) -> np.ndarray:
    """The stored bytes as a read-only uint8 array of shape (28, 28), EMNIST orientation.

    Raises:
        ValueError: the bytes are not 28 x 28 of them (a row written by something else).
    """
    data = bytes(data)  # PostgreSQL hands a BinaryField back as a memoryview
    if len(data) != INPUT28_SHAPE[0] * INPUT28_SHAPE[1]:
        raise ValueError(f"Stored input is {len(data)} bytes, not 28x28.")
    return np.frombuffer(data, dtype=np.uint8).reshape(INPUT28_SHAPE)


def input28_data_url(submission: Submission) -> str:
    """The submission's stored input as an upright PNG data URL, for the API's ``input_image``
    and the admin's thumbnails."""
    buffer = io.BytesIO()
    # EMNIST stores images transposed; .T is upright for people.
    Image.fromarray(np.ascontiguousarray(input28_array(submission.input28).T), mode="L").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
