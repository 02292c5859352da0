"""Sessions: read from the cache, stored in the database, and still working with the cache down."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from recognition.sessions import CACHE_SECONDS, SessionStore

pytestmark = pytest.mark.django_db

SUBMISSIONS = "/api/v1/submissions"
UNREACHABLE = {
    "default": {
        "BACKEND": "emnist_site.cache.RedisCache",  # what cache_from_url configures
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}


def session_queries(queries) -> list[str]:
    return [q["sql"] for q in queries if "django_session" in q["sql"]]


def test_a_visitors_session_is_read_from_the_cache_not_the_database(anon, active_model, drawing):
    import base64

    created = anon.post(SUBMISSIONS, {"image_base64": base64.b64encode(drawing).decode()}, format="json")
    assert created.status_code in (201, 202) and "sessionid" in anon.cookies
    with CaptureQueriesContext(connection) as queries:
        listed = anon.get(SUBMISSIONS)
    assert [item["id"] for item in listed.json()["results"]] == [created.json()["id"]]  # the client id was read
    assert session_queries(queries.captured_queries) == []


def test_with_the_cache_unreachable_sessions_live_in_the_database_alone(settings, caplog):
    settings.CACHES = UNREACHABLE
    session = SessionStore()
    session["client_id"] = "abc"
    session.save()  # no 500: written to the database, the cache step only logged
    assert "session cache unavailable" in caplog.text
    with CaptureQueriesContext(connection) as queries:
        again = SessionStore(session.session_key)
        assert again["client_id"] == "abc"
    assert len(session_queries(queries.captured_queries)) == 1  # read from the database
    assert again.exists(session.session_key)
    again.delete()
    assert not SessionStore(session.session_key).exists(session.session_key)
    assert SessionStore(session.session_key).load() == {}


def test_an_anonymous_visitor_keeps_their_submissions_with_the_cache_down(settings, anon, active_model, drawing):
    import base64

    settings.CACHES = UNREACHABLE
    settings.THROTTLE_WRITE_CLIENT = settings.THROTTLE_WRITE_IP = None  # throttles use the cache too
    created = anon.post(SUBMISSIONS, {"image_base64": base64.b64encode(drawing).decode()}, format="json")
    assert created.status_code in (201, 202)
    assert [item["id"] for item in anon.get(SUBMISSIONS).json()["results"]] == [created.json()["id"]]


def test_a_cached_copy_lives_at_most_cache_seconds(monkeypatch):
    session = SessionStore()
    timeouts = []
    real_set = session._cache.set
    monkeypatch.setattr(
        session._cache,
        "set",
        lambda key, value, timeout=None: timeouts.append(timeout) or real_set(key, value, timeout),
    )
    session["client_id"] = "abc"
    session.save()
    session.set_expiry(60)
    session.save()
    # Two weeks by default: capped (a new session's first save sets it twice); shorter: kept.
    assert set(timeouts[:-1]) == {CACHE_SECONDS} and timeouts[-1] == 60
    # And a deleted session is gone from the cache too.
    key = session.session_key
    session.delete()
    assert SessionStore(key).load() == {}
