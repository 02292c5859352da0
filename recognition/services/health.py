"""Is this process able to serve? The database, the broker, a worker consuming inference and the
active model, for /api/v1/health.

Reads only. Nothing here loads a model: that would import TensorFlow into the web process.
"""

import zipfile
from pathlib import Path

import redis
from django.db import connection

from emnist_site.celery import app
from emnist_site.heartbeat import heartbeat_max_age, heartbeat_read
from recognition import selectors
from recognition.models import ModelVersion
from recognition.services.model_versions import model_version_path
from recognition.services.predictors import predictor_loaded_version_id


def health_check() -> dict:
    """``{"ok": all ok, "checks": {name: {"ok", "detail", ...}}}`` for database, broker, worker,
    model. A check that raises is reported as failed, with the exception, never raised. The
    details name hosts and paths: staff only (see health_public)."""
    checks = {}
    for name, check in (
        ("database", _check_database),
        ("broker", _check_broker),
        ("worker", _check_worker),
        ("model", _check_model),
    ):
        try:
            checks[name] = check()
        except Exception as exc:  # noqa: BLE001 - report any failure as unhealthy
            checks[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}


def _check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True, "detail": connection.vendor}


def _check_broker() -> dict:
    if app.conf.task_always_eager:
        return {"ok": True, "detail": "eager: tasks run in the web process"}
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
    return {"ok": True, "detail": conn.as_uri()}


def health_public(report: dict) -> dict:
    """What anyone may see: whether the site serves, nothing about where its parts are."""
    return {"ok": report["ok"], "status": "ok" if report["ok"] else "unavailable"}


def _check_worker() -> dict:
    """Some worker consumed the inference queue within the heartbeat deadline: without one every
    submission stays pending, however healthy the web, the database and the broker are."""
    if app.conf.task_always_eager:
        return {"ok": True, "detail": "eager: tasks run in the web process"}
    try:
        beat = heartbeat_read(app.conf.broker_url, "inference")
    except redis.RedisError as exc:
        return {"ok": False, "detail": f"no worker heartbeat readable: {type(exc).__name__}: {exc}"}
    if beat is None:
        return {"ok": False, "detail": "no worker consuming inference"}
    age = round(beat["age"], 1)
    if age > heartbeat_max_age():
        return {"ok": False, "detail": f"no worker consuming inference: the last heartbeat is {age} s old"}
    return {"ok": True, "detail": f"{beat['hostname']} beat {age} s ago", "heartbeat_age_seconds": age}


def _check_model() -> dict:
    """The active version's file exists, is a whole Keras archive, and the last load a worker
    (or a promotion) tried succeeded. Loading it here would import TensorFlow into the web
    process, which only the eager default does anyway. Versions refused because their file
    does not load are listed, without making the site unhealthy."""
    refused = [
        {"id": v.id, "name": v.name, "error": v.load_error}
        for v in ModelVersion.objects.exclude(load_error="").exclude(status=ModelVersion.Status.ACTIVE)[:10]
    ]
    extra = {"unloadable_versions": refused} if refused else {}
    version = selectors.model_version_get_active()
    if version is None:
        return {"ok": False, "detail": "no active model version", **extra}
    path = model_version_path(version)
    if not path.is_file():
        return {"ok": False, "detail": f"{version.name}: model file missing: {version.file_path}", **extra}
    problem = _archive_problem(path)
    if problem:
        return {"ok": False, "detail": f"{version.name}: {version.file_path} {problem}", **extra}
    if version.load_error:
        return {"ok": False, "detail": f"{version.name} does not load: {version.load_error}", **extra}
    return {"ok": True, "detail": version.name, "loaded_here": predictor_loaded_version_id() == version.id, **extra}


# (path, size, mtime_ns) -> problem, for the one file last checked.
_archive_checks: dict[tuple[str, int, int], str] = {}


def _archive_problem(path: Path) -> str:
    """ "" if ``path`` is a complete Keras archive (config.json present, every CRC right).
    Cached per (path, size, mtime): a health probe every few seconds must not re-read it."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _archive_checks:
        try:
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    problem = "has no config.json"
                else:
                    bad = archive.testzip()
                    problem = f"is corrupted ({bad} fails its CRC)" if bad else ""
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            problem = f"is not a readable archive ({exc})"
        _archive_checks.clear()
        _archive_checks[key] = problem
    return _archive_checks[key]
