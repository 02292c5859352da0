import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ml import preprocess
from ml.errors import BlankImageError, ImageTooLargeError, InvalidImageError, MLInputError
from ml.preprocess import check_emnist_array, image_bytes_to_emnist, ink_to_emnist
from ml.preprocess import ink_to_png as canvas_png  # black ink in alpha, transparent background
from tests.ml.conftest import letter_l_upright


def png_bytes(array, mode):
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def paper_jpeg(ink):
    """Dark ink on light paper, as a photo or scan."""
    gray = np.round(235 - 200 * ink).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(gray, mode="L").convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def assert_is_an_upright_l(out):
    assert out.shape == (28, 28) and out.dtype == np.uint8
    upright = out.T
    ink = upright > 100
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    # Centred, filling the frame like EMNIST (longer side ~24 of 28 px)
    assert 21 <= rows[-1] - rows[0] + 1 <= 27
    assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1.5
    assert abs((cols[0] + cols[-1]) / 2 - 13.5) <= 1.5
    # The vertical bar is on the left, the foot at the bottom
    assert upright[:, :14].sum() > 2 * upright[:, 14:].sum()
    assert upright[rows[-1] - 2 :, cols[-1] - 2 :].sum() > 0
    assert upright[rows[0] : rows[0] + 3, cols[-1] - 3 :].sum() == 0


def test_a_canvas_drawing_becomes_a_centred_upright_character_in_emnist_orientation():
    assert_is_an_upright_l(image_bytes_to_emnist(canvas_png(letter_l_upright())))


def test_position_and_size_on_the_canvas_do_not_matter():
    a = image_bytes_to_emnist(canvas_png(letter_l_upright(300, 30)))
    moved = np.zeros((600, 900), dtype=np.float32)
    moved[250:550, 550:850] = letter_l_upright(300, 30)
    b = image_bytes_to_emnist(canvas_png(moved))
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3


def test_an_upload_of_dark_ink_on_light_paper_reads_like_the_canvas():
    ink = letter_l_upright()
    from_canvas = image_bytes_to_emnist(canvas_png(ink))
    from_photo = image_bytes_to_emnist(paper_jpeg(ink))
    assert_is_an_upright_l(from_photo)
    assert np.abs(from_canvas.astype(int) - from_photo.astype(int)).mean() < 12


def test_an_inverted_image_light_ink_on_dark_reads_the_same():
    ink = letter_l_upright()
    white_on_black = png_bytes(np.round(20 + 220 * ink).astype(np.uint8), "L")
    black_on_white = png_bytes(np.round(240 - 220 * ink).astype(np.uint8), "L")
    a, b = image_bytes_to_emnist(white_on_black), image_bytes_to_emnist(black_on_white)
    assert_is_an_upright_l(a)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_thin_and_thick_pens_are_brought_to_emnist_stroke_width():
    thin = image_bytes_to_emnist(canvas_png(letter_l_upright(400, 4)))
    thick = image_bytes_to_emnist(canvas_png(letter_l_upright(400, 110)))
    normal = image_bytes_to_emnist(canvas_png(letter_l_upright(400, 50)))
    inked = [int((x > 127).sum()) for x in (thin, normal, thick)]
    assert inked[0] < inked[1] < inked[2]
    assert inked[2] < 3 * inked[0]  # without normalising the ratio would be over 10


def test_a_tiny_image_and_a_huge_canvas_both_work():
    tiny = np.zeros((6, 5), dtype=np.float32)
    tiny[1:5, 1] = 1
    tiny[4, 1:4] = 1
    assert image_bytes_to_emnist(canvas_png(tiny)).max() == 255
    huge = np.zeros((2048, 2048), dtype=np.float32)
    huge[500:1500, 800:1000] = 1
    out = image_bytes_to_emnist(canvas_png(huge))
    assert out.max() == 255 and out.T[:, 12:16].mean() > out.T[:, :5].mean()


@pytest.mark.parametrize(
    "data",
    [
        canvas_png(np.zeros((280, 280), dtype=np.float32)),
        png_bytes(np.full((100, 100), 255, dtype=np.uint8), "L"),
        png_bytes(np.full((100, 100, 3), 128, dtype=np.uint8), "RGB"),
    ],
    ids=["transparent-canvas", "white-page", "grey-page"],
)
def test_it_rejects_blank_images(data):
    with pytest.raises(BlankImageError):
        image_bytes_to_emnist(data)


