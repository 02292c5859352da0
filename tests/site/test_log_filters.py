"""A Redis outage writes one warning a minute per process, not several per request
(recognition/log_filters.py on the console handler of settings.LOGGING)."""

import io
import logging

import pytest
import redis
from django.test import override_settings

from emnist_site.settings import cache_from_url
from recognition.log_filters import RedisOutageFilter
from tests.site.workers import celery_broker, post_drawing

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


@pytest.fixture
def console():
    """The console handler settings.LOGGING configured, writing into a buffer for the test."""
    handler = logging._handlers["console"]
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(old)


@pytest.mark.django_db
def test_twenty_requests_during_a_redis_outage_write_one_warning(anon, active_model, drawing, console):
    caches = {"default": cache_from_url(DEAD_REDIS)}
    with celery_broker(DEAD_REDIS), override_settings(CACHES=caches):
        statuses = [post_drawing(anon, drawing).status_code for _ in range(20)]
    assert set(statuses) == {202}  # stored, to be queued when the broker returns
    lines = console.getvalue().splitlines()
    assert len(lines) == 1, "\n".join(lines[:20])
    assert "Redis unreachable" in lines[0] and "Traceback" not in console.getvalue()


def test_after_the_interval_one_more_passes_and_counts_what_was_dropped(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("recognition.log_filters.time.monotonic", lambda: clock[0])
    flt = RedisOutageFilter(interval=60)
    logger = logging.getLogger("test.outage")

    def record(msg, *args, **kwargs):
        return logger.makeRecord(logger.name, logging.WARNING, __file__, 1, msg, args, None, **kwargs)

    error = redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
    assert flt.filter(record("could not queue %s: %s", "task", error))
    assert [flt.filter(record("session cache unavailable: %s", error)) for _ in range(5)] == [False] * 5
    clock[0] += 61
    passed = record("could not check the prediction wake-up: %s", error)
    assert flt.filter(passed) and "5 dropped since the last" in passed.getMessage()
    # Warnings with another cause, and errors, are never held back.
    assert flt.filter(record("submission %s vanished before prediction", "x"))
    failing = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "boom: %s", (error,), None)
    assert flt.filter(failing)
