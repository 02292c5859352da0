"""Serving: ``load_predictor(path)`` -> a ``Predictor`` with top-k for one image or a batch.

Nothing happens at import: TensorFlow is imported by ``load_predictor`` itself, so a
web process, or a Celery parent before it forks its children, can import this module
without starting TensorFlow. Load in the process that predicts (TensorFlow is not
fork-safe); a Predictor refuses to run in a process other than the one that loaded it.

Two paths, both checked against the Keras model when loaded:

* one image (the site's request path): a TensorFlow Lite interpreter converted from the
  model at load time (XNNPACK kernels, about 0.5 ms here), because even a traced
  ``tf.function`` spends 1.5-2 ms per call in TensorFlow's dispatch, and ``model.predict``
  tens of milliseconds setting up a loop. Should conversion fail or disagree with Keras,
  the ``tf.function`` serves single images too (``Predictor.single_path`` says which);
* batches: a second Lite interpreter for chunks of ``LITE_BATCH`` images on every core
  (``batch_threads``; about twice the images/s of the ``tf.function`` on this 2-core CPU),
  and the ``tf.function``, traced once for a fixed input signature, for what is left over
  (or everything, should that conversion fail or disagree).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from ml.data import CLASSES, IMAGE_SIZE, NUM_CLASSES
from ml.errors import InvalidImageError, ModelFileError
from ml.evaluate import softmax
from ml.preprocess import check_emnist_array

BATCH_CHUNK = 1024
# Images per call of the batch interpreter: 16-64 measured fastest here (larger chunks fall
# out of the cache); a batch's remainder goes through the tf.function.
LITE_BATCH = 64
# Largest difference in any class probability between the Lite and the Keras model on the
# load-time probe; float32 kernels in another order differ by about 1e-6.
LITE_TOLERANCE = 1e-4

logger = logging.getLogger(__name__)


class Predictor:
    """A loaded model, ready to classify uint8 (28, 28) EMNIST-orientation images."""

    def __init__(self, model, path: Path, threads: int = 1, batch_threads: int | None = None):
        import tensorflow as tf  # here, not at module level: see the module's docstring

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
        # An interpreter holds its tensors: one call at a time (a threaded web server).
        self._lite_lock = threading.Lock()
        blob = _lite_model(model)
        self._lite = _lite_interpreter(blob, threads, batch=1)
        if self._lite is not None and not self._lite_agrees():
            logger.warning("%s: the TensorFlow Lite conversion disagrees with Keras; serving with tf.function", path)
            self._lite = None
        self.single_path = "tflite" if self._lite is not None else "tf.function"
        self._lite_batch_lock = threading.Lock()
        self._lite_batch = None
        if self._lite is not None:
            if batch_threads is None:
                batch_threads = (
                    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
                )
            self._lite_batch = _lite_interpreter(blob, batch_threads, batch=LITE_BATCH)
            if self._lite_batch is not None and not self._lite_batch_agrees():
                logger.warning("%s: the batch Lite interpreter disagrees with Keras; batches use tf.function", path)
                self._lite_batch = None
        self.batch_path = "tflite" if self._lite_batch is not None else "tf.function"

    def _lite_probabilities(self, image: np.ndarray) -> np.ndarray:
        """float32 (62,) probabilities of one uint8 (28, 28) image through the Lite interpreter."""
        interpreter, input_index, output_index = self._lite
        with self._lite_lock:
            interpreter.set_tensor(input_index, image.astype(np.float32).reshape(1, IMAGE_SIZE, IMAGE_SIZE, 1))
            interpreter.invoke()
            logits = interpreter.get_tensor(output_index)[0]
        return softmax(logits, dtype=np.float32)

    def _lite_agrees(self) -> bool:
        probe = np.random.default_rng(0).integers(0, 256, size=(4, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        probe[0] = 0
        probe[0, 4:24, 12:16] = 255  # one stroke-like image besides the noise
        return self._matches_keras(probe, np.stack([self._lite_probabilities(image) for image in probe]))

    def _matches_keras(self, probe: np.ndarray, probabilities: np.ndarray) -> bool:
        """Whether ``probabilities`` of (N, 28, 28[, 1]) ``probe`` are Keras's within LITE_TOLERANCE."""
        expected = self._call(probe.astype(np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)).numpy()
        return bool(np.abs(probabilities - expected).max() <= LITE_TOLERANCE)

    def _lite_batch_probabilities(self, chunk: np.ndarray) -> np.ndarray:
        """float32 (LITE_BATCH, 62) probabilities of float32 (LITE_BATCH, 28, 28, 1) pixels."""
        interpreter, input_index, output_index = self._lite_batch
        with self._lite_batch_lock:
            interpreter.set_tensor(input_index, chunk)
            interpreter.invoke()
            logits = interpreter.get_tensor(output_index)
        return softmax(logits, dtype=np.float32)

    def _lite_batch_agrees(self) -> bool:
        probe = (
            np.random.default_rng(1).integers(0, 256, size=(LITE_BATCH, IMAGE_SIZE, IMAGE_SIZE, 1)).astype(np.float32)
        )
        return self._matches_keras(probe, self._lite_batch_probabilities(probe))

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
        # Whole chunks of LITE_BATCH through the batch interpreter, the rest through the tf.function.
        lite_end = len(images) // LITE_BATCH * LITE_BATCH if self._lite_batch is not None else 0
        for start in range(0, lite_end, LITE_BATCH):
            chunk = images[start : start + LITE_BATCH].astype(np.float32)[..., None]
            out[start : start + LITE_BATCH] = self._lite_batch_probabilities(chunk)
        for start in range(lite_end, len(images), BATCH_CHUNK):
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
        self._check_process()
        probs = self._lite_probabilities(image)[None] if self._lite is not None else self.probabilities(image[None])
        return self.top_k(probs, k)[0]

    def predict_batch(self, images: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-``k`` for each of uint8 (N, 28, 28) images."""
        return self.top_k(self.probabilities(images), k)


def _lite_model(model) -> bytes | None:
    """``model`` converted to TensorFlow Lite (a flatbuffer), or None if conversion fails.

    Converted in memory at load time (about 1.5 s for the shipped model), so there is no
    second file to keep in step with the ``.keras`` one.
    """
    import tensorflow as tf  # here, not at module level: see the module's docstring

    try:
        # Keras prints the signature of the graph it exports for the converter: not for a log.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            # tf.lite is deprecated in favour of the separate LiteRT package; TF 2.20 still ships it.
            warnings.simplefilter("ignore")
            return tf.lite.TFLiteConverter.from_keras_model(model).convert()
    except Exception:  # noqa: BLE001 - any conversion failure: serve with tf.function instead
        logger.warning("TensorFlow Lite conversion failed; serving with tf.function", exc_info=True)
        return None


def _lite_interpreter(blob: bytes | None, threads: int, batch: int):
    """(interpreter, input index, output index) for ``batch`` images at a time, or None."""
    import tensorflow as tf  # here, not at module level: see the module's docstring

    if blob is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(model_content=blob, num_threads=threads)
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], [batch, IMAGE_SIZE, IMAGE_SIZE, 1])
        interpreter.allocate_tensors()
    except Exception:  # noqa: BLE001 - serve with tf.function instead
        logger.warning("TensorFlow Lite interpreter failed to start; serving with tf.function", exc_info=True)
        return None
    return interpreter, interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]


def load_predictor(path: str | Path, threads: int = 1, batch_threads: int | None = None) -> Predictor:
    """Load a ``.keras`` model file saved by ``ml.train``.

    Args:
        path: the model file.
        threads: threads of the single-image interpreter; 1 suits a server with one
            process per core.
        batch_threads: threads of the batch interpreter; default: every core this process
            may run on.

    Raises:
        ModelFileError: the file is missing, unreadable, or not a 28x28 -> 62 model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Here, not at module level: ml.model imports Keras, which starts TensorFlow (seconds),
    # and a web process or a Celery parent imports this module without predicting.
    from ml.model import load_model

    try:
        model = load_model(path)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        raise ModelFileError(f"could not load model {path}: {exc}") from exc
    in_shape, out_shape = tuple(model.input_shape), tuple(model.output_shape)
    if in_shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 1) or out_shape[1:] != (NUM_CLASSES,):
        raise ModelFileError(f"{path} maps {in_shape} -> {out_shape}; expected (28, 28, 1) -> 62 classes")
    return Predictor(model, path, threads=threads, batch_threads=batch_threads)
