"""Strokes and JSON built to cost: deep nesting, huge numbers, a million points. Each is a 400
that names it, with no row, on every endpoint that takes a drawing."""

import base64
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from recognition.api.inputs import MAX_STROKE_POINTS
from recognition.api.parsers import MAX_CONTAINERS, MAX_DEPTH, json_depth
from recognition.models import Submission, Word
from tests.site.conftest import canvas_png

pytestmark = pytest.mark.django_db

ENDPOINTS = ["/api/v1/submissions", "/api/v1/words"]
DEEP = "[" * 100_000 + "]" * 100_000


def json_body(strokes_json: str) -> str:
    image = base64.b64encode(canvas_png()).decode()
    return f'{{"image_base64": "{image}", "strokes": {strokes_json}}}'


def assert_refused(response, code: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == code and body["detail"], body
    assert Submission.objects.count() == 0 and Word.objects.count() == 0


@pytest.mark.parametrize("url", ENDPOINTS)
def test_strokes_nested_100000_deep_in_a_json_body_are_a_400(anon, url):
    response = anon.generic("POST", url, json_body(DEEP), content_type="application/json")
    assert_refused(response, "json_too_complex")


@pytest.mark.parametrize("url", ENDPOINTS)
def test_strokes_nested_100000_deep_in_a_multipart_field_are_a_400(anon, url):
    upload = SimpleUploadedFile("a.png", canvas_png(), content_type="image/png")
    response = anon.post(url, {"image": upload, "strokes": DEEP}, format="multipart")
    assert_refused(response, "invalid")
    assert "strokes" in response.json()["errors"]


def test_a_correction_body_nested_100000_deep_is_a_400(anon):
    response = anon.generic("POST", "/api/v1/submissions/x/correction", DEEP, content_type="application/json")
    assert_refused(response, "json_too_complex")


@pytest.mark.parametrize("url", ENDPOINTS)
def test_nesting_just_past_the_limit_is_refused_even_under_the_recursion_limit(anon, url):
    strokes = "[" * MAX_DEPTH + "]" * MAX_DEPTH  # inside {"strokes": ...}: one level too many
    response = anon.generic("POST", url, json_body(strokes), content_type="application/json")
    assert_refused(response, "json_too_complex")


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("fmt", ["json", "multipart"])
def test_a_400_digit_coordinate_is_a_400_not_a_stored_row_or_an_overflow(anon, url, fmt):
    strokes = [[[10, 10, 0], [int("9" * 400), 20, 10]]]
    if fmt == "json":
        response = anon.generic("POST", url, json_body(json.dumps(strokes)), content_type="application/json")
    else:
        upload = SimpleUploadedFile("a.png", canvas_png(), content_type="image/png")
        response = anon.post(url, {"image": upload, "strokes": json.dumps(strokes)}, format="multipart")
    assert_refused(response, "invalid_strokes")


@pytest.mark.parametrize(
    "point",
    [[1e300, 5], [5, -1e6], [5, 5, 1e20], [True, 5], [5, "5"], [5], [1, 2, 3, 4, 5]],
    ids=["huge-float", "far-negative", "huge-time", "bool", "string", "one-value", "five-values"],
)
def test_a_point_out_of_range_or_of_the_wrong_shape_is_a_400(anon, point):
    response = anon.generic(
        "POST", ENDPOINTS[0], json_body(json.dumps([[[1, 1, 0], point]])), content_type="application/json"
    )
    assert_refused(response, "invalid_strokes")


def test_a_million_stroke_points_are_refused_from_the_body_size(anon):
    strokes = "[[" + ",".join(["[1,2,3]"] * 1_000_000) + "]]"
    response = anon.generic("POST", ENDPOINTS[0], json_body(strokes), content_type="application/json")
    assert response.status_code == 413 and response.json()["code"] == "request_too_large"


def test_300000_points_under_the_body_limit_are_refused_before_they_are_parsed(anon):
    strokes = "[[" + ",".join(["[1,2]"] * 300_000) + "]]"
    response = anon.generic("POST", ENDPOINTS[0], json_body(strokes), content_type="application/json")
    assert_refused(response, "json_too_complex")
    assert str(MAX_CONTAINERS) in response.json()["detail"]


def test_one_point_over_the_cap_is_refused_by_name(anon):
    # Under the parser's bracket limit: the strokes check counts the points itself.
    strokes = [[[1, 2, 3]] * (MAX_STROKE_POINTS // 2 + 1), [[1, 2, 3]] * (MAX_STROKE_POINTS // 2)]
    assert json.dumps(strokes).count("[") < MAX_CONTAINERS
    response = anon.generic("POST", ENDPOINTS[0], json_body(json.dumps(strokes)), content_type="application/json")
    assert_refused(response, "invalid_strokes")
    assert f"{MAX_STROKE_POINTS} points" in response.json()["detail"]


def test_points_at_the_cap_are_accepted(anon):
    strokes = [[[1, 2, 3]] * (MAX_STROKE_POINTS // 2), [[140, 140, 3]] * (MAX_STROKE_POINTS // 2)]
    response = anon.generic("POST", ENDPOINTS[0], json_body(json.dumps(strokes)), content_type="application/json")
    assert response.status_code in (201, 202), response.content


def test_nan_and_infinity_are_not_json(anon):
    response = anon.generic("POST", ENDPOINTS[0], json_body("[[[NaN, 1]]]"), content_type="application/json")
    assert_refused(response, "parse_error")


def test_ordinary_strokes_at_the_edges_of_the_ranges_are_accepted(anon):
    strokes = [[[-4096, 0, 0], [8192, 140.5, 1.7e12]], [[140, 140]]]
    response = anon.generic("POST", ENDPOINTS[0], json_body(json.dumps(strokes)), content_type="application/json")
    assert response.status_code in (201, 202), response.content
    assert Submission.objects.get().strokes == strokes


def test_json_depth_counts_levels_without_recursing():
    assert json_depth(1) == 0
    assert json_depth({"a": [[1, [2]], {}]}) == 4
    nested = []
    for _ in range(50_000):  # far past the recursion limit: only a loop can walk it
        nested = [nested]
    assert json_depth(nested) == 50_001
