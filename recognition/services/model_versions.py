import json
import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from recognition.errors import InvalidState, NotFound
from recognition.models import ModelVersion

logger = logging.getLogger(__name__)

SHIPPED_MODEL_NAME = "emnist_cnn-shipped"


def model_version_path(model_version: ModelVersion) -> Path:
    path = Path(model_version.file_path)
    return path if path.is_absolute() else settings.BASE_DIR / path


@transaction.atomic
def model_version_activate(*, model_version: ModelVersion, require_file: bool = True) -> ModelVersion:
    """Make ``model_version`` the one active version and retire the previous one.

    Promotion and rollback are the same call. Retire first, then activate: the partial unique
    index allows one active row at a time. Workers pick the change up on their next task (they
    look the active version up per task).

    Raises:
        NotFound: the version no longer exists.
        InvalidState: the version was rejected by the quality gates, or its model file is missing.
    """
    try:
        locked = ModelVersion.objects.select_for_update().get(pk=model_version.pk)
    except ModelVersion.DoesNotExist:
        raise NotFound(f"Model version {model_version.pk} does not exist.") from None
    if locked.status == ModelVersion.Status.ACTIVE:
        return locked
    if locked.status == ModelVersion.Status.REJECTED:
        reason = (locked.gate_results or {}).get("reason") or "no reason recorded"
        raise InvalidState(f"{locked.name} was rejected by the quality gates ({reason}); it cannot be made active.")
    if require_file and not model_version_path(locked).is_file():
        raise InvalidState(f"{locked.name}: model file {model_version_path(locked)} is missing; it cannot be made active.")
    ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).update(status=ModelVersion.Status.RETIRED)
    locked.status = ModelVersion.Status.ACTIVE
    locked.activated_at = timezone.now()
    locked.save(update_fields=["status", "activated_at"])
    return locked


def _shipped_metrics() -> dict:
    report = settings.BASE_DIR / settings.SHIPPED_MODEL_REPORT_PATH
    try:
        data = json.loads(report.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("could not read %s: %s", report, exc)
        return {}
    return {"validation": data.get("validation", {}), "report": settings.SHIPPED_MODEL_REPORT_PATH}


@transaction.atomic
def model_version_register_shipped() -> ModelVersion:
    """Register the model file committed in the repo; activate it if nothing is active.

    Idempotent: `manage.py setup_site` runs it on every start. Metrics are refreshed from the
    report so a retrained shipped file shows its new numbers.
    """
    metrics = _shipped_metrics()
    version, created = ModelVersion.objects.get_or_create(
        name=SHIPPED_MODEL_NAME,
        defaults={"file_path": settings.SHIPPED_MODEL_PATH, "metrics": metrics, "training_summary": {"source": "shipped"}},
    )
    if not created and metrics and version.metrics != metrics:
        version.metrics = metrics
        version.save(update_fields=["metrics"])
    if not ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).exists():
        # Even without its file (not trained yet): health then says what is missing.
        version = model_version_activate(model_version=version, require_file=False)
    return version
