import base64

import pytest
from rest_framework.test import APIClient

from recognition.models import Correction, Submission
from tests.site.conftest import browser_client, token_client

pytestmark = pytest.mark.django_db(transaction=True)


def submit(client, drawing) -> dict:
    response = client.post("/api/v1/submissions", {"image_base64": base64.b64encode(drawing).decode()}, format="json")
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


# --------------------------------------------------------------------------- every endpoint, two identities


def identity(kind: str, request) -> APIClient:
    """anon / other_anon: session visitors; <user>_token: API token; <user>_session: signed in."""
    if kind in ("anon", "other_anon"):
        return browser_client()  # two cookieless clients on one address would be one client
    username, channel = kind.split("_")
    user = request.getfixturevalue(username)
    if channel == "token":
        return token_client(user)
    client = APIClient()
    client.force_login(user)
    return client


PAIRS = [
    ("anon", "other_anon"),
    ("alice_token", "bob_token"),
    ("alice_session", "bob_session"),
    ("alice_token", "bob_session"),
    ("alice_session", "bob_token"),
    ("anon", "alice_token"),
    ("alice_token", "anon"),
]


# These need no prediction: under the plain `db` marker nothing commits, so nothing is queued.
@pytest.mark.django_db
@pytest.mark.parametrize(("owner_kind", "stranger_kind"), PAIRS, ids=[f"{a}-vs-{b}" for a, b in PAIRS])
def test_no_endpoint_shows_or_changes_someone_elses_submission(
    owner_kind, stranger_kind, request, active_model, drawing
):
    owner, stranger = identity(owner_kind, request), identity(stranger_kind, request)
    mine = submit(owner, drawing)
    assert owner.post(mine["url"] + "/correction", {"label": "A"}, format="json").status_code == 201
    submit(stranger, drawing)  # the stranger has a session or account of their own

    listing = stranger.get("/api/v1/submissions").json()
    assert listing["count"] == 1 and mine["id"] not in {r["id"] for r in listing["results"]}
    assert stranger.get(mine["url"]).status_code == 404
    response = stranger.post(mine["url"] + "/correction", {"label": "B"}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert stranger.get("/api/v1/corrections/export").status_code in (401, 403)
    # Nothing the stranger did reached the owner's submission.
    assert list(Correction.objects.filter(submission_id=mine["id"]).values_list("label", flat=True)) == ["A"]
    assert owner.get(mine["url"]).json()["correction"]["label"] == "A"


@pytest.mark.django_db
def test_a_user_sees_the_same_submissions_through_token_and_session(alice, active_model, drawing):
    by_token = submit(token_client(alice), drawing)
    session = APIClient()
    session.force_login(alice)
    by_session = submit(session, drawing)
    assert session.get(by_token["url"]).status_code == 200
    assert token_client(alice).get(by_session["url"]).status_code == 200
    assert session.get("/api/v1/submissions").json()["count"] == 2


@pytest.mark.django_db
def test_a_signed_in_user_does_not_inherit_the_anonymous_submissions_of_their_browser(
    alice, anon, active_model, drawing
):
    # Anonymous submissions belong to the session's client id; signing in does not claim them
    # (someone else may have used that browser).
    earlier = submit(anon, drawing)
    anon.force_login(alice)
    assert anon.get(earlier["url"]).status_code == 404
    assert anon.get("/api/v1/submissions").json()["count"] == 0


@pytest.mark.django_db
def test_the_public_endpoints_hold_nothing_personal(anon, other_anon, alice, active_model, drawing):
    submit(token_client(alice), drawing)
    for url in ("/api/v1/labels", "/api/v1/model-versions", "/api/v1/health"):
        assert anon.get(url).content == other_anon.get(url).content == token_client(alice).get(url).content, url
