"""Segmentation by recognition: cut touching characters, join a letter drawn in several strokes.

``ml.segment`` splits a word at the gaps between its strokes or ink components. Two failures
remain: characters that touch come out as one piece, and a letter drawn in side-by-side
strokes (an m as a stem and two arches) comes out as several. Here the pieces are first cut
further where a piece is wide (at the columns where its ink is thinnest: ``cut_columns``),
giving "atoms"; then every run of one to three neighbouring atoms that could be one
character is read by the CNN, and a dynamic programme keeps the path of runs whose readings
score best:

    sum over characters of  cnn x log max_c P_cnn(c | run)  +  verifier x log P_whole(run)
                            -  per_character  -  wide x (excess width)
                            -  cut   (for each cut through one of ml.segment's pieces)
                            -  join  (for each gap between ml.segment's pieces joined)

The CNN alone is a poor judge of whether a run is one character: it reads half an "m" as an
"n", or two touching letters as one wide letter, with high confidence. ``Verifier`` is: a small
network (one hidden layer) on the CNN's embedding of the run and the run's shape against the
word (``run_features``) that gives P(the run is exactly one character). It and the weights
are fitted on bench/word_segmentation.py's fitting part (``fit_verifier``) and shipped in
``ml/word_cuts.npz`` (``load_cuts``); ``CUT_WEIGHTS`` are the earlier CNN-only costs.

Public:
    cut_columns(ink, height) -> list[int]
    resegment(pieces, read, weights=CUT_WEIGHTS, verifier=None) -> list[Piece]
        read: a callable from a list of ink maps to (float (N, 62) CNN probabilities, float
        (N, D) embeddings), as ``ml.inference.Predictor.read`` gives them.
    may_resplit(boxes) -> bool: False when ``candidates`` of such pieces would be None
    candidates(pieces) -> Candidates | None; choose(found, log_best, weights, log_whole) -> list[Piece]
        (``choose_runs``: the same path as indices of the runs; ``best_runs`` from the CNN's
        reading and the verifier; ``keeps_pieces``: whether a path is ml.segment's split)
        (the two halves of ``resegment``: a fit reads the candidates once, chooses many times)
    run_features(found, probabilities, embeddings); fit_verifier(features, labels) -> Verifier
    load_cuts(path) -> (CutWeights, Verifier); save_cuts(path, weights, verifier)

Only NumPy (the CNN comes in through ``read``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ml.pieces import Piece

# A piece wider than this many times the word's tallest piece may hold two characters.
WIDE = 0.9
# A cut leaves at least this share of the reference height on each side.
MIN_PART = 0.25
# Runs of atoms wider than this many times the reference height are never one character.
MAX_RUN = 1.6
# Pieces further apart than this share of the reference height are never joined.
MAX_JOIN_GAP = 0.25
MAX_RUN_ATOMS = 3
NARROW = 0.8


@dataclass(frozen=True)
class CutWeights:
    per_character: float = 1.0
    cut: float = 1.0
    join: float = 2.0
    # Per unit of a character's width beyond ``NARROW`` times the reference height: one
    # character is rarely much wider than tall, two touching ones often are.
    wide: float = 0.0
    # The factors of the CNN's log confidence and of the verifier's log P(one character).
    cnn: float = 1.0
    verifier: float = 0.0


# Fitted by ``python bench/word_segmentation.py --fit`` (seed 18, 400 pairs, 400 letters, 200
# words of the fitting part): see bench/RESULTS.md, "Issue 18".
CUT_WEIGHTS = CutWeights(per_character=3.0, cut=2.0, join=0.0, wide=8.0)
CUTS_PATH = Path(__file__).with_name("word_cuts.npz")
# The shape of a run against the word: width, height, their ratio, atoms, joins, cuts at
# its ends, and the CNN's log confidence; after the embedding in ``run_features``.
SHAPE_FEATURES = 7


@dataclass(frozen=True)
class _Atom:
    box: tuple[int, int, int, int]
    ink: np.ndarray
    piece: int  # which of ml.segment's pieces it came from
    strokes: tuple[int, ...] | None


def cut_columns(ink: np.ndarray, height: float) -> list[int]:
    """Candidate cuts of one piece: local minima of its ink per column, best first.

    Args:
        ink: (H, W) ink map of one piece (any scale, background 0).
        height: the word's reference height in pixels (its tallest piece).

    Returns:
        Column indices within the piece, at least ``MIN_PART * height`` from either side,
        ordered by how little ink the column holds; at most three.
    """
    ink = np.asarray(ink, dtype=np.float64)
    inked = ink > 0.5 * ink.max() if ink.size and ink.max() > 0 else ink > 0
    # A join is a column of little ink in one run: the inside of an "o" has little ink too,
    # but in two runs (its top and its bottom), so ink x runs tells them apart.
    runs = np.maximum(1, (np.diff(inked.astype(np.int8), axis=0) == 1).sum(axis=0) + inked[0])
    smooth = ink.sum(axis=0) * runs
    width = len(smooth)
    margin = max(2, int(MIN_PART * height))
    if width < 2 * margin + 1:
        return []
    found = []
    for x in range(margin, width - margin):
        if smooth[x] <= smooth[x - 1] and smooth[x] <= smooth[x + 1]:
            found.append(x)
    found.sort(key=lambda x: smooth[x])
    kept: list[int] = []
    for x in found:
        if all(abs(x - k) >= margin for k in kept):
            kept.append(x)
    return kept[:3]


def _atoms(pieces: list[Piece], height: float) -> list[_Atom]:
    atoms = []
    for index, piece in enumerate(pieces):
        x0, y0, x1, y1 = piece.box
        cuts = sorted(cut_columns(piece.ink, height)) if (x1 - x0) > WIDE * height else []
        edges = [0, *cuts, x1 - x0]
        # A cut piece's strokes cannot be told apart by column: its parts keep none.
        strokes = piece.strokes if not cuts else None
        for a, b in zip(edges, edges[1:]):
            part = piece.ink[:, a:b]
            rows = np.flatnonzero(part.max(axis=1) > 0)
            if len(rows) == 0:
                continue
            ink = part[rows[0] : rows[-1] + 1]
            box = (x0 + a, y0 + int(rows[0]), x0 + b, y0 + int(rows[-1]) + 1)
            atoms.append(_Atom(box=box, ink=ink, piece=index, strokes=strokes))
    return atoms


def _merge(atoms: list[_Atom]) -> Piece:
    x0 = min(a.box[0] for a in atoms)
    y0 = min(a.box[1] for a in atoms)
    x1 = max(a.box[2] for a in atoms)
    y1 = max(a.box[3] for a in atoms)
    ink = np.zeros((y1 - y0, x1 - x0), dtype=atoms[0].ink.dtype)
    for a in atoms:
        region = ink[a.box[1] - y0 : a.box[3] - y0, a.box[0] - x0 : a.box[2] - x0]
        np.maximum(region, a.ink, out=region)
    strokes = None
    if all(a.strokes is not None for a in atoms):
        strokes = tuple(sorted({s for a in atoms for s in a.strokes}))
    return Piece(box=(x0, y0, x1, y1), ink=ink, strokes=strokes)


def _runs(atoms: list[_Atom], height: float) -> list[tuple[int, int]]:
    """(start, end) of the runs of atoms that could be one character. Each of ml.segment's
    pieces, whole, is always one: the search may cut a piece, never has to."""
    wholes = {}
    for i, atom in enumerate(atoms):
        start, _ = wholes.get(atom.piece, (i, i))
        wholes[atom.piece] = (start, i + 1)
    runs = set(wholes.values())
    for start in range(len(atoms)):
        for end in range(start + 1, min(len(atoms), start + MAX_RUN_ATOMS) + 1):
            if end - start > 1:
                left, right = atoms[end - 2], atoms[end - 1]
                if left.piece != right.piece and right.box[0] - left.box[2] > MAX_JOIN_GAP * height:
                    break
                if right.box[2] - atoms[start].box[0] > MAX_RUN * height:
                    break
            runs.add((start, end))
    return sorted(runs)


@dataclass(frozen=True)
class Candidates:
    """What the search chooses from: the atoms, the runs of them, and each run as a Piece."""

    atoms: list[_Atom]
    runs: list[tuple[int, int]]
    pieces: list[Piece]
    height: float


def may_resplit(boxes) -> bool:
    """Whether pieces with these boxes (x0, y0, x1, y1, left to right) could be split again:
    one is wide enough to cut, or two neighbours are close enough to join. False means
    ``candidates`` of those pieces is None, so a caller that has only the boxes can skip
    making the pieces."""
    boxes = [tuple(box) for box in boxes]
    if not boxes:
        return False
    height = float(max(y1 - y0 for _, y0, _, y1 in boxes))
    if any(x1 - x0 > WIDE * height for x0, _, x1, _ in boxes):
        return True
    return any(
        b[0] - a[2] <= MAX_JOIN_GAP * height and b[2] - a[0] <= MAX_RUN * height for a, b in zip(boxes, boxes[1:])
    )


def candidates(pieces: list[Piece]) -> Candidates | None:
    """The runs to read, or None when there is nothing to decide (no wide piece, no close neighbours)."""
    if not pieces:
        return None
    height = float(max(p.box[3] - p.box[1] for p in pieces))
    atoms = _atoms(pieces, height)
    runs = _runs(atoms, height)
    if len(atoms) == len(pieces) and all(end - start == 1 for start, end in runs):
        return None
    return Candidates(atoms=atoms, runs=runs, pieces=[_merge(atoms[s:e]) for s, e in runs], height=height)


def choose(
    found: Candidates, log_best: np.ndarray, weights: CutWeights = CUT_WEIGHTS, log_whole: np.ndarray | None = None
) -> list[Piece]:
    """The best path of runs, given each run's log max CNN probability and, with a verifier,
    its log P(one character)."""
    return [found.pieces[k] for k in choose_runs(found, log_best, weights, log_whole)]


def choose_runs(
    found: Candidates, log_best: np.ndarray, weights: CutWeights = CUT_WEIGHTS, log_whole: np.ndarray | None = None
) -> list[int]:
    """``choose``'s path as indices into ``found.runs`` (and ``found.pieces``), left to right."""
    if log_whole is None:
        log_whole = np.zeros(len(found.runs))
    atoms, runs = found.atoms, found.runs
    best = np.full(len(atoms) + 1, -np.inf)
    back = [-1] * (len(atoms) + 1)
    best[0] = 0.0
    by_end: dict[int, list[int]] = {}
    for k, (_, end) in enumerate(runs):
        by_end.setdefault(end, []).append(k)
    for end in range(1, len(atoms) + 1):
        for k in by_end.get(end, []):
            start = runs[k][0]
            joins, cut = _joins(atoms[start:end]), _cut_at(atoms, start)
            piece = found.pieces[k]
            excess = max(0.0, (piece.box[2] - piece.box[0]) / found.height - NARROW)
            score = best[start] + weights.cnn * log_best[k] + weights.verifier * log_whole[k]
            score -= weights.per_character + weights.join * joins + weights.cut * cut
            score -= weights.wide * excess
            if score > best[end]:
                best[end], back[end] = score, k
    chosen, end = [], len(atoms)
    while end > 0:
        k = back[end]
        chosen.append(k)
        end = runs[k][0]
    return chosen[::-1]


