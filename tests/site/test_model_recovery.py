"""Drawings that fail for want of a model are predicted once one loads, and say no server path.

The same faults as tests/site/test_faults.py (a broken active file, no active version), seen
from the rows: those that arrived meanwhile are not failed for good.
"""

import json
import shutil

import pytest

from recognition import services
from recognition.models import ModelVersion, Submission
from recognition.services import predictors
from recognition.tasks import submission_requeue_stale
from tests.site.conftest import token_client
from tests.site.helpers import broken_copy, models_before_migration, word_drawing
from tests.site.workers import Worker, celery_broker, post_drawing, wait_for


@pytest.fixture(autouse=True)
def no_cached_predictor(monkeypatch):
    """Each test starts with this process's predictor cache empty, as a fresh worker does: the
    retry under test runs when a model loads, and an earlier test's cached model (SQLite reuses
    a rolled-back version's id) would make the load a cache hit."""
    monkeypatch.setattr(predictors, "_cache", None)


def post_in_eager_mode(client, drawing, capture) -> dict:
    with capture(execute=True):
        response = post_drawing(client, drawing)
    assert response.status_code in (201, 202), response.content
    return client.get(response.json()["url"]).json()


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_drawings_that_arrive_while_the_active_file_is_broken_are_predicted_once_it_is_fixed(
    how, db, tiny_model_path, tmp_path, anon, drawing, django_capture_on_commit_callbacks
):
    path = broken_copy(tiny_model_path, tmp_path / "active.keras", how)
    ModelVersion.objects.create(name="v-broken", file_path=str(path), status="active")
    first = post_in_eager_mode(anon, drawing, django_capture_on_commit_callbacks)
    second = post_in_eager_mode(anon, drawing, django_capture_on_commit_callbacks)
    for body in (first, second):
        assert body["status"] == "failed" and "v-broken cannot be loaded" in body["error"]
        assert "predicted again once a model loads" in body["error"]
        # Anonymous visitors read this: no path of the server's, not even its folder.
        assert str(tmp_path) not in json.dumps(body) and "active.keras" not in json.dumps(body)
    assert set(Submission.objects.values_list("failure_reason", flat=True)) == {"model_unavailable"}

    shutil.copy(tiny_model_path, path)  # fixed in place: the next load retries the failed rows
    third = post_in_eager_mode(anon, drawing, django_capture_on_commit_callbacks)
    assert third["status"] == "predicted"
    for body in (first, second):
        again = anon.get(f"/api/v1/submissions/{body['id']}").json()
        assert again["status"] == "predicted" and again["error"] == "" and again["top_k"]
    assert set(Submission.objects.values_list("status", "failure_reason")) == {("predicted", "")}


def test_the_periodic_sweep_retries_them_once_the_file_loads_with_no_new_drawing(
    db, tiny_model_path, tmp_path, anon, drawing, django_capture_on_commit_callbacks
):

    path = broken_copy(tiny_model_path, tmp_path / "active.keras", "truncated")
    ModelVersion.objects.create(name="v-broken", file_path=str(path), status="active")
    body = post_in_eager_mode(anon, drawing, django_capture_on_commit_callbacks)
    assert body["status"] == "failed"
    with django_capture_on_commit_callbacks(execute=True):
        assert submission_requeue_stale() == 0  # still broken: nothing to retry yet
    assert Submission.objects.get(id=body["id"]).status == "failed"

    shutil.copy(tiny_model_path, path)
    with django_capture_on_commit_callbacks(execute=True):
        submission_requeue_stale()
    assert anon.get(f"/api/v1/submissions/{body['id']}").json()["status"] == "predicted"


def test_drawings_that_arrive_with_no_active_version_are_predicted_once_one_is_activated(
    db, tiny_model_path, anon, drawing, django_capture_on_commit_callbacks
):
    body = post_in_eager_mode(anon, drawing, django_capture_on_commit_callbacks)
    assert body["status"] == "failed" and body["error"] == "No active model version."

    services.model_version_activate(
        model_version=ModelVersion.objects.create(name="v1", file_path=str(tiny_model_path))
    )
    assert post_in_eager_mode(anon, drawing, django_capture_on_commit_callbacks)["status"] == "predicted"
    assert anon.get(f"/api/v1/submissions/{body['id']}").json()["status"] == "predicted"


