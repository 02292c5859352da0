"""A writer's memory as prototypes: nearest stored drawings move the CNN's posterior.

Pure NumPy, no TensorFlow and no Django: the worker (``recognition.services.writer_memory``)
and the benchmark (``bench/personal_adaptation.py``) call the same function.

The rule, per drawing, with ``x`` its L2-normalised embedding (``ml.inference``) and the
writer's memory of (embedding, label) pairs from their own corrections:

* ``s_c`` = the highest cosine similarity between ``x`` and a stored drawing of class ``c``;
* each class with ``s_c > threshold`` gets the vote ``v_c = (s_c - threshold) / (1 - threshold)``
  (1 for an identical drawing, 0 at the threshold: a barely similar one hardly counts);
* the posterior becomes ``p + weight * v``, normalised to sum to 1.

The votes are added, not normalised among themselves: one class just over the threshold
must not take the whole vote (an exploration of the normalised form on simulated writers
lost accuracy as the threshold rose, for that reason).

No class reaching the threshold (or an empty memory) leaves the posterior as it was: the same
array, bit for bit. ``threshold`` and ``weight`` are fitted by ``bench/personal_adaptation.py``
on writers it does not report on (``DEFAULT_RULE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PrototypeRule:
    """How far a writer's memory moves the posterior.

    Attributes:
        threshold: cosine similarity a stored drawing needs before it votes (0..1).
        weight: how much a vote of 1 adds to the posterior before normalising (> 0).
    """

    threshold: float
    weight: float


# Fitted by bench/personal_adaptation.py on its fitting writers (see bench/RESULTS.md, issue 19).
DEFAULT_RULE = PrototypeRule(threshold=0.45, weight=1.5)


def class_similarity(embeddings: np.ndarray, vectors: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 (N, num_classes): per drawing, the best cosine similarity to a stored drawing
    of each class (-1 where the memory holds none of that class).

    Args:
        embeddings: float32 (N, D) L2-normalised embeddings of the drawings.
        vectors: (M, D) L2-normalised embeddings of the stored drawings (any float dtype).
        labels: int (M,) class indices of the stored drawings.
        num_classes: how many classes the posterior has.
    """
    similarity = embeddings @ np.asarray(vectors, dtype=np.float32).T  # (N, M)
    best = np.full((len(embeddings), num_classes), -1.0, dtype=np.float32)
    for label in np.unique(labels):
        best[:, label] = similarity[:, labels == label].max(axis=1)
    return best


def adapt(
    probs: np.ndarray,
    embeddings: np.ndarray,
    vectors: np.ndarray,
    labels: np.ndarray,
    rule: PrototypeRule = DEFAULT_RULE,
) -> tuple[np.ndarray, np.ndarray]:
    """One writer's drawings read with their memory.

    Args:
        probs: float32 (N, C) CNN probabilities.
        embeddings: float32 (N, D) L2-normalised embeddings of the same drawings.
        vectors: (M, D) the writer's stored embeddings; M may be 0.
        labels: int (M,) their class indices.
        rule: threshold and weight.

    Returns:
        (float32 (N, C) posterior, bool (N,) whether the memory moved it). Rows the memory
        did not move are the input rows exactly; with M == 0 the input array itself.
    """
    moved = np.zeros(len(probs), dtype=bool)
    if len(vectors) == 0 or len(probs) == 0:
        return probs, moved
    votes = class_similarity(embeddings, vectors, np.asarray(labels, dtype=np.int64), probs.shape[1]) - rule.threshold
    np.maximum(votes, 0.0, out=votes)
    moved = votes.max(axis=1) > 0
    if not moved.any():
        return probs, moved
    out = probs.copy()
    combined = probs[moved] + (rule.weight / (1.0 - rule.threshold)) * votes[moved]
    out[moved] = (combined / combined.sum(axis=1, keepdims=True)).astype(probs.dtype)
    return out, moved
