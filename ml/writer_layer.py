"""A writer's memory as a correction of the CNN's last layer, fitted to their own corrections.

Pure NumPy, no TensorFlow and no Django: the worker (``recognition.services.writer_memory``)
and the benchmark (``bench/personal_adaptation.py``) call the same functions.

The shipped model's probabilities are ``softmax(f @ W + b)`` with ``f`` the penultimate layer
(``ml.inference``; checked to 1e-5 on validation images). A writer's correction moves the
logits of every drawing of theirs by a linear function of its L2-normalised embedding ``x``:

    logits = log p + scale * (x - mean) @ A + a

``A`` (D, C) and ``a`` (C,) are fitted to the writer's memory, so one corrected drawing moves
the boundary for the whole region of the embedding space around it, not only for drawings
near the stored one (``ml.prototypes``, the rule before). The fit minimises, by a fixed number
of momentum gradient steps from zero (deterministic; bench/writer_memory_cost.py times it):

* cross-entropy of the corrected labels on the writer's entries, their logits before the
  correction taken as ``ENTRY_NORM * x @ W + b`` (the stored vectors are normalised; the norm
  they lost is not stored, and 10 is a typical one: the argmax agrees with the model's on 99 %
  of the bench's styled drawings);
* plus the cross-entropy to the model's own probabilities on *anchors*: plain training
  drawings, 20 of each class (``ANCHOR_FILE``), read by the serving model, weighing ``gamma``
  classes' worth of entries, or (``per_entry``, the shipped rule) that many times the writer's
  entries, so that their pull grows with the memory: a weak pull lets one correction move a
  class, a growing one keeps the writer's ordinary letters once the memory holds many. A
  memory holds only misread drawings; without anchors the fit pushes every drawing toward the
  corrected classes and the same writer's ordinary letters are misread (bench/RESULTS.md);
* plus ``lam * |A|^2 + lam_bias * |a|^2``: the pull toward the shipped layer.

``mean`` is the anchors' mean embedding: every embedding is positive (a ReLU layer), so an
uncentred ``x @ A`` acts mostly as a per-writer class prior.

An empty memory has no correction (``fit_correction`` gives None) and ``apply_correction`` is
never called: such a writer keeps the CNN's probabilities bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.evaluate import softmax
from ml.prototypes import PrototypeRule

ANCHOR_FILE = Path(__file__).resolve().parent / "artifacts" / "writer_anchors.npz"
ANCHORS_PER_CLASS = 20
# The norm of a penultimate-layer vector before normalising, for the stored (normalised) ones:
# the median on the bench's styled drawings is 9.5-10.7 (plain validation drawings: 12.5).
ENTRY_NORM = 10.0


@dataclass(frozen=True)
class LayerRule:
    """How a writer's memory is fitted into a last-layer correction.

    Attributes:
        scale: multiplies the centred unit embeddings (the feature scale the fit sees).
        lam: L2 pull of ``A`` toward zero (the shipped layer).
        lam_bias: L2 pull of the per-writer bias ``a``.
        gamma: weight of the anchors, in units of one class's worth of entries.
        per_entry: when above 0, the anchors weigh this many times the writer's entries
            instead (gamma unused): their pull grows with the memory.
        steps: gradient steps.
        momentum: heavy-ball momentum of the steps.
    """

    scale: float = 10.0
    lam: float = 0.1
    lam_bias: float = 1.0
    gamma: float = 10.0
    steps: int = 60
    momentum: float = 0.8
    per_entry: float = 0.0


# Fitted by bench/personal_adaptation.py on its fitting writers (see bench/RESULTS.md, issue 19):
# gamma 10 and 120 steps for stage D; for the D + F blend shipped since, gamma 10 and 60 steps
# (fitting score 7.31 against 7.19 for 120 steps), then, with the per-entry weight in the grid
# (2026-12-08), the anchors weighing 5 times the writer's entries, 60 steps (7.56; 7.58 at 120
# steps is a tie, and the tie goes to the cheaper fit).
DEFAULT_LAYER_RULE = LayerRule(per_entry=5.0)
# After the correction, the prototype vote (``ml.prototypes``) of near-identical drawings only:
# the very drawing a writer corrected, drawn again, reads as they corrected it (a stored copy
# has cosine ~0.999 after float16: a vote of at least 1.35 against probabilities summing to 1).
# The fit alone reads 97-98 % of the corrected drawings so; a plain drawing corrected to a
# class the model finds unlikely (the page's test: an ellipse taught as "Q") it may not, since
# the anchors hold plain drawings where they were. Not fitted: 0.99 is where a redraw is a copy
# (at 0.9 styled drawings of other characters already vote: 1.5 points lost on the fitting writers).
SAME_DRAWING = PrototypeRule(threshold=0.99, weight=1.5)


@dataclass(frozen=True)
class Basis:
    """What a fit needs from the serving model, computed once per loaded model.

    Attributes:
        weights: float32 (D, C) the ``logits`` layer's kernel.
        bias: float32 (C,) its bias.
        anchors: float32 (K, D) L2-normalised embeddings of the anchor drawings.
        anchor_probs: float32 (K, C) the model's probabilities for them.
        mean: float32 (D,) the anchors' mean embedding.
    """

    weights: np.ndarray
    bias: np.ndarray
    anchors: np.ndarray
    anchor_probs: np.ndarray
    mean: np.ndarray


def basis_of(weights: np.ndarray, bias: np.ndarray, anchor_probs: np.ndarray, anchors: np.ndarray) -> Basis:
    """A ``Basis`` from the last layer and the model's reading of the anchor drawings."""
    anchors = np.asarray(anchors, dtype=np.float32)
    return Basis(
        weights=np.asarray(weights, dtype=np.float32),
        bias=np.asarray(bias, dtype=np.float32),
        anchors=anchors,
        anchor_probs=np.asarray(anchor_probs, dtype=np.float32),
        mean=anchors.mean(axis=0) if len(anchors) else np.zeros(anchors.shape[1], np.float32),
    )


