"""The drawing page's behaviour around a prediction: when it predicts on its own, where it
scrolls, what the pickers start on, where the ink lands, and how it says it is unsure."""

import time

import pytest

from recognition.models import Correction, Submission, Word
from recognition.services import submissions
from tests.site.browser import draw, ellipse, line
from tests.site.helpers import answer_with

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

FONT_NAMES = ["Calligraphy", "Handwriting", "Serif", "Sans", "Mono"]


def posts_to(page, path: str) -> list:
    """Every POST the page sends to ``path``, as it sends it."""
    sent = []
    page.on(
        "request",
        lambda request: sent.append(request) if request.method == "POST" and request.url.endswith(path) else None,
    )
    return sent


def wait_until(page, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(200)


def write_e(page):
    """A capital E in four strokes, one after the other as a hand would."""
    draw(page, line(0.3, 0.15, 0.3, 0.85))
    draw(page, line(0.3, 0.15, 0.7, 0.15))
    draw(page, line(0.3, 0.5, 0.6, 0.5))
    draw(page, line(0.3, 0.85, 0.7, 0.85))


# ---- "Predict when the pen lifts" ---------------------------------------------------------


def test_predict_when_the_pen_lifts_waits_for_the_last_stroke_and_sends_the_whole_drawing(
    page, live_server, active_model, settings
):
    settings.PAGE_AUTO_PAUSE_MS = 1500
    page.goto(live_server.url + "/")
    sent = posts_to(page, "/api/v1/submissions")
    page.check("#auto")
    write_e(page)
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=60_000)
    page.wait_for_timeout(2 * settings.PAGE_AUTO_PAUSE_MS)  # nothing else is coming
    assert len(sent) == 1
    row = Submission.objects.get()  # no partial drawing was stored
    assert len(row.strokes) == 4


@pytest.mark.parametrize("trigger", ["the pen lifts", "Enter"])
def test_a_stroke_added_while_a_prediction_is_in_flight_is_read_too(
    page, live_server, active_model, settings, trigger, monkeypatch
):
    settings.PAGE_AUTO_PAUSE_MS = 300
    predict = submissions.predict_pending_batch

    def slowly(**kwargs):  # the first answer takes a while
        time.sleep(2)
        return predict(**kwargs)

    monkeypatch.setattr(submissions, "predict_pending_batch", slowly)
    page.goto(live_server.url + "/")
    sent = posts_to(page, "/api/v1/submissions")
    if trigger == "the pen lifts":
        page.check("#auto")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/v1/submissions"), timeout=10_000):
        draw(page, line(0.5, 0.15, 0.5, 0.85))
        if trigger == "Enter":
            page.keyboard.press("Enter")
    draw(page, line(0.3, 0.3, 0.5, 0.15))  # while the first drawing is being read
    if trigger == "Enter":
        page.keyboard.press("Enter")
    wait_until(page, lambda: Submission.objects.count() == 2)
    page.wait_for_function("document.getElementById('working').hidden", timeout=30_000)
    assert len(sent) == 2
    first, last = Submission.objects.order_by("created_at")
    assert len(first.strokes) == 1 and len(last.strokes) == 2
    assert page.get_attribute("#result", "data-submission-id") == str(last.id)  # the final drawing's answer


def test_in_word_mode_enter_clear_and_undo_cancel_the_waiting_auto_prediction(
    page, live_server, active_model, settings
):
    settings.PAGE_WORD_PAUSE_MS = 800
    rest = 2500  # longer than any pause the page could be waiting for
    page.goto(live_server.url + "/")
    sent = posts_to(page, "/api/v1/words")
    page.check('input[name="mode"][value="word"]')
    page.check("#auto")

    draw(page, line(0.2, 0.15, 0.2, 0.85))
    page.keyboard.press("Enter")  # before the pause is over
    page.wait_for_selector("#result:not([hidden]) .char-card", timeout=60_000)
    page.wait_for_timeout(rest)
    assert len(sent) == 1 and Word.objects.count() == 1

    page.keyboard.press("Escape")
    draw(page, line(0.2, 0.15, 0.2, 0.85))
    page.click("#clear")
    page.wait_for_timeout(rest)
    assert page.inner_text("#message") == ""  # no "the canvas is empty" out of nowhere
    assert len(sent) == 1

    draw(page, line(0.2, 0.15, 0.2, 0.85))
    draw(page, line(0.5, 0.15, 0.5, 0.85))
    page.click("#undo")
    page.wait_for_timeout(rest)
    assert len(sent) == 1 and Word.objects.count() == 1


# ---- after a prediction -------------------------------------------------------------------


def test_a_word_prediction_on_a_desktop_keeps_the_canvas_on_screen(browser, live_server, active_model):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, reduced_motion="reduce")
    try:
        page = context.new_page()
        page.goto(live_server.url + "/")
        page.check('input[name="mode"][value="word"]')
        draw(page, line(0.2, 0.15, 0.2, 0.85))
        draw(page, ellipse(0.5, 0.5, 0.08, 0.3))
        page.click("#predict")
        page.wait_for_selector("#result:not([hidden]) .char-card", timeout=60_000)
        page.wait_for_timeout(500)
        pad = page.evaluate(
            "(() => { const r = document.getElementById('pad').getBoundingClientRect(); return [r.top, r.bottom]; })()"
        )
        assert pad[0] >= 0 and pad[1] <= 900, pad  # the drawing is still in view
        assert (
            page.evaluate("document.getElementById('result').getBoundingClientRect().top") < 900
        )  # and the answer begins on screen
    finally:
        context.close()


