"""Headless Chromium (Debian's package) draws on the page: mouse, touch on a phone, a pen."""

import pytest

from ml.data import CLASSES
from recognition.models import Correction, Submission
from tests.site.browser import PHONE, draw, ellipse, line, no_horizontal_overflow, screenshot
from tests.site.helpers import answer_with

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_drawing_a_stroke_and_pressing_predict_shows_and_stores_a_prediction(page, live_server, shipped_model):
    page.goto(live_server.url + "/")
    draw(page, ellipse(0.5, 0.5, 0.25, 0.33))
    page.click("#predict")

    page.wait_for_selector("#result:not([hidden]) .char-card .bars li", timeout=60_000)
    label = page.inner_text("#prediction")
    assert label in CLASSES
    assert page.locator(".char-card .bars li").count() == 5
    assert page.get_attribute(".char-card img.input28", "src").startswith("data:image/png;base64,")
    # The 28x28 is upscaled with hard pixel edges.
    assert page.eval_on_selector(".char-card img.input28", "img => getComputedStyle(img).imageRendering") in (
        "pixelated",
        "crisp-edges",
    )

    row = Submission.objects.get()
    assert row.status == "predicted" and row.predicted_label == label and row.source == "canvas"
    assert row.strokes and len(row.strokes[0]) >= 10
    assert page.get_attribute("#result", "data-submission-id") == str(row.id)

    # Say what it really was, with the labelled picker.
    page.select_option("#fix-0", "Q")
    page.click(".char-card .fix button")
    page.wait_for_selector('.char-card .fix[data-saved="Q"]', timeout=10_000)
    assert Correction.objects.get().label == "Q"
    # The recent list is fetched again after the correction: wait for that answer, not the first.
    page.wait_for_function("document.querySelector('#recent').innerText.includes('Q')", timeout=10_000)
    assert "Q" in page.inner_text("#recent")
    page.wait_for_timeout(300)  # let the shipped fonts settle before the picture
    screenshot(page, "desktop.png", full_page=True)


def test_uploading_an_image_file_shows_and_stores_a_prediction(page, live_server, active_model, tmp_path):
    from PIL import Image, ImageDraw

    photo = tmp_path / "scan.jpg"
    image = Image.new("RGB", (400, 300), "white")  # dark ink on light paper
    ImageDraw.Draw(image).ellipse((150, 80, 250, 220), outline="black", width=14)
    image.save(photo)
    page.goto(live_server.url + "/")
    page.set_input_files("#upload", str(photo))
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=60_000)
    row = Submission.objects.get()
    assert row.source == "upload" and row.content_type == "image/jpeg"
    assert page.inner_text("#prediction") == row.predicted_label


def touch_drag(page, points):
    """Real touch events through the DevTools protocol (Playwright's touchscreen only taps)."""
    session = page.context.new_cdp_session(page)
    box = page.locator("#pad").bounding_box()
    at = lambda p: {"x": box["x"] + box["width"] * p[0], "y": box["y"] + box["height"] * p[1], "id": 1}  # noqa: E731
    session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [at(points[0])]})
    for p in points[1:]:
        session.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [at(p)]})
    session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    session.detach()


def test_a_finger_draws_on_a_phone_without_scrolling_the_page(phone, live_server, shipped_model):
    phone.goto(live_server.url + "/")
    assert phone.viewport_size == PHONE
    assert no_horizontal_overflow(phone)
    # Scroll so the page could move both ways, then drag a finger down the canvas: without
    # touch-action: none the browser would scroll the page instead of drawing.
    phone.evaluate("window.scrollTo(0, 60)")
    phone.wait_for_timeout(200)
    before = phone.evaluate("window.scrollY")
    assert before > 0, "the phone layout should be taller than the screen"
    touch_drag(phone, line(0.5, 0.15, 0.5, 0.85, n=20))
    phone.wait_for_timeout(300)
    assert phone.evaluate("window.scrollY") == before
    assert phone.get_attribute("#pad", "data-strokes") == "1"
    touch_drag(phone, line(0.3, 0.3, 0.5, 0.15, n=8))
    assert phone.get_attribute("#pad", "data-strokes") == "2"
    assert phone.evaluate("window.scrollY") == before

    phone.tap("#predict")
    phone.wait_for_selector("#result:not([hidden]) .char-card .bars li", timeout=60_000)
    row = Submission.objects.get()
    assert len(row.strokes) == 2 and len(row.strokes[0]) >= 10
    assert no_horizontal_overflow(phone)
    phone.evaluate("window.scrollTo(0, 0)")
    phone.wait_for_timeout(300)
    screenshot(phone, "phone.png", full_page=True)


