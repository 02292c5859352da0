"""A writer's memory as prototypes: nearest stored drawings move the CNN's posterior.

Pure NumPy, no TensorFlow and no Django: the worker (``recognition.services.writer_memory``)
and the benchmark (``bench/personal_adaptation.py``) call the same function.

The rule, per drawing, with ``x`` its L2-normalised embedding (``ml.inference``) and the
writer's memory of (embedding, label) pairs from their own corrections:

* ``s_c`` = the highest cosine similarity between ``x`` and a stored drawing of class ``c``;
* each class with ``s_c > threshold`` gets the vote ``v_c = (s_c - threshold) / (1 - threshold)``
  (1 for an identical drawing, 0 at the threshold: a barely similar one hardly counts);
* the posterior becomes ``p + weight * v``, normalised to sum to 1;
* optionally (``confident`` < 1), a drawing whose top probability is above ``confident`` is
  left as it is (the memory holds misread drawings; one the CNN reads with near certainty is
  more often right than like one of them). ``DEFAULT_RULE`` does not use it.

The votes are added, not normalised among themselves: one class just over the threshold
must not take the whole vote (an exploration of the normalised form on simulated writers
lost accuracy as the threshold rose, for that reason).

No class reaching the threshold, a sure CNN (or an empty memory) leaves the posterior as it
was: the same array, bit for bit. ``threshold``, ``weight`` and ``confident`` are fitted by ``bench/personal_adaptation.py``
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
        confident: the CNN's top probability above which the memory is not consulted
            (1.0: always consulted).
    """

    threshold: float
    weight: float
    confident: float = 1.0


# Fitted by bench/personal_adaptation.py on its fitting writers (see bench/RESULTS.md, issue 19).
# Not gated on confidence: the bench's fit of ``confident`` (0.99) gained 0.07 points on the
# fitting writers, noise, and a gate leaves a sure misreading unfixable by its writer.
DEFAULT_RULE = PrototypeRule(threshold=0.45, weight=1.5)


def class_similarity(embeddings: np.ndarray, vectors: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 (N, num_classes): per drawing, the best cosine similarity to a stored drawing
    of each class (-1 where the memory holds none of that class).

    Args:
        embeddings: float32 (N, D) L2-normalised embeddings of the drawings.
        vectors: (M, D) L2-normalised embeddings of the stored drawings (any float dtype);
            fastest as float32 sorted by label (``memory_arrays`` gives them so).
        labels: int (M,) class indices of the stored drawings.
        num_classes: how many classes the posterior has.
    """
    labels = np.asarray(labels)
    if len(labels) > 1 and np.any(labels[1:] < labels[:-1]):
        order = np.argsort(labels, kind="stable")
        vectors, labels = np.asarray(vectors)[order], labels[order]
    # (N, M), columns grouped by label. einsum, not ``@``: a matrix product goes to OpenBLAS,
    # whose threads fight TensorFlow's on a busy worker (a 32 x 500 product took 21 ms there
    # against 3 ms for einsum's single-threaded loop; bench/writer_memory_cost.py).
    similarity = np.einsum("nd,md->nm", embeddings, np.asarray(vectors, dtype=np.float32))
    present, starts = np.unique(labels, return_index=True)
    best = np.full((len(embeddings), num_classes), -1.0, dtype=np.float32)
    best[:, present] = np.maximum.reduceat(similarity, starts, axis=1)
    return best


def memory_arrays(vectors: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A memory as ``adapt`` reads it fastest: float32 vectors sorted by label (stable)."""
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    return np.asarray(vectors, dtype=np.float32)[order], labels[order]


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
    unsure = probs.max(axis=1) <= rule.confident
    if not unsure.any():
        return probs, moved
    votes = class_similarity(embeddings, vectors, np.asarray(labels, dtype=np.int64), probs.shape[1]) - rule.threshold
    np.maximum(votes, 0.0, out=votes)
    moved = (votes.max(axis=1) > 0) & unsure
    if not moved.any():
        return probs, moved
    out = probs.copy()
    combined = probs[moved] + (rule.weight / (1.0 - rule.threshold)) * votes[moved]
    out[moved] = (combined / combined.sum(axis=1, keepdims=True)).astype(probs.dtype)
    return out, moved