def test_the_font_chooser_keeps_its_names_after_a_prediction(page, live_server, active_model):
    page.goto(live_server.url + "/")
    draw(page, ellipse(0.5, 0.5, 0.25, 0.3))
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=60_000)
    for name in FONT_NAMES:
        assert page.get_by_role("radio", name=name, exact=True).count() == 1, name
    assert page.inner_text("#styled") == page.inner_text("#prediction")  # the answer is still shown in the font


def test_the_correction_picker_starts_on_choose_and_save_needs_a_choice(page, live_server, active_model):
    page.goto(live_server.url + "/")
    draw(page, ellipse(0.5, 0.5, 0.25, 0.3))
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=60_000)
    assert page.eval_on_selector("#fix-0", "s => s.value") == ""
    assert page.eval_on_selector("#fix-0", "s => s.selectedOptions[0].textContent").startswith("Choose")

    page.click(".char-card .fix button")
    page.wait_for_function(
        "document.querySelector('.char-card .fix-message').textContent.includes('Choose')", timeout=5_000
    )
    assert Correction.objects.count() == 0

    page.select_option("#fix-0", "Q")
    page.click(".char-card .fix button")
    page.wait_for_selector('.fix[data-saved="Q"]', timeout=10_000)
    assert Correction.objects.get().label == "Q"


def test_ink_lands_under_the_pointer_even_at_the_edges_of_the_canvas(page, live_server, active_model):
    page.goto(live_server.url + "/")
    # The canvas has a border: its 280 pixels span the content box, not the border box.
    box = page.evaluate(
        """(() => { const c = document.getElementById('pad'), r = c.getBoundingClientRect(), s = getComputedStyle(c);
                    const l = parseFloat(s.borderLeftWidth), t = parseFloat(s.borderTopWidth);
                    return {x: r.left + l, y: r.top + t, w: r.width - l - parseFloat(s.borderRightWidth), h: r.height - t - parseFloat(s.borderBottomWidth), border: l}; })()"""
    )
    assert box["border"] >= 1
    for cx, cy in ((4, 4), (box["w"] - 4, box["h"] - 4)):
        page.mouse.move(box["x"] + cx, box["y"] + cy)
        page.mouse.down()
        page.mouse.move(box["x"] + box["w"] / 2, box["y"] + box["h"] / 2, steps=4)
        page.mouse.up()
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=60_000)
    strokes = Submission.objects.get().strokes
    scale = 280 / box["w"]
    assert strokes[0][0][:2] == pytest.approx([4 * scale, 4 * scale], abs=0.3)
    assert strokes[1][0][:2] == pytest.approx([280 - 4 * scale, 280 - 4 * scale], abs=0.3)


# ---- the page itself --------------------------------------------------------------------


def test_both_pages_link_a_favicon_and_load_without_a_missing_file(page, live_server, active_model):
    failed = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    for path in ("/", "/model"):
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        href = page.get_attribute('link[rel="icon"]', "href")
        assert href, path
        icon = page.request.get(live_server.url + href)
        assert icon.status == 200 and icon.headers["content-type"].startswith("image/")
    assert failed == []


def test_a_broken_recent_list_raises_no_unhandled_error(page, live_server, active_model):
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A proxy's error page, or anything but the API's list: the page must shrug it off.
    page.route(
        "**/api/v1/submissions?page_size=*",
        lambda route: route.fulfill(status=200, body="{}", headers={"Content-Type": "application/json"}),
    )
    page.goto(live_server.url + "/")
    draw(page, ellipse(0.5, 0.5, 0.25, 0.3))
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=60_000)
    page.wait_for_timeout(500)
    assert errors == []


# ---- honest confidence ------------------------------------------------------------------


def test_an_unsure_answer_says_so_and_asks_which_guess_is_right(page, live_server, active_model):
    page.goto(live_server.url + "/")
    answer_with(page, [("O", 0.34), ("0", 0.3), ("o", 0.2), ("Q", 0.1), ("D", 0.06)])
    draw(page, ellipse(0.5, 0.5, 0.25, 0.3))
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=20_000)
    assert "not sure" in page.inner_text("#result-title")
    assert "It looks like" not in page.inner_text("#result-title")
    assert "Which of its guesses is right?" in page.inner_text(".char-card .unsure")
    assert "not sure" in page.inner_text("#announce")
    # The picker has the focus, its guesses first, and waits for a choice.
    assert page.evaluate("document.activeElement.id") == "fix-0"
    guesses = page.eval_on_selector("#fix-0 optgroup", "g => [...g.children].map(o => o.value)")
    assert guesses == ["O", "0", "o", "Q", "D"]
    assert page.eval_on_selector("#fix-0", "s => s.value") == ""


@pytest.mark.parametrize("threshold, unsure", [(0.5, False), (0.95, True)])
def test_how_sure_is_sure_enough_is_a_setting(page, live_server, active_model, settings, threshold, unsure):
    settings.UNSURE_BELOW = threshold
    page.goto(live_server.url + "/")
    answer_with(page, [("A", 0.9), ("4", 0.05), ("H", 0.03), ("R", 0.01), ("a", 0.01)])
    draw(page, line(0.5, 0.15, 0.5, 0.85))
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=20_000)
    assert ("not sure" in page.inner_text("#result-title")) is unsure
    assert page.locator(".char-card .unsure").count() == (1 if unsure else 0)
    assert (page.evaluate("document.activeElement.id") == "fix-0") is unsure
