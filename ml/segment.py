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

Touching characters (joined-up handwriting) are not split: they come out as one piece.

Public functions:
    segment_image_bytes(data, strokes=None) -> Segmentation
    segment_ink(ink, strokes=None) -> Segmentation
    pieces_to_emnist(pieces) -> uint8 (N, 28, 28), EMNIST orientation
    ink_png(ink) -> bytes, an RGBA PNG of one piece (black ink, transparent background)

Only NumPy and Pillow: cheap to import in a web process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from ml.errors import BlankImageError, InvalidImageError, TooManyCharactersError
from ml.preprocess import INK_THRESHOLD, image_to_ink, ink_to_emnist, open_image, stroke_width

MAX_CHARACTERS = 32
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
# Components are found on a copy at most this many pixels a side (max-pooled): enough to
# keep pen-width gaps, and bounded work for a 4096 px upload.
COMPONENT_MAX_SIDE = 1024
# Components smaller than this share of the pen's square are noise (paper grain, JPEG
# artefacts), not dots; at most MAX_ELEMENTS of the largest are grouped, which bounds the
# work a noisy photo can cause.
NOISE_AREA = 0.25
# Components are found after growing the ink by this many pixels (at most), so that a thin
# stroke broken by a pixel or two stays one piece; far below the gap between characters.
BRIDGE = 2
MAX_ELEMENTS = 1000
# Strokes are trusted when their masks hold this share of the ink; otherwise they do not
# match the image (other coordinates, a different canvas) and components are used.
MIN_STROKE_COVERAGE = 0.9


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
    pieces, method, used_scale = None, "components", 1.0
    parsed = _parse_strokes(strokes)
    for scale in _stroke_scales(parsed, inked) if parsed else ():
        scaled = [points * scale for points in parsed]
        if _strokes_fit(scaled, width, height):
            pieces = _pieces_from_strokes(ink, inked, scaled)
            if pieces is not None:
                method, used_scale = "strokes", scale
                break
    if pieces is None:
        pieces = _pieces_from_components(ink, inked)
    if not pieces:
        raise BlankImageError("the image is blank: nothing is drawn on it")
    if len(pieces) > max_characters:
        raise TooManyCharactersError(
            f"found {len(pieces)} characters; a word may have at most {max_characters}"
        )
    return Segmentation(pieces=pieces, method=method, width=width, height=height, stroke_scale=used_scale)


def pieces_to_emnist(pieces: list[Piece]) -> np.ndarray:
    """Each piece through the EMNIST steps: uint8 (N, 28, 28), EMNIST orientation."""
    return np.stack([ink_to_emnist(piece.ink) for piece in pieces])


def ink_png(ink: np.ndarray) -> bytes:
    """A piece as the canvas would send it alone: black ink in alpha on a transparent background."""
    from ml.synth import ink_to_png

    ink = np.asarray(ink)
    scale = 255.0 if ink.dtype == np.uint8 else 1.0
    return ink_to_png(ink.astype(np.float32) / scale)


# --------------------------------------------------------------------------- grouping


def _group(boxes: np.ndarray, weights: np.ndarray) -> list[list[int]]:
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
                    groups[a] = np.array([min(ga[0], gb[0]), min(ga[1], gb[1]), max(ga[2], gb[2]), max(ga[3], gb[3])])
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
                groups[b] = np.array([min(ga[0], gb[0]), min(ga[1], gb[1]), max(ga[2], gb[2]), max(ga[3], gb[3])])
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


# --------------------------------------------------------------------------- strokes


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


def _pieces_from_strokes(ink: np.ndarray, inked: np.ndarray, strokes: list[np.ndarray]) -> list[Piece] | None:
    pen = max(stroke_width(inked), 1.0)
    radius = pen / 2
    boxes = np.array(
        [[p[:, 0].min() - radius, p[:, 1].min() - radius, p[:, 0].max() + radius, p[:, 1].max() + radius] for p in strokes]
    )
    # Every stroke counts as a full element for the speck rule: its ink is what it covers.
    lengths = np.array([np.hypot(*np.diff(p, axis=0).T).sum() + pen for p in strokes]) * pen
    groups = _group(boxes, lengths)
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
        piece = _piece(ink, inked & mask, mask, strokes=tuple(idx))
        if piece is not None:
            pieces.append(piece)
    return pieces


def _stroke_mask(strokes: list[np.ndarray], width: int, height: int, line_width: int) -> np.ndarray:
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


def _piece(ink: np.ndarray, own: np.ndarray, mask: np.ndarray, strokes=None) -> Piece | None:
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


# --------------------------------------------------------------------------- components