def _joins(inside: list[_Atom]) -> int:
    """Gaps between ml.segment's pieces that a run of these atoms joins."""
    return sum(a.piece != b.piece for a, b in zip(inside, inside[1:]))


def _cut_at(atoms: list[_Atom], boundary: int) -> bool:
    """Whether a run starting or ending at ``boundary`` cuts one of ml.segment's pieces (the
    atoms either side belong to it and are not joined back)."""
    return 0 < boundary < len(atoms) and atoms[boundary - 1].piece == atoms[boundary].piece


def best_runs(
    found: Candidates,
    probabilities: np.ndarray,
    embeddings: np.ndarray,
    weights: CutWeights = CUT_WEIGHTS,
    verifier: Verifier | None = None,
) -> list[int]:
    """The path of runs (indices into ``found.runs``) given the CNN's reading of every run, and
    with a verifier its log P(one character)."""
    log_whole = verifier.log_whole(run_features(found, probabilities, embeddings)) if verifier else None
    return choose_runs(found, log_confidence(probabilities), weights, log_whole)


def keeps_pieces(found: Candidates, chosen: list[int], pieces: int) -> bool:
    """Whether the path ``chosen`` is ml.segment's ``pieces`` pieces, each whole: the path covers
    every atom in order, so as many runs as pieces, each within one piece, is the first split
    (a run's box may still differ from its piece's by a trimmed row)."""
    runs = [found.runs[k] for k in chosen]
    return len(runs) == pieces and all(len({a.piece for a in found.atoms[start:end]}) == 1 for start, end in runs)


