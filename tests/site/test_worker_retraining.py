"""Retraining and the live model swap on a real Celery worker on Redis (started as compose does)."""

import json
import time

import pytest

from recognition import services
from recognition.models import ModelVersion, Submission, TrainingRun
from tests.site.conftest import TINY_FINETUNE
from tests.site.workers import post_drawing, wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def retrain_env(tiny_emnist_dir, tmp_path, max_drop: str) -> dict:
    return {
        "EMNIST_DATA_DIR": str(tiny_emnist_dir),
        "MODEL_DIR": str(tmp_path / "models"),
        "RETRAIN_MIN_NEW_CORRECTIONS": "3",
        "RETRAIN_MAX_VAL_DROP": max_drop,
        "RETRAIN_FINETUNE": json.dumps(TINY_FINETUNE),
    }


class Drawings:
    """Drawings one client posts, and whether the worker has answered every one of them."""

    def __init__(self, client, drawing: bytes):
        self.client, self.drawing, self.ids = client, drawing, []

    def submit(self, n: int) -> None:
        for _ in range(n):
            response = post_drawing(self.client, self.drawing)
            # 201 when a warm worker's batch already stored it before the answer was built.
            assert response.status_code in (201, 202)
            self.ids.append(response.json()["id"])

    def all_done(self) -> bool:
        return not Submission.objects.filter(id__in=self.ids, status=Submission.Status.PENDING).exists()


@pytest.mark.parametrize("max_drop, promoted", [("1.0", True), ("-1.0", False)], ids=["passing", "failing"])
def test_a_scheduled_run_on_the_training_queue_promotes_or_rejects(
    active_model, approved_corrections, start_worker, tiny_emnist_dir, tmp_path, max_drop, promoted
):
    from recognition.tasks import retraining_run as retraining_run_task

    approved_corrections(8)
    worker = start_worker("training-worker", **retrain_env(tiny_emnist_dir, tmp_path, max_drop))
    retraining_run_task.apply_async(kwargs={"reason": "scheduled"}, queue="training")
    run = wait_for(
        lambda: TrainingRun.objects.exclude(status=TrainingRun.Status.RUNNING).first(),
        240,
        worker,
        "the retraining run",
    )
    assert run.status == TrainingRun.Status.SUCCEEDED and run.reason == "scheduled", (run.error, worker.tail())
    version = run.result
    assert version.parent == active_model
    assert version.status == (ModelVersion.Status.ACTIVE if promoted else ModelVersion.Status.REJECTED)
    active_model.refresh_from_db()
    assert active_model.status == (ModelVersion.Status.RETIRED if promoted else ModelVersion.Status.ACTIVE)
    assert (tmp_path / "models" / f"{version.name}.keras").is_file()
    assert "recognition.tasks.retraining_run" in worker.tail()


def test_a_worker_swaps_to_a_newly_active_version_without_restart(
    anon, active_model, drawing, start_worker, tiny_model_path
):
    """Predictions keep flowing while the active version changes twice; each records the version
    that was active when the worker looked it up, and the worker process never restarts."""
    worker = start_worker()
    second = ModelVersion.objects.create(name="second", file_path=str(tiny_model_path))
    switches = []  # (time, version) after each activation committed
    drawings = Drawings(anon, drawing)
    submit, all_done, ids = drawings.submit, drawings.all_done, drawings.ids

    submit(3)
    wait_for(all_done, 120, worker, "the first predictions")
    pid = worker.process.pid
    first_batch = set(ids)
    for version in (second, active_model):
        services.model_version_activate(model_version=version)
        switches.append((time.time(), version))
        submit(4)  # queued right after the switch: each must be served by the new version
        wait_for(all_done, 120, worker, f"predictions after activating {version.name}")
        recent = Submission.objects.filter(id__in=ids[-4:])
        assert {s.model_version_id for s in recent} == {version.id}, worker.tail()
    rows = Submission.objects.filter(id__in=ids)
    assert all(s.status == Submission.Status.PREDICTED for s in rows)
    assert {s.model_version_id for s in rows if str(s.id) in first_batch} == {active_model.id}
    assert worker.process.poll() is None and worker.process.pid == pid


def test_predictions_in_flight_across_switches_each_record_a_version_active_at_the_time(
    anon, active_model, drawing, start_worker, tiny_model_path
):
    """Drawings keep arriving while the active version changes three times, without waiting for
    the worker in between. Every prediction must name a version that was active at some moment
    between the drawing's arrival and its prediction (activation times are bracketed by the
    clock read just before and just after each activation commits)."""
    worker = start_worker()
    second = ModelVersion.objects.create(name="second", file_path=str(tiny_model_path))
    drawings = Drawings(anon, drawing)
    submit, all_done, ids = drawings.submit, drawings.all_done, drawings.ids

    submit(2)
    wait_for(all_done, 120, worker, "the first predictions (worker warm)")
    pid = worker.process.pid
    # Each version's possible active spans: (earliest start, latest end), seconds since the epoch.
    spans = {active_model.id: [[float("-inf"), None]]}
    for version in (second, active_model, second):
        submit(3)  # still queued or being served when the switch happens
        before = time.time()
        services.model_version_activate(model_version=version)
        after = time.time()
        for open_spans in spans.values():
            for span in open_spans:
                if span[1] is None:
                    span[1] = after  # the previous version stopped being active by then
        spans.setdefault(version.id, []).append([before, None])
    submit(3)
    wait_for(all_done, 120, worker, "every prediction")

    rows = list(Submission.objects.filter(id__in=ids))
    assert all(s.status == Submission.Status.PREDICTED for s in rows), [s.error for s in rows]
    for s in rows:
        made = (s.created_at.timestamp(), s.predicted_at.timestamp())
        possible = spans[s.model_version_id]
        assert any(start <= made[1] and (end is None or end >= made[0]) for start, end in possible), (
            f"{s.id} arrived {made[0]:.3f}, predicted {made[1]:.3f} by version {s.model_version_id}, "
            f"active only during {possible}"
        )
    assert {s.model_version_id for s in rows} == {active_model.id, second.id}
    last = sorted(rows, key=lambda s: s.created_at)[-3:]
    assert {s.model_version_id for s in last} == {second.id}
    assert worker.process.poll() is None and worker.process.pid == pid