def read_anchor_images(path: Path = ANCHOR_FILE) -> np.ndarray:
    """uint8 (K, 28, 28) anchor drawings (plain ByClass training characters, EMNIST orientation)."""
    with np.load(path) as data:
        return data["images"]


def basis_for(predictor, path: Path = ANCHOR_FILE) -> Basis:
    """The ``Basis`` of a loaded ``ml.inference.Predictor``: its last layer, and its reading of
    the anchor drawings (one batch call, about 0.3 s)."""
    probs, embeddings = predictor.read(read_anchor_images(path))
    return basis_of(*predictor.head_weights(), probs, embeddings)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """``ml.evaluate.softmax`` in the logits' own dtype (float32 here: the fit's and the worker's)."""
    return softmax(logits, dtype=logits.dtype)


def _features(embeddings: np.ndarray, mean: np.ndarray, scale: float) -> np.ndarray:
    """float32 (N, D + 1): centred, scaled embeddings with a column of ones (for the bias)."""
    out = np.empty((len(embeddings), len(mean) + 1), dtype=np.float32)
    np.subtract(np.asarray(embeddings, dtype=np.float32), mean, out=out[:, :-1])
    out[:, :-1] *= scale
    out[:, -1] = 1.0
    return out


def _anchor_total(rule: LayerRule, entries: int, num_classes: int) -> float:
    """The anchors' summed weight in the fit, in units of one entry's."""
    return rule.per_entry * entries if rule.per_entry > 0 else rule.gamma * num_classes