def log_confidence(probabilities: np.ndarray) -> np.ndarray:
    """log of each row's top probability (floored): how sure the CNN is of a run."""
    return np.log(np.maximum(np.asarray(probabilities).max(axis=1), 1e-9))


def run_features(found: Candidates, probabilities: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """float32 (runs, D + SHAPE_FEATURES): each run's embedding, then its shape against the word."""
    atoms, height = found.atoms, found.height
    shape = []
    for (start, end), piece, log_best in zip(found.runs, found.pieces, log_confidence(probabilities)):
        joins, cuts = _joins(atoms[start:end]), _cut_at(atoms, start) + _cut_at(atoms, end)
        width, tall = (piece.box[2] - piece.box[0]) / height, (piece.box[3] - piece.box[1]) / height
        shape.append([width, tall, width / max(tall, 1e-3), end - start, joins, cuts, log_best])
    return np.concatenate([np.asarray(embeddings, np.float32), np.asarray(shape, np.float32)], axis=1)


@dataclass(frozen=True)
class Verifier:
    """P(a run is exactly one character): standardised features -> ReLU layer -> logit."""

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def logits(self, features: np.ndarray) -> np.ndarray:
        hidden = np.maximum(0.0, ((np.asarray(features) - self.mean) / self.scale) @ self.w1 + self.b1)
        return hidden @ self.w2 + self.b2

    def log_whole(self, features: np.ndarray) -> np.ndarray:
        """log P(one character) of each row of ``run_features``."""
        return -np.logaddexp(0.0, -self.logits(features))


def fit_verifier(
    features: np.ndarray, labels: np.ndarray, *, hidden: int = 32, l2: float = 1e-3, epochs: int = 40, seed: int = 0
) -> Verifier:
    """Fit a ``Verifier`` by minibatch Adam on the logistic loss (128 rows a step, learning rate
    1e-3, L2 on the first layer); the same inputs and seed give the same numbers."""
    x = np.asarray(features, np.float64)
    y = np.asarray(labels, np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    rng = np.random.default_rng(seed)
    params = [
        rng.normal(0, np.sqrt(2 / z.shape[1]), (z.shape[1], hidden)),
        np.zeros(hidden),
        rng.normal(0, np.sqrt(1 / hidden), hidden),
        np.zeros(()),
    ]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(z))
        for begin in range(0, len(z), 128):
            batch = order[begin : begin + 128]
            w1, b1, w2, b2 = params
            pre = z[batch] @ w1 + b1
            act = np.maximum(0.0, pre)
            error = (1 / (1 + np.exp(-(act @ w2 + b2))) - y[batch]) / len(batch)  # d loss / d logit
            d_act = np.outer(error, w2) * (pre > 0)
            grads = [z[batch].T @ d_act + 2 * l2 * w1, d_act.sum(axis=0), act.T @ error, error.sum()]
            step += 1
            for p, g, (m, v) in zip(params, grads, moments):
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                p -= 1e-3 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-7)
    w1, b1, w2, b2 = params
    return Verifier(*(np.asarray(a, np.float32) for a in (mean, scale, w1, b1, w2, b2)))


