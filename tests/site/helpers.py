"""Helpers several test modules share: drawings, canned answers, broken model files, settings in a fresh interpreter.

Fixtures live in conftest.py; these are plain functions (and their constants), imported where used.
"""

import base64
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from PIL import Image, ImageDraw

from tests.site.conftest import canvas_png, png_bytes

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import django; from django.conf import settings; django.setup();"
    "from emnist_site.celery import app;"
    "print(settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['NAME'], app.conf.task_always_eager)"
)


def run_settings(debug: str | None = "1", **env):
    """Load the settings in a fresh interpreter with `env` (and DEBUG=`debug`, unless None) on a clean environment."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "DEBUG", "SECRET_KEY")
    }
    if debug is not None:
        clean["DEBUG"] = debug
    clean.update(env, DJANGO_SETTINGS_MODULE="emnist_site.settings")
    return subprocess.run(
        [sys.executable, "-c", PRINT], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


PEN = 12


def word_drawing(n: int = 3, *, width: int | None = None, height: int = 200, spacing: int = 110):
    """A canvas PNG of ``n`` characters in a row, and its strokes, drawn right to left.

    Character k (from the left) is: an "i" (stem and a dot drawn last) when k % 3 == 0, a
    "T" (stem, then a bar over it) when k % 3 == 1, an "L" in one stroke otherwise. Strokes
    are listed right to left so the order on the page has to come from their positions.
    """
    width = width or spacing * n + 40
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    per_character = []
    for k in range(n):
        x = 40 + k * spacing
        if k % 3 == 0:
            strokes = [[[x, 80, 0], [x, 170, 50]], [[x, 45, 400]]]
        elif k % 3 == 1:
            strokes = [[[x + 25, 40, 0], [x + 25, 170, 60]], [[x, 40, 300], [x + 50, 40, 340]]]
        else:
            strokes = [[[x, 40, 0], [x, 170, 40], [x + 45, 170, 80]]]
        for stroke in strokes:
            points = [(p[0], p[1]) for p in stroke]
            if len(points) == 1:
                (cx, cy), r = points[0], PEN // 2 + 1
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(0, 0, 0, 255))
            else:
                draw.line(points, fill=(0, 0, 0, 255), width=PEN, joint="curve")
        per_character.append(strokes)
    strokes = [stroke for character in reversed(per_character) for stroke in character]
    return png_bytes(image), strokes, per_character


def answer_with(page, top_k):
    """The server's answer for the next prediction, with a chosen top-5 (the page's wording is
    under test here, not the model)."""
    body = {
        "id": "00000000-0000-0000-0000-000000000001",
        "url": "/api/v1/submissions/00000000-0000-0000-0000-000000000001",
        "status": "predicted",
        "predicted_label": top_k[0][0],
        "top_k": [{"label": label, "probability": p} for label, p in top_k],
        "input_image": "data:image/png;base64," + base64.b64encode(canvas_png(28)).decode(),
        "correction": None,
    }
    page.route(
        "**/api/v1/submissions",
        lambda route: (
            route.fulfill(status=201, body=json.dumps(body), headers={"Content-Type": "application/json"})
            if route.request.method == "POST"
            else route.continue_()
        ),
    )


def answer_queued(page, submission_id: str, **fields) -> None:
    """The server's answer to the next drawing: 202, still pending, with its Location to poll
    (``/api/v1/submissions/<submission_id>``, which the test routes itself)."""
    url = f"/api/v1/submissions/{submission_id}"
    body = {"id": submission_id, "url": url, "status": "pending", **fields}
    page.route(
        "**/api/v1/submissions",
        lambda route: (
            route.fulfill(
                status=202,
                body=json.dumps(body),
                headers={"Content-Type": "application/json", "Location": url},
            )
            if route.request.method == "POST"
            else route.continue_()
        ),
    )


@contextlib.contextmanager
def models_before_migration(app: str, migration: str):
    """The app's models as they were at ``migration`` (the database migrated back to it), to
    create the rows a later migration must convert; on the way out the database is migrated
    forward to the latest state, which converts them."""
    before = [(app, migration)]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        yield executor.loader.project_state(before).apps
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes(app))


def broken_copy(source, target, how: str):
    data = source.read_bytes()
    if how == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        target.write_bytes(b"not a keras archive\x00" * 100)
    return target


def submit_and_predict(client, drawing: bytes) -> dict:
    """POST one drawing (eager tasks predict it on commit) and return the stored answer as GET gives it."""
    response = client.post(
        "/api/v1/submissions", {"image_base64": base64.b64encode(drawing).decode(), "source": "canvas"}, format="json"
    )
    assert response.status_code in (201, 202), response.content
    body = client.get(response.json()["url"]).json()
    assert body["status"] == "predicted", body
    return body
