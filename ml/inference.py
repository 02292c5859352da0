"""Serving: ``load_predictor(path)`` -> a ``Predictor`` with top-k for one image or a batch.

Every path also gives the drawing's embedding (the CNN's penultimate layer, the input of the
``logits`` layer, L2-normalised) from the same model call: the writer's memory
(``ml.writer_layer``) is fitted and applied on it, with ``Predictor.head_weights``. The models served are the loaded one with that
layer as a second output; its first output is the loaded model's, unchanged.

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

from ml.confidence import InputCalibration, load_calibration
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

    def __init__(
        self,
        model,
        path: Path,
        threads: int = 1,
        batch_threads: int | None = None,
        calibration: InputCalibration | None = None,
    ):
        import tensorflow as tf  # here, not at module level: see the module's docstring

        self.path = path
        # What the site shows (``shown_top_k``); None: the raw probabilities (ml.confidence).
        self.calibration = calibration
        self.classes = CLASSES
        self._pid = os.getpid()
        self._model = model
        dual = _with_embedding(model)
        self._call_both = tf.function(
            lambda x: _softmax_and_normalise(tf, *dual(x, training=False)),
            input_signature=[tf.TensorSpec((None, IMAGE_SIZE, IMAGE_SIZE, 1), tf.float32)],
            reduce_retracing=True,
        )
        self._call_both(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32))  # trace now, not on the first request
        self.embedding_size = int(dual.outputs[1].shape[-1])
        self._head = _head(model)
        # An interpreter holds its tensors: one call at a time (a threaded web server).
        self._lite_lock = threading.Lock()
        blob = _lite_model(dual)
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

    def _call(self, pixels):
        """Probabilities of float32 (N, 28, 28, 1) pixels through the tf.function (a tensor)."""
        return self._call_both(pixels)[0]

    def _lite_read(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 (62,) probabilities and (D,) embedding of one uint8 (28, 28) image (Lite)."""
        interpreter, input_index, output_indices = self._lite
        with self._lite_lock:
            interpreter.set_tensor(input_index, image.astype(np.float32).reshape(1, IMAGE_SIZE, IMAGE_SIZE, 1))
            interpreter.invoke()
            logits, features = (interpreter.get_tensor(i)[0] for i in output_indices)
        return softmax(logits, dtype=np.float32), normalise(features)

    def _lite_probabilities(self, image: np.ndarray) -> np.ndarray:
        return self._lite_read(image)[0]

    def _lite_agrees(self) -> bool:
        probe = np.random.default_rng(0).integers(0, 256, size=(4, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        probe[0] = 0
        probe[0, 4:24, 12:16] = 255  # one stroke-like image besides the noise
        probs, embeddings = zip(*(self._lite_read(image) for image in probe))
        return self._matches_keras(probe, np.stack(probs), np.stack(embeddings))

    def _matches_keras(self, probe: np.ndarray, probabilities: np.ndarray, embeddings: np.ndarray) -> bool:
        """Whether ``probabilities`` and ``embeddings`` of (N, 28, 28[, 1]) ``probe`` are
        Keras's within LITE_TOLERANCE: both outputs are served, so both are checked."""
        expected = self._call_both(probe.astype(np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1))
        return bool(
            np.abs(probabilities - expected[0].numpy()).max() <= LITE_TOLERANCE
            and np.abs(embeddings - expected[1].numpy()).max() <= LITE_TOLERANCE
        )

    def _lite_batch_read(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 (LITE_BATCH, 62) probabilities and (LITE_BATCH, D) embeddings of float32
        (LITE_BATCH, 28, 28, 1) pixels."""
        interpreter, input_index, output_indices = self._lite_batch
        with self._lite_batch_lock:
            interpreter.set_tensor(input_index, chunk)
            interpreter.invoke()
            logits, features = (interpreter.get_tensor(i) for i in output_indices)
        return softmax(logits, dtype=np.float32), normalise(features)

    def _lite_batch_agrees(self) -> bool:
        probe = (
            np.random.default_rng(1).integers(0, 256, size=(LITE_BATCH, IMAGE_SIZE, IMAGE_SIZE, 1)).astype(np.float32)
        )
        return self._matches_keras(probe, *self._lite_batch_read(probe))

    def _check_process(self) -> None:
        if os.getpid() != self._pid:
            raise RuntimeError("this Predictor was loaded in another process; call load_predictor() after fork")

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """float32 (N, 62) class probabilities for uint8 (N, 28, 28) images.

        Raises:
            InvalidImageError: not an (N, 28, 28) array of 0..255 values.
        """
        return self.read(images)[0]

    def read(self, images: np.ndarray, *, single_max: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """float32 (N, 62) probabilities and (N, D) L2-normalised embeddings of uint8 (N, 28, 28)
        images, from one model call per image or chunk. Up to ``single_max`` images go one by
        one through the single-image interpreter (faster than the batch path for a few).

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
        features = np.empty((len(images), self.embedding_size), dtype=np.float32)
        if self._lite is not None and 0 < len(images) <= single_max:
            for i, image in enumerate(images):
                out[i], features[i] = self._lite_read(image)
            return out, features
        # Whole chunks of LITE_BATCH through the batch interpreter, the rest through the tf.function.
        lite_end = len(images) // LITE_BATCH * LITE_BATCH if self._lite_batch is not None else 0
        for start in range(0, lite_end, LITE_BATCH):
            chunk = images[start : start + LITE_BATCH].astype(np.float32)[..., None]
            out[start : start + LITE_BATCH], features[start : start + LITE_BATCH] = self._lite_batch_read(chunk)
        for start in range(lite_end, len(images), BATCH_CHUNK):
            chunk = images[start : start + BATCH_CHUNK].astype(np.float32)[..., None]
            probs, embedded = self._call_both(chunk)
            out[start : start + len(chunk)], features[start : start + len(chunk)] = probs.numpy(), embedded.numpy()
        return out, features

    def head_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 (D, 62) kernel and (62,) bias of the layer that turns the embedding (before
        normalising) into the logits: probabilities = softmax(features @ kernel + bias)."""
        kernel, bias = self._head.get_weights()
        return np.asarray(kernel, dtype=np.float32), np.asarray(bias, dtype=np.float32)

    def top_k(self, probs: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        """Best ``k`` (label, probability) pairs per row of a (N, 62) probability array."""
        if not 1 <= k <= NUM_CLASSES:
            raise ValueError(f"k must be within 1..{NUM_CLASSES}, got {k}")
        order = np.argsort(-probs, axis=1)[:, :k]
        return [[(CLASSES[c], float(row[c])) for c in ranks] for row, ranks in zip(probs, order)]

    def shown_top_k(
        self, probs: np.ndarray, embeddings: np.ndarray, k: int = 5
    ) -> list[list[tuple[str, float, float]]]:
        """Best ``k`` (label, shown probability, raw probability) per row of (N, 62) ``probs``
        and their (N, D) ``embeddings``: ranked by the raw probabilities, exactly as ``top_k``;
        shown through the model's calibration (``ml.confidence``), or raw without one."""
        if not 1 <= k <= NUM_CLASSES:
            raise ValueError(f"k must be within 1..{NUM_CLASSES}, got {k}")
        shown = probs if self.calibration is None else self.calibration.apply(probs, embeddings)
        order = np.argsort(-probs, axis=1)[:, :k]
        return [
            [(CLASSES[c], float(seen[c]), float(row[c])) for c in ranks]
            for row, seen, ranks in zip(probs, shown, order)
        ]

    def predict(self, image: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """Top-``k`` for one uint8 (28, 28) image in EMNIST orientation, best first."""
        image = check_emnist_array(image)
        self._check_process()
        probs = self._lite_probabilities(image)[None] if self._lite is not None else self.probabilities(image[None])
        return self.top_k(probs, k)[0]

    def predict_batch(self, images: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-``k`` for each of uint8 (N, 28, 28) images."""
        return self.top_k(self.probabilities(images), k)


def normalise(features: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length (an all-zero row stays zero)."""
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=-1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def _softmax_and_normalise(tf, logits, features):
    return tf.nn.softmax(logits, axis=-1), tf.math.l2_normalize(features, axis=-1, epsilon=1e-24)


def _head(model):
    """The layer that makes the logits: ``logits``, or the last layer of a model without one."""
    names = [layer.name for layer in model.layers]
    return model.get_layer("logits") if "logits" in names else model.layers[-1]


def _with_embedding(model):
    """``model`` with a second output: the input of its ``logits`` layer (the penultimate
    layer), or of its last layer for a model without one. Shares the loaded weights."""
    import keras  # here, not at module level: see the module's docstring

    return keras.Model(model.inputs, [model.outputs[0], _head(model).input])


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
    """(interpreter, input index, (logits index, embedding index)) for ``batch`` images at a
    time, or None. The converter may order the outputs either way: told apart by width."""
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
    outputs = interpreter.get_output_details()
    logits = next((o for o in outputs if o["shape"][-1] == NUM_CLASSES), outputs[0])
    features = next((o for o in outputs if o is not logits), logits)
    return interpreter, interpreter.get_input_details()[0]["index"], (logits["index"], features["index"])


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
    # Beside the model and tied to its bytes; a retrained model has none and shows raw probabilities.
    calibration = load_calibration(path)
    return Predictor(model, path, threads=threads, batch_threads=batch_threads, calibration=calibration)
