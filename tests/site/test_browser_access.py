"""Keyboard-only use, visible focus, contrast, and what the page says when things go wrong."""

import json

import pytest

from recognition.models import Correction, Submission
from tests.site.browser import draw, ellipse, line
from tests.site.helpers import answer_queued

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def has_focus(page, selector: str) -> bool:
    return page.evaluate("(s) => Boolean(document.activeElement && document.activeElement.matches(s))", selector)


def tab_to(page, selector: str, limit: int = 60) -> None:
    """Press Tab until ``selector`` has the focus, as someone without a mouse would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if has_focus(page, selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def open_file_chooser_by_keyboard(page):
    """Open the focused file input's chooser with the keyboard (Space, then Enter).

    Headless Chromium once let a Space press on the file input pass without a chooser (one
    CI run in many, on PostgreSQL): each key gets a few seconds, and only if none of them
    opens the chooser does the test fail.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    for key in ("Space", "Enter", "Space"):
        try:
            with page.expect_file_chooser(timeout=10_000) as chooser:
                page.keyboard.press(key)
            return chooser.value
        except PlaywrightTimeoutError:
            continue
    raise AssertionError("neither Space nor Enter opened the file chooser of the focused input")


def focus_ring(page) -> str:
    return page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement); return s.outlineStyle + ' ' + s.outlineWidth; }"
    )


def test_someone_with_only_a_keyboard_uploads_a_scan_and_corrects_the_answer(
    page, live_server, active_model, tmp_path, settings
):
    from PIL import Image, ImageDraw

    settings.UNSURE_BELOW = 0  # the answer as if sure: the person goes looking for the picker

    scan = tmp_path / "scan.png"
    image = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(image).line((100, 30, 100, 170), fill=0, width=16)
    image.save(scan)
    page.goto(live_server.url + "/")

    tab_to(page, "#upload")
    assert focus_ring(page).startswith("solid")
    open_file_chooser_by_keyboard(page).set_files(str(scan))
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=60_000)
    assert "It looks like" in page.inner_text("#announce")  # the live region read it out

    tab_to(page, "#fix-0")
    assert page.evaluate("document.activeElement.labels[0].textContent").startswith("Wrong?")
    # In a closed select, arrow keys change the choice; Tab moves on to the save button.
    page.keyboard.press("Home")
    page.keyboard.press("ArrowDown")
    chosen = page.eval_on_selector("#fix-0", "s => s.value")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Save correction"
    assert focus_ring(page).startswith("solid")
    page.keyboard.press("Enter")
    page.wait_for_selector(f'.fix[data-saved="{chosen}"]', timeout=10_000)
    correction = Correction.objects.get()
    assert correction.label == chosen and correction.submission.source == "upload"
    assert page.inner_text("#announce") == f"Correction stored: {chosen}"


def test_an_unsure_answer_hands_the_keyboard_to_the_correction_picker(page, live_server, active_model, settings):
    settings.UNSURE_BELOW = 1  # every answer is unsure (the untrained test model is anyway)
    page.goto(live_server.url + "/")
    draw(page, ellipse(0.5, 0.5, 0.25, 0.3))
    page.keyboard.press("Enter")
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=60_000)
    assert "not sure" in page.inner_text("#announce")
    assert has_focus(page, "#fix-0")  # no Tab needed
    assert page.evaluate("document.activeElement.labels[0].textContent").startswith("Which is it?")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # save with no choice: asked to choose, nothing stored
    page.wait_for_function(
        "document.querySelector('.char-card .fix-message').textContent.includes('Choose')", timeout=5_000
    )
    assert Correction.objects.count() == 0 and has_focus(page, "#fix-0")
    page.keyboard.press("ArrowDown")  # the model's first guess
    chosen = page.eval_on_selector("#fix-0", "s => s.value")
    assert chosen == page.inner_text("#prediction")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector(f'.fix[data-saved="{chosen}"]', timeout=10_000)
    assert Correction.objects.get().label == chosen


