"""Writing a word on the wide canvas: one recognised character each, each correctable."""

import pytest

from ml.data import CLASSES
from recognition.models import Correction, Word
from tests.site.browser import draw, ellipse, line, no_horizontal_overflow, screenshot

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def write_1_o_l(page):
    """Three characters left to right, with room between them: 1, O, L."""
    draw(page, line(0.17, 0.15, 0.17, 0.85))
    draw(page, ellipse(0.5, 0.5, 0.08, 0.33))
    draw(page, line(0.78, 0.15, 0.78, 0.85) + line(0.78, 0.85, 0.9, 0.85)[1:])


def test_writing_three_characters_gives_three_recognised_characters_each_correctable(page, live_server, shipped_model):
    page.goto(live_server.url + "/")
    page.check('input[name="mode"][value="word"]')
    box = page.locator("#pad").bounding_box()
    assert box["width"] > 2.5 * box["height"]  # the wide canvas
    assert page.eval_on_selector("#pad", "c => [c.width, c.height]") == [840, 280]
    write_1_o_l(page)
    assert page.get_attribute("#pad", "data-strokes") == "3"
    page.click("#predict")

    page.wait_for_selector("#result:not([hidden]) .char-card", timeout=90_000)
    cards = page.locator(".char-card")
    assert cards.count() == 3
    word = Word.objects.get()
    characters = word._characters()
    assert [c.position for c in characters] == [0, 1, 2]
    text = page.inner_text("#prediction")
    # The heading is the word's best reading in context (issue 18), else the characters' top-1.
    word.refresh_from_db()
    assert text == (word.readings[0]["text"] if word.readings else "".join(c.predicted_label for c in characters))
    assert len(text) == 3
    assert all(ch in CLASSES for ch in text)
    # The shipped model reads the ellipse as one of the o/O/0 look-alikes.
    assert text[1] in "0Oo", text
    for i in range(3):
        assert cards.nth(i).locator(".bars li").count() == 5
        assert cards.nth(i).locator("img.input28").get_attribute("src").startswith("data:image/png;base64,")
        assert cards.nth(i).get_attribute("data-submission-id") == str(characters[i].id)
    # Where the word was split is drawn over the canvas.
    assert page.evaluate(
        "() => { const c = document.getElementById('overlay'); return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v > 0); }"
    )

    # Correct the middle one, on its own.
    page.select_option("#fix-1", "O" if text[1] != "O" else "o")
    wanted = page.eval_on_selector("#fix-1", "s => s.value")
    page.click(".char-card:nth-child(2) .fix button")
    page.wait_for_selector(f'.char-card:nth-child(2) .fix[data-saved="{wanted}"]', timeout=10_000)
    correction = Correction.objects.get()
    assert correction.label == wanted and correction.submission_id == characters[1].id
    assert correction.submission.word_id == word.id and correction.submission.position == 1
    assert no_horizontal_overflow(page)
    page.wait_for_timeout(300)
    screenshot(page, "desktop-word.png", full_page=True)


def test_an_empty_word_canvas_is_refused_before_sending(page, live_server, shipped_model):
    page.goto(live_server.url + "/")
    page.check('input[name="mode"][value="word"]')
    page.click("#predict")
    assert "write a word first" in page.inner_text("#message")
    assert Word.objects.count() == 0


def test_a_photo_of_a_word_can_be_uploaded_in_word_mode(page, live_server, active_model, tmp_path):
    from PIL import Image, ImageDraw

    photo = tmp_path / "word.png"
    image = Image.new("RGB", (600, 200), "white")  # three marks on paper, well apart
    pen = ImageDraw.Draw(image)
    pen.line((100, 40, 100, 160), fill="black", width=14)
    pen.ellipse((250, 40, 340, 160), outline="black", width=14)
    pen.line((470, 40, 470, 160), fill="black", width=14)
    pen.line((470, 160, 540, 160), fill="black", width=14)
    image.save(photo)
    page.goto(live_server.url + "/")
    page.check('input[name="mode"][value="word"]')
    page.set_input_files("#upload", str(photo))
    page.wait_for_selector("#result:not([hidden]) .char-card", timeout=60_000)
    assert page.locator(".char-card").count() == 3
    word = Word.objects.get()
    assert word.source == "upload" and len(word._characters()) == 3
    # The boxes are in the photo's pixels: nothing is drawn over the (empty) canvas.
    assert not page.evaluate(
        "() => { const c = document.getElementById('overlay'); return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v > 0); }"
    )
