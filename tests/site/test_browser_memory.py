"""Headless Chromium: draw, correct, draw again, and the page reads it using the correction (issue 19)."""

import pytest

from recognition.models import Correction, WriterMemoryEntry
from tests.site.browser import draw, ellipse, screenshot

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def read(page, points) -> str:
    page.click("#clear")
    draw(page, points)
    page.click("#predict")
    page.wait_for_function("document.querySelector('#announce').textContent.length > 0", timeout=60_000)
    page.wait_for_selector("#result:not([hidden]) .char-card .bars li", timeout=60_000)
    return page.inner_text("#prediction")


def test_draw_correct_draw_again_and_it_reads_your_hand_until_you_forget_it(page, live_server, shipped_model):
    page.goto(live_server.url + "/")
    shape = ellipse(0.5, 0.5, 0.22, 0.36)
    first = read(page, shape)
    assert first != "Q" and page.locator(".char-card .adapted").count() == 0
    page.select_option("#fix-0", "Q")
    page.click(".char-card .fix button")
    page.wait_for_selector('.char-card .fix[data-saved="Q"]', timeout=10_000)
    assert Correction.objects.get().label == "Q" and WriterMemoryEntry.objects.get().label == "Q"

    page.evaluate("document.querySelector('#announce').textContent = ''")
    assert read(page, shape) == "Q"
    assert page.inner_text(".char-card .adapted") == "Read using your corrections"
    screenshot(page, "memory.png", full_page=True)

    page.click("#forget-memory")
    page.wait_for_function(
        "document.querySelector('#memory-status').textContent.startsWith('Forgotten')", timeout=10_000
    )
    assert page.inner_text("#memory-status") == "Forgotten: 1 corrected drawing."
    assert WriterMemoryEntry.objects.count() == 0 and Correction.objects.count() == 1
    page.evaluate("document.querySelector('#announce').textContent = ''")
    assert read(page, shape) == first
    assert page.locator(".char-card .adapted").count() == 0
