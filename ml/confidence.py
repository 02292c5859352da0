"""Honest confidence per drawing: a temperature that rises with how unfamiliar the drawing is.

One global temperature cannot serve both kinds of input the site receives: EMNIST-like drawings,
on which the network is already well calibrated, and letterforms it never saw (a looped l, a
hooked f), on which it is confidently wrong. Here each drawing gets its own temperature from a
score of how far it is from the training rows, computed from what ``Predictor.read`` already
returns (no second model call):

* ``u`` = 1 - the highest cosine similarity between the drawing's L2-normalised embedding and a
  class centroid of EMNIST training rows' embeddings (0 for a drawing at a centroid);
* ``h`` = the entropy of the CNN's posterior, in nats.

``log T = w0 + w1 * u + w2 * h``, clipped to ``T_RANGE``, and the shown probabilities are
``softmax(log p / T)``: for each drawing a strictly increasing map of its own probabilities, so
the ranking of its classes (top-1, top-k) never changes. The weights minimise the negative
log-likelihood on a calibration set (``python -m ml.calibrate --per-input``: canvas round-trips
of the EMNIST validation split and renderings of the training font families; never the
held-out families).

Pure NumPy: the worker applies it to what it stores and shows; the writer's memory
(``ml.prototypes``) and the word context (``ml.word_context``) keep the raw probabilities they
were fitted on. The parameters ship beside the model (``<model>.calibration.json`` and the
centroids, ``<model>.centroids.npy``), tied to the model file by its SHA-256: a calibration
fitted for another model is never applied.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.evaluate import softmax

CALIBRATION_SUFFIX = ".calibration.json"
CENTROIDS_SUFFIX = ".centroids.npy"
FORMAT = "per-input-temperature/1"
FEATURES = ("bias", "unfamiliarity", "entropy")
T_RANGE = (0.5, 20.0)
# Probabilities below this are read as this before the logarithm: float32 softmax outputs
# underflow to 0, and 0 ** (1 / T) is still 0, so the ranking holds either way.
P_FLOOR = 1e-30

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputCalibration:
    """A per-drawing temperature map.

    Attributes:
        centroids: float32 (C, D) L2-normalised class centroids of training embeddings.
        weights: ``log T`` per feature of ``FEATURES`` (float, len(FEATURES)).
    """

    centroids: np.ndarray
    weights: tuple[float, ...]

    def temperatures(self, probs: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """float64 (N,) temperatures of float (N, C) probabilities and (N, D) embeddings."""
        p = np.asarray(probs, dtype=np.float64)
        return np.exp(self._log_temperatures(p, np.log(np.maximum(p, P_FLOOR)), embeddings))

    def apply(self, probs: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """float64 (N, C): each row of ``probs`` tempered by its own temperature.

        ``temper(probs, self.temperatures(...))`` with the logarithm taken once: the worker
        calls this on every batch (50 us for one drawing, 7 us a drawing in a batch of 64, measured
        on a 2-core VM busy with other work).
        """
        p = np.asarray(probs, dtype=np.float64)
        log_p = np.log(np.maximum(p, P_FLOOR))
        return softmax(log_p * np.exp(-self._log_temperatures(p, log_p, embeddings))[:, None])

    def _log_temperatures(self, p: np.ndarray, log_p: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """``features(...) @ weights``, clipped to LOG_T_RANGE, without building the design matrix."""
        bias, w_unfamiliar, w_entropy = self.weights
        log_t = bias + w_unfamiliar * unfamiliarity(embeddings, self.centroids) - w_entropy * (p * log_p).sum(axis=1)
        return np.minimum(np.maximum(log_t, LOG_T_RANGE[0]), LOG_T_RANGE[1])


LOG_T_RANGE = (float(np.log(T_RANGE[0])), float(np.log(T_RANGE[1])))


def unfamiliarity(embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """float64 (N,): 1 - the best cosine similarity of each L2-normalised embedding to a centroid."""
    # einsum, not ``@``: a small product through OpenBLAS starts threads that fight TensorFlow's
    # (see ml.prototypes.class_similarity).
    similarity = np.einsum("nd,cd->nc", np.asarray(embeddings, np.float32), np.asarray(centroids, np.float32))
    return 1.0 - similarity.max(axis=1).astype(np.float64)


def entropy(probs: np.ndarray) -> np.ndarray:
    """float64 (N,): the entropy of each row of (N, C) probabilities, in nats."""
    p = np.asarray(probs, dtype=np.float64)
    return -(p * np.log(np.maximum(p, P_FLOOR))).sum(axis=1)


def features(probs: np.ndarray, embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """float64 (N, len(FEATURES)): the design matrix of ``log T``."""
    u = unfamiliarity(embeddings, centroids)
    return np.stack([np.ones_like(u), u, entropy(probs)], axis=1)


def temper(probs: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    """float64 (N, C): ``softmax(log p / T)`` per row, ``T`` > 0 (N,). Strictly increasing in
    each row's probabilities: the order of a row's classes is kept (ties stay ties)."""
    return softmax(np.log(np.maximum(np.asarray(probs, dtype=np.float64), P_FLOOR)) / np.asarray(temperatures)[:, None])


def class_centroids(embeddings: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 (num_classes, D): the L2-normalised mean embedding of each class (zero if absent)."""
    sums = np.zeros((num_classes, embeddings.shape[1]), dtype=np.float64)
    np.add.at(sums, np.asarray(labels, dtype=np.int64), np.asarray(embeddings, dtype=np.float64))
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def _nll_and_derivatives(z: np.ndarray, labels: np.ndarray, x: np.ndarray, w: np.ndarray, weights: np.ndarray):
    """Weighted mean NLL of softmax(z / T), log T = clip(x @ w), with its gradient and Hessian in w."""
    log_t = np.clip(x @ w, *LOG_T_RANGE)
    inside = (log_t > LOG_T_RANGE[0]) & (log_t < LOG_T_RANGE[1])
    s = z * np.exp(-log_t)[:, None]
    s -= s.max(axis=1, keepdims=True)
    q = np.exp(s)
    norm = q.sum(axis=1)
    q /= norm[:, None]
    rows = np.arange(len(labels))
    nll = np.log(norm) - s[rows, labels]
    mean_s = (q * s).sum(axis=1)
    var_s = (q * s * s).sum(axis=1) - mean_s**2
    # d nll / d log T and its derivative (log T outside the clip range does not move).
    g = (s[rows, labels] - mean_s) * inside
    h = (-s[rows, labels] + mean_s + var_s) * inside
    g, h = g * weights, h * weights
    return float(nll @ weights), x.T @ g, (x * h[:, None]).T @ x


