"""/api/v1/health: status only for the public, details for staff, and a failing check when no
worker consumes the inference queue (its heartbeat, emnist_site/heartbeat.py, is missing or old)."""

import json
import time

import pytest
import redis

from emnist_site.heartbeat import KEY_PREFIX, heartbeat_max_age, heartbeat_write
from tests.site.conftest import token_client
from tests.site.workers import celery_broker

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    with celery_broker(redis_url):
        yield redis_url


def test_the_public_body_is_status_only_with_no_host_or_path(anon, active_model, broker):
    heartbeat_write(broker, ["inference"], "worker@test")
    response = anon.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "status": "ok"}
    with celery_broker("redis://127.0.0.1:1/3"):
        response = anon.get("/api/v1/health")
    assert response.status_code == 503 and response.json() == {"ok": False, "status": "unavailable"}
    assert "127.0.0.1" not in response.content.decode() and active_model.file_path not in response.content.decode()


def test_staff_get_every_check_with_its_details(staff, active_model, broker):
    heartbeat_write(broker, ["inference", "training"], "worker@test")
    body = token_client(staff).get("/api/v1/health").json()
    assert set(body["checks"]) == {"database", "broker", "worker", "model"}
    assert body["ok"] is True and "worker@test" in body["checks"]["worker"]["detail"]
    assert body["checks"]["broker"]["detail"].startswith("redis://")


def test_no_worker_consuming_inference_fails_health(anon, staff, active_model, broker):
    # A worker that consumes only training does not count.
    heartbeat_write(broker, ["training"], "trainer@test")
    response = token_client(staff).get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"] == {"ok": False, "detail": "no worker consuming inference"}
    assert anon.get("/api/v1/health").status_code == 503


def test_a_heartbeat_older_than_the_deadline_fails_health(staff, active_model, broker):
    old = {"at": time.time() - heartbeat_max_age() - 1, "hostname": "gone@test", "pid": 1}
    redis.Redis.from_url(broker).set(KEY_PREFIX + "inference", json.dumps(old))
    check = token_client(staff).get("/api/v1/health").json()["checks"]["worker"]
    assert check["ok"] is False and "the last heartbeat is" in check["detail"]
    heartbeat_write(broker, ["inference"], "back@test")
    assert token_client(staff).get("/api/v1/health").status_code == 200


def test_with_tasks_run_in_process_no_worker_is_needed(anon, active_model):
    assert anon.get("/api/v1/health").status_code == 200
