import pytest
from django.core.management import call_command

from recognition.models import ModelVersion


@pytest.mark.django_db
def test_setup_site_creates_missing_data_folders_and_registers_the_shipped_model_once(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "fresh" / "var"
    settings.MODEL_DIR = tmp_path / "fresh" / "var" / "models"
    call_command("setup_site", "--no-migrate", verbosity=0)
    call_command("setup_site", "--no-migrate", verbosity=0)
    assert settings.DATA_DIR.is_dir() and settings.MODEL_DIR.is_dir()
    assert ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).count() == 1
    assert ModelVersion.objects.get().file_path.endswith("ml/artifacts/emnist_cnn.keras")


@pytest.mark.django_db
def test_setup_site_creates_the_requeue_sweep_schedule_once(settings, tmp_path):
    from django_celery_beat.models import PeriodicTask

    settings.DATA_DIR = tmp_path / "var"
    settings.MODEL_DIR = tmp_path / "var" / "models"
    call_command("setup_site", "--no-migrate", verbosity=0)
    call_command("setup_site", "--no-migrate", verbosity=0)
    sweep = PeriodicTask.objects.get(task="recognition.tasks.submission_requeue_stale")
    assert sweep.interval.every == settings.SUBMISSION_REQUEUE_INTERVAL_SECONDS and sweep.queue == "inference"
