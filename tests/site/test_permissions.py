import base64

import pytest

from recognition.models import Correction, Submission
from tests.site.conftest import token_client

pytestmark = pytest.mark.django_db(transaction=True)


def submit(client, drawing) -> dict:
    response = client.post(
        "/api/v1/submissions", {"image_base64": base64.b64encode(drawing).decode()}, format="json"
    )
    assert response.status_code in (201, 202), response.content
    return response.json()


def test_another_visitor_cannot_read_your_submission(anon, other_anon, active_model, drawing):
    mine = submit(anon, drawing)
    assert anon.get(mine["url"]).status_code == 200
    response = other_anon.get(mine["url"])
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_another_visitor_cannot_correct_your_submission(anon, other_anon, active_model, drawing):
    mine = submit(anon, drawing)
    response = other_anon.post(mine["url"] + "/correction", {"label": "A"}, format="json")
    assert response.status_code == 404
    assert Correction.objects.count() == 0


def test_your_list_holds_only_your_submissions_paginated(anon, other_anon, active_model, drawing):
    ids = {submit(anon, drawing)["id"] for _ in range(3)}
    submit(other_anon, drawing)
    page = anon.get("/api/v1/submissions?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    assert {r["id"] for r in page["results"]} <= ids
    assert other_anon.get("/api/v1/submissions").json()["count"] == 1


def test_a_visitor_without_a_session_sees_an_empty_list(anon, active_model, drawing):
    from rest_framework.test import APIClient

    submit(anon, drawing)
    assert APIClient().get("/api/v1/submissions").json()["count"] == 0


def test_token_clients_own_their_submissions_and_bob_is_refused(alice, bob, active_model, drawing):
    mine = submit(token_client(alice), drawing)
    assert Submission.objects.get().owner == alice
    bob_client = token_client(bob)
    assert bob_client.get(mine["url"]).status_code == 404
    assert bob_client.post(mine["url"] + "/correction", {"label": "A"}, format="json").status_code == 404
    assert token_client(alice).get("/api/v1/submissions").json()["count"] == 1


def test_staff_see_everything(anon, alice, staff, active_model, drawing):
    first = submit(anon, drawing)
    submit(token_client(alice), drawing)
    staff_client = token_client(staff)
    assert staff_client.get("/api/v1/submissions").json()["count"] == 2
    assert staff_client.get(first["url"]).status_code == 200


def test_an_invalid_token_is_refused(active_model, drawing):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get("/api/v1/submissions").status_code == 401
