"""Every answer under /api/ that is an error is {"detail", "code"} JSON, including those no API
view writes: an unknown path, a wrong method on the (YAML) schema, a Host the site does not serve."""

import pytest

pytestmark = pytest.mark.django_db


def assert_json_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["code"] == code and body["detail"], body


@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v2/submissions", "/api/", "/api/v1/submissions/x/y/z"])
def test_an_unknown_api_path_is_a_json_404(anon, path):
    assert_json_error(anon.get(path), 404, "not_found")


def test_an_unknown_page_outside_the_api_is_still_an_html_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_a_wrong_method_on_the_schema_is_a_json_405_not_yaml(anon, method):
    response = getattr(anon, method)("/api/v1/schema")
    assert_json_error(response, 405, "method_not_allowed")


def test_the_schema_itself_is_still_yaml_by_default(anon):
    response = anon.get("/api/v1/schema")
    assert response.status_code == 200
    assert "openapi" in response.content.decode()[:100]
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")


def test_an_unknown_schema_format_is_a_json_404(anon):
    # DRF answers an unknown ?format= with 404 (not acceptable by URL); JSON all the same.
    assert_json_error(anon.get("/api/v1/schema?format=xml"), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/v1/labels", "/api/v1/submissions", "/api/v1/nothing-here"])
def test_a_host_the_site_does_not_serve_is_a_json_400(anon, path):
    response = anon.get(path, HTTP_HOST="evil.example")
    assert_json_error(response, 400, "bad_request")
    assert "evil.example" not in response.content.decode()


def test_a_bad_host_outside_the_api_is_still_django_s_html_400(client):
    response = client.get("/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
