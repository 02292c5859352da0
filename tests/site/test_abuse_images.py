"""Images at the edges of what the API documents: decoded when they are a documented format
(whatever they were declared as, or when not declared), refused when they are not."""

import base64
import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import EpsImagePlugin, Image, ImageDraw

from recognition.models import Submission
from tests.site.conftest import canvas_png

SUBMISSIONS = "/api/v1/submissions"
pytestmark = pytest.mark.django_db


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def grey_one(mode: str = "L", size: int = 120) -> Image.Image:
    """A black "1" on white paper."""
    image = Image.new("L", (size, size), 255)
    ImageDraw.Draw(image).line([(size // 2, size // 8), (size // 2, size * 7 // 8)], fill=0, width=size // 12)
    return image.convert(mode)


def sixteen_bit_png(ink: int) -> bytes:
    """A 16-bit greyscale PNG: white paper (65535) and ink of the given 16-bit level."""
    array = np.full((120, 120), 65535, dtype=np.uint16)
    array[15:105, 55:65] = ink
    image = Image.fromarray(array)
    assert image.mode.startswith("I;16")
    data = encoded(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # stored as 16 bits, not reduced
    return data


def as_json(data: bytes, content_type: str = "image/png") -> dict:
    return {"image_base64": base64.b64encode(data).decode(), "content_type": content_type}


def assert_accepted(response) -> None:
    assert response.status_code in (201, 202), response.content
    assert Submission.objects.count() == 1


def assert_refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert Submission.objects.count() == 0


@pytest.mark.parametrize("ink", [30_000, 45_000], ids=["mid-grey", "light-grey"])
def test_a_16_bit_greyscale_png_with_grey_ink_is_read_not_refused_as_blank(anon, ink):
    assert_accepted(anon.post(SUBMISSIONS, as_json(sixteen_bit_png(ink)), format="json"))


@pytest.mark.parametrize("fmt", ["TIFF", "ICO", "PPM", "TGA"])
def test_a_format_the_api_does_not_document_is_refused_even_when_declared_as_png(anon, fmt):
    data = encoded(grey_one("RGB"), fmt)
    response = anon.post(SUBMISSIONS, as_json(data, "image/png"), format="json")
    assert_refused(response, 400, "invalid_image")
    assert "PNG, JPEG, GIF, WEBP or BMP" in response.json()["detail"]


def test_eps_never_reaches_ghostscript(anon, monkeypatch):
    calls = []

    def ghostscript(*args, **kwargs):
        calls.append(args)
        raise OSError("Ghostscript must not run")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n0 0 moveto 100 100 lineto stroke\nshowpage\n%%EOF\n"
    assert Image.open(io.BytesIO(eps)).format == "EPS"  # Pillow on its own would take it as EPS
    response = anon.post(SUBMISSIONS, as_json(eps, "image/png"), format="json")
    assert_refused(response, 400, "invalid_image")
    upload = SimpleUploadedFile("a.png", eps, content_type="image/png")
    assert_refused(anon.post(SUBMISSIONS, {"image": upload}, format="multipart"), 400, "invalid_image")
    assert calls == []


def multipart_without_type(image: bytes, part_headers: str = "") -> tuple[bytes, str]:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="drawing"\r\n{part_headers}\r\n'.encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(
    "part_headers", ["", "Content-Type: application/octet-stream\r\n"], ids=["no-type", "octet-stream"]
)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_a_file_part_without_an_image_type_is_named_from_its_bytes(anon, part_headers, fmt):
    data = canvas_png() if fmt == "PNG" else encoded(grey_one("RGB"), fmt)
    body, content_type = multipart_without_type(data, part_headers)
    assert_accepted(anon.generic("POST", SUBMISSIONS, body, content_type=content_type))
    assert Submission.objects.get().content_type == f"image/{fmt.lower()}"


def test_a_file_part_without_a_type_that_is_not_an_image_is_still_a_415(anon):
    body, content_type = multipart_without_type(b"%PDF-1.7 not an image")
    assert_refused(anon.generic("POST", SUBMISSIONS, body, content_type=content_type), 415, "unsupported_image_type")


def test_base64_with_mime_line_breaks_is_accepted(anon):
    text = base64.encodebytes(canvas_png()).decode()  # a line break every 76 characters
    assert "\n" in text.strip()
    assert_accepted(anon.post(SUBMISSIONS, {"image_base64": text}, format="json"))
    crlf = "data:image/png;base64," + text.replace("\n", "\r\n")
    assert_accepted_again = anon.post(SUBMISSIONS, {"image_base64": crlf}, format="json")
    assert assert_accepted_again.status_code in (201, 202), assert_accepted_again.content


def test_base64_with_other_junk_is_still_a_400(anon):
    text = base64.b64encode(canvas_png()).decode()
    response = anon.post(SUBMISSIONS, {"image_base64": text[:40] + "*" + text[40:]}, format="json")
    assert_refused(response, 400, "invalid_image")
