"""A word's characters from its connected components (uploads, API clients: no strokes).

Each 8-connected component of the ink (found on a copy at most ``COMPONENT_MAX_SIDE``
pixels a side, after bridging pen-width breaks) is an element; ``ml.pieces.group_elements``
groups them into characters, and each character's ink is taken back at full resolution.
Only NumPy (no SciPy here).
"""

from __future__ import annotations

import numpy as np

from ml.morphology import max_pool, morph_array, stroke_width
from ml.pieces import Piece, crop_piece, group_elements

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


def pieces_from_components(ink: np.ndarray, inked: np.ndarray) -> list[Piece]:
    """The characters of a drawing without strokes: its connected components, grouped.

    Args:
        ink: (H, W) ink map, upright, background 0.
        inked: bool (H, W), the pixels that count as ink.

    Returns:
        Pieces left to right; empty when nothing but noise is drawn.
    """
    height, width = inked.shape
    factor = max(1, -(-max(height, width) // COMPONENT_MAX_SIDE))
    small = max_pool(inked, factor)
    bridge = int(min(BRIDGE, max(1, round(stroke_width(small) / 4))))
    grown = morph_array(small, bridge, np.maximum)  # binary dilation
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
    groups = [[int(kept[i]) for i in idx] for idx in group_elements(boxes[kept] * factor, weights[kept])]
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
        piece = crop_piece(ink, inked & own, mask)
        if piece is not None:
            pieces.append(piece)
    return pieces


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
