"""What the site receives -> what the model was trained on.

EMNIST turned each 128x128 NIST scan into 28x28 by: Gaussian blur (sigma 1), crop to
the ink's bounding box, centre in a square keeping the aspect ratio, pad 2 px,
bicubic down-sampling to 28x28, and scaling the intensities to 0..255. We do the same
to canvas drawings and uploads, with the blur and padding scaled to the size the
character has on the input, so that a character drawn large or small, anywhere on a
canvas, lands on the model's input as an EMNIST image would.

Public functions:
    image_bytes_to_emnist(data) -> uint8 (28, 28), EMNIST orientation
    image_to_ink(image) -> float32 (H, W) ink map in 0..1, upright
    ink_to_emnist(ink) -> uint8 (28, 28), EMNIST orientation
    check_emnist_array(array) -> uint8 (28, 28), validated
    ink_to_png(ink) -> bytes, an RGBA PNG: black ink in alpha on a transparent background

All raise subclasses of ``ml.errors.MLInputError`` on bad input. Only NumPy and
Pillow: cheap to import in a web process.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from ml.data import IMAGE_SIZE
from ml.errors import BlankImageError, ImageTooLargeError, InvalidImageError, MLInputError
from ml.morphology import morph_array, stroke_width

# Limits, checked from the file header before any pixel is decoded. Bytes cost CPU before
# anything can refuse them (base64, JSON, zlib, a JPEG's entropy coding: 15-25 ms a MiB), so
# the byte limit is what keeps the dearest request under 50 ms (bench/abuse_cost.py). A canvas
# export is 5-30 KB, a phone photo of a character at 2 megapixels well under 1 MiB.
MAX_BYTES = 1536 * 1024
MAX_SIDE = 4096
# The most pixels decoded: 2048x2048. A character needs far fewer (the canvas is 280x280, and
# every input ends up 96 px tall before 28x28), and decoding is the cost of a request: a
# 4000x4000 PNG of 24 KiB took 0.55 s of CPU. Any format but JPEG over it is refused.
MAX_PIXELS = 2048 * 2048
# A JPEG over this is decoded at 1/2, 1/4 or 1/8 scale, the largest at most this size (its DCT
# allows that almost for free): a 4096x4096 photo decoded at 2048x2048 cost 78 ms, at
# 1024x1024 a fraction, and a character in a photo needs no more.
JPEG_DECODE_PIXELS = 1024 * 1024
# What the API documents, identified from the bytes (never from a declared type). Pillow
# would otherwise open some 40 formats: TIFF and ICO among them, and EPS through Ghostscript.
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
# 16-bit greyscale (PNG): Pillow's convert("L") clips these at 255 instead of scaling them.
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})

# Share of the 28 px frame that the ink's longer side spans in EMNIST: measured on the
# validation split, the longer side of pixels > 0 is 24-26 px (median 26), of which the
# outer pixel is the blur's halo; 24/28 for the hard-thresholded bounding box matches.
FRAME_FILL = 24 / IMAGE_SIZE
# EMNIST's blur was sigma 1 px on characters roughly 100 px tall.
BLUR_SIGMA_PER_PX = 1 / 100
# The character's longer side while strokes are normalised and blurred: NIST size.
WORK_SIZE = 96
# Stroke width / longer side, 25th and 75th percentile on EMNIST validation images
# (measured at 4x size with ``stroke_width``: median 0.145). Wider or narrower
# strokes are brought to the nearest end of this range.
STROKE_RATIO_RANGE = (0.12, 0.17)
# Ink below this (0..1) counts as background when finding the bounding box.
INK_THRESHOLD = 0.1
# An image whose strongest ink is weaker than this, or whose darkest and lightest
# parts differ by less than this (0..255), is blank.
MIN_INK = 0.2
MIN_CONTRAST = 24
MIN_INK_PIXELS = 2


def image_bytes_to_emnist(data: bytes) -> np.ndarray:
    """Decode an image file and turn it into the model's input.

    Args:
        data: the bytes of a PNG, JPEG, WebP, GIF or BMP file (``FORMATS``). A canvas export (alpha
            channel with transparent background) uses alpha as ink; an opaque image is
            read as ink on paper of either polarity.

    Returns:
        uint8 (28, 28) in EMNIST orientation (``arr.T`` is upright), ink high.

    Raises:
        InvalidImageError: not bytes, not an image of ``FORMATS``, or a truncated file.
        ImageTooLargeError: over ``MAX_BYTES``, ``MAX_SIDE``, or ``MAX_PIXELS`` (not a JPEG).
        BlankImageError: nothing drawn.
    """
    return ink_to_emnist(image_to_ink(open_image(data)))


def open_image(data: bytes) -> Image.Image:
    """Open and fully decode image bytes of ``FORMATS``, enforcing the size limits first; a
    JPEG over ``JPEG_DECODE_PIXELS`` is decoded at the largest scale under that."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImageError(f"expected image bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise InvalidImageError("empty file")
    if len(data) > MAX_BYTES:
        raise ImageTooLargeError(f"file is {len(data)} bytes; the limit is {MAX_BYTES}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size  # from the header: nothing decoded yet
            if width > MAX_SIDE or height > MAX_SIDE:
                raise ImageTooLargeError(f"image is too large: {width}x{height}; the limit is {MAX_SIDE} px a side")
            if width < 1 or height < 1:
                raise InvalidImageError("image has no pixels")
            if image.format == "JPEG" and width * height > JPEG_DECODE_PIXELS:
                _draft_under_limit(image, JPEG_DECODE_PIXELS)
            elif width * height > MAX_PIXELS:
                raise ImageTooLargeError(
                    f"image is too large: {width}x{height}; the limit is {MAX_PIXELS} pixels ({MAX_PIXELS // 1_000_000} megapixels)"
                )
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # phone photos carry their rotation in EXIF
            return image
    except MLInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"image is too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"not a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(f"image could not be decoded ({exc})") from exc


def ink_to_png(ink: np.ndarray) -> bytes:
    """An ink map as a canvas sends it (``canvas.toBlob('image/png')``): black ink in alpha, transparent background.

    Args:
        ink: (H, W), upright, background 0: uint8 0..255, or float 0..1 (clipped to it).

    Returns:
        The bytes of an RGBA PNG; ``image_to_ink`` reads the same ink map back from it.
    """
    ink = np.asarray(ink)
    if ink.dtype == np.uint8:
        alpha = ink  # already 0..255: what rescaling to 0..1 and back would give, bit for bit
    else:
        alpha = np.round(np.clip(ink, 0, 1) * 255).astype(np.uint8)
    rgba = np.zeros((*alpha.shape, 4), dtype=np.uint8)
    rgba[..., 3] = alpha
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def _draft_under_limit(image: Image.Image, pixels: int) -> None:
    """Have a JPEG decode at 1/2, 1/4 or 1/8 scale, the largest with at most ``pixels``
    (1/8 at most: a 4096x4096 JPEG is then 512x512)."""
    width, height = image.size
    for factor in (2, 4, 8):
        if -(-width // factor) * -(-height // factor) <= pixels:
            break
    # draft() picks the largest DCT scale whose result is at least the size asked for.
    image.draft(image.mode, (width // factor, height // factor))


def image_to_ink(image: Image.Image) -> np.ndarray:
    """Ink map of a decoded image: (H, W), upright, background 0: uint8 0..255 from alpha, else float32 0..1.

    Transparent images (canvas exports) use alpha. Opaque ones use luminance: the
    border's median is the paper, the ink is whatever departs from it, scaled so the
    strongest ink is 1; faint paper texture is cut off.
    """
    has_alpha = "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        if alpha.min() < 250:  # really transparent somewhere: alpha carries the ink
            return _checked_ink(alpha)
        grey_image = rgba.convert("L")
    elif image.mode in _SIXTEEN_BIT_MODES:
        # 0..65535 to 0..255; "I" is how older Pillows open a 16-bit PNG.
        grey_image = None
        gray = np.clip(np.asarray(image, dtype=np.float32) / 257.0, 0, 255)
    else:
        grey_image = image if image.mode == "L" else image.convert("L")
    if grey_image is not None:
        gray = np.asarray(grey_image)
    # 8-bit grey has 256 levels: its percentiles come from a histogram and its ink from a
    # 256-entry table, the same figures as np.percentile and the arithmetic on every pixel,
    # at a fraction of the cost (a 4-megapixel image: 99 ms before, most of a request's CPU).
    levels = np.arange(256, dtype=np.float32) if grey_image is not None else gray
    histogram = np.asarray(grey_image.histogram()) if grey_image is not None else None
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).astype(np.float32)
    paper = float(np.median(border))
    if paper >= 128:  # dark ink on light paper
        strongest = _percentile(gray, histogram, 0.5)
        ink = (paper - levels) / max(paper - strongest, 1.0)
        contrast = paper - float(gray.min())
    else:  # light ink on a dark background (a screenshot, an inverted scan)
        strongest = _percentile(gray, histogram, 99.5)
        ink = (levels - paper) / max(strongest - paper, 1.0)
        contrast = float(gray.max()) - paper
    if contrast < MIN_CONTRAST:
        raise BlankImageError("the image is blank: no ink stands out from the background")
    # Cut paper texture and uneven lighting, then stretch back to 0..1.
    ink = np.clip((ink - 0.25) / 0.75, 0.0, 1.0).astype(np.float32)
    if histogram is not None:
        ink = ink[gray]  # the table, looked up per pixel
    return _checked_ink(ink)


def _percentile(gray: np.ndarray, histogram: np.ndarray | None, q: float) -> float:
    """np.percentile(gray, q) (linear interpolation), from the histogram of 8-bit grey when given."""
    if histogram is None:
        return float(np.percentile(gray, q))
    position = q / 100 * (gray.size - 1)
    below = int(np.floor(position))
    cumulative = np.cumsum(histogram)
    # The values at sorted positions `below` and `below + 1`.
    low, high = np.searchsorted(cumulative, [below + 1, min(below + 2, gray.size)])
    return float(low + (position - below) * (high - low))


def _checked_ink(ink: np.ndarray) -> np.ndarray:
    full = 255 if ink.dtype == np.uint8 else 1.0
    if ink.max(initial=0) < MIN_INK * full or np.count_nonzero(ink >= INK_THRESHOLD * full) < MIN_INK_PIXELS:
        raise BlankImageError("the image is blank: nothing is drawn on it")
    return ink


def _normalise_strokes(picture: Image.Image, longest: int) -> Image.Image:
    """Dilate or erode so the stroke width lies within EMNIST's usual range."""
    width = stroke_width(np.asarray(picture) > 127)
    if width == 0:
        return picture
    low, high = STROKE_RATIO_RANGE[0] * longest, STROKE_RATIO_RANGE[1] * longest
    if width < low:  # a thin pen: grow each side by half the difference
        return _morph(picture, int(round((low - width) / 2)), np.maximum)
    if width > high:  # a marker: shrink, but never below a 2 px line
        return _morph(picture, int(round(min(width - high, width - 2) / 2)), np.minimum)
    return picture


def _morph(picture: Image.Image, radius: int, op) -> Image.Image:
    """``morph_array`` on an 8-bit Pillow image."""
    if radius <= 0:
        return picture
    return Image.fromarray(morph_array(np.asarray(picture), radius, op), mode="L")


def ink_to_emnist(ink: np.ndarray) -> np.ndarray:
    """EMNIST's steps on an ink map: crop, scale to NIST size, strokes, blur, centre, pad, bicubic to 28x28.

    The ink's bounding box is scaled so its longer side is ``WORK_SIZE`` px (a NIST
    character's size, where EMNIST's sigma-1 blur applies), the stroke width is brought
    into EMNIST's range (a canvas pen can be much thinner or thicker than a NIST pen),
    then the result is centred in a square with EMNIST's margin and down-sampled.

    Args:
        ink: numeric (H, W), upright, background 0, ink high (any scale works: the
            result is rescaled so the strongest ink is 255).

    Returns:
        uint8 (28, 28), EMNIST orientation.
    """
    ink = np.asarray(ink)
    if ink.ndim != 2 or min(ink.shape) < 1 or ink.dtype.kind not in "uif":
        raise InvalidImageError(f"ink map must be a 2-D numeric array, got {ink.dtype} {ink.shape}")
    peak = float(ink.max(initial=0))
    if not np.isfinite(peak) or peak <= 0:
        raise BlankImageError("the image is blank: nothing is drawn on it")
    inked = ink >= INK_THRESHOLD * peak
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = crop.shape
    scale = WORK_SIZE / max(height, width)
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    # 8-bit from here: Pillow filters only integer modes, and EMNIST has 256 levels too.
    if crop.dtype != np.uint8 or peak != 255:
        crop = np.round(crop.astype(np.float32) * (255.0 / peak)).astype(np.uint8)
    work = Image.fromarray(np.ascontiguousarray(crop), mode="L")
    work = work.resize(size, Image.Resampling.BILINEAR)
    side = int(round(WORK_SIZE / FRAME_FILL))
    square = Image.new("L", (side, side), 0)
    square.paste(work, ((side - size[0]) // 2, (side - size[1]) // 2))
    square = _normalise_strokes(square, WORK_SIZE)
    square = square.filter(ImageFilter.GaussianBlur(WORK_SIZE * BLUR_SIGMA_PER_PX))
    # Pillow's bicubic filter widens with the reduction factor: an antialiased
    # down-sampling like MATLAB's imresize, which EMNIST used.
    small = np.asarray(square.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC), dtype=np.float32)
    top_value = small.max()
    if top_value <= 0:
        raise BlankImageError("the image is blank: nothing is drawn on it")
    return np.ascontiguousarray(np.round(small * (255.0 / top_value)).astype(np.uint8).T)


def check_emnist_array(array) -> np.ndarray:
    """Validate a raw model input: (28, 28), uint8 or a float/int array with values in 0..255.

    Returns:
        uint8 (28, 28), unchanged orientation (the caller's array must already be EMNIST's).

    Raises:
        InvalidImageError: wrong type, shape or values. BlankImageError: all zero.
    """
    try:
        array = np.asarray(array)
    except Exception as exc:  # noqa: BLE001 - anything numpy cannot turn into an array
        raise InvalidImageError(f"not an array ({exc})") from exc
    if array.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise InvalidImageError(f"expected shape (28, 28), got {array.shape}")
    if array.dtype != np.uint8:
        if array.dtype.kind not in "uif":
            raise InvalidImageError(f"expected numbers, got dtype {array.dtype}")
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
            raise InvalidImageError("values must be finite and within 0..255")
        array = np.round(array).astype(np.uint8)
    if not array.any():
        raise BlankImageError("the image is blank: all pixels are 0")
    return array
