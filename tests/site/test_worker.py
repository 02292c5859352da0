"""A real Celery worker on Redis, started the way docker-compose starts it.

The worker is a subprocess sharing the test database (a SQLite file, or the PostgreSQL test
database under TEST_DATABASE_URL), so these tests commit their rows (transactional_db).
"""

import pytest
from django.test import override_settings

from ml.data import CLASSES
from recognition.models import Submission
from tests.site.workers import post_drawing, wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# The worker app of the kill tests: it pauses with a batch claimed (tests/site/slow_claim_worker.py).
SLOW_CLAIM_APP = "tests.site.slow_claim_worker"


def test_a_real_worker_on_redis_predicts_and_the_api_returns_it(anon, active_model, drawing, start_worker):
    worker = start_worker()
    # Long enough for a cold worker to import TensorFlow and load the model.
    with override_settings(SUBMISSION_WAIT_SECONDS=120):
        response = post_drawing(anon, drawing)
    assert response.status_code == 201, (response.content, worker.tail())
    body = response.json()
    assert body["status"] == "predicted" and body["predicted_label"] in CLASSES
    row = Submission.objects.get(id=body["id"])
    assert row.model_version == active_model and row.attempts == 1
    assert "recognition.tasks.predict_submission" in worker.tail()


def test_the_api_answers_202_and_the_poll_url_gets_the_worker_result(anon, active_model, drawing, start_worker):
    worker = start_worker()
    response = post_drawing(anon, drawing)  # SUBMISSION_WAIT_SECONDS is 0 in tests
    assert response.status_code == 202
    url = response.json()["url"]
    body = wait_for(lambda: (b := anon.get(url).json())["status"] != "pending" and b, 120, worker, "the prediction")
    assert body["status"] == "predicted" and body["predicted_label"] in CLASSES


def test_requests_queue_one_task_between_them_and_it_predicts_them_all(
    anon, active_model, drawing, start_worker, broker
):
    import redis

    from recognition.services.notifications import WAKE_KEY

    client = redis.Redis.from_url(broker)
    with override_settings(SUBMISSION_BATCH_SIZE=2):  # the worker's own setting is the default, 32
        ids = [post_drawing(anon, drawing).json()["id"] for _ in range(4)]
    # No worker yet: the first request queued a task, the other three saw it queued.
    assert client.llen("inference") == 1 and client.ttl(WAKE_KEY) > 0
    worker = start_worker(SUBMISSION_BATCH_SIZE="2")  # two batches of two for the one task
    rows = wait_for(
        lambda: (r := list(Submission.objects.filter(id__in=ids))) and all(s.status != "pending" for s in r) and r,
        120,
        worker,
        "the four predictions",
    )
    assert {row.status for row in rows} == {"predicted"} and {row.attempts for row in rows} == {1}
    assert worker.tail().count("recognition.tasks.predict_submission") >= 1 and client.exists(WAKE_KEY) == 0
    # The task cleared the mark as it started: the next request queues its own (nothing else
    # would predict it: no beat runs the re-queue sweep here).
    later = post_drawing(anon, drawing).json()["id"]
    wait_for(lambda: Submission.objects.get(id=later).status == "predicted", 60, worker, "the next request's task")


def test_a_worker_killed_mid_task_does_not_lose_the_submission(anon, active_model, drawing, start_worker):
    # The first worker sleeps inside the task long enough to be killed there; Redis hands the
    # unacknowledged message to the next worker after the visibility timeout.
    restore = {"CELERY_VISIBILITY_TIMEOUT": "3", "CELERY_UNACKED_RESTORE_INTERVAL": "1"}
    first = start_worker(app=SLOW_CLAIM_APP, **restore)
    response = post_drawing(anon, drawing)
    assert response.status_code == 202
    submission_id = response.json()["id"]
    wait_for(lambda: Submission.objects.get(id=submission_id).attempts >= 1, 120, first, "the task to start")
    first.kill()
    assert Submission.objects.get(id=submission_id).status == "pending"

    second = start_worker(**restore)
    row = wait_for(
        lambda: (s := Submission.objects.get(id=submission_id)).status != "pending" and s, 180, second, "redelivery"
    )
    assert row.status == "predicted" and row.predicted_label in CLASSES
    assert row.attempts == 2


def test_a_worker_killed_mid_batch_leaves_every_claimed_submission_to_the_next_worker(
    anon, active_model, drawing, start_worker
):
    # Three submissions queued before any worker runs: the first task claims all three in one
    # batch (rows locked in its transaction) and is killed there. The rollback frees them; the
    # redelivered or still-queued messages predict each of them once.
    restore = {"CELERY_VISIBILITY_TIMEOUT": "3", "CELERY_UNACKED_RESTORE_INTERVAL": "1"}
    ids = [post_drawing(anon, drawing).json()["id"] for _ in range(3)]
    first = start_worker(app=SLOW_CLAIM_APP, **restore)
    wait_for(lambda: "sleeping with 3 submissions claimed" in first.tail(), 120, first, "the batch to be claimed")
    first.kill()
    assert set(Submission.objects.filter(id__in=ids).values_list("status", flat=True)) == {"pending"}

    second = start_worker(**restore)
    rows = wait_for(
        lambda: (r := list(Submission.objects.filter(id__in=ids))) and all(s.status != "pending" for s in r) and r,
        180,
        second,
        "the batch to be predicted",
    )
    assert len(rows) == 3
    for row in rows:
        assert row.status == "predicted" and row.predicted_label in CLASSES and row.model_version == active_model
        assert row.predicted_at is not None and len(row.top_k) == 5
