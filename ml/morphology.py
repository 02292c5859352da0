"""Shape operations on 2-D arrays: grey dilation and erosion, max-pooling, stroke width.

Shared by ``ml.preprocess`` (pen width brought into EMNIST's range), ``ml.synth``
(thinner and thicker pens) and the segmentation modules (bridging broken strokes,
finding components on a smaller copy). Only NumPy: cheap to import in a web process.
"""

from __future__ import annotations

import numpy as np


def morph_array(a: np.ndarray, radius: int, op) -> np.ndarray:
    """Grey dilation (``np.maximum``) or erosion (``np.minimum``) of a 2-D array by a (2r+1)-square.

    Separable shifts in NumPy: Pillow's MaxFilter is a rank filter, 4-11 ms here for
    the sizes we need, against well under 0.1 ms for this. Outside the array counts as 0.
    On a boolean mask, ``np.maximum`` is binary dilation.
    """
    if radius <= 0:
        return a
    rows, cols = a.shape
    # Along each axis: the running op over a window of 2r+1, as views of one zero-padded copy.
    padded = np.zeros((rows + 2 * radius, cols), dtype=a.dtype)
    padded[radius : radius + rows] = a
    out = padded[:rows].copy()
    for shift in range(1, 2 * radius + 1):
        op(out, padded[shift : shift + rows], out=out)
    padded = np.zeros((rows, cols + 2 * radius), dtype=a.dtype)
    padded[:, radius : radius + cols] = out
    out = padded[:, :cols].copy()
    for shift in range(1, 2 * radius + 1):
        op(out, padded[:, shift : shift + cols], out=out)
    return out


def max_pool(mask: np.ndarray, factor: int) -> np.ndarray:
    """A boolean mask shrunk by ``factor`` a side: a block is set when any of its pixels is.

    The last row and column of blocks may be partial (padded with False).
    """
    if factor == 1:
        return mask
    h, w = mask.shape
    padded = np.zeros((-(-h // factor) * factor, -(-w // factor) * factor), dtype=bool)
    padded[:h, :w] = mask
    return padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).any(axis=(1, 3))


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a boolean ink mask, in pixels: area / (perimeter / 2).

    A stroke of length L and width w has area L*w and a boundary of about 2L pixels.
    """
    area = int(np.count_nonzero(mask))
    if area == 0:
        return 0.0
    padded = np.pad(mask, 1)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    boundary = area - int(np.count_nonzero(interior))
    return area / max(boundary / 2, 1.0)