def _pieces_from_components(ink: np.ndarray, inked: np.ndarray) -> list[Piece]:
    height, width = inked.shape
    factor = max(1, -(-max(height, width) // COMPONENT_MAX_SIDE))
    small = _max_pool(inked, factor)
    bridge = int(min(BRIDGE, max(1, round(stroke_width(small) / 4))))
    grown = _grow(small, bridge)
    labels, count = label_components(grown)
    labels = np.where(small, labels, 0)  # the grown pixels only joined pieces; they are not ink
    if count == 0:
        return []
    flat = labels.ravel()
    ys, xs = np.divmod(np.arange(flat.size), small.shape[1])
    keep = flat > 0
    lab, ys, xs = flat[keep] - 1, ys[keep], xs[keep]
    boxes = np.empty((count, 4))
    boxes[:, 0] = np.full(count, np.inf)
    boxes[:, 1] = np.full(count, np.inf)
    np.minimum.at(boxes[:, 0], lab, xs)
    np.minimum.at(boxes[:, 1], lab, ys)
    boxes[:, 2] = -np.inf
    boxes[:, 3] = -np.inf
    np.maximum.at(boxes[:, 2], lab, xs + 1)
    np.maximum.at(boxes[:, 3], lab, ys + 1)
    weights = np.bincount(lab, minlength=count).astype(np.float64)
    pen = stroke_width(small)
    kept = np.flatnonzero(weights >= NOISE_AREA * pen * pen)
    if len(kept) == 0:
        return []
    kept = kept[np.argsort(-weights[kept], kind="stable")[:MAX_ELEMENTS]]
    # Block boxes, grouped at the pixel scale; indices back to component numbers.
    groups = [[int(kept[i]) for i in idx] for idx in _group(boxes[kept] * factor, weights[kept])]
    # Back to full resolution: a pixel belongs to a group when its block's component does;
    # faint pixels (below the threshold, in no component) go with whichever group's box holds them.
    group_of = np.zeros(count + 1, dtype=np.int32)  # 0: background
    for g, idx in enumerate(groups, start=1):
        group_of[np.asarray(idx) + 1] = g
    pieces = []
    for g, idx in enumerate(groups, start=1):
        x0, y0 = (int(v) for v in boxes[idx, :2].min(axis=0))
        x1, y1 = (int(v) for v in boxes[idx, 2:].max(axis=0))
        # Block coordinates -> pixels, one pixel of anti-aliasing around.
        px0, py0 = max(0, x0 * factor - 1), max(0, y0 * factor - 1)
        px1, py1 = min(width, x1 * factor + 1), min(height, y1 * factor + 1)
        block = labels[py0 // factor : -(-py1 // factor), px0 // factor : -(-px1 // factor)]
        owner = group_of[np.repeat(np.repeat(block, factor, axis=0), factor, axis=1)]
        owner = owner[py0 - (py0 // factor) * factor :, px0 - (px0 // factor) * factor :][: py1 - py0, : px1 - px0]
        mask = np.zeros(inked.shape, dtype=bool)
        mask[py0:py1, px0:px1] = (owner == g) | (owner == 0)
        own = np.zeros(inked.shape, dtype=bool)
        own[py0:py1, px0:px1] = owner == g
        piece = _piece(ink, inked & own, mask)
        if piece is not None:
            pieces.append(piece)
    return pieces


def _grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)-square, with shifts."""
    out = mask.copy()
    for axis in (0, 1):
        src = out.copy()
        for shift in range(1, radius + 1):
            for sign in (1, -1):
                rolled = np.roll(src, sign * shift, axis=axis)
                edge = [slice(None)] * 2
                edge[axis] = slice(0, shift) if sign == 1 else slice(-shift, None)
                rolled[tuple(edge)] = False
                out |= rolled
    return out


def _max_pool(mask: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return mask
    h, w = mask.shape
    padded = np.zeros((-(-h // factor) * factor, -(-w // factor) * factor), dtype=bool)
    padded[:h, :w] = mask
    return padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).any(axis=(1, 3))


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean mask, in NumPy (no SciPy here).

    Works on horizontal runs: runs in consecutive rows that touch (diagonally included)
    are joined, then labels are settled by repeated min-propagation with pointer jumping.

    Returns:
        (int32 labels of mask's shape, 0 for background and 1..count, count); labels are
        numbered in raster order of each component's first run.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    start_rows, starts = np.nonzero(d == 1)
    end_rows, ends = np.nonzero(d == -1)  # exclusive ends, same order as starts
    n = len(starts)
    if n == 0:
        return np.zeros((h, w), dtype=np.int32), 0
    key = w + 2
    start_key = start_rows * key + starts
    end_key = end_rows * key + ends
    # For each run b in row y+1, the runs a of row y with a.end >= b.start and a.start <= b.end
    # (8-connected: diagonal contact counts) form a contiguous block of the sorted run list.
    above = (start_rows - 1) * key
    lo = np.searchsorted(end_key, above + starts, side="left")
    hi = np.searchsorted(start_key, above + ends, side="right")
    counts = np.maximum(hi - lo, 0)
    b = np.repeat(np.arange(n), counts)
    a = np.repeat(lo, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    label = np.arange(n)
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]  # pointer jumping: follow each run's label to its own label
        if np.array_equal(new, label):
            break
        label = new
    roots, compact = np.unique(label, return_inverse=True)
    out = np.zeros(h * w, dtype=np.int32)
    lengths = ends - starts
    pixel = np.repeat(start_rows * w + starts, lengths) + (
        np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    )
    out[pixel] = np.repeat(compact + 1, lengths)
    return out.reshape(h, w), len(roots)
