"""Staff reach beyond their own rows only with the admin's model permissions: percy (staff, no
permissions) is refused what stella (staff, a reviewer's permissions) may do, as in the admin."""

import base64

import pytest
from django.contrib.auth.models import Permission

from recognition.models import Correction
from tests.site.conftest import token_client

pytestmark = pytest.mark.django_db


def submit(client, drawing) -> dict:
    response = client.post("/api/v1/submissions", {"image_base64": base64.b64encode(drawing).decode()}, format="json")
    assert response.status_code in (201, 202), response.content
    return response.json()


def word(client, drawing) -> dict:
    response = client.post("/api/v1/words", {"image_base64": base64.b64encode(drawing).decode()}, format="json")
    assert response.status_code in (201, 202), response.content
    return response.json()


def test_staff_without_permissions_cannot_read_anyone_s_submission(alice, percy, drawing):
    alices = submit(token_client(alice), drawing)
    client = token_client(percy)
    assert client.get(alices["url"]).status_code == 404
    assert client.get("/api/v1/submissions").json()["count"] == 0


def test_staff_without_permissions_cannot_read_anyone_s_word(alice, percy, drawing):
    alices = word(token_client(alice), drawing)
    client = token_client(percy)
    assert client.get(alices["url"]).status_code == 404
    assert client.get("/api/v1/words").json()["count"] == 0


def test_staff_without_permissions_cannot_correct_anyone_s_submission(alice, percy, drawing):
    alices = submit(token_client(alice), drawing)
    response = token_client(percy).post(alices["url"] + "/correction", {"label": "A"}, format="json")
    assert response.status_code == 404
    assert Correction.objects.count() == 0


def test_staff_without_permissions_cannot_export_corrections(percy, approved_corrections):
    approved_corrections(2)
    response = token_client(percy).get("/api/v1/corrections/export")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_staff_without_permissions_still_own_their_own_rows(percy, drawing):
    client = token_client(percy)
    mine = submit(client, drawing)
    assert client.get(mine["url"]).status_code == 200
    assert client.post(mine["url"] + "/correction", {"label": "A"}, format="json").status_code == 201


def test_a_reviewer_reads_corrects_and_exports(alice, staff, drawing, approved_corrections):
    alices = submit(token_client(alice), drawing)
    client = token_client(staff)
    assert client.get(alices["url"]).status_code == 200
    assert client.get("/api/v1/submissions").json()["count"] == 1
    assert client.post(alices["url"] + "/correction", {"label": "A"}, format="json").status_code == 201
    approved_corrections(2)
    assert client.get("/api/v1/corrections/export").status_code == 200


def test_staff_who_may_view_but_not_add_corrections_cannot_correct_others(alice, user_factory, drawing):

    viewer = user_factory("vera", staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(content_type__app_label="recognition", codename="view_submission")
    )
    alices = submit(token_client(alice), drawing)
    client = token_client(viewer)
    assert client.get(alices["url"]).status_code == 200
    response = client.post(alices["url"] + "/correction", {"label": "A"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert Correction.objects.count() == 0


def test_a_user_with_permissions_but_no_staff_status_sees_only_their_own(alice, bob, drawing):

    bob.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="recognition", codename__in=["view_submission", "view_correction"]
        )
    )
    alices = submit(token_client(alice), drawing)
    client = token_client(bob)
    assert client.get(alices["url"]).status_code == 404
    assert client.get("/api/v1/corrections/export").status_code == 403
