"""Synthetic canvas drawings made from EMNIST images, for fidelity tests and benchmarks.

A browser canvas sends a large RGBA PNG: black strokes with crisp anti-aliased edges on
a transparent background, the character anywhere and at any size, strokes thinner or
thicker than EMNIST's. ``render_canvas_png`` makes such a PNG from a 28x28 image.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

from ml.data import to_upright
from ml.errors import BlankImageError
from ml.morphology import morph_array
from ml.preprocess import ink_to_emnist, ink_to_png

# How ``render_character_ink`` changes the pen: eroded, as it is, dilated.
STROKES = ("thin", "same", "thick")


def render_canvas_ink(
    image: np.ndarray, rng: np.random.Generator, canvas: int | None = None, stroke: str | None = None
) -> np.ndarray:
    """A canvas-like ink map (float32, upright, 0..1) of one uint8 (28, 28) EMNIST image.

    The character is upscaled to 60..260 px, its strokes made thinner or thicker at
    random (or as ``stroke`` says), its edges sharpened like a canvas line, and placed at a
    random spot of a ``canvas`` x ``canvas`` area (random 280..480 px when None).
    """
    canvas = int(canvas or rng.integers(280, 481))
    size = int(rng.integers(60, min(260, canvas) + 1))
    ink = render_character_ink(image, rng, size, stroke)
    out = np.zeros((canvas, canvas), dtype=np.float32)
    top, left = (int(rng.integers(0, canvas - size + 1)) for _ in range(2))
    out[top : top + size, left : left + size] = ink
    return out


def render_character_ink(
    image: np.ndarray, rng: np.random.Generator, size: int, stroke: str | None = None
) -> np.ndarray:
    """One uint8 (28, 28) EMNIST image as canvas-like ink, float32 (size, size), upright, 0..1.

    Upscaled to ``size`` px, strokes thinned or thickened (``stroke``: one of ``STROKES``;
    None: at random, a third each), edges sharpened like a canvas line. The 28 px frame's
    margin comes along (EMNIST centres the character with 2 px padding).
    """
    if stroke is not None and stroke not in STROKES:
        raise ValueError(f"stroke must be one of {STROKES} or None, got {stroke!r}")
    big = Image.fromarray(to_upright(image).astype(np.float32), mode="F").resize((size, size), Image.Resampling.BICUBIC)
    k = 2 * max(1, size // 40) + 1  # odd filter size proportional to the character
    if stroke is None:
        stroke = rng.choice(list(STROKES))
    big = np.asarray(big)
    # A k x k grey erosion or dilation (Pillow's MinFilter/MaxFilter do the same, 5-10x slower).
    if stroke == "thin":
        big = morph_array(big, k // 2, np.minimum)
    elif stroke == "thick":
        big = morph_array(big, k // 2, np.maximum)
    return np.clip((big / 255.0 - 0.3) / 0.3, 0.0, 1.0).astype(np.float32)  # crisp edges, as a canvas line


def render_word_ink(
    images: np.ndarray,
    rng: np.random.Generator,
    *,
    size_range: tuple[int, int] = (60, 160),
    gap_range: tuple[float, float] = (0.15, 0.6),
    margin: int = 40,
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Several EMNIST images written in a row on one canvas, as a person writes a word.

    Each character gets its own size (``size_range`` px for the 28 px frame) and a small
    vertical jitter; the horizontal gap between one character's ink and the next one's is
    ``gap_range`` times the mean of their sizes. Ink is combined with max, so nothing
    overlaps unless a gap is negative.

    Returns:
        (float32 (H, W) ink, upright, 0..1; the ink box (x0, y0, x1, y1) of each character).
    """
    inks, boxes = [], []
    for image in images:
        ink = render_character_ink(image, rng, int(rng.integers(size_range[0], size_range[1] + 1)))
        rows, cols = np.flatnonzero(ink.max(axis=1) > 0.1), np.flatnonzero(ink.max(axis=0) > 0.1)
        if len(rows) == 0:  # nothing survived thinning: keep the frame as it is
            rows, cols = np.arange(ink.shape[0]), np.arange(ink.shape[1])
        inks.append(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    sizes = [max(ink.shape) for ink in inks]
    height = max(ink.shape[0] for ink in inks)
    jitter = int(0.15 * max(sizes))
    canvas_h = height + 2 * margin + jitter
    x = margin
    placed = []
    for i, ink in enumerate(inks):
        if i:
            gap = rng.uniform(*gap_range) * (sizes[i - 1] + sizes[i]) / 2
            x = int(round(x + gap))
        # Bottom-aligned on a common baseline, give or take the jitter.
        top = margin + height - ink.shape[0] + int(rng.integers(0, jitter + 1))
        placed.append((x, top))
        x += ink.shape[1]
    width = x + margin
    out = np.zeros((canvas_h, width), dtype=np.float32)
    for ink, (left, top) in zip(inks, placed):
        h, w = ink.shape
        out[top : top + h, left : left + w] = np.maximum(out[top : top + h, left : left + w], ink)
        boxes.append((left, top, left + w, top + h))
    return out, boxes


def render_canvas_png(
    image: np.ndarray, rng: np.random.Generator, canvas: int | None = None, stroke: str | None = None
) -> bytes:
    """``render_canvas_ink`` encoded as an RGBA PNG."""
    return ink_to_png(render_canvas_ink(image, rng, canvas, stroke))


def canvas_roundtrip(images: np.ndarray, seed: int) -> np.ndarray:
    """Each uint8 (28, 28) image drawn as a canvas would send it, then through ``ml.preprocess``.

    What the model sees of a canvas drawing differs from a raw EMNIST image (stroke edges,
    widths normalised from a thinner or thicker pen, resampling twice); training on these
    teaches the model the site's own input. The alpha channel is quantised to 8 bits as in
    a PNG; encoding and decoding the PNG itself is skipped (lossless, and slow).

    Args:
        images: uint8 (N, 28, 28), EMNIST orientation.
        seed: the renderings are a function of (seed, images).

    Returns:
        uint8 (N, 28, 28), EMNIST orientation. A rendering that comes out blank (a stroke
        thinned away) keeps the raw image.
    """
    rng = np.random.default_rng(seed)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        alpha = np.round(render_canvas_ink(image, rng) * 255).astype(np.uint8)
        try:
            out[i] = ink_to_emnist(alpha)
        except BlankImageError:
            out[i] = image
    return out


def canvas_roundtrip_parallel(images: np.ndarray, seed: int, workers: int = 2, chunk: int = 2000) -> np.ndarray:
    """``canvas_roundtrip`` over chunks in ``workers`` processes; the same result for any ``workers``.

    Chunk ``k`` uses seed ``(seed, k)``. Processes are spawned, not forked: the caller may
    have TensorFlow loaded, which is not fork-safe.
    """
    starts = range(0, len(images), chunk)
    seeds = [int(np.random.SeedSequence([seed, k]).generate_state(1)[0]) for k in range(len(starts))]
    parts = [images[s : s + chunk] for s in starts]
    if workers <= 1 or len(parts) <= 1:
        results = [canvas_roundtrip(part, s) for part, s in zip(parts, seeds)]
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(canvas_roundtrip, parts, seeds))
    return np.concatenate(results) if results else images[:0].copy()
