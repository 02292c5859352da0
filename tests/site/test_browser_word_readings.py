"""A word's readings on the page: sizes decide case, one tap picks a reading."""

import pytest

from recognition.models import Correction, Word
from tests.site.browser import draw, ellipse

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def write_tall_and_short_o(page):
    """A tall ellipse (as tall as a capital) and a short one (x-height), on one baseline."""
    draw(page, ellipse(0.35, 0.5, 0.07, 0.33))
    draw(page, ellipse(0.6, 0.65, 0.06, 0.18))


def test_the_page_reads_a_tall_and_a_short_o_by_their_sizes_and_one_tap_picks_a_reading(
    page, live_server, shipped_model
):
    page.goto(live_server.url + "/")
    page.check('input[name="mode"][value="word"]')
    write_tall_and_short_o(page)
    page.click("#predict")
    page.wait_for_selector("#readings:not([hidden]) .reading", timeout=90_000)
    word = Word.objects.get()
    assert len(word.readings) == 3
    # Each ellipse alone is an o/O/0 look-alike; beside each other their sizes say which case.
    assert page.inner_text("#prediction") == word.readings[0]["text"] == "Oo", word.readings
    buttons = page.locator("#reading-list .reading")
    assert buttons.count() == 3
    assert [buttons.nth(i).get_attribute("data-text") for i in range(3)] == [r["text"] for r in word.readings]
    # Per-character correction stays: a card and a picker for each character.
    assert page.locator(".char-card .fix select").count() == 2

    # Tapping the second reading corrects exactly the characters where it differs from what they read as.
    characters = word._characters()
    second = word.readings[1]["text"]
    differing = [c for c, ch in zip(characters, second) if c.predicted_label != ch]
    buttons.nth(1).click()
    page.wait_for_selector('#reading-list .reading[aria-pressed="true"]', timeout=10_000)
    assert page.inner_text("#prediction") == second
    stored = {c.submission_id: c.label for c in Correction.objects.all()}
    assert stored == {c.id: second[c.position] for c in differing}
    assert "stored" in page.inner_text("#reading-message") or not differing
