"""Session rows: a browser gets one, once its drawing is accepted; a client that sends no
cookie gets none (it is known by its IP address); expired rows are cleared on a schedule."""

import base64
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from recognition import housekeeping
from recognition.models import Submission
from tests.site.conftest import canvas_png

SUBMISSIONS = "/api/v1/submissions"
pytestmark = pytest.mark.django_db


def good() -> dict:
    return {"image_base64": base64.b64encode(canvas_png()).decode()}


BAD = [
    {"image_base64": base64.b64encode(canvas_png(blank=True)).decode()},  # blank
    {"image_base64": "not base64!"},
    {"image_base64": base64.b64encode(canvas_png()).decode(), "strokes": [[[1e9, 1]]]},
]


def test_a_cookieless_client_leaves_no_session_row_accepted_or_rejected(active_model):
    client = APIClient()  # sends no cookie, keeps none
    for _ in range(5):
        assert client.post(SUBMISSIONS, good(), format="json").status_code in (201, 202)
        for body in BAD:
            assert client.post(SUBMISSIONS, body, format="json").status_code == 400
        client.cookies.clear()  # and keeps none it might have been given
    assert Session.objects.count() == 0
    assert Submission.objects.count() == 5


def test_a_cookieless_client_can_read_what_it_sent_from_its_address(active_model):
    client = APIClient()
    created = client.post(SUBMISSIONS, good(), format="json").json()
    assert client.get(created["url"]).status_code == 200
    assert client.get(SUBMISSIONS).json()["count"] == 1
    assert Submission.objects.get().client_id.startswith("ip-")
    assert "127.0.0.1" not in Submission.objects.get().client_id
    elsewhere = APIClient(REMOTE_ADDR="10.1.2.3")
    assert elsewhere.get(created["url"]).status_code == 404


def test_a_browser_and_a_cookieless_client_on_one_address_do_not_see_each_other(anon, active_model):
    mine = anon.post(SUBMISSIONS, good(), format="json").json()
    cookieless = APIClient()
    theirs = cookieless.post(SUBMISSIONS, good(), format="json").json()
    assert cookieless.get(mine["url"]).status_code == 404
    assert anon.get(theirs["url"]).status_code == 404


def test_a_browser_gets_no_session_for_rejected_drawings_and_one_for_accepted(anon, active_model):
    for body in BAD:
        assert anon.post(SUBMISSIONS, body, format="json").status_code == 400
    assert Session.objects.count() == 0 and "sessionid" not in anon.cookies
    for _ in range(3):
        assert anon.post(SUBMISSIONS, good(), format="json").status_code in (201, 202)
    assert Session.objects.count() == 1
    assert anon.get(SUBMISSIONS).json()["count"] == 3


def test_a_rejected_word_starts_no_session_either(anon):
    response = anon.post("/api/v1/words", BAD[0], format="json")
    assert response.status_code == 400
    assert Session.objects.count() == 0


def test_cookieless_clients_share_one_per_client_counter_per_address(settings, active_model):
    settings.THROTTLE_WRITE_CLIENT = "2/min"
    settings.THROTTLE_WRITE_IP = None
    codes = [APIClient().post(SUBMISSIONS, good(), format="json").status_code for _ in range(3)]
    assert codes[:2] != [429, 429] and codes[2] == 429


def test_setup_site_schedules_the_session_sweep_once(tmp_path, settings):
    settings.MODEL_DIR = tmp_path / "models"
    call_command("setup_site", "--no-migrate", verbosity=0)
    call_command("setup_site", "--no-migrate", verbosity=0)
    task = PeriodicTask.objects.get(name=housekeeping.SESSIONS_CLEAR_SCHEDULE_NAME)
    assert task.task == "recognition.housekeeping.sessions_clear" and task.enabled and task.crontab is not None


def test_the_session_sweep_deletes_expired_sessions_only():
    now = timezone.now()
    Session.objects.create(session_key="a" * 32, session_data="x", expire_date=now - timedelta(days=1))
    Session.objects.create(session_key="b" * 32, session_data="x", expire_date=now + timedelta(days=1))
    assert housekeeping.sessions_clear.delay().get() == 1
    assert list(Session.objects.values_list("session_key", flat=True)) == ["b" * 32]
