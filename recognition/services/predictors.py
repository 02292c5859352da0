"""One loaded model per process, swapped when the active ModelVersion changes.

TensorFlow is not fork-safe, so nothing here runs at import time: the first prediction in a
process (a worker child, or the web process in eager mode) loads the model. The cache is a
single tuple replaced in one assignment, so a concurrent reader sees either the old model
or the new one, never a half-swapped state.
"""

import os
import threading

from ml.errors import ModelFileError
from ml.inference import load_predictor
from recognition.models import ModelVersion, Submission
from recognition.selectors import model_version_get_serving
from recognition.services.model_recovery import submission_retry_model_failures
from recognition.services.model_versions import model_version_path

_cache: tuple | None = None  # ((pid, version id, path), predictor)
_load_lock = threading.Lock()


def predictor_get(*, model_version: ModelVersion):
    """The loaded predictor for ``model_version``; raises ml.errors.ModelFileError."""
    global _cache
    key = (os.getpid(), model_version.id, str(model_version_path(model_version)))
    cached = _cache
    if cached is not None and cached[0] == key:
        return cached[1]
    with _load_lock:
        cached = _cache
        if cached is not None and cached[0] == key:
            return cached[1]
        predictor = load_predictor(key[2])  # imports TensorFlow: seconds, once per process
        _cache = (key, predictor)
    # A model loads (again): drawings that failed for want of one are predicted now. Outside
    # the lock: in eager mode their task runs at once and comes back here for the predictor.
    submission_retry_model_failures()
    return predictor


def _cached_here() -> tuple | None:
    """The cache entry if this process loaded it (a forked child inherits its parent's)."""
    cached = _cache
    return cached if cached is not None and cached[0][0] == os.getpid() else None


def predictor_peek():
    """The predictor this process has loaded (any version), or None: never loads."""
    cached = _cached_here()
    return cached[1] if cached else None


def predictor_loaded_version_id() -> int | None:
    cached = _cached_here()
    return cached[0][1] if cached else None


def submission_retry_model_failures_probe() -> int:
    """For the periodic sweep (on the inference queue): when rows wait for a model, try the
    serving version's file, and retry them if it loads. Without this, a file fixed in place
    would be noticed only when the next drawing arrives. Returns how many were retried."""
    waiting = Submission.objects.filter(
        status=Submission.Status.FAILED, failure_reason=Submission.FailureReason.MODEL_UNAVAILABLE
    )
    version = model_version_get_serving() if waiting.exists() else None
    if version is None:
        return 0
    try:
        predictor_get(model_version=version)  # a fresh load retries the rows itself
    except ModelFileError:
        return 0  # still broken: they wait for the next sweep
    return submission_retry_model_failures()  # loaded before: retry them here
