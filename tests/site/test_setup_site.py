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
