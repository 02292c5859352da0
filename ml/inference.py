"""Serving: ``load_predictor(path)`` -> a ``Predictor`` with top-k for one image or a batch.

Nothing happens at import: TensorFlow is imported by ``load_predictor`` itself, so a
web process, or a Celery parent before it forks its children, can import this module
without starting TensorFlow. Load in the process that predicts (TensorFlow is not
fork-safe); a Predictor refuses to run in a process other than the one that loaded it.

The single-image path calls a ``tf.function`` traced once for a fixed input signature,
not ``model.predict``, which spends tens of milliseconds per call setting up a loop.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ml.data import CLASSES, IMAGE_SIZE, NUM_CLASSES
from ml.errors import InvalidImageError, ModelFileError
from ml.preprocess import check_emnist_array

BATCH_CHUNK = 1024


class Predictor:
    """A loaded model, ready to classify uint8 (28, 28) EMNIST-orientation images."""

    def __init__(self, model, path: Path):
        import tensorflow as tf

        self.path = path
        self.classes = CLASSES
        self._pid = os.getpid()
        self._model = model
        self._call = tf.function(
            lambda x: tf.nn.softmax(model(x, training=False), axis=-1),
            input_signature=[tf.TensorSpec((None, IMAGE_SIZE, IMAGE_SIZE, 1), tf.float32)],
            reduce_retracing=True,
        )
        self._call(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32))  # trace now, not on the first request

    def _check_process(self) -> None:
        if os.getpid() != self._pid:
            raise RuntimeError("this Predictor was loaded in another process; call load_predictor() after fork")

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """float32 (N, 62) class probabilities for uint8 (N, 28, 28) images.

        Raises:
            InvalidImageError: not an (N, 28, 28) array of 0..255 values.
        """
        self._check_process()
        images = np.asarray(images)
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise InvalidImageError(f"expected images of shape (N, 28, 28), got {images.shape}")
        if images.dtype != np.uint8:
            if images.dtype.kind not in "uif" or (images.size and (images.min() < 0 or images.max() > 255)):
                raise InvalidImageError("image values must be numbers within 0..255")
        out = np.empty((len(images), NUM_CLASSES), dtype=np.float32)
        for start in range(0, len(images), BATCH_CHUNK):
            chunk = images[start : start + BATCH_CHUNK].astype(np.float32)[..., None]
            out[start : start + len(chunk)] = self._call(chunk).numpy()
        return out

    def top_k(self, probs: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        """Best ``k`` (label, probability) pairs per row of a (N, 62) probability array."""
        if not 1 <= k <= NUM_CLASSES:
            raise ValueError(f"k must be within 1..{NUM_CLASSES}, got {k}")
        order = np.argsort(-probs, axis=1)[:, :k]
        return [[(CLASSES[c], float(row[c])) for c in ranks] for row, ranks in zip(probs, order)]

    def predict(self, image: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """Top-``k`` for one uint8 (28, 28) image in EMNIST orientation, best first."""
        image = check_emnist_array(image)
        return self.top_k(self.probabilities(image[None]), k)[0]

    def predict_batch(self, images: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-``k`` for each of uint8 (N, 28, 28) images."""
        return self.top_k(self.probabilities(images), k)


def load_predictor(path: str | Path) -> Predictor:
    """Load a ``.keras`` model file saved by ``ml.train``.

    Raises:
        ModelFileError: the file is missing, unreadable, or not a 28x28 -> 62 model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import ml.model  # noqa: F401 - registers the custom layer for deserialisation

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        raise ModelFileError(f"could not load model {path}: {exc}") from exc
    in_shape, out_shape = tuple(model.input_shape), tuple(model.output_shape)
    if in_shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 1) or out_shape[1:] != (NUM_CLASSES,):
        raise ModelFileError(f"{path} maps {in_shape} -> {out_shape}; expected (28, 28, 1) -> 62 classes")
    return Predictor(model, path)
