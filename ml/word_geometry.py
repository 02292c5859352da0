"""Where a character sits in its word: height against the word's other characters, and baseline.

EMNIST crops every character to its own box, so "o" and "O", "c" and "C", "p" and "P" look
the same to the CNN. The word still has their boxes: an x-height letter is shorter than the
capitals and ascenders beside it, a descender hangs below the baseline. ``features`` turns
the boxes of one word into a few numbers per character; ``GeometryModel`` holds one diagonal
Gaussian per class over them (fitted on the word benchmark's fitting part: see
``bench/word_context.py`` and ``ml/word_context.json``) and gives each character a log
posterior over the 62 classes from its geometry alone (uniform class prior).

Public:
    FEATURES: the names of the columns of ``features``
    features(boxes) -> float32 (N, len(FEATURES))
    tells_case(boxes) -> bool: the heights differ enough to say anything
    GeometryModel(mean, var): log_posterior(boxes) -> float32 (N, 62); fit(feats, labels)

Only NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURES = (
    "log_height_vs_median",
    "bottom_vs_baseline",
    "top_vs_median_top",
    "height_vs_word",
    "top_vs_word_top",
    "bottom_vs_word_bottom",
)
# No class's spread is narrower than this (squared feature units): a class seen few times
# must not become certain of its geometry.
VAR_FLOOR = 0.004
# A word whose tallest character is less than this many times its shortest shows no x-height
# against cap height ("seams" and "SEAMS" have the same boxes): its geometry says nothing.
MIN_SPREAD = 1.25


def tells_case(boxes) -> bool:
    """Whether the word's boxes differ enough in height for geometry to say anything."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) < 2:
        return False
    height = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    return bool(height.max() >= MIN_SPREAD * height.min())


def features(boxes) -> np.ndarray:
    """Per character of one word, its geometry relative to the word.

    Args:
        boxes: (N, 4) [x0, y0, x1, y1] per character, y growing downwards (end exclusive).

    Returns:
        float32 (N, 6), columns as ``FEATURES``: log(height / median height); (bottom - median
        bottom) / median height (a descender is positive); (top - median top) / median
        height (an ascender or capital is negative); height / the word's full height; top and
        bottom against the word's highest top and lowest bottom, over its full height.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    top, bottom = boxes[:, 1], boxes[:, 3]
    height = np.maximum(bottom - top, 1.0)
    median = float(np.median(height))
    span = max(float(bottom.max() - top.min()), 1.0)
    out = np.stack(
        [
            np.log(height / median),
            (bottom - np.median(bottom)) / median,
            (top - np.median(top)) / median,
            height / span,
            (top - top.min()) / span,
            (bottom.max() - bottom) / span,
        ],
        axis=1,
    )
    return out.astype(np.float32)


@dataclass(frozen=True)
class GeometryModel:
    """Diagonal Gaussians: ``mean`` and ``var`` float (C, F), one row per class."""

    mean: np.ndarray
    var: np.ndarray

    @classmethod
    def fit(cls, feats: np.ndarray, labels: np.ndarray, num_classes: int) -> GeometryModel:
        """Per class, the mean and variance (floored at ``VAR_FLOOR``) of its rows.

        A class with fewer than two rows gets the mean and variance of all rows.
        """
        feats, labels = np.asarray(feats, dtype=np.float64), np.asarray(labels)
        mean = np.tile(feats.mean(axis=0), (num_classes, 1))
        var = np.tile(feats.var(axis=0), (num_classes, 1))
        for c in range(num_classes):
            rows = feats[labels == c]
            if len(rows) >= 2:
                mean[c], var[c] = rows.mean(axis=0), rows.var(axis=0)
        return cls(mean=mean.astype(np.float32), var=np.maximum(var, VAR_FLOOR).astype(np.float32))

    @classmethod
    def from_dict(cls, data: dict) -> GeometryModel:
        return cls(mean=np.asarray(data["mean"], dtype=np.float32), var=np.asarray(data["var"], dtype=np.float32))

    def to_dict(self) -> dict:
        return {
            "features": list(FEATURES),
            "mean": np.round(self.mean, 4).tolist(),
            "var": np.round(self.var, 5).tolist(),
        }

    def log_posterior(self, boxes) -> np.ndarray:
        """float32 (N, C): log P(class | geometry) per character, uniform prior over classes.

        A word of one character has no neighbours to compare with: every class is equally
        likely. (One of characters all about as tall, ``tells_case`` False, says little: the
        decoder gives it its own, smaller weight.)
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        num_classes = len(self.mean)
        if len(boxes) < 2:
            return np.full((len(boxes), num_classes), -np.log(num_classes), dtype=np.float32)
        f = features(boxes)[:, None, :]
        loglik = -0.5 * (((f - self.mean[None]) ** 2) / self.var[None] + np.log(2 * np.pi * self.var[None])).sum(axis=2)
        top = loglik.max(axis=1, keepdims=True)
        norm = top + np.log(np.exp(loglik - top).sum(axis=1, keepdims=True))
        return (loglik - norm).astype(np.float32)
