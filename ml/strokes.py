"""A word's characters from its strokes (what the canvas sends, in the PNG's pixel coordinates).

Each stroke is an element with the horizontal extent of its points plus half the pen
width; strokes whose ink touches (a letter drawn in several strokes side by side: an "m" as a
stem and two arches, a "k" whose arms meet the stem) are one element, as touching ink is one
component without strokes; ``ml.pieces.group_elements`` groups the elements into
characters, and each character's ink is the drawing's ink under its own strokes' mask. Strokes that do not match the
image (other coordinates, another canvas) are refused, so ``ml.segment`` falls back to
connected components. Only NumPy and Pillow.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ml.morphology import stroke_width
from ml.pieces import Piece, crop_piece, group_elements

# Strokes are trusted when their masks hold this share of the ink; otherwise they do not
# match the image (other coordinates, a different canvas) and components are used.
MIN_STROKE_COVERAGE = 0.9
# Strokes whose centre lines come within this many pen widths of each other touch (their inks,
# half a pen either side of each line, meet): one element.
TOUCH_REACH = 1.0


def pieces_from_strokes(ink: np.ndarray, inked: np.ndarray, strokes) -> tuple[list[Piece], float] | None:
    """The characters drawn by ``strokes``, or None when the strokes are unusable.

    Args:
        ink: (H, W) ink map, upright, background 0.
        inked: bool (H, W), the pixels that count as ink.
        strokes: the client's strokes, each a list of [x, y] or [x, y, t] points; anything
            else (None, malformed, non-finite) is unusable.

    Returns:
        (pieces left to right, the scale the strokes were multiplied by to match the ink),
        or None when no scale makes them cover the ink.
    """
    parsed = _parse_strokes(strokes)
    if not parsed:
        return None
    height, width = ink.shape
    for scale in _stroke_scales(parsed, inked):
        scaled = [points * scale for points in parsed]
        if _strokes_fit(scaled, width, height):
            pieces = _pieces_from_scaled(ink, inked, scaled)
            if pieces is not None:
                return pieces, scale
    return None


def _parse_strokes(strokes) -> list[np.ndarray] | None:
    """Strokes as float (n, 2) x, y arrays, or None when they are unusable."""
    if not strokes or not isinstance(strokes, (list, tuple)):
        return None
    parsed = []
    try:
        for stroke in strokes:
            points = np.asarray([point[:2] for point in stroke], dtype=np.float64).reshape(-1, 2)
            if len(points):
                parsed.append(points)
    except (TypeError, ValueError, IndexError):
        return None
    if not parsed or not all(np.isfinite(p).all() for p in parsed):
        return None
    return parsed


def _stroke_scales(strokes: list[np.ndarray], inked: np.ndarray) -> list[float]:
    """Scales to try: 1 (the canvas's own pixels), then the one that maps the strokes'
    extent onto the ink's (a canvas drawn at devicePixelRatio 2 whose strokes are in CSS pixels)."""
    every = np.concatenate(strokes)
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    pen = stroke_width(inked)
    ratios = []
    for extent, span in ((np.ptp(every[:, 0]), cols[-1] - cols[0] + 1), (np.ptp(every[:, 1]), rows[-1] - rows[0] + 1)):
        if extent >= 10:
            ratios.append((span - pen) / extent)
    if not ratios or (len(ratios) == 2 and abs(ratios[0] - ratios[1]) > 0.1 * max(ratios)):
        return [1.0]
    estimate = float(np.mean(ratios))
    return [1.0] if abs(estimate - 1) < 0.05 or estimate <= 0 else [1.0, estimate]


def _strokes_fit(strokes: list[np.ndarray], width: int, height: int) -> bool:
    """Points well outside the image mean other coordinates: components are safer than a wrong mapping."""
    every = np.concatenate(strokes)
    slack = 0.02 * max(width, height) + 2
    return bool(
        every[:, 0].min() >= -slack
        and every[:, 1].min() >= -slack
        and every[:, 0].max() <= width + slack
        and every[:, 1].max() <= height + slack
    )


def _pieces_from_scaled(ink: np.ndarray, inked: np.ndarray, strokes: list[np.ndarray]) -> list[Piece] | None:
    """Pieces of strokes already in the ink map's pixels; None when they miss too much of the ink."""
    pen = max(stroke_width(inked), 1.0)
    radius = pen / 2
    boxes = np.array(
        [
            [p[:, 0].min() - radius, p[:, 1].min() - radius, p[:, 0].max() + radius, p[:, 1].max() + radius]
            for p in strokes
        ]
    )
    # Every stroke counts as a full element for the speck rule: its ink is what it covers.
    lengths = np.array([np.hypot(*np.diff(p, axis=0).T).sum() + pen for p in strokes]) * pen
    elements = touching_strokes(strokes, pen)
    element_boxes = np.array([[*boxes[idx, :2].min(axis=0), *boxes[idx, 2:].max(axis=0)] for idx in elements])
    groups = [
        sorted(i for e in group for i in elements[e])
        for group in group_elements(element_boxes, np.array([lengths[idx].sum() for idx in elements]))
    ]
    height, width = ink.shape
    # The mask of a stroke is its line widened by a margin, so anti-aliased edges come along.
    mask_width = int(round(pen + 2 * max(2.0, 0.5 * pen)))
    # Specks dropped by the grouping are still the user's strokes: all strokes count for coverage.
    covered = _stroke_mask(strokes, width, height, mask_width)
    total = float(ink[inked].sum())
    if total <= 0 or float(ink[inked & covered].sum()) < MIN_STROKE_COVERAGE * total:
        return None
    pieces = []
    for idx in groups:
        mask = _stroke_mask([strokes[i] for i in idx], width, height, mask_width)
        piece = crop_piece(ink, inked & mask, mask, strokes=tuple(idx))
        if piece is not None:
            pieces.append(piece)
    return pieces


def touching_strokes(strokes: list[np.ndarray], pen: float) -> list[list[int]]:
    """The strokes in sets whose ink touches, drawn ``pen`` wide: lists of stroke indices, in
    the order of each set's first stroke.

    Two strokes touch when their centre lines come within ``TOUCH_REACH`` pen widths (each
    line's ink reaches half a pen width from it). Rasterised per pair of strokes whose boxes
    come that close, on a grid of the pair's own box, so a long word costs a few small images.
    """
    n = len(strokes)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    reach = TOUCH_REACH * pen
    lows = np.array([p.min(axis=0) for p in strokes])
    highs = np.array([p.max(axis=0) for p in strokes])
    for i in range(n):
        for j in range(i + 1, n):
            if find(i) == find(j) or (lows[j] > highs[i] + reach).any() or (lows[i] > highs[j] + reach).any():
                continue
            if _lines_touch(strokes[i], strokes[j], reach):
                parent[find(j)] = find(i)
    sets: dict[int, list[int]] = {}
    for i in range(n):
        sets.setdefault(find(i), []).append(i)
    return list(sets.values())


def _lines_touch(a: np.ndarray, b: np.ndarray, reach: float) -> bool:
    """Whether polyline ``b`` comes within ``reach`` of polyline ``a`` (to a pixel): ``a`` drawn
    ``2 * reach`` wide with round ends, ``b`` one pixel wide, on the pair's own grid."""
    origin = np.minimum(a.min(axis=0), b.min(axis=0)) - reach - 2
    size = np.ceil(np.maximum(a.max(axis=0), b.max(axis=0)) + reach + 2 - origin).astype(int) + 1
    wide = _stroke_mask([a - origin], int(size[0]), int(size[1]), max(1, int(round(2 * reach))))
    thin = _stroke_mask([b - origin], int(size[0]), int(size[1]), 1)
    return bool((wide & thin).any())


def _stroke_mask(strokes: list[np.ndarray], width: int, height: int, line_width: int) -> np.ndarray:
    """bool (height, width): the pixels under ``strokes`` drawn ``line_width`` wide with round caps."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    r = line_width / 2
    for points in strokes:
        xy = [(float(x), float(y)) for x, y in points]
        if len(xy) > 1:
            draw.line(xy, fill=255, width=line_width, joint="curve")
        for x, y in (xy[0], xy[-1]) if len(xy) > 1 else xy:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)  # round caps; a tap is a dot
    return np.asarray(canvas) > 0
