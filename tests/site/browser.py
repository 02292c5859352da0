"""Headless Chromium (Debian's package) through Playwright, shared by the browser tests.

Import the fixtures into a test module: ``from tests.site.browser import browser, page, phone  # noqa: F401``.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from recognition.models import ModelVersion
from tests.site.conftest import require_service

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--font-render-hinting=none",
]
# Committed, so the README can show them; every run of the browser tests refreshes them.
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
DESKTOP = {"width": 1200, "height": 900}
PHONE = {"width": 360, "height": 740}


@pytest.fixture(scope="module")
def browser():
    require_service("Chromium", shutil.which(CHROMIUM) is not None, f"install Debian's chromium or set CHROMIUM_PATH; tried {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service("Chromium", False, "the playwright Python package is not installed")
    # Playwright's sync API runs an event loop in this thread; the ORM calls in the tests are
    # still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=DESKTOP)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def phone(browser):
    """A 360x740 touch screen, as a small Android phone."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def shipped_model(db):
    """The committed model with its real evaluation report: labels that mean something."""
    report = json.loads((Path(settings.BASE_DIR) / settings.SHIPPED_MODEL_REPORT_PATH).read_text())
    return ModelVersion.objects.create(
        name="emnist_cnn",
        file_path=settings.SHIPPED_MODEL_PATH,
        status=ModelVersion.Status.ACTIVE,
        metrics={"validation": report["validation"]},
        training_summary={"source": "shipped"},
    )


def screenshot(page, name: str, **kwargs) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), **kwargs)
    return path


def draw(page, points, *, selector="#pad"):
    """Drag the mouse through ``points`` given as fractions (0..1) of the canvas box."""
    box = page.locator(selector).bounding_box()
    at = lambda p: (box["x"] + box["width"] * p[0], box["y"] + box["height"] * p[1])  # noqa: E731
    page.mouse.move(*at(points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*at(p), steps=3)
    page.mouse.up()


def line(x0, y0, x1, y1, n=12):
    return [(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(n + 1)]


def ellipse(cx, cy, rx, ry, n=28):
    import math

    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)) for i in range(n + 1)]


def no_horizontal_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
