"""Decoding limits of ml.preprocess: the formats it opens, the pixels it decodes."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ml import preprocess
from ml.errors import ImageTooLargeError, InvalidImageError


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def photo(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), (235, 235, 230))
    ImageDraw.Draw(image).line(
        [(width // 2, height // 8), (width // 2, height * 7 // 8)], fill=(20, 20, 20), width=width // 20
    )
    return image


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_under_the_jpeg_limit():
    data = encoded(photo(4000, 3000), "JPEG", quality=80)
    image = preprocess.open_image(data)
    assert image.size == (1000, 750)  # 1/2 would be 3 megapixels
    assert image.size[0] * image.size[1] <= preprocess.JPEG_DECODE_PIXELS
    assert preprocess.image_bytes_to_emnist(data).max() == 255


def test_a_jpeg_at_the_side_limit_is_reduced_by_as_little_as_fits():
    side = preprocess.MAX_SIDE
    image = preprocess.open_image(encoded(photo(side, side), "JPEG", quality=50))
    assert image.size == (side // 4, side // 4)


def test_a_jpeg_under_the_jpeg_limit_is_decoded_in_full():
    assert preprocess.open_image(encoded(photo(1024, 1024), "JPEG")).size == (1024, 1024)


def test_a_png_over_the_pixel_limit_is_refused_from_its_header():
    # 2049 x 2048 is one column over 2048 x 2048: PNG has no cheap reduced decode.
    with pytest.raises(ImageTooLargeError, match="pixels"):
        preprocess.open_image(encoded(Image.new("L", (2049, 2048), 255), "PNG"))


def test_a_png_at_the_pixel_limit_is_decoded_in_full():
    assert preprocess.open_image(encoded(Image.new("L", (2048, 2048), 255), "PNG")).size == (2048, 2048)


@pytest.mark.parametrize("fmt", ["TIFF", "ICO", "PCX", "TGA", "PPM"])
def test_formats_outside_the_documented_ones_are_not_opened(fmt):
    with pytest.raises(InvalidImageError, match="PNG, JPEG, GIF, WEBP or BMP"):
        preprocess.open_image(encoded(photo(64, 64), fmt))


def test_16_bit_grey_is_scaled_to_8_bits_not_clipped():
    array = np.full((64, 64), 65535, dtype=np.uint16)
    array[8:56, 28:36] = 32896  # 128 in 8 bits
    ink = preprocess.image_to_ink(preprocess.open_image(encoded(Image.fromarray(array), "PNG")))
    assert ink[32, 32] == pytest.approx(1.0) and ink[2, 2] == 0


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 12345])
@pytest.mark.parametrize("q", [0, 0.5, 50, 99.5, 100])
def test_the_histogram_percentile_is_numpy_s(n, q):
    grey = np.random.default_rng(n).integers(0, 256, size=(n, 1), dtype=np.uint8)
    histogram = np.bincount(grey.ravel(), minlength=256)
    assert preprocess._percentile(grey, histogram, q) == pytest.approx(
        float(np.percentile(grey.astype(np.float32), q)), abs=1e-4
    )


def test_the_ink_of_opaque_8_bit_images_is_what_the_per_pixel_arithmetic_gave():
    rng = np.random.default_rng(0)
    for paper in (235, 30):
        grey = np.clip(rng.normal(paper, 8, size=(90, 70)), 0, 255).astype(np.uint8)
        grey[20:70, 30:40] = 255 - paper
        ink = preprocess.image_to_ink(Image.fromarray(grey))
        # The arithmetic image_to_ink did on every pixel before it used a 256-level table.
        gray = grey.astype(np.float32)
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        level = float(np.median(border))
        if level >= 128:
            expected = (level - gray) / max(level - float(np.percentile(gray, 0.5)), 1.0)
        else:
            expected = (gray - level) / max(float(np.percentile(gray, 99.5)) - level, 1.0)
        expected = np.clip((expected - 0.25) / 0.75, 0.0, 1.0).astype(np.float32)
        np.testing.assert_array_equal(ink, expected)
