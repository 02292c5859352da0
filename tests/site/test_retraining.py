"""Retraining through the service on tiny data: skip, promote, reject, lock, rollback, failure."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from recognition import services
from recognition.errors import InvalidState, NotFound
from recognition.models import Correction, ModelVersion, TrainingRun
from recognition.selectors import model_version_get_active
from recognition.services.retraining import RetrainingBusy, correction_is_held_back

pytestmark = pytest.mark.django_db


def test_too_few_new_corrections_is_a_clear_nothing_to_do(retrain_settings, active_model, approved_corrections):
    approved_corrections(2)
    run = services.retraining_run(reason="scheduled")
    assert run.status == TrainingRun.Status.SKIPPED and run.reason == "scheduled"
    assert "Nothing to do" in run.summary["message"] and "at least 3" in run.summary["message"]
    assert ModelVersion.objects.count() == 1 and not (retrain_settings.MODEL_DIR).exists()
    assert run.duration_seconds is not None and run.finished_at


def test_a_passing_candidate_is_promoted_and_records_what_it_used(retrain_settings, active_model, approved_corrections):
    corrections = approved_corrections(12)
    run = services.retraining_run(reason="manual")
    assert run.status == TrainingRun.Status.SUCCEEDED, (run.error, run.log)
    version = run.result
    assert version.status == ModelVersion.Status.ACTIVE and version == model_version_get_active()
    assert version.parent == active_model and version.gate_results["passed"]
    active_model.refresh_from_db()
    assert active_model.status == ModelVersion.Status.RETIRED
    held = [c.id for c in corrections if correction_is_held_back(c.id)]
    trained = [c.id for c in corrections if not correction_is_held_back(c.id)]
    assert held and version.training_summary["correction_ids"] == trained
    assert version.training_summary["held_back_ids"] == held
    # The frame style was learned: the held-back frames are now read as 'z'.
    assert version.metrics["held_back"]["top1"] == 1.0 and version.metrics["held_back"]["n"] == len(held)
    assert set(Correction.objects.filter(learned_by=version).values_list("id", flat=True)) == set(trained)
    assert not Correction.objects.filter(id__in=held, learned_by__isnull=False).exists()
    assert services.model_version_path(version).is_file() and str(retrain_settings.MODEL_DIR) in version.file_path
    assert not list(retrain_settings.MODEL_DIR.glob(".*partial*"))
    assert "validation top-1" in run.log and run.duration_seconds > 0
    assert "confusion_matrix" in version.metrics["validation"]
    # Learned corrections are not new any more: the next run has nothing to do.
    assert services.retraining_run().status == TrainingRun.Status.SKIPPED


def test_a_failing_candidate_is_kept_rejected_with_the_reason(retrain_settings, active_model, approved_corrections):
    retrain_settings.RETRAIN_MAX_VAL_DROP = -1.0  # demands +100 points: no candidate can pass
    approved_corrections(8)
    run = services.retraining_run()
    assert run.status == TrainingRun.Status.SUCCEEDED
    version = run.result
    assert version.status == ModelVersion.Status.REJECTED and not version.gate_results["passed"]
    assert "validation top-1 dropped" in version.gate_results["reason"]
    assert model_version_get_active() == active_model
    assert not Correction.objects.filter(learned_by__isnull=False).exists()  # still new for the next run
    with pytest.raises(InvalidState, match="rejected by the quality gates"):
        services.model_version_activate(model_version=version)
    assert model_version_get_active() == active_model


def test_a_second_run_is_refused_while_one_holds_the_lock(retrain_settings, active_model, approved_corrections):
    approved_corrections(8)
    holder = TrainingRun.objects.create(
        reason="scheduled", status=TrainingRun.Status.RUNNING, started_at=timezone.now()
    )
    with pytest.raises(RetrainingBusy, match=f"run {holder.id}"):
        services.retraining_run(reason="manual")
    assert TrainingRun.objects.count() == 1 and ModelVersion.objects.count() == 1
    # The lock is the database's: a second running row cannot exist, whoever writes it.
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRun.objects.create(reason="manual", status=TrainingRun.Status.RUNNING)


def test_an_abandoned_lock_is_released_after_the_timeout(retrain_settings, active_model, approved_corrections):
    approved_corrections(2)
    old = timezone.now() - timezone.timedelta(seconds=retrain_settings.RETRAIN_LOCK_TIMEOUT_SECONDS + 60)
    dead = TrainingRun.objects.create(reason="scheduled", status=TrainingRun.Status.RUNNING, started_at=old)
    run = services.retraining_run()
    dead.refresh_from_db()
    assert dead.status == TrainingRun.Status.FAILED and "Abandoned" in dead.error
    assert run.status == TrainingRun.Status.SKIPPED


def test_a_crash_mid_run_leaves_no_half_written_version(
    retrain_settings, active_model, approved_corrections, monkeypatch
):
    approved_corrections(8)

    def broken_score(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("recognition.services.retraining.evaluate_probs", broken_score)
    run = services.retraining_run()
    assert run.status == TrainingRun.Status.FAILED and "disk full" in run.error
    assert ModelVersion.objects.count() == 1 and model_version_get_active() == active_model
    assert not list(retrain_settings.MODEL_DIR.glob("*")) if retrain_settings.MODEL_DIR.exists() else True
    # The lock was released: the next run starts.
    monkeypatch.undo()
    assert services.retraining_run().status == TrainingRun.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)  # so that "inside a transaction" means the service's own
def test_the_candidate_is_loaded_outside_the_transaction_and_one_that_does_not_load_fails_the_run(
    retrain_settings, active_model, approved_corrections, monkeypatch
):
    from django.db import connection

    from recognition.services import retraining

    approved_corrections(8)
    checks = []

    def unloadable(path):
        checks.append((path.name, connection.in_atomic_block))
        return "bad marshal data"

    monkeypatch.setattr(retraining, "model_file_check", unloadable)
    run = services.retraining_run()
    # Loaded once, outside any transaction (loading takes seconds; the lock must stay short).
    assert [in_atomic for _, in_atomic in checks] == [False] and checks[0][0].endswith(".keras")
    assert run.status == TrainingRun.Status.FAILED and "does not load (bad marshal data)" in run.error
    assert ModelVersion.objects.count() == 1 and model_version_get_active() == active_model
    assert not list(retrain_settings.MODEL_DIR.glob("*"))  # the candidate's file went with it
    assert not Correction.objects.filter(learned_by__isnull=False).exists()
    # A file that loads is promoted, and its load is recorded as checked.
    monkeypatch.undo()
    promoted = services.retraining_run().result
    assert promoted.status == ModelVersion.Status.ACTIVE and promoted.load_error == "" and promoted.load_checked_at


def test_rollback_to_an_earlier_version_and_refusals(retrain_settings, active_model, approved_corrections):
    approved_corrections(8)
    promoted = services.retraining_run().result
    assert promoted.status == ModelVersion.Status.ACTIVE
    services.model_version_activate(model_version=active_model)  # roll back
    assert model_version_get_active() == active_model
    promoted.refresh_from_db()
    assert promoted.status == ModelVersion.Status.RETIRED
    services.model_version_activate(model_version=promoted)  # and forward again
    assert model_version_get_active() == promoted

    missing_file = ModelVersion.objects.create(name="gone", file_path="/nonexistent/gone.keras")
    with pytest.raises(InvalidState, match="missing"):
        services.model_version_activate(model_version=missing_file)
    deleted = ModelVersion(pk=987654, name="deleted")
    with pytest.raises(NotFound):
        services.model_version_activate(model_version=deleted)
    assert model_version_get_active() == promoted


def test_a_bad_finetune_setting_fails_the_run_clearly_and_writes_no_version(
    retrain_settings, active_model, approved_corrections
):
    approved_corrections(8)
    retrain_settings.RETRAIN_FINETUNE = {**retrain_settings.RETRAIN_FINETUNE, "replay": "everything"}
    run = services.retraining_run()
    assert run.status == TrainingRun.Status.FAILED and "replay must be 'byclass' or 'all'" in run.error
    retrain_settings.RETRAIN_FINETUNE = {"learning_rte": 1e-4}
    run = services.retraining_run()
    assert run.status == TrainingRun.Status.FAILED and "learning_rte" in run.error
    assert ModelVersion.objects.count() == 1 and model_version_get_active() == active_model
    assert not Correction.objects.filter(learned_by__isnull=False).exists()


def test_the_full_training_mix_can_be_replayed(retrain_settings, active_model, approved_corrections):
    approved_corrections(8)
    retrain_settings.RETRAIN_FINETUNE = {**retrain_settings.RETRAIN_FINETUNE, "replay": "all", "distill": 1.0}
    run = services.retraining_run()
    assert run.status == TrainingRun.Status.SUCCEEDED, (run.error, run.log)
    assert "replay data (all)" in run.log
    assert run.result.training_summary["finetune"]["config"]["distill"] == 1.0


def test_no_active_model_fails_the_run_with_the_reason(retrain_settings, approved_corrections):
    approved_corrections(8)
    run = services.retraining_run()
    assert run.status == TrainingRun.Status.FAILED and run.error == "No active model version."


def test_the_task_is_thin_and_reports_busy(retrain_settings, active_model, approved_corrections):
    from recognition.tasks import retraining_run as retraining_run_task

    approved_corrections(2)
    assert retraining_run_task.run(reason="scheduled").endswith("skipped")
    TrainingRun.objects.create(reason="scheduled", status=TrainingRun.Status.RUNNING, started_at=timezone.now())
    assert retraining_run_task.run(reason="manual").startswith("busy:")


def test_setup_site_creates_the_nightly_schedule_once_and_keeps_admin_edits(settings):
    from django.core.management import call_command
    from django_celery_beat.models import PeriodicTask

    call_command("setup_site", "--no-migrate")
    task = PeriodicTask.objects.get(task="recognition.tasks.retraining_run")
    assert (task.crontab.minute, task.crontab.hour) == ("0", "3") and task.queue == "training"
    assert '"scheduled"' in task.kwargs
    task.enabled = False
    task.save()
    call_command("setup_site", "--no-migrate")
    assert PeriodicTask.objects.filter(task="recognition.tasks.retraining_run").count() == 1
    assert not PeriodicTask.objects.get(task="recognition.tasks.retraining_run").enabled
