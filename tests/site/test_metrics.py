"""/metrics: Prometheus text for staff or the METRICS_TOKEN bearer, refused to anyone else."""

import json
import time

import pytest
import redis
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from emnist_site.heartbeat import KEY_PREFIX
from recognition.models import Submission, TrainingRun
from tests.site.workers import celery_broker, post_drawing

pytestmark = pytest.mark.django_db


def samples(response) -> dict:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_anyone_else_is_refused_with_a_json_403(anon, alice, client):
    assert anon.get("/metrics").status_code == 403
    client.force_login(alice)
    response = client.get("/metrics")
    assert response.status_code == 403 and response.json()["code"] == "not_authenticated"
    with override_settings(METRICS_TOKEN="s3cret-token"):
        assert anon.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    # No token configured: an empty bearer must not match an empty setting.
    assert anon.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_staff_and_the_token_get_the_sites_state(
    client, staff, anon, active_model, drawing, redis_url, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert post_drawing(anon, drawing).status_code in (201, 202)
    Submission.objects.create(status="pending", image=b"", client_id="x")
    TrainingRun.objects.create(status="failed")
    TrainingRun.objects.create(status="succeeded")
    redis.Redis.from_url(redis_url).flushdb()
    beat = {"at": time.time() - 12, "hostname": "w@test", "pid": 1}
    redis.Redis.from_url(redis_url).set(KEY_PREFIX + "inference", json.dumps(beat))
    client.force_login(staff)
    with celery_broker(redis_url):
        found = samples(client.get("/metrics"))
    with override_settings(METRICS_TOKEN="s3cret-token"):
        assert anon.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200

    assert found[("emnist_submissions", (("status", "predicted"),))] == 1
    assert found[("emnist_submissions", (("status", "pending"),))] == 1
    assert found[("emnist_oldest_pending_submission_age_seconds", ())] >= 0
    assert 12 <= found[("emnist_worker_heartbeat_age_seconds", (("queue", "inference"),))] < 60
    assert found[("emnist_worker_heartbeat_age_seconds", (("queue", "training"),))] == float("inf")
    assert found[("emnist_active_model_version_info", (("id", str(active_model.id)), ("name", "tiny")))] == 1
    assert found[("emnist_retraining_runs_total", (("outcome", "failed"),))] == 1
    assert found[("emnist_retraining_runs_total", (("outcome", "succeeded"),))] == 1
    latency = [k for k in found if k[0] == "emnist_http_request_duration_seconds_count"]
    assert (("method", "POST"), ("status", "2xx"), ("view", "api:submissions")) in [k[1] for k in latency], latency
