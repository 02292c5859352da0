"""Server CPU per request at each input limit: what a hostile client can make one request cost.

    python bench/abuse_cost.py [--rounds 5] [--json var/abuse_cost.json]

Each case is one prepared request body, sent in-process through Django's test client (every
middleware, DRF's parsing, the view, the service, the INSERT of an accepted row) against a
fresh SQLite test database. time.process_time() around the call is the CPU this process
spent on it, readable even on a busy machine (wall time is not). Each request runs in a
transaction that is rolled back, so an accepted drawing is stored but its prediction is never
queued: the figure is the web request's own cost, not the worker's. The median of
``--rounds`` is reported; the target for the worst case is 50 ms.
"""

import argparse
import base64
import io
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emnist_site.settings_test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from ml.preprocess import MAX_BYTES, MAX_PIXELS, MAX_SIDE  # noqa: E402
from recognition.api.inputs import MAX_STROKE_POINTS  # noqa: E402
from recognition.api.parsers import MAX_CONTAINERS  # noqa: E402

TARGET_MS = 50
SUBMISSIONS = "/api/v1/submissions"
WORDS = "/api/v1/words"
BOUNDARY = "BenchBoundary"


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def canvas_png(width: int = 280, height: int = 280) -> bytes:
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.line(
        [(width * 0.5, height * 0.15), (width * 0.5, height * 0.85)], fill=(0, 0, 0, 255), width=max(2, height // 14)
    )
    return encoded(image, "PNG")


def noise_png_at_byte_limit() -> bytes:
    """The most expensive PNG the limits allow: incompressible noise, just under MAX_BYTES and
    MAX_PIXELS, with a dark bar so it is not blank."""
    rng = np.random.default_rng(0)
    side = int((min(MAX_PIXELS, MAX_BYTES // 3)) ** 0.5)
    while True:
        pixels = rng.integers(128, 256, size=(side, side, 3), dtype=np.uint8)
        pixels[side // 4 : 3 * side // 4, side // 2 - side // 20 : side // 2 + side // 20] = 0
        data = encoded(Image.fromarray(pixels), "PNG", compress_level=1)
        if len(data) <= MAX_BYTES:
            return data
        side -= 16


def flat_png(width: int, height: int) -> bytes:
    """A tiny file that decodes to width x height pixels (white, one black bar)."""
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).rectangle(
        [width // 2 - width // 40, height // 8, width // 2 + width // 40, height * 7 // 8], fill=0
    )
    return encoded(image, "PNG", optimize=True)


def photo_jpeg(side: int) -> bytes:
    """A side x side JPEG with as much detail (entropy to decode) as fits in MAX_BYTES."""
    rng = np.random.default_rng(1)
    for spread in (48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1):
        pixels = rng.integers(255 - spread, 256, size=(side, side), dtype=np.uint8)
        pixels[side // 8 : 7 * side // 8, side // 2 - side // 30 : side // 2 + side // 30] = 10
        data = encoded(Image.fromarray(pixels).convert("RGB"), "JPEG", quality=90)
        if len(data) <= MAX_BYTES:
            return data
    raise RuntimeError("no JPEG fits")


def multipart(image: bytes, content_type: str = "image/png", strokes: str | None = None) -> tuple[bytes, str]:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
        + image
        + b"\r\n"
    ]
    if strokes is not None:
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="strokes"\r\n\r\n{strokes}\r\n'.encode())
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def as_json(image: bytes, strokes_json: str | None = None, content_type: str = "image/png") -> tuple[bytes, str]:
    body = f'{{"image_base64": "{base64.b64encode(image).decode()}", "content_type": "{content_type}"'
    if strokes_json is not None:
        body += f', "strokes": {strokes_json}'
    return (body + "}").encode(), "application/json"


def stroke_points(n: int, strokes: int = 20) -> str:
    per = n // strokes
    return json.dumps(
        [[[round(10 + (i % 260), 1), round(10 + (k * 13) % 260, 1), i] for i in range(per)] for k in range(strokes)]
    )


def cases() -> list[tuple[str, str, bytes, str]]:
    """(name, url, body, content type)"""
    noise = noise_png_at_byte_limit()
    deep = "[" * 100_000 + "]" * 100_000
    million = "[[" + ",".join(["[1,2,3]"] * 1_000_000) + "]]"
    many = "[[" + ",".join(["[1,2]"] * 300_000) + "]]"
    random_base64_body = json.dumps({"image_base64": base64.b64encode(os.urandom(MAX_BYTES)).decode()}).encode()
    return [
        ("canvas PNG 280x280 (the page), multipart", SUBMISSIONS, *multipart(canvas_png())),
        (f"noise PNG at the byte limit ({len(noise) / 2**20:.1f} MiB), multipart", SUBMISSIONS, *multipart(noise)),
        (f"noise PNG at the byte limit ({len(noise) / 2**20:.1f} MiB), JSON base64", SUBMISSIONS, *as_json(noise)),
        (
            f"{MAX_BYTES / 2**20:.1f} MiB of random bytes as base64 (not an image)",
            SUBMISSIONS,
            random_base64_body,
            "application/json",
        ),
        (
            "a body one byte over REQUEST_MAX_BYTES",
            SUBMISSIONS,
            b" " * (settings.REQUEST_MAX_BYTES + 1),
            "application/json",
        ),
        ("2048x2048 PNG, the pixel limit", SUBMISSIONS, *multipart(flat_png(2048, 2048))),
        ("4000x4000 PNG (24 KiB; refused from the header)", SUBMISSIONS, *multipart(flat_png(4000, 4000))),
        (
            f"{MAX_SIDE}x{MAX_SIDE} JPEG at the byte limit (decoded at 1/4 scale)",
            SUBMISSIONS,
            *multipart(photo_jpeg(MAX_SIDE), "image/jpeg"),
        ),
        (
            f"canvas PNG + {MAX_STROKE_POINTS} stroke points (the cap), JSON",
            SUBMISSIONS,
            *as_json(canvas_png(), stroke_points(MAX_STROKE_POINTS)),
        ),
        (
            f"word canvas 900x280 + {MAX_STROKE_POINTS} stroke points, JSON",
            WORDS,
            *as_json(canvas_png(900, 280), stroke_points(MAX_STROKE_POINTS)),
        ),
        (
            f"canvas PNG + {MAX_STROKE_POINTS + 1} points (one over the cap)",
            SUBMISSIONS,
            *as_json(canvas_png(), stroke_points(MAX_STROKE_POINTS + 20)),
        ),
        ("1,000,000 stroke points (7 MiB, over the body limit)", SUBMISSIONS, *as_json(canvas_png(), million)),
        (f"300,000 stroke points (1.7 MiB; over {MAX_CONTAINERS} arrays)", SUBMISSIONS, *as_json(canvas_png(), many)),
        ("strokes nested 100,000 deep, JSON", SUBMISSIONS, *as_json(canvas_png(), deep)),
        ("strokes nested 100,000 deep, multipart", SUBMISSIONS, *multipart(canvas_png(), strokes=deep)),
        ("300,000 stroke points, multipart", SUBMISSIONS, *multipart(canvas_png(), strokes=many)),
        ("word: strokes nested 100,000 deep", WORDS, *as_json(canvas_png(900, 280), deep)),
    ]


def measure(client: Client, url: str, body: bytes, content_type: str, rounds: int) -> tuple[float, int]:
    """Median CPU milliseconds of ``rounds`` requests, and the status code."""
    spent, status = [], 0
    for _ in range(rounds + 1):  # the first warms caches (imports, the URL resolver)
        with transaction.atomic():
            t0 = time.process_time()
            response = client.generic("POST", url, body, content_type=content_type)
            spent.append(time.process_time() - t0)
            transaction.set_rollback(True)  # discards the row and its on_commit (the queueing)
        status = response.status_code
    return statistics.median(spent[1:]) * 1000, status


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    logging.disable(logging.WARNING)  # one "Bad Request" line per refused request otherwise
    setup_test_environment()
    settings.THROTTLE_WRITE_CLIENT = settings.THROTTLE_WRITE_IP = None  # measure the work, not the limit
    old_name = connection.creation.create_test_db(verbosity=0, keepdb=False)
    try:
        client = Client()
        rows = []
        for name, url, body, content_type in cases():
            ms, status = measure(client, url, body, content_type, args.rounds)
            rows.append({"case": name, "url": url, "body_bytes": len(body), "status": status, "cpu_ms": round(ms, 1)})
            print(f"{ms:8.1f} ms  {status}  {len(body) / 2**20:6.2f} MiB  {name}", flush=True)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    worst = max(rows, key=lambda r: r["cpu_ms"])
    print(f"worst: {worst['cpu_ms']} ms ({worst['case']}); target {TARGET_MS} ms")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": rows, "worst_ms": worst["cpu_ms"], "target_ms": TARGET_MS}, indent=2)
        )
    return 0 if worst["cpu_ms"] <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
