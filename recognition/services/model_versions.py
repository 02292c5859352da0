import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ml.errors import ModelFileError
from ml.inference import load_predictor
from recognition.errors import InvalidState, NotFound
from recognition.models import ModelVersion

logger = logging.getLogger(__name__)

SHIPPED_MODEL_NAME = "emnist_cnn-shipped"
MODEL_CHECK_TIMEOUT_SECONDS = 120


def model_version_path(model_version: ModelVersion) -> Path:
    path = Path(model_version.file_path)
    return path if path.is_absolute() else settings.BASE_DIR / path


def model_version_record_load(*, model_version: ModelVersion, error: str) -> None:
    """Record whether the version's file loaded ("" = it did), for health and the admin."""
    ModelVersion.objects.filter(pk=model_version.pk).update(load_error=error[:2000], load_checked_at=timezone.now())
    model_version.load_error = error[:2000]


def model_file_check(path: Path) -> str:
    """Load the model file the way a worker would; returns "" if it loads, else the reason.

    In a process that already has TensorFlow (a worker, a test) it loads here; elsewhere (the
    web process promoting from the admin) in a child process, so that the web process does
    not import TensorFlow and a file that crashes the loader cannot take it down.
    """
    if not path.is_file():
        return f"model file {path} is missing"
    if "tensorflow" in sys.modules:
        try:
            load_predictor(path)
        except ModelFileError as exc:
            return str(exc)
        return ""
    code = "import sys\nfrom ml.inference import load_predictor\nload_predictor(sys.argv[1])\n"
    try:
        result = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            cwd=settings.BASE_DIR,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            capture_output=True,
            text=True,
            timeout=MODEL_CHECK_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return f"loading {path} took over {MODEL_CHECK_TIMEOUT_SECONDS} s"
    if result.returncode == 0:
        return ""
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"loading {path} exited with status {result.returncode}"


def model_version_activate(*, model_version: ModelVersion, require_file: bool = True) -> ModelVersion:
    """Make ``model_version`` the one active version and retire the previous one.

    Promotion and rollback are the same call. The file is loaded first (outside the
    transaction: it takes seconds); a version whose file does not load is refused, the
    reason is recorded on it, and the active version stays in service. Retire first, then
    activate: the partial unique index allows one active row at a time. Workers pick the
    change up on their next task (they look the active version up per task).

    Raises:
        NotFound: the version no longer exists.
        InvalidState: the version was rejected by the quality gates, or its model file is
            missing or does not load.
    """
    current = ModelVersion.objects.filter(pk=model_version.pk).first()
    if current is None:
        raise NotFound(f"Model version {model_version.pk} does not exist.")
    if require_file and current.status not in (ModelVersion.Status.ACTIVE, ModelVersion.Status.REJECTED):
        error = model_file_check(model_version_path(current))
        model_version_record_load(model_version=current, error=error)
        if error:
            raise InvalidState(f"{current.name}: its model file does not load ({error}); it cannot be made active.")
    return model_version_activate_loaded(model_version=current, require_file=require_file)


@transaction.atomic
def model_version_activate_loaded(*, model_version: ModelVersion, require_file: bool = True) -> ModelVersion:
    """The row part of ``model_version_activate``, for a caller that has loaded the file
    already (``model_file_check``, outside its transaction): lock the version, refuse a
    rejected one or a missing file, retire the active one, activate. Milliseconds, so it can
    run inside the caller's transaction.

    Raises:
        NotFound, InvalidState: as ``model_version_activate``.
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
        raise InvalidState(
            f"{locked.name}: model file {model_version_path(locked)} is missing; it cannot be made active."
        )
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
        defaults={
            "file_path": settings.SHIPPED_MODEL_PATH,
            "metrics": metrics,
            "training_summary": {"source": "shipped"},
        },
    )
    if not created and metrics and version.metrics != metrics:
        version.metrics = metrics
        version.save(update_fields=["metrics"])
    if not ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).exists():
        # Even without its file (not trained yet): health then says what is missing.
        version = model_version_activate(model_version=version, require_file=False)
    return version
