"""The characters of a word as pieces: the grouping rule and the crop, shared by both ways in.

``ml.strokes`` (each stroke an element) and ``ml.components`` (each connected component
an element) find the elements of a drawing; ``group_elements`` groups them into
characters by their column ranges, and ``crop_piece`` takes each character's ink from
the drawing. ``ml.segment`` puts them together. Only NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Two elements are one character when their column ranges overlap by at least this share
# of the narrower one's width (a dot over a stem overlaps by all of its width; two
# neighbours that touch at a serif by a sliver of theirs).
MIN_OVERLAP = 0.5
# A fragment (lower than FRAGMENT_HEIGHT x the word's character height: a "5"'s flag, a
# stroke broken off a character, a "t" bar) joins the character it overlaps or nearly
# touches, within FRAGMENT_REACH x that height. Whole characters never shrink this low.
FRAGMENT_HEIGHT = 0.4
FRAGMENT_REACH = 0.1
# A mark (an i's dot, a stray tick) is at most this share of the word's character height;
# it joins the nearest character whose extent, widened by MARK_REACH x that height, holds it.
MARK_SIZE = 0.3
MARK_REACH = 0.25
# A lone mark (joining no character) is a speck, not a character, when it is at most this
# share of the character height (a tap of the pen: none of the 62 classes is a dot) or has
# less ink than MIN_PIECE_INK of the word's.
SPECK_SIZE = 0.15
MIN_PIECE_INK = 0.02


@dataclass(frozen=True)
class Piece:
    """One character of a word.

    Attributes:
        box: (x0, y0, x1, y1) in the drawing's pixels, end exclusive (a PIL crop box).
        ink: (y1 - y0, x1 - x0) ink map of this character only, upright, background 0,
            same dtype and scale as the drawing's ink map (uint8 0..255 or float 0..1).
        strokes: indices of the strokes that drew it, in drawing order; None without strokes.
    """

    box: tuple[int, int, int, int]
    ink: np.ndarray = field(repr=False)
    strokes: tuple[int, ...] | None = None


def group_elements(boxes: np.ndarray, weights: np.ndarray) -> list[list[int]]:
    """Group elements into characters by their column ranges; groups ordered left to right.

    Args:
        boxes: float (N, 4) x0, y0, x1, y1 per element (ink extent, end exclusive).
        weights: float (N,) ink per element, to tell specks from characters.

    Returns:
        Lists of element indices, one per character, left to right; specks left out.
    """
    n = len(boxes)
    parent = np.arange(n)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    heights = boxes[:, 3] - boxes[:, 1]
    sizes = np.maximum(boxes[:, 2] - boxes[:, 0], heights)
    # The word's character height: the tallest elements are whole characters or their
    # main strokes; a median over those ignores dots and bars.
    ref = float(np.median(heights[heights >= 0.5 * heights.max()]))
    is_mark = sizes <= MARK_SIZE * ref

    # 1. Overlapping column ranges, repeated until stable: a merged group is wider and may
    #    now overlap a neighbour (the bar of an "H" joins both stems).
    groups = {i: boxes[i].copy() for i in range(n)}
    changed = True
    while changed:
        changed = False
        keys = sorted(groups, key=lambda k: groups[k][0])
        for a_pos, a in enumerate(keys):
            if a not in groups:
                continue
            for b in keys[a_pos + 1 :]:
                if b not in groups or a not in groups:
                    continue
                ga, gb = groups[a], groups[b]
                if gb[0] >= ga[2]:
                    break  # sorted by x0: nothing further right can overlap a
                overlap = min(ga[2], gb[2]) - max(ga[0], gb[0])
                narrower = max(min(ga[2] - ga[0], gb[2] - gb[0]), 1e-6)
                if overlap >= MIN_OVERLAP * narrower:
                    parent[find(b)] = find(a)
                    groups[a] = _union(ga, gb)
                    del groups[b]
                    changed = True

    # 2. A fragment joins the nearest group it overlaps or nearly touches; repeated, as a
    #    fragment may first join another fragment.
    def gap(ga, gb):
        return max(gb[0] - ga[2], ga[0] - gb[2])  # negative: the column ranges overlap

    changed = True
    while changed and len(groups) > 1:
        changed = False
        for a in sorted(groups, key=lambda k: groups[k][3] - groups[k][1]):
            ga = groups.get(a)
            if ga is None or ga[3] - ga[1] >= FRAGMENT_HEIGHT * ref or len(groups) == 1:
                continue
            b = min((k for k in groups if k != a), key=lambda k: gap(ga, groups[k]))
            gb = groups[b]
            if gap(ga, gb) < FRAGMENT_REACH * ref:
                parent[find(a)] = find(b)
                groups[b] = _union(ga, gb)
                del groups[a]
                changed = True

    # 3. A group that is only a mark joins the nearest character within reach.
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(find(i), []).append(i)
    mark_groups = [r for r, idx in members.items() if all(is_mark[i] for i in idx)]
    big = [r for r in members if r not in mark_groups]
    reach = MARK_REACH * ref
    for r in mark_groups:
        box = groups[r]
        centre = (box[0] + box[2]) / 2
        best, best_distance = None, None
        for b in big:
            gb = groups[b]
            if gb[0] - reach <= centre <= gb[2] + reach:
                distance = abs(centre - (gb[0] + gb[2]) / 2)
                if best is None or distance < best_distance:
                    best, best_distance = b, distance
        if best is not None:
            members[best].extend(members.pop(r))
        elif (box[2] - box[0]) <= SPECK_SIZE * ref and (box[3] - box[1]) <= SPECK_SIZE * ref:
            members.pop(r)
        elif weights[members[r]].sum() < MIN_PIECE_INK * weights.sum():
            members.pop(r)

    ordered = sorted(members.values(), key=lambda idx: float(boxes[idx, 0].min()))
    return [sorted(idx) for idx in ordered]


def _union(ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
    """The smallest box (x0, y0, x1, y1) that holds both boxes."""
    return np.array([min(ga[0], gb[0]), min(ga[1], gb[1]), max(ga[2], gb[2]), max(ga[3], gb[3])])


def crop_piece(ink: np.ndarray, own: np.ndarray, mask: np.ndarray, strokes=None) -> Piece | None:
    """The ink under ``mask``, cropped to the extent of ``own`` (its inked pixels); None if empty."""
    if not own.any():
        return None
    rows, cols = np.flatnonzero(own.any(axis=1)), np.flatnonzero(own.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    # Keep the faint edge pixels around the crop too (one pixel's worth of anti-aliasing).
    y0, x0 = max(0, y0 - 1), max(0, x0 - 1)
    y1, x1 = min(ink.shape[0], y1 + 1), min(ink.shape[1], x1 + 1)
    crop = np.where(mask[y0:y1, x0:x1], ink[y0:y1, x0:x1], 0).astype(ink.dtype)
    return Piece(box=(x0, y0, x1, y1), ink=crop, strokes=strokes)
