import pytest

pytestmark = pytest.mark.django_db


def test_the_page_serves_the_canvas_and_its_own_scripts(client):
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="pad"' in html and "/static/frontend/app.css" in html
    # ES modules served as they are: no bundle, no build step.
    assert '<script type="module" src="/static/frontend/app.js">' in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # no CDN
    # The 62 labels (for the correction pickers) and the look-alike groups come from the server.
    assert '<script id="labels-data" type="application/json">' in html
    assert '<script id="lookalike-data" type="application/json">' in html
    assert "csrftoken" in response.cookies


def test_the_canvas_css_stops_touch_scrolling(client):
    css = b"".join(client.get("/static/frontend/app.css").streaming_content)
    assert b"touch-action: none" in css


def test_the_script_draws_with_pointer_events(client):
    js = b"".join(client.get("/static/frontend/canvas.js").streaming_content)
    assert b"pointerdown" in js and b"setPointerCapture" in js


def test_every_module_the_page_imports_is_served(client):
    import re

    seen, todo = set(), ["app.js", "model-page.js"]
    while todo:
        name = todo.pop()
        seen.add(name)
        response = client.get("/static/frontend/" + name)
        assert response.status_code == 200, name
        js = b"".join(response.streaming_content).decode()
        todo += [m for m in re.findall(r'from "\./([\w-]+\.js)"', js) if m not in seen]
    assert {"common.js", "api.js", "canvas.js", "render.js", "words.js"} <= seen


def test_the_page_config_comes_from_settings(client, settings):
    import json
    import re

    settings.UNSURE_BELOW = 0.75
    settings.PAGE_REQUEST_TIMEOUT_MS = 1234
    html = client.get("/").content.decode()
    config = json.loads(re.search(r'<script id="page-config" type="application/json">(.*?)</script>', html).group(1))
    assert config["unsureBelow"] == 0.75 and config["timeoutMs"] == 1234
    assert {"pollTries", "pollDelayMs", "pollMaxDelayMs", "autoPauseMs", "wordPauseMs"} <= config.keys()
    assert "HANDWRITING_CONFIG" not in "".join(
        p.read_text() for p in (settings.BASE_DIR / "frontend/static/frontend").glob("*.js")
    )


def test_both_pages_link_the_favicon(client):
    for path in ("/", "/model"):
        assert (
            '<link rel="icon" href="/static/frontend/favicon.svg" type="image/svg+xml">'
            in client.get(path).content.decode()
        )
    icon = b"".join(client.get("/static/frontend/favicon.svg").streaming_content)
    assert icon.startswith(b"<svg")


def test_the_shipped_fonts_are_served_with_their_licence(client):
    css = b"".join(client.get("/static/frontend/app.css").streaming_content)
    for name in (b"dancing-script-latin-700-normal.woff2", b"caveat-latin-400-normal.woff2"):
        assert name in css
        font = b"".join(client.get("/static/frontend/fonts/" + name.decode()).streaming_content)
        assert font[:4] == b"wOF2"
    licence = b"".join(client.get("/static/frontend/fonts/OFL-dancing-script.txt").streaming_content)
    assert b"SIL Open Font License" in licence


def test_the_page_embeds_the_lookalike_groups_from_ml_evaluate(client):
    import json
    import re

    from recognition.labels import lookalike_groups

    html = client.get("/").content.decode()
    data = re.search(r'<script id="lookalike-data" type="application/json">(.*?)</script>', html).group(1)
    assert json.loads(data) == lookalike_groups()
    for name in ("app.js", "render.js", "words.js"):
        js = b"".join(client.get("/static/frontend/" + name).streaming_content)
        assert b'"0", "O"' not in js and b"'0', 'O'" not in js  # no copy of the list in the scripts
