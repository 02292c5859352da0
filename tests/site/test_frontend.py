import pytest

pytestmark = pytest.mark.django_db


def test_the_page_serves_the_canvas_and_its_own_scripts(client):
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="pad"' in html and "/static/frontend/app.js" in html and "/static/frontend/app.css" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # no CDN
    assert html.count("data-label=") == 62
    assert "csrftoken" in response.cookies


def test_the_canvas_css_stops_touch_scrolling(client):
    css = b"".join(client.get("/static/frontend/app.css").streaming_content)
    assert b"touch-action: none" in css


def test_the_script_draws_with_pointer_events(client):
    js = b"".join(client.get("/static/frontend/app.js").streaming_content)
    assert b"pointerdown" in js and b"setPointerCapture" in js