def test_a_word_written_with_no_active_version_is_read_once_one_is_activated(
    db, tiny_model_path, anon, drawing, django_capture_on_commit_callbacks
):

    image, strokes, _ = word_drawing(2)
    with django_capture_on_commit_callbacks(execute=True):
        word = services.word_create(image=image, content_type="image/png", strokes=strokes)
    assert word.status == "failed" and word.text == "??"

    services.model_version_activate(
        model_version=ModelVersion.objects.create(name="v1", file_path=str(tiny_model_path))
    )
    post_in_eager_mode(anon, drawing, django_capture_on_commit_callbacks)
    assert word.status == "predicted" and "?" not in word.text


def test_a_drawing_that_fails_for_its_own_reasons_is_not_retried(
    db, active_model, tiny_model_path, tmp_path, anon, drawing, django_capture_on_commit_callbacks
):
    own_fault = Submission.objects.create(
        image=b"x",
        content_type="image/png",
        input28=bytes(10),
        status=Submission.Status.FAILED,
        error="Stored input is 10 bytes, not 28x28.",
    )
    # A fresh load (a new version) retries only the rows that failed for want of a model.
    services.model_version_activate(
        model_version=ModelVersion.objects.create(name="v2", file_path=str(tiny_model_path))
    )
    assert post_in_eager_mode(anon, drawing, django_capture_on_commit_callbacks)["status"] == "predicted"
    own_fault.refresh_from_db()
    assert own_fault.status == "failed" and own_fault.error.startswith("Stored input")


def test_an_unexpected_prediction_error_shows_no_server_path(
    db, active_model, tmp_path, anon, drawing, django_capture_on_commit_callbacks, monkeypatch
):
    secret = tmp_path / "models" / "v1.keras"

    def broken(**kwargs):
        raise OSError(f"[Errno 13] Permission denied: '{secret}'")

    monkeypatch.setattr(services, "submission_predict", broken)
    body = post_in_eager_mode(anon, drawing, django_capture_on_commit_callbacks)
    assert body["status"] == "failed" and body["error"] == "Prediction failed (OSError)."


@pytest.mark.django_db(transaction=True)
def test_the_old_migration_marks_rows_failed_for_want_of_a_model_and_drops_their_path():
    with models_before_migration("recognition", "0006_correction_label_is_a_class") as apps:
        Old = apps.get_model("recognition", "Submission")
        common = {"image": b"x", "content_type": "image/png", "input28": bytes(784), "status": "failed"}
        broken = Old.objects.create(
            error="The active model v9 cannot be loaded: could not load model /srv/m/v9.keras: bad", **common
        )
        missing = Old.objects.create(error="No active model version.", **common)
        other = Old.objects.create(error="Stored input is 3 bytes, not 28x28.", **common)
    rows = {s.id: s for s in Submission.objects.all()}
    assert rows[broken.id].failure_reason == rows[missing.id].failure_reason == "model_unavailable"
    assert "/srv" not in rows[broken.id].error and "cannot be loaded" in rows[broken.id].error
    assert rows[other.id].failure_reason == ""


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_model_is_broken_at_startup_keeps_running_and_predicts_its_failed_rows_once_fixed(
    anon, staff, tiny_model_path, tmp_path, drawing, private_redis
):
    """The worker reports the broken file (the row's reason, the health check) and stays up; once
    the file is fixed in place it predicts the new drawing and the one it failed, no restart."""
    path = broken_copy(tiny_model_path, tmp_path / "active.keras", "garbage")
    ModelVersion.objects.create(name="v-garbage", file_path=str(path), status="active")
    with celery_broker(private_redis.url):
        worker = Worker(private_redis.url, tmp_path / "worker.log")
        try:
            first = post_drawing(anon, drawing).json()["id"]
            row = wait_for(
                lambda: (s := Submission.objects.get(id=first)).status != "pending" and s, 120, worker, "the failure"
            )
            assert row.status == "failed" and row.failure_reason == "model_unavailable"
            assert "v-garbage cannot be loaded" in row.error and str(tmp_path) not in row.error
            assert worker.process.poll() is None
            health = token_client(staff).get("/api/v1/health")
            assert health.status_code == 503 and not health.json()["checks"]["model"]["ok"]

            shutil.copy(tiny_model_path, path)
            second = post_drawing(anon, drawing).json()["id"]
            for submission_id in (second, first):
                row = wait_for(
                    lambda i=submission_id: (s := Submission.objects.get(id=i)).status == "predicted" and s,
                    120,
                    worker,
                    "the retry",
                )
                assert row.error == "" and row.top_k
            assert anon.get("/api/v1/health").status_code == 200
        finally:
            worker.kill()
