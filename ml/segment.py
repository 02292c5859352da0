"""A word -> its characters: split a drawing of several characters written in a row.

Two ways in, one grouping rule:

- With strokes (what the canvas sends, in the PNG's pixel coordinates): each stroke is an
  element with the horizontal extent of its points plus half the pen width. Strokes whose
  extents overlap (a "t" bar drawn last, the two strokes of an "x") are one character.
- Without strokes (uploads, API clients): each connected component of the ink is an
  element. Components whose column ranges overlap (the dot of an "i", a stroke broken in
  two) are one character; characters are split at the column gaps between them.

In both, a small mark (a dot) joins the character under or over it even when its extent
misses that character by a little, characters are ordered left to right, and each one's
ink is taken from the image itself (masked to its own strokes or components), so the
crop is what was drawn. Each crop then goes through ``ml.preprocess.ink_to_emnist``
exactly as a single character does.

Touching characters (joined-up handwriting) are not split here: they come out as one piece.
``resplit`` is the second split the worker makes once a CNN is at hand (``ml.word_cuts``:
cuts and joins chosen by how the runs read); the web request never calls it.

Public functions:
    segment_image_bytes(data, strokes=None) -> Segmentation
    segment_ink(ink, strokes=None) -> Segmentation
    pieces_to_emnist(pieces) -> uint8 (N, 28, 28), EMNIST orientation
    ink_png(ink) -> bytes, an RGBA PNG of one piece (black ink, transparent background)
    resplit(data, strokes, boxes, read, weights, verifier) -> Resplit | None
    label_components(mask) -> (int32 labels, count), 8-connected

This module is the entry point; the work is done in ``ml.strokes`` (elements from strokes),
``ml.components`` (elements from connected components), ``ml.pieces`` (the grouping rule
and the crop, shared by both) and ``ml.morphology``.

Only NumPy and Pillow: cheap to import in a web process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml.components import label_components, pieces_from_components
from ml.errors import BlankImageError, InvalidImageError, TooManyCharactersError
from ml.pieces import Piece
from ml.preprocess import INK_THRESHOLD, image_to_ink, ink_to_emnist, ink_to_png, open_image
from ml.strokes import pieces_from_strokes
from ml.word_cuts import CutWeights, Verifier, best_runs, candidates, keeps_pieces, may_resplit

# Piece and label_components are part of this module's interface; they live beside the
# code that makes them.
__all__ = [
    "MAX_CHARACTERS",
    "Piece",
    "Segmentation",
    "ink_png",
    "label_components",
    "pieces_to_emnist",
    "resplit",
    "segment_image_bytes",
    "segment_ink",
]

MAX_CHARACTERS = 32


@dataclass(frozen=True)
class Segmentation:
    """The characters of a drawing, left to right, and how they were found ("strokes" or "components")."""

    pieces: list[Piece]
    method: str
    width: int
    height: int
    # Strokes sent in other units than the image's pixels (CSS pixels of a canvas drawn at
    # devicePixelRatio 2, say) were multiplied by this to match it.
    stroke_scale: float = 1.0


def segment_image_bytes(data: bytes, strokes=None, *, max_characters: int = MAX_CHARACTERS) -> Segmentation:
    """Decode an image (same formats and limits as ``ml.preprocess``) and split it into characters.

    Raises:
        InvalidImageError, ImageTooLargeError, BlankImageError: as ``image_bytes_to_emnist``.
        TooManyCharactersError: more than ``max_characters`` pieces.
    """
    return segment_ink(image_to_ink(open_image(data)), strokes, max_characters=max_characters)


def segment_ink(ink: np.ndarray, strokes=None, *, max_characters: int = MAX_CHARACTERS) -> Segmentation:
    """Split an ink map into characters, by strokes when they match the ink, else by components.

    Args:
        ink: (H, W) upright, background 0, ink high: uint8 0..255 or float 0..1.
        strokes: optional list of strokes, each a list of [x, y] or [x, y, t] points in the
            ink map's pixel coordinates. Unusable strokes (none, outside the image, not
            covering the ink) are ignored in favour of components.
        max_characters: more pieces than this raise ``TooManyCharactersError``.
    """
    ink = np.asarray(ink)
    if ink.ndim != 2 or min(ink.shape) < 1 or ink.dtype.kind not in "uif":
        raise InvalidImageError(f"ink map must be a 2-D numeric array, got {ink.dtype} {ink.shape}")
    full = 255.0 if ink.dtype == np.uint8 else 1.0
    inked = ink >= INK_THRESHOLD * full
    if not inked.any():
        raise BlankImageError("the image is blank: nothing is drawn on it")
    height, width = ink.shape
    by_strokes = pieces_from_strokes(ink, inked, strokes)
    if by_strokes is not None:
        (pieces, used_scale), method = by_strokes, "strokes"
    else:
        pieces, used_scale, method = pieces_from_components(ink, inked), 1.0, "components"
    if not pieces:
        raise BlankImageError("the image is blank: nothing is drawn on it")
    if len(pieces) > max_characters:
        raise TooManyCharactersError(f"found {len(pieces)} characters; a word may have at most {max_characters}")
    return Segmentation(pieces=pieces, method=method, width=width, height=height, stroke_scale=used_scale)


def pieces_to_emnist(pieces: list[Piece]) -> np.ndarray:
    """Each piece through the EMNIST steps: uint8 (N, 28, 28), EMNIST orientation."""
    return np.stack([ink_to_emnist(piece.ink) for piece in pieces])


def ink_png(ink: np.ndarray) -> bytes:
    """A piece as the canvas would send it alone: black ink in alpha on a transparent background.

    ``ink`` is a piece's ink map (uint8 0..255 or float 0..1); see ``ml.preprocess.ink_to_png``.
    """
    return ink_to_png(ink)


@dataclass(frozen=True)
class Resplit:
    """A word split again by recognition: its new pieces, their 28x28 inputs (the arrays the
    runs were read from) and the strokes' scale, as ``segment_image_bytes`` gave it."""

    pieces: list[Piece]
    inputs: np.ndarray
    stroke_scale: float


def resplit(data: bytes, strokes, boxes, read: Callable, weights: CutWeights, verifier: Verifier) -> Resplit | None:
    """The drawing split again where touching characters can be cut or a letter's strokes
    joined, choosing the runs the CNN and the verifier read best (``ml.word_cuts``).

    Args:
        data, strokes: the word's drawing, as first segmented.
        boxes: the boxes of the pieces the first split gave; when they show nothing to cut
            or join (``may_resplit``) nothing is segmented again.
        read: uint8 (N, 28, 28) -> (probabilities (N, 62), embeddings (N, D)), as
            ``ml.inference.Predictor.read``; called once, on every candidate run.

    Returns:
        None when the runs chosen are the first split's pieces, whole.
    """
    if not may_resplit(boxes):
        return None
    found = segment_image_bytes(data, strokes)
    runs = candidates(found.pieces)
    if runs is None:
        return None
    run_inputs = pieces_to_emnist(runs.pieces)
    chosen = best_runs(runs, *read(run_inputs), weights, verifier)
    if keeps_pieces(runs, chosen, len(found.pieces)):
        return None
    return Resplit(pieces=[runs.pieces[k] for k in chosen], inputs=run_inputs[chosen], stroke_scale=found.stroke_scale)
