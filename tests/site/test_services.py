import numpy as np
import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction

from ml.data import CLASSES
from recognition import services
from recognition.errors import BlankImage, InvalidImage, InvalidStrokes, UnknownLabel, UnsupportedImageType
from recognition.models import Correction, ModelVersion, Submission
from recognition.selectors import model_version_get_active
from tests.site.conftest import canvas_png
from tests.site.workers import ROOT, database_url_for_subprocess, venv_env

pytestmark = pytest.mark.django_db


def test_submission_create_stores_the_28x28_and_predicts_on_commit(
    active_model, drawing, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        submission = services.submission_create(
            image=drawing, content_type="image/png", source="canvas", strokes=[[[1, 2], [3, 4.5]]]
        )
    assert len(callbacks) == 1
    submission.refresh_from_db()
    assert submission.status == Submission.Status.PREDICTED
    assert submission.predicted_label in CLASSES
    assert len(submission.top_k) == 5
    assert submission.top_k[0]["label"] == submission.predicted_label
    probs = [p["probability"] for p in submission.top_k]
    assert probs == sorted(probs, reverse=True)
    assert submission.model_version == active_model
    assert submission.latency_ms is not None and submission.attempts == 1
    image = np.frombuffer(bytes(submission.input28), dtype=np.uint8)
    assert image.shape == (784,) and image.max() > 0


def test_nothing_is_queued_when_the_transaction_rolls_back(active_model, drawing, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                services.submission_create(image=drawing, content_type="image/png")
                raise RuntimeError("boom")
    assert callbacks == []
    assert Submission.objects.count() == 0


@pytest.mark.parametrize(
    ("image", "content_type", "error"),
    [
        (b"not an image at all", "image/png", InvalidImage),
        (canvas_png()[:200], "image/png", InvalidImage),
        (canvas_png(blank=True), "image/png", BlankImage),
        (canvas_png(), "application/pdf", UnsupportedImageType),
    ],
    ids=["garbage", "truncated", "blank", "pdf"],
)
def test_submission_create_rejects_bad_images_and_stores_nothing(image, content_type, error):
    with pytest.raises(error):
        services.submission_create(image=image, content_type=content_type)
    assert Submission.objects.count() == 0


def test_submission_create_rejects_malformed_strokes(drawing):
    with pytest.raises(InvalidStrokes):
        services.submission_create(image=drawing, content_type="image/png", strokes=[["x", "y"]])
    assert Submission.objects.count() == 0


def test_prediction_is_idempotent_for_a_redelivered_task(active_model, drawing, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        submission = services.submission_create(image=drawing, content_type="image/png")
    assert services.submission_predict(submission_id=str(submission.id)) == Submission.Status.PREDICTED
    submission.refresh_from_db()
    assert submission.attempts == 1 and submission.status == Submission.Status.PREDICTED


def test_a_missing_model_file_marks_the_submission_failed_with_the_reason(drawing, django_capture_on_commit_callbacks):
    ModelVersion.objects.create(name="gone", file_path="/nonexistent/model.keras", status="active")
    with django_capture_on_commit_callbacks(execute=True):
        submission = services.submission_create(image=drawing, content_type="image/png")
    submission.refresh_from_db()
    assert submission.status == Submission.Status.FAILED
    assert "not found" in submission.error


def test_no_active_model_marks_the_submission_failed(drawing, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        submission = services.submission_create(image=drawing, content_type="image/png")
    submission.refresh_from_db()
    assert submission.status == Submission.Status.FAILED and "No active model" in submission.error


def test_the_database_refuses_a_second_active_model_version(active_model):
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(name="second", file_path="x.keras", status="active")


def test_activating_a_version_retires_the_previous_one(active_model, tiny_model_path):
    newer = ModelVersion.objects.create(name="newer", file_path=str(tiny_model_path))
    services.model_version_activate(model_version=newer)
    active_model.refresh_from_db()
    assert active_model.status == ModelVersion.Status.RETIRED
    assert model_version_get_active() == newer


def test_workers_switch_to_a_newly_activated_model_without_restart(
    active_model, tiny_model_path, drawing, django_capture_on_commit_callbacks
):
    newer = ModelVersion.objects.create(name="newer", file_path=str(tiny_model_path))
    services.model_version_activate(model_version=newer)
    with django_capture_on_commit_callbacks(execute=True):
        submission = services.submission_create(image=drawing, content_type="image/png")
    submission.refresh_from_db()
    assert submission.model_version == newer


def test_setup_site_registers_the_shipped_model_as_the_first_active_version():
    call_command("setup_site", "--no-migrate")
    call_command("setup_site", "--no-migrate")  # idempotent
    version = ModelVersion.objects.get()
    assert version.status == ModelVersion.Status.ACTIVE
    assert version.file_path == "ml/artifacts/emnist_cnn.keras"


def test_setup_site_leaves_an_already_active_version_active(active_model):
    call_command("setup_site", "--no-migrate")
    assert model_version_get_active() == active_model
    assert ModelVersion.objects.count() == 2


def test_a_second_correction_click_replaces_the_open_one(active_model, drawing):
    submission = services.submission_create(image=drawing, content_type="image/png")
    services.correction_create(submission=submission, label="7")
    services.correction_create(submission=submission, label="T")
    assert list(Correction.objects.values_list("label", "status")) == [("T", "pending")]


def test_correction_create_rejects_an_unknown_label(drawing):
    submission = services.submission_create(image=drawing, content_type="image/png")
    with pytest.raises(UnknownLabel):
        services.correction_create(submission=submission, label="?")
    assert Correction.objects.count() == 0


def test_review_records_who_and_when_and_skips_already_reviewed(drawing, staff, bob):
    submission = services.submission_create(image=drawing, content_type="image/png")
    correction = services.correction_create(submission=submission, label="1")
    assert services.correction_review(correction_ids=[correction.id], reviewer=staff, status="approved") == 1
    assert services.correction_review(correction_ids=[correction.id], reviewer=bob, status="rejected") == 0
    correction.refresh_from_db()
    assert (correction.status, correction.reviewer, correction.reviewed_at is not None) == ("approved", staff, True)


def record_queued_predictions(monkeypatch) -> list:
    """The ids predict_submission is queued with from now on (queued as before, too)."""
    from recognition import tasks

    queued = []
    real_apply_async = tasks.predict_submission.apply_async
    monkeypatch.setattr(
        tasks.predict_submission,
        "apply_async",
        lambda args, **kw: queued.append(args[0]) or real_apply_async(args, **kw),
    )
    return queued


def test_the_requeue_sweep_queues_rows_left_pending_and_leaves_recent_ones(
    active_model, drawing, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    settings.SUBMISSION_BATCH_SIZE = 1  # one message per pending row
    # Stored while the broker was down: pending, never queued (the db fixture never commits).
    old = [services.submission_create(image=drawing, content_type="image/png") for _ in range(2)]
    recent = services.submission_create(image=drawing, content_type="image/png")
    Submission.objects.filter(id__in=[s.id for s in old]).update(created_at=timezone.now() - timedelta(minutes=5))
    queued = record_queued_predictions(monkeypatch)

    assert services.submission_requeue_stale(older_than_seconds=60) == 2
    assert sorted(queued) == sorted(str(s.id) for s in old)  # the recent row is not queued again...
    statuses = dict(Submission.objects.values_list("id", "status"))
    # ...but the first task drains every pending row, the recent one too.
    assert [statuses[s.id] for s in [*old, recent]] == ["predicted"] * 3
    assert services.submission_requeue_stale(older_than_seconds=60) == 0  # nothing left: nothing queued
    assert Submission.objects.get(id=old[0].id).attempts == 1


QUEUE_BY_NAME_IN_A_FRESH_PROCESS = """
import sys, django
django.setup()
from recognition.services.queueing import SUBMISSION_REQUEUE_STALE, task_send
before = "recognition.tasks" in sys.modules
result = task_send(SUBMISSION_REQUEUE_STALE, queue="inference")
print(before, type(result).__name__, result.get(), "recognition.tasks" in sys.modules)
"""


def test_a_task_queued_by_name_runs_in_process_in_eager_mode_before_anything_imported_the_tasks():
    # send_task alone would ignore eager mode and try to reach a broker that does not exist.
    import subprocess
    import sys

    env = venv_env(DATABASE_URL=database_url_for_subprocess(), CELERY_TASK_ALWAYS_EAGER="1")
    result = subprocess.run(
        [sys.executable, "-c", QUEUE_BY_NAME_IN_A_FRESH_PROCESS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Not imported before; run here (an eager result: the sweep's count, nothing pending); found by name.
    assert result.stdout.split() == ["False", "EagerResult", "0", "True"], (result.stdout, result.stderr[-3000:])


def test_a_broker_failure_while_queueing_leaves_the_row_pending_with_a_note(
    active_model, drawing, monkeypatch, django_capture_on_commit_callbacks
):
    from recognition import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("Error 111 connecting to redis")

    monkeypatch.setattr(tasks.predict_submission, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        submission = services.submission_create(image=drawing, content_type="image/png")
    submission.refresh_from_db()
    assert submission.status == Submission.Status.PENDING and "delayed" in submission.error


def test_a_batch_predicts_every_pending_row_once_in_one_task(active_model, drawing, settings):
    settings.SUBMISSION_BATCH_SIZE = 8
    rows = [
        services.submission_create(image=drawing, content_type="image/png") for _ in range(5)
    ]  # not queued: db fixture
    services.submission_predict(submission_id=str(rows[2].id))
    predicted = Submission.objects.filter(status="predicted")
    assert predicted.count() == 5 and {s.model_version_id for s in predicted} == {active_model.id}
    assert sorted(predicted.values_list("attempts", flat=True)) == [1] * 5
    for row in rows:  # the other rows' own tasks arrive later and find nothing to do
        assert services.submission_predict(submission_id=str(row.id)) == Submission.Status.PREDICTED
        row.refresh_from_db()
        assert row.attempts == 1


def test_a_task_drains_pending_rows_batch_after_batch_even_when_its_own_is_done(active_model, drawing, settings):
    settings.SUBMISSION_BATCH_SIZE = 2
    first = services.submission_create(image=drawing, content_type="image/png")  # not queued: db fixture
    services.submission_predict(submission_id=str(first.id))
    # Five rows whose requests queued no task of their own (one was queued already).
    rows = [services.submission_create(image=drawing, content_type="image/png") for _ in range(5)]
    # A task whose row is done still claims every pending row: 2 + 2 + 1.
    assert services.submission_predict(submission_id=str(first.id)) == Submission.Status.PREDICTED
    assert Submission.objects.filter(status="predicted").count() == 6
    assert sorted(Submission.objects.filter(id__in=[r.id for r in rows]).values_list("attempts", flat=True)) == [1] * 5


def test_a_long_drain_hands_over_to_a_queued_successor(active_model, drawing, settings, monkeypatch):
    from recognition.services import submissions

    settings.SUBMISSION_BATCH_SIZE = 1
    monkeypatch.setattr(submissions, "DRAIN_MAX_BATCHES", 1)
    queued = record_queued_predictions(monkeypatch)
    rows = [services.submission_create(image=drawing, content_type="image/png") for _ in range(3)]  # not queued
    services.submission_predict(submission_id=str(rows[0].id))
    # One batch per task, each queueing the next (eager here: run at once) until a claim is short.
    assert queued == [str(rows[0].id)] * 3
    assert Submission.objects.filter(status="predicted").count() == 3


def test_the_stored_prediction_travels_with_the_notification_and_matches_the_row(
    active_model, drawing, django_capture_on_commit_callbacks
):
    from recognition.services.results import result_fields

    with django_capture_on_commit_callbacks(execute=True):
        submission = services.submission_create(image=drawing, content_type="image/png")
    row = Submission.objects.get(id=submission.id)
    assert row.status == Submission.Status.PREDICTED
    # What the worker pushes is JSON; what the request sets from it equals what a read gives.
    import json

    answered = Submission.objects.get(id=submission.id)
    for name in ("status", "predicted_label", "confidence", "top_k", "latency_ms", "error", "predicted_at"):
        setattr(answered, name, None)
    assert services.result_fields_apply(answered, json.loads(json.dumps(result_fields(row))))
    for name in (
        "status",
        "predicted_label",
        "confidence",
        "top_k",
        "model_version_id",
        "latency_ms",
        "error",
        "predicted_at",
    ):
        assert getattr(answered, name) == getattr(row, name), name


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"status": "predicted"},
        {
            "status": "maybe",
            "predicted_label": "",
            "confidence": None,
            "top_k": [],
            "model_version_id": None,
            "latency_ms": None,
            "error": "",
            "predicted_at": None,
        },
        {
            "status": "predicted",
            "predicted_label": "a",
            "confidence": 1,
            "top_k": [],
            "model_version_id": 1,
            "latency_ms": 1,
            "error": "",
            "predicted_at": "not a date",
        },
    ],
)
def test_a_notification_that_is_not_a_stored_prediction_is_ignored(message, drawing):
    submission = services.submission_create(image=drawing, content_type="image/png")  # db fixture: not queued
    assert not services.result_fields_apply(submission, message)
    assert submission.status == Submission.Status.PENDING and submission.predicted_label == ""
