"""Characters from handwriting typefaces, drawn the way a canvas drawing arrives.

EMNIST is hand-printed NIST forms: looped l, cursive r or a hooked f never occur in it. A
handwriting typeface holds one person's letterforms for all 62 classes; rendering each glyph
with a random pen, size, slant and wobble, and sending it through ``ml.preprocess`` (the
site's own path), gives training and evaluation rows in letterforms EMNIST never saw.

One rendering (``render_glyph_ink``):
    glyph at a random size (the longer side 60..260 px, as drawn on the canvas), in a random
    OpenType alternate where the font has them (stylistic sets, ``salt``, character variants)
    -> thinner or thicker strokes (grey erosion / dilation)
    -> one resampling: rotation within +-10 degrees, shear, a little squash or stretch, and an
       elastic wobble (a smooth random displacement field), as a hand is never a typeface
    -> pen-like edges (a canvas line is crisp, not a font's grey ramp)
then ``ink_to_emnist`` exactly as a canvas PNG's alpha channel goes through it. Position on
the canvas is not drawn: ``ml.preprocess`` crops to the ink, so it cannot change the input.

Only NumPy and Pillow (with libraqm for the alternates): no TensorFlow, no Django.
"""

from __future__ import annotations

import functools
import multiprocessing
import zlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ml.data import CLASSES
from ml.errors import BlankImageError
from ml.morphology import morph_array
from ml.preprocess import ink_to_emnist

# OpenType features that select other glyphs in handwriting fonts; a font keeps those that
# change at least one of the 62 characters (``font_alternates``).
FEATURE_CANDIDATES = ("salt", *(f"ss{i:02d}" for i in range(1, 9)), *(f"cv{i:02d}" for i in range(1, 5)))
# The longer side of a drawn character on the canvas, px (ml.synth draws EMNIST at 60..260 too).
SIZE_RANGE = (60, 260)
MAX_ROTATION_DEGREES = 10.0
MAX_SHEAR = 0.3  # x += shear * y: slanted handwriting, either way
SQUASH_RANGE = (0.85, 1.15)  # width scale against height
# Elastic wobble: displacement std as a share of the glyph size, on a coarse grid upsampled smoothly.
ELASTIC_SHARE = 0.025
ELASTIC_GRID = 4
# Share of renderings in the font's default glyphs when it has alternates.
DEFAULT_GLYPH_SHARE = 0.5


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.RAQM)


def glyph_mask(path: str, char: str, size: int, features: tuple[str, ...] = ()) -> np.ndarray:
    """The font's glyph for ``char`` at ``size`` px (em), float32 (H, W) 0..1, upright, cropped to its ink.

    Raises:
        BlankImageError: the font draws nothing for ``char``.
    """
    font = _font(path, size)
    left, top, right, bottom = font.getbbox(char, features=list(features) or None)
    pad = size // 4
    width, height = max(1, right - left) + 2 * pad, max(1, bottom - top) + 2 * pad
    image = Image.new("L", (width, height), 0)
    ImageDraw.Draw(image).text((pad - left, pad - top), char, font=font, fill=255, features=list(features) or None)
    ink = np.asarray(image, dtype=np.float32) / 255.0
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0.1), np.flatnonzero(ink.max(axis=0) > 0.1)
    if len(rows) == 0:
        raise BlankImageError(f"{path}: no glyph for {char!r}")
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


@functools.lru_cache(maxsize=8192)
def _extent_at_64(path: str, char: str, features: tuple[str, ...]) -> int:
    """The longer side, px, of the glyph's ink at a 64 px em: the same for every drawing of it."""
    return max(glyph_mask(path, char, 64, features).shape)


@functools.lru_cache(maxsize=256)
def font_alternates(path: str) -> tuple[str, ...]:
    """The features of ``FEATURE_CANDIDATES`` that change at least one of the 62 glyphs of the font."""
    found = []
    base = {c: glyph_mask(path, c, 48) for c in CLASSES}
    for feature in FEATURE_CANDIDATES:
        for c in CLASSES:
            other = glyph_mask(path, c, 48, (feature,))
            if other.shape != base[c].shape or np.abs(other - base[c]).max() > 0.2:
                found.append(feature)
                break
    return tuple(found)


