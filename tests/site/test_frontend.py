import pytest

pytestmark = pytest.mark.django_db


def test_the_page_serves_the_canvas_and_its_own_scripts(client):
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="pad"' in html and "/static/frontend/app.js" in html and "/static/frontend/app.css" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # no CDN
    # The 62 labels (for the correction pickers) and the look-alike groups come from the server.
    assert '<script id="labels-data" type="application/json">' in html
    assert '<script id="lookalike-data" type="application/json">' in html
    assert "csrftoken" in response.cookies


def test_the_canvas_css_stops_touch_scrolling(client):
    css = b"".join(client.get("/static/frontend/app.css").streaming_content)
    assert b"touch-action: none" in css


def test_the_script_draws_with_pointer_events(client):
    js = b"".join(client.get("/static/frontend/app.js").streaming_content)
    assert b"pointerdown" in js and b"setPointerCapture" in js


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
    js = b"".join(client.get("/static/frontend/app.js").streaming_content)
    assert b'"0", "O"' not in js and b"'0', 'O'" not in js  # no copy of the list in the script
