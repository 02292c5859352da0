"""Upload limits, each checked before the image is decoded: 413 with a clear code, no row."""

import base64
import socket
import struct
import zlib

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from ml.preprocess import MAX_BYTES, MAX_PIXELS, MAX_SIDE
from recognition.models import Submission
from tests.site.conftest import canvas_png

SUBMISSIONS = "/api/v1/submissions"
pytestmark = pytest.mark.django_db


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def header_only_png(width: int, height: int) -> bytes:
    """A valid header claiming width x height, with almost no pixel data behind it."""
    return png(width, height, zlib.compress(b"\0" * 100))


def bomb_png(side: int) -> bytes:
    """A complete, valid PNG of side x side black pixels: a few hundred KB that decode to side**2 bytes."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return png(side, side, idat)


def as_json(image: bytes) -> dict:
    return {"image_base64": "data:image/png;base64," + base64.b64encode(image).decode()}


def assert_refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["detail"], body
    assert Submission.objects.count() == 0


def test_a_body_over_the_request_limit_is_refused_from_its_content_length_alone(anon):
    # The test client's input stream holds 10 bytes and raises if anyone reads past them:
    # a 413 here means nothing tried to read the claimed 100 MB.
    response = anon.generic(
        "POST", SUBMISSIONS, b'{"image": 1}', content_type="application/json", CONTENT_LENGTH=str(100 * 1024 * 1024)
    )
    assert_refused(response, 413, "request_too_large")
    assert str(settings.REQUEST_MAX_BYTES) in response.json()["detail"]


def test_the_request_limit_guards_every_write_endpoint_too(anon):
    response = anon.generic(
        "POST",
        "/api/v1/submissions/x/correction",
        b"{}",
        content_type="application/json",
        CONTENT_LENGTH=str(settings.REQUEST_MAX_BYTES + 1),
    )
    assert_refused(response, 413, "request_too_large")


def content_length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return -1


def test_a_real_server_answers_413_without_waiting_for_the_body(live_server):
    # Headers claim 200 MB; the body never comes. The answer must not wait for it.
    host, port = live_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST {SUBMISSIONS} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {200 * 1024 * 1024}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        # Read the whole answer, not to the close: Django's development server then waits to
        # drain the body it was promised (gunicorn does not).
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)
        assert content_length(answer) > 0, answer
        while len(answer.split(b"\r\n\r\n", 1)[1]) < content_length(answer):
            answer += sock.recv(4096)
        answer = answer.decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer
    assert '"code":"request_too_large"' in answer.replace(" ", "")
    assert Submission.objects.count() == 0


def test_an_uploaded_file_over_10_mib_is_refused_before_it_is_read(anon):
    big = SimpleUploadedFile("big.png", canvas_png() + b"\0" * (MAX_BYTES + 1), content_type="image/png")
    assert_refused(anon.post(SUBMISSIONS, {"image": big}, format="multipart"), 413, "image_too_large")


def test_base64_over_10_mib_is_refused_before_it_is_decoded(anon):
    payload = {"image_base64": "A" * ((MAX_BYTES // 3 + 100) * 4)}  # under the request limit, over the image limit
    assert_refused(anon.post(SUBMISSIONS, payload, format="json"), 413, "image_too_large")


@pytest.mark.parametrize(
    ("width", "height"),
    [(100_000, 100_000), (MAX_SIDE + 1, 16), (16, MAX_SIDE + 1), (MAX_SIDE, MAX_PIXELS // MAX_SIDE + 1)],
    ids=["100000x100000", "too-wide", "too-tall", "too-many-pixels"],
)
def test_dimensions_over_the_limits_are_refused_from_the_header(anon, width, height):
    image = header_only_png(width, height)
    assert len(image) < 200  # what is refused is the header's claim, not the file's size
    assert_refused(anon.post(SUBMISSIONS, as_json(image), format="json"), 413, "image_too_large")
    upload = SimpleUploadedFile("a.png", image, content_type="image/png")
    assert_refused(anon.post(SUBMISSIONS, {"image": upload}, format="multipart"), 413, "image_too_large")


def test_a_decompression_bomb_is_refused_without_being_decoded(anon, monkeypatch):
    from PIL import ImageFile

    from ml.preprocess import open_image

    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image.size) or real_load(image))
    open_image(canvas_png())
    assert (280, 280) in decoded  # the spy sees a decode

    bomb = bomb_png(20_000)  # 400 MB of pixels
    assert len(bomb) < 1024 * 1024
    response = anon.post(
        SUBMISSIONS, {"image": SimpleUploadedFile("bomb.png", bomb, content_type="image/png")}, format="multipart"
    )
    assert_refused(response, 413, "image_too_large")
    assert (20_000, 20_000) not in decoded  # refused from the header: its 400 MB were never decoded


def test_one_image_per_request(anon):
    files = {
        name: SimpleUploadedFile(f"{name}.png", canvas_png(), content_type="image/png") for name in ("image", "extra")
    }
    response = anon.post(SUBMISSIONS, files, format="multipart")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "too_many_fields"
    assert Submission.objects.count() == 0


def test_the_request_limit_holds_the_largest_image_as_base64():
    # A 10 MiB image must fit as JSON (base64, 4/3) with room for strokes; Django's own
    # buffers are bounded by the same number.
    assert (MAX_BYTES + 2) // 3 * 4 + 256 * 1024 < settings.REQUEST_MAX_BYTES
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == settings.REQUEST_MAX_BYTES
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE <= MAX_BYTES