def _bilinear(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``image`` sampled at float coordinates (y, x), 0 outside."""
    h, w = image.shape
    padded = np.pad(image, 1)
    y, x = np.clip(y + 1, 0, h + 0.999), np.clip(x + 1, 0, w + 0.999)
    y0, x0 = np.floor(y).astype(np.int32), np.floor(x).astype(np.int32)
    y1, x1 = np.minimum(y0 + 1, h + 1), np.minimum(x0 + 1, w + 1)
    fy, fx = y - y0, x - x0
    top = padded[y0, x0] * (1 - fx) + padded[y0, x1] * fx
    bottom = padded[y1, x0] * (1 - fx) + padded[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], std: float) -> np.ndarray:
    coarse = rng.normal(0.0, std, (ELASTIC_GRID, ELASTIC_GRID)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((shape[1], shape[0]), Image.Resampling.BICUBIC))


def distort(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation, shear, squash and an elastic wobble in one resampling; float32, grown to fit."""
    h, w = ink.shape
    size = max(h, w)
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES))
    shear = rng.uniform(-MAX_SHEAR, MAX_SHEAR)
    squash = rng.uniform(*SQUASH_RANGE)
    # Forward map (centred): p' = R @ S @ [[squash, 0], [0, 1]] @ p, in (x, y).
    forward = (
        np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        @ np.array([[1.0, shear], [0.0, 1.0]])
        @ np.array([[squash, 0.0], [0.0, 1.0]])
    )
    corners = np.array([[-w, -h], [w, -h], [-w, h], [w, h]], dtype=np.float64) / 2 @ forward.T
    margin = int(np.ceil(ELASTIC_SHARE * size * 3)) + 2
    out_w = int(np.ceil(np.ptp(corners[:, 0]))) + 2 * margin
    out_h = int(np.ceil(np.ptp(corners[:, 1]))) + 2 * margin
    inverse = np.linalg.inv(forward)
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    xx -= out_w / 2
    yy -= out_h / 2
    std = ELASTIC_SHARE * size
    xx += _smooth_field(rng, (out_h, out_w), std)
    yy += _smooth_field(rng, (out_h, out_w), std)
    src_x = inverse[0, 0] * xx + inverse[0, 1] * yy + w / 2
    src_y = inverse[1, 0] * xx + inverse[1, 1] * yy + h / 2
    return _bilinear(ink, src_y, src_x).astype(np.float32)


def render_glyph_ink(
    path: str,
    char: str,
    rng: np.random.Generator,
    *,
    alternates: tuple[str, ...] = (),
) -> np.ndarray:
    """One canvas-like drawing of ``char`` in the font at ``path``: float32 (H, W), upright, 0..1.

    ``alternates``: the font's features to choose from (``font_alternates``); half the
    renderings use the default glyph.
    """
    features: tuple[str, ...] = ()
    if alternates and rng.random() >= DEFAULT_GLYPH_SHARE:
        features = (alternates[int(rng.integers(len(alternates)))],)
    target = int(rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1))
    # Glyph boxes differ (an x-height letter is smaller than its em): scale the em so the
    # drawn character's longer side is the target size.
    em = int(np.clip(round(64 * target / _extent_at_64(path, char, features)), 12, 1024))
    ink = glyph_mask(path, char, em, features)
    # The pen: thinner or thicker by up to 1/40 of the character's size, or as the font draws it.
    radius = int(rng.integers(0, max(1, target // 40) + 1))
    pen = rng.integers(3)
    if radius and pen == 1:
        thinner = morph_array(ink, radius, np.minimum)
        if thinner.max() > 0.5:  # keep hairline fonts drawable
            ink = thinner
    elif radius and pen == 2:
        ink = morph_array(np.pad(ink, radius), radius, np.maximum)
    ink = distort(ink, rng)
    # Pen-like edges: a canvas line goes from nothing to full ink within a pixel or two.
    low = rng.uniform(0.2, 0.5)
    return np.clip((ink - low) / 0.25, 0.0, 1.0).astype(np.float32)


def render_glyph(path: str, char: str, rng: np.random.Generator, *, alternates: tuple[str, ...] = ()) -> np.ndarray:
    """``render_glyph_ink`` through the site's preprocessing: uint8 (28, 28), EMNIST orientation.

    The ink is quantised to 8 bits as a canvas PNG's alpha channel is.
    """
    ink = render_glyph_ink(path, char, rng, alternates=alternates)
    return ink_to_emnist(np.round(ink * 255).astype(np.uint8))


def family_seed(name: str, seed: int) -> np.random.SeedSequence:
    """The seed of one family's renderings: the same (name, seed) gives the same images anywhere."""
    return np.random.SeedSequence([zlib.crc32(name.encode()), seed])


def render_family(name: str, path: str, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` renderings of each of the 62 characters of one font.

    Returns:
        (uint8 (62 * per_class, 28, 28) EMNIST orientation, uint8 labels (class indices)).
        A rendering that comes out blank is drawn again with the next random numbers.
    """
    rng = np.random.default_rng(family_seed(name, seed))
    alternates = font_alternates(path)
    images = np.empty((len(CLASSES) * per_class, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(len(CLASSES), dtype=np.uint8), per_class)
    for i, label in enumerate(labels):
        for _attempt in range(5):
            try:
                images[i] = render_glyph(path, CLASSES[label], rng, alternates=alternates)
                break
            except BlankImageError:
                continue
        else:
            raise BlankImageError(f"{name}: {CLASSES[label]!r} renders blank")
    return images, labels


def _render_family_args(args):
    return render_family(*args)


def render_families(
    families: list[tuple[str, str]], per_class: int, seed: int, workers: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``render_family`` for each (name, path), in ``workers`` spawned processes (TensorFlow may be loaded).

    Returns:
        (uint8 (N, 28, 28), uint8 labels (N,), int16 family index into ``families`` (N,)); the
        same for any ``workers``.
    """
    jobs = [(name, path, per_class, seed) for name, path in families]
    if workers <= 1 or len(jobs) <= 1:
        parts = [_render_family_args(job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            parts = list(pool.map(_render_family_args, jobs))
    if not parts:
        empty = np.empty((0, 28, 28), dtype=np.uint8)
        return empty, np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.int16)
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    index = np.concatenate([np.full(len(p[1]), i, dtype=np.int16) for i, p in enumerate(parts)])
    return images, labels, index