def test_the_word_canvas_fits_a_phone_too(phone, live_server, active_model):
    phone.goto(live_server.url + "/")
    phone.check('input[name="mode"][value="word"]')
    assert no_horizontal_overflow(phone)
    box = phone.locator("#pad").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert box["width"] > 1.8 * box["height"]


def pen_stroke(page, force: float, y: float):
    """A pen stroke across the canvas at height ``y`` (fraction), pressing with ``force``."""
    session = page.context.new_cdp_session(page)
    box = page.locator("#pad").bounding_box()

    def send(kind, p, buttons):
        session.send(
            "Input.dispatchMouseEvent",
            {
                "type": kind,
                "x": box["x"] + box["width"] * p[0],
                "y": box["y"] + box["height"] * p[1],
                "button": "left",
                "buttons": buttons,
                "clickCount": 1,
                "pointerType": "pen",
                "force": force,
            },
        )

    points = line(0.15, y, 0.85, y, n=10)
    send("mousePressed", points[0], 1)
    for p in points[1:]:
        send("mouseMoved", p, 1)
    send("mouseReleased", points[-1], 0)
    session.detach()


def ink_height(page, y: float) -> int:
    """How many rows of the canvas have ink in the middle column near height ``y``."""
    return page.evaluate(
        """(y) => { const c = document.getElementById('pad'); const d = c.getContext('2d').getImageData(c.width/2, 0, 1, c.height).data;
                    let n = 0; const mid = Math.round(y * c.height);
                    for (let r = mid - 40; r <= mid + 40; r++) if (d[r * 4 + 3] > 128) n++; return n; }""",
        y,
    )


def test_a_pen_draws_wider_the_harder_it_presses(page, live_server, active_model):
    page.goto(live_server.url + "/")
    pen_stroke(page, 0.1, 0.3)
    pen_stroke(page, 1.0, 0.7)
    assert page.get_attribute("#pad", "data-strokes") == "2"
    light, heavy = ink_height(page, 0.3), ink_height(page, 0.7)
    assert 0 < light < heavy, (light, heavy)


@pytest.mark.parametrize(
    "top_k, expected",
    [
        (
            [("o", 0.5), ("O", 0.3), ("0", 0.15), ("c", 0.03), ("a", 0.02)],
            "o, O and 0 look almost the same in handwriting; the model is unsure between them",
        ),
        (
            [("s", 0.6), ("S", 0.35), ("5", 0.03), ("g", 0.01), ("a", 0.01)],
            "s and S are the same letter in lower and upper case",
        ),
        ([("1", 0.5), ("l", 0.3), ("7", 0.1), ("I", 0.05), ("i", 0.01)], "1, l and I look almost the same"),
        ([("A", 0.9), ("4", 0.05), ("H", 0.03), ("R", 0.01), ("a", 0.01)], None),
        ([("7", 0.8), ("1", 0.1), ("l", 0.05), ("T", 0.03), ("I", 0.02)], None),  # 7 has no look-alike
    ],
)
def test_lookalike_answers_are_explained_in_words(page, live_server, active_model, top_k, expected):
    page.goto(live_server.url + "/")
    answer_with(page, top_k)
    draw(page, line(0.5, 0.15, 0.5, 0.85))
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=20_000)
    notes = page.locator(".char-card .lookalike")
    if expected is None:
        assert notes.count() == 0
    else:
        assert expected in notes.inner_text()


def test_on_a_phone_the_answer_is_scrolled_into_view(phone, live_server, active_model):
    phone.goto(live_server.url + "/")
    touch_drag(phone, line(0.5, 0.15, 0.5, 0.85, n=12))
    phone.tap("#predict")
    phone.wait_for_selector("#result:not([hidden]) .bars li", timeout=60_000)
    phone.wait_for_function(
        "document.getElementById('result').getBoundingClientRect().top < window.innerHeight / 2", timeout=5_000
    )
    assert no_horizontal_overflow(phone)
