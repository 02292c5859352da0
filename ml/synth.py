"""Synthetic canvas drawings made from EMNIST images, for fidelity tests and benchmarks.

A browser canvas sends a large RGBA PNG: black strokes with crisp anti-aliased edges on
a transparent background, the character anywhere and at any size, strokes thinner or
thicker than EMNIST's. ``render_canvas_png`` makes such a PNG from a 28x28 image.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from ml.data import to_upright


def render_canvas_ink(image: np.ndarray, rng: np.random.Generator, canvas: int | None = None) -> np.ndarray:
    """A canvas-like ink map (float32, upright, 0..1) of one uint8 (28, 28) EMNIST image.

    The character is upscaled to 60..260 px, its strokes made thinner or thicker at
    random, its edges sharpened like a canvas line, and placed at a random spot of a
    ``canvas`` x ``canvas`` area (random 280..480 px when None).
    """
    canvas = int(canvas or rng.integers(280, 481))
    size = int(rng.integers(60, min(260, canvas) + 1))
    big = Image.fromarray(to_upright(image).astype(np.float32), mode="F").resize((size, size), Image.Resampling.BICUBIC)
    k = 2 * max(1, size // 40) + 1  # odd filter size proportional to the character
    stroke = rng.choice(["thin", "same", "thick"])
    if stroke == "thin":
        big = big.filter(ImageFilter.MinFilter(k))
    elif stroke == "thick":
        big = big.filter(ImageFilter.MaxFilter(k))
    ink = np.clip((np.asarray(big) / 255.0 - 0.3) / 0.3, 0.0, 1.0)  # crisp edges, as a canvas line
    out = np.zeros((canvas, canvas), dtype=np.float32)
    top, left = (int(rng.integers(0, canvas - size + 1)) for _ in range(2))
    out[top : top + size, left : left + size] = ink
    return out


def ink_to_png(ink: np.ndarray) -> bytes:
    """Black ink on a transparent background, as ``canvas.toBlob('image/png')`` sends it."""
    alpha = np.round(np.clip(ink, 0, 1) * 255).astype(np.uint8)
    rgba = np.zeros((*alpha.shape, 4), dtype=np.uint8)
    rgba[..., 3] = alpha
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def render_canvas_png(image: np.ndarray, rng: np.random.Generator, canvas: int | None = None) -> bytes:
    """``render_canvas_ink`` encoded as an RGBA PNG."""
    return ink_to_png(render_canvas_ink(image, rng, canvas))