def fit_correction(
    vectors: np.ndarray, labels: np.ndarray, basis: Basis, rule: LayerRule = DEFAULT_LAYER_RULE
) -> np.ndarray | None:
    """One writer's last-layer correction, fitted to their memory.

    Args:
        vectors: (M, D) the writer's stored L2-normalised embeddings (any float dtype).
        labels: int (M,) their corrected class indices.
        basis: the serving model's layer and anchors.
        rule: the fit's numbers.

    Returns:
        float32 (D + 1, C): ``A`` stacked over ``a``; None for an empty memory.
    """
    if len(vectors) == 0:
        return None
    vectors = np.asarray(vectors, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = basis.weights.shape[1]
    x = _features(np.concatenate([vectors, basis.anchors]), basis.mean, rule.scale)
    base = np.concatenate(
        [ENTRY_NORM * vectors @ basis.weights + basis.bias, np.log(np.maximum(basis.anchor_probs, 1e-30))]
    )
    target = np.concatenate([np.eye(num_classes, dtype=np.float32)[labels], basis.anchor_probs])
    weight = np.concatenate(
        [
            np.ones(len(labels), np.float32),
            np.full(
                len(basis.anchors),
                _anchor_total(rule, len(labels), num_classes) / max(len(basis.anchors), 1),
                np.float32,
            ),
        ]
    )[:, None]
    pull = np.full((x.shape[1], 1), rule.lam, dtype=np.float32)
    pull[-1] = rule.lam_bias
    # Step size 1 / L, L the gradient's Lipschitz bound: half the largest eigenvalue of the
    # weighted Gram matrix (softmax cross-entropy's Hessian is at most 1/2) plus the pull's.
    lipschitz = 0.5 * float(np.linalg.eigvalsh((x * weight).T @ x)[-1]) + 2.0 * float(pull.max())
    correction = np.zeros((x.shape[1], num_classes), dtype=np.float32)
    velocity = np.zeros_like(correction)
    for _ in range(rule.steps):
        ahead = correction + rule.momentum * velocity
        gradient = x.T @ (weight * (_softmax(base + x @ ahead) - target)) + 2.0 * pull * ahead
        velocity = rule.momentum * velocity - gradient / lipschitz
        correction = correction + velocity
    return correction


def apply_correction(
    probs: np.ndarray,
    embeddings: np.ndarray,
    correction: np.ndarray,
    basis: Basis,
    rule: LayerRule = DEFAULT_LAYER_RULE,
) -> np.ndarray:
    """float32 (N, C): one writer's drawings read with their correction.

    Args:
        probs: float32 (N, C) CNN probabilities.
        embeddings: float32 (N, D) L2-normalised embeddings of the same drawings.
        correction: float32 (D + 1, C) from ``fit_correction``.
        basis: the one the correction was fitted with.
        rule: the one the correction was fitted with.
    """
    # einsum, not ``@``: a matrix product goes to OpenBLAS, whose threads fight TensorFlow's on
    # a busy worker (ml.prototypes); this one is (N, 257) x (257, 62), small.
    shift = np.einsum("nd,dc->nc", _features(embeddings, basis.mean, rule.scale), correction)
    return _softmax(np.log(np.maximum(probs, 1e-30)).astype(np.float32) + shift).astype(np.float32)


def make_anchor_file(
    data_dir: str | Path, path: Path = ANCHOR_FILE, per_class: int = ANCHORS_PER_CLASS, seed: int = 0
) -> int:
    """Write ``per_class`` ByClass *training* characters of each class (exact labels) to ``path``;
    returns how many. Training rows only: the validation split, which the benchmarks draw
    their writers from, never becomes an anchor."""
    from ml.data import EXACT_SPLIT, load_emnist  # here: reads every EMNIST file (seconds)

    data = load_emnist(data_dir, splits=(EXACT_SPLIT,))
    labels = data.train_allowed.argmax(axis=1)
    rng = np.random.default_rng(seed)
    rows = np.concatenate(
        [
            rng.permutation(np.flatnonzero(data.train_exact & (labels == c)))[:per_class]
            for c in range(data.train_allowed.shape[1])
        ]
    )
    np.savez_compressed(path, images=data.train_images[rows], labels=labels[rows].astype(np.uint8))
    return len(rows)


if __name__ == "__main__":
    import sys

    print(
        make_anchor_file(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/emnist"),
        "anchors written to",
        ANCHOR_FILE,
    )