def test_the_keyboard_shortcuts_undo_clear_and_predict(page, live_server, active_model, settings):
    settings.UNSURE_BELOW = 0  # a sure answer leaves the focus on the canvas, where the shortcuts are
    page.goto(live_server.url + "/")
    draw(page, line(0.5, 0.15, 0.5, 0.85))
    draw(page, line(0.3, 0.3, 0.5, 0.15))
    assert page.get_attribute("#pad", "data-strokes") == "2"
    assert page.evaluate("document.activeElement.id") == "pad"

    page.keyboard.press("Control+z")
    assert page.get_attribute("#pad", "data-strokes") == "1"
    page.keyboard.press("Escape")
    assert page.get_attribute("#pad", "data-strokes") == "0"

    page.keyboard.press("Enter")  # nothing drawn: said before anything is sent
    assert "empty" in page.inner_text("#message")
    assert Submission.objects.count() == 0

    draw(page, ellipse(0.5, 0.5, 0.25, 0.3))
    page.keyboard.press("Enter")
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=60_000)
    assert Submission.objects.count() == 1
    page.keyboard.press("Delete")
    assert page.get_attribute("#pad", "data-strokes") == "0"

    # Every control has a name a screen reader can say.
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('button, select, input, canvas[tabindex]')].filter(e => {
               const label = e.getAttribute('aria-label') || (e.labels && [...e.labels].map(l => l.textContent).join('')) || e.textContent;
               return !label || !label.trim(); }).map(e => e.outerHTML)"""
    )
    assert unnamed == []


CONTRAST_JS = """() => {
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const lum = c => { const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const background = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.length < 4 || c[3] > 0.9) { if (c.length < 4 || c[3] > 0) return c; } } return [255, 255, 255]; };
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode());) {
    const el = node.parentElement;
    if (!node.textContent.trim() || !el.checkVisibility() || el.closest('svg, .visually-hidden, [aria-hidden="true"]')) continue;
    const style = getComputedStyle(el);
    if (el.closest('button:disabled')) continue;  // WCAG exempts inactive controls
    const fg = lum(rgb(style.color)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) bad.push(node.textContent.trim().slice(0, 30) + ' ' + ratio.toFixed(2));
  }
  return bad;
}"""


def test_every_text_on_the_page_meets_wcag_aa_contrast(page, live_server, active_model):
    page.goto(live_server.url + "/")
    draw(page, ellipse(0.5, 0.5, 0.25, 0.3))
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=60_000)
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")  # the empty-canvas message is on screen too
    assert page.evaluate(CONTRAST_JS) == []


# ---- feedback ---------------------------------------------------------------------------


def test_a_blank_upload_shows_the_apis_reason(page, live_server, active_model, tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (120, 120), "white").save(blank)
    page.goto(live_server.url + "/")
    page.set_input_files("#upload", str(blank))
    page.wait_for_selector("#message:not(:empty)", timeout=30_000)
    assert "no ink" in page.inner_text("#message").lower()
    assert page.is_hidden("#result") and Submission.objects.count() == 0


def fake_api(page, status: int, body: dict, headers: dict | None = None):
    """Answer POST /api/v1/submissions as a server in trouble would (throttled, failing)."""

    def handle(route):
        if route.request.method != "POST":
            return route.continue_()
        return route.fulfill(
            status=status, body=json.dumps(body), headers={"Content-Type": "application/json", **(headers or {})}
        )

    page.route("**/api/v1/submissions", handle)


def test_throttling_says_how_long_to_wait_and_holds_the_button(page, live_server, active_model):
    page.goto(live_server.url + "/")
    fake_api(page, 429, {"detail": "Request was throttled.", "code": "throttled"}, {"Retry-After": "7"})
    draw(page, line(0.5, 0.15, 0.5, 0.85))
    page.click("#predict")
    page.wait_for_selector('#message[data-kind="throttled"]', timeout=10_000)
    text = page.inner_text("#message")
    assert "wait 7 seconds" in text or "wait 6 seconds" in text
    assert page.is_disabled("#predict")


def test_a_server_error_and_a_dropped_connection_each_get_a_plain_message(page, live_server, active_model):
    page.goto(live_server.url + "/")
    fake_api(page, 500, {})
    draw(page, line(0.5, 0.15, 0.5, 0.85))
    page.click("#predict")
    page.wait_for_selector("#message:not(:empty)", timeout=10_000)
    assert "server had a problem (500)" in page.inner_text("#message")

    page.unroute("**/api/v1/submissions")
    page.route("**/api/v1/submissions", lambda route: route.abort("internetdisconnected"))
    page.click("#predict")
    page.wait_for_function(
        "document.getElementById('message').textContent.includes('Could not reach the server')", timeout=10_000
    )
    assert page.is_enabled("#predict")


def test_a_silent_server_times_out_instead_of_hanging(page, live_server, active_model, settings):
    settings.PAGE_REQUEST_TIMEOUT_MS = 1500  # rendered into the page's config
    page.goto(live_server.url + "/")
    page.route("**/api/v1/submissions", lambda route: None if route.request.method == "POST" else route.continue_())
    draw(page, line(0.5, 0.15, 0.5, 0.85))
    page.click("#predict")
    page.wait_for_selector("#working", state="visible", timeout=5_000)
    page.wait_for_function(
        "document.getElementById('message').textContent.includes('did not answer within 2 seconds')", timeout=10_000
    )
    assert page.is_hidden("#working") and page.is_enabled("#predict")


def test_a_queued_prediction_shows_still_working_then_the_answer(page, live_server, active_model, drawing, settings):
    """202 + Location: the page polls, shows that it is still working, then the result."""
    from recognition import services

    done = services.submission_create(
        image=drawing, content_type="image/png", source="canvas", strokes=None, owner=None, client_id=""
    )
    done.refresh_from_db()
    polls = []

    def detail(route):
        polls.append(1)
        if len(polls) < 3:
            return route.fulfill(
                status=200,
                body=json.dumps({"id": "queued", "url": "/api/v1/submissions/queued", "status": "pending"}),
                headers={"Content-Type": "application/json"},
            )
        from recognition.api.serializers import SubmissionOutputSerializer

        return route.fulfill(
            status=200,
            body=json.dumps(SubmissionOutputSerializer(done).data, default=str),
            headers={"Content-Type": "application/json"},
        )

    settings.PAGE_POLL_DELAY_MS, settings.PAGE_POLL_TRIES = 400, 5
    page.goto(live_server.url + "/")
    answer_queued(page, "queued", top_k=[])
    page.route("**/api/v1/submissions/queued", detail)
    draw(page, line(0.5, 0.15, 0.5, 0.85))
    page.click("#predict")
    page.wait_for_function(
        "document.getElementById('working-text').textContent.startsWith('Still working')", timeout=10_000
    )
    page.wait_for_selector("#result:not([hidden]) .bars li", timeout=20_000)
    assert len(polls) == 3
    assert page.inner_text("#prediction") == done.predicted_label
    assert page.is_hidden("#working")


def test_polling_gives_up_after_a_bounded_number_of_tries(page, live_server, active_model, settings):
    polls = []

    def stuck(route):
        polls.append(1)
        route.fulfill(
            status=200,
            body=json.dumps({"id": "stuck", "status": "pending"}),
            headers={"Content-Type": "application/json"},
        )

    settings.PAGE_POLL_DELAY_MS, settings.PAGE_POLL_MAX_DELAY_MS, settings.PAGE_POLL_TRIES = 200, 300, 4
    page.goto(live_server.url + "/")
    answer_queued(page, "stuck")
    page.route("**/api/v1/submissions/stuck", stuck)
    draw(page, line(0.5, 0.15, 0.5, 0.85))
    page.click("#predict")
    page.wait_for_function(
        "document.getElementById('message').textContent.includes('still working on it')", timeout=15_000
    )
    assert len(polls) == 4
    assert page.is_hidden("#working") and page.is_enabled("#predict")