def test_faint_noise_on_white_paper_is_blank():
    noise = np.random.default_rng(0).integers(240, 256, (200, 200)).astype(np.uint8)
    with pytest.raises(BlankImageError):
        image_bytes_to_emnist(png_bytes(noise, "L"))


@pytest.mark.parametrize("data", [b"", b"hello, not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "text"])
def test_it_rejects_what_is_not_an_image(data):
    with pytest.raises(InvalidImageError):
        image_bytes_to_emnist(data)


def test_it_rejects_a_truncated_png():
    data = canvas_png(letter_l_upright())
    with pytest.raises(InvalidImageError):
        image_bytes_to_emnist(data[: len(data) // 2])


def huge_png_header(width, height):
    """A valid PNG signature + IHDR claiming width x height, with one tiny IDAT: a decompression bomb header."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    )


def test_it_refuses_a_decompression_bomb_from_the_header_alone():
    with pytest.raises(ImageTooLargeError, match="too large"):
        image_bytes_to_emnist(huge_png_header(20000, 20000))


def test_it_refuses_too_many_pixels_within_the_side_limit():
    with pytest.raises(ImageTooLargeError):
        image_bytes_to_emnist(huge_png_header(4096, 4096))


def test_it_refuses_a_file_over_the_byte_limit(monkeypatch):
    monkeypatch.setattr(preprocess, "MAX_BYTES", 1000)
    with pytest.raises(ImageTooLargeError, match="limit is 1000"):
        image_bytes_to_emnist(canvas_png(np.random.default_rng(0).random((100, 100)).astype(np.float32)))


def test_all_input_errors_share_one_base_class():
    for error in (BlankImageError, ImageTooLargeError, InvalidImageError):
        assert issubclass(error, MLInputError) and issubclass(error, ValueError)


def test_ink_to_emnist_rejects_bad_arrays():
    with pytest.raises(InvalidImageError):
        ink_to_emnist(np.zeros((3, 3, 3)))
    with pytest.raises(InvalidImageError):
        ink_to_emnist(np.array([["a", "b"]]))
    with pytest.raises(BlankImageError):
        ink_to_emnist(np.zeros((10, 10)))


def test_raw_arrays_are_checked_for_shape_dtype_and_range():
    good = np.zeros((28, 28), dtype=np.uint8)
    good[5:20, 10] = 200
    assert check_emnist_array(good) is good
    assert check_emnist_array(good.astype(np.float64)).dtype == np.uint8
    with pytest.raises(InvalidImageError, match="shape"):
        check_emnist_array(np.zeros((28, 27)))
    with pytest.raises(InvalidImageError, match="0..255"):
        check_emnist_array(np.full((28, 28), 300.0))
    with pytest.raises(InvalidImageError):
        check_emnist_array(np.full((28, 28), np.nan))
    with pytest.raises(BlankImageError):
        check_emnist_array(np.zeros((28, 28), dtype=np.uint8))


def test_the_synthetic_canvas_draws_the_stroke_width_it_is_asked_for():
    from ml.synth import render_character_ink

    image = np.zeros((28, 28), dtype=np.uint8)
    image[6:22, 12:16] = 255  # a bar, EMNIST orientation
    ink = {
        stroke: render_character_ink(image, np.random.default_rng(3), 120, stroke).sum()
        for stroke in ("thin", "same", "thick")
    }
    assert ink["thin"] < 0.9 * ink["same"] and ink["thick"] > 1.1 * ink["same"]
    with pytest.raises(ValueError, match="stroke"):
        render_character_ink(image, np.random.default_rng(3), 120, "bold")


def test_ink_to_png_writes_uint8_ink_as_it_is_and_float_ink_scaled_from_0_to_1():
    ink = np.arange(256, dtype=np.uint8).reshape(16, 16)
    from_uint8 = np.asarray(Image.open(io.BytesIO(canvas_png(ink))))
    from_float = np.asarray(Image.open(io.BytesIO(canvas_png(ink.astype(np.float32) / 255))))
    assert from_uint8.shape == (16, 16, 4)
    assert np.array_equal(from_uint8[..., 3], ink) and not from_uint8[..., :3].any()  # black ink in alpha
    assert np.array_equal(from_float, from_uint8)