def save_cuts(path: str | Path, weights: CutWeights, verifier: Verifier) -> None:
    """Write the weights and the verifier (``np.savez``, arrays only)."""
    with open(path, "wb") as out:
        np.savez(out, **{f"weight_{k}": np.float64(v) for k, v in asdict(weights).items()}, **asdict(verifier))


def load_cuts(path: str | Path = CUTS_PATH) -> tuple[CutWeights, Verifier]:
    """The fitted weights and verifier written by ``save_cuts``."""
    with np.load(path) as data:
        weights = CutWeights(**{k[len("weight_") :]: float(data[k]) for k in data.files if k.startswith("weight_")})
        verifier = Verifier(*(data[k] for k in ("mean", "scale", "w1", "b1", "w2", "b2")))
    return weights, verifier


def resegment(
    pieces: list[Piece],
    read: Callable[[list[np.ndarray]], tuple[np.ndarray, np.ndarray]],
    weights: CutWeights = CUT_WEIGHTS,
    verifier: Verifier | None = None,
) -> list[Piece]:
    """``ml.segment``'s pieces, cut and joined where the runs read as characters best.

    Returns the pieces unchanged when there is nothing to decide; else one ``read`` call
    reads every candidate run.
    """
    found = candidates(pieces)
    if found is None:
        return pieces
    probabilities, embeddings = read([p.ink for p in found.pieces])
    return [found.pieces[k] for k in best_runs(found, probabilities, embeddings, weights, verifier)]