def fit_weights(probs: np.ndarray, embeddings: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The weights of ``FEATURES`` minimising the mean NLL of the tempered probabilities.

    Damped Newton steps from T = 1 with a backtracking line search: deterministic, no SciPy.

    Args:
        probs: float (N, C) raw CNN probabilities; embeddings: (N, D) L2-normalised;
        labels: int (N,) true classes; centroids: (C, D) from ``class_centroids``.

    Returns:
        float64 (len(FEATURES),).
    """
    z = np.log(np.maximum(np.asarray(probs, dtype=np.float64), P_FLOOR))
    labels = np.asarray(labels, dtype=np.int64)
    x = features(probs, embeddings, centroids)
    rows = np.full(len(labels), 1.0 / len(labels))  # each drawing counts the same
    w = np.zeros(x.shape[1])
    nll, grad, hess = _nll_and_derivatives(z, labels, x, w, rows)
    damping = 1e-6
    for _ in range(100):
        try:
            step = np.linalg.solve(hess + damping * np.eye(len(w)), grad)
        except np.linalg.LinAlgError:
            step = grad
        if grad @ step <= 0:  # not a descent direction (the NLL is not convex in w): follow the gradient
            step = grad
        rate = 1.0
        while rate > 1e-8:
            candidate = w - rate * step
            new = _nll_and_derivatives(z, labels, x, candidate, rows)
            if new[0] <= nll - 1e-4 * rate * (grad @ step):
                break
            rate /= 2
        else:
            break
        improved = nll - new[0]
        w, (nll, grad, hess) = candidate, new
        if improved < 1e-12 or np.abs(grad).max() < 1e-9:
            break
    return w


def calibration_paths(model_path: str | Path) -> tuple[Path, Path]:
    """(parameters JSON, centroids .npy) beside ``model_path``."""
    stem = Path(model_path).with_suffix("")
    return stem.with_suffix(CALIBRATION_SUFFIX), stem.with_suffix(CENTROIDS_SUFFIX)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_calibration(model_path: str | Path, calibration: InputCalibration, summary: dict) -> tuple[Path, Path]:
    """Write the calibration beside ``model_path``, tied to its bytes; returns the two paths."""
    params, centroids = calibration_paths(model_path)
    np.save(centroids, np.asarray(calibration.centroids, dtype=np.float32))
    document = {
        "format": FORMAT,
        "model_sha256": file_sha256(model_path),
        "centroids_sha256": file_sha256(centroids),
        "features": list(FEATURES),
        "weights": [round(float(w), 6) for w in calibration.weights],
        "t_range": list(T_RANGE),
        **summary,
    }
    params.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return params, centroids


def load_calibration(model_path: str | Path) -> InputCalibration | None:
    """The calibration beside ``model_path``, or None: none there, or one written for other
    bytes (a retrained model saved over the file) or in another format, which is logged."""
    params, centroids = calibration_paths(model_path)
    if not params.is_file():
        return None
    try:
        document = json.loads(params.read_text())
        if document.get("format") != FORMAT or document.get("features") != list(FEATURES):
            logger.warning("%s: unknown calibration format; showing raw probabilities", params)
            return None
        if document.get("model_sha256") != file_sha256(model_path):
            logger.warning("%s was fitted for other model bytes; showing raw probabilities", params)
            return None
        if document.get("centroids_sha256") != file_sha256(centroids):
            logger.warning("%s does not match %s; showing raw probabilities", centroids, params)
            return None
        weights = tuple(float(w) for w in document["weights"])
        vectors = np.load(centroids, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("%s could not be read; showing raw probabilities", params, exc_info=True)
        return None
    if len(weights) != len(FEATURES) or vectors.ndim != 2:
        logger.warning("%s is malformed; showing raw probabilities", params)
        return None
    return InputCalibration(centroids=vectors, weights=weights)
