"""Headless Chromium (Debian's package) draws on the page with pointer events."""

import os
import shutil

import pytest

from ml.data import CLASSES
from recognition.models import Correction, Submission
from tests.site.conftest import require_service

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page():
    require_service("Chromium", shutil.which(CHROMIUM) is not None, f"install Debian's chromium or set CHROMIUM_PATH; tried {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service("Chromium", False, "the playwright Python package is not installed")
    # Playwright's sync API runs an event loop in this thread; the ORM calls in the test are
    # still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1000, "height": 900})
        finally:
            browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_drawing_a_stroke_and_pressing_predict_shows_and_stores_a_prediction(page, live_server, active_model):
    page.goto(live_server.url + "/")
    box = page.locator("#pad").bounding_box()
    x, y = box["x"], box["y"]
    w, h = box["width"], box["height"]
    page.mouse.move(x + w * 0.5, y + h * 0.15)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(x + w * 0.5, y + h * (0.15 + 0.7 * i / 20))
    page.mouse.up()
    page.click("#predict")

    page.wait_for_selector("#result:not([hidden]) #topk li", timeout=60_000)
    label = page.inner_text("#prediction")
    assert label in CLASSES
    assert page.locator("#topk li").count() == 5
    assert page.get_attribute("#input28", "src").startswith("data:image/png;base64,")

    row = Submission.objects.get()
    assert row.status == "predicted" and row.predicted_label == label and row.source == "canvas"
    assert row.strokes and len(row.strokes[0]) >= 10
    assert page.get_attribute("#result", "data-submission-id") == str(row.id)

    # One click says what it really was.
    page.click('#labels button[data-label="l"]')
    page.wait_for_selector("#labels button.chosen", timeout=10_000)
    assert Correction.objects.get().label == "l"
    page.wait_for_selector("#recent li img", timeout=10_000)


def test_uploading_an_image_file_shows_and_stores_a_prediction(page, live_server, active_model, tmp_path):
    from PIL import Image, ImageDraw

    photo = tmp_path / "scan.jpg"
    image = Image.new("RGB", (400, 300), "white")  # dark ink on light paper
    ImageDraw.Draw(image).ellipse((150, 80, 250, 220), outline="black", width=14)
    image.save(photo)
    page.goto(live_server.url + "/")
    page.set_input_files("#upload", str(photo))
    page.wait_for_selector("#result:not([hidden]) #topk li", timeout=60_000)
    row = Submission.objects.get()
    assert row.source == "upload" and row.content_type == "image/jpeg"
    assert page.inner_text("#prediction") == row.predicted_label
