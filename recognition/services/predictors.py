"""One loaded model per process, swapped when the active ModelVersion changes.

TensorFlow is not fork-safe, so nothing here runs at import time: the first prediction in a
process (a worker child, or the web process in eager mode) loads the model. The cache is a
single tuple replaced in one assignment, so a concurrent reader sees either the old model
or the new one, never a half-swapped state.
"""

import os
import threading

from recognition.models import ModelVersion
from recognition.services.model_recovery import submission_retry_model_failures

_cache: tuple | None = None  # ((pid, version id, path), predictor)
_load_lock = threading.Lock()


def predictor_get(*, model_version: ModelVersion):
    """The loaded predictor for ``model_version``; raises ml.errors.ModelFileError."""
    from recognition.services.model_versions import model_version_path

    global _cache
    key = (os.getpid(), model_version.id, str(model_version_path(model_version)))
    cached = _cache
    if cached is not None and cached[0] == key:
        return cached[1]
    with _load_lock:
        cached = _cache
        if cached is not None and cached[0] == key:
            return cached[1]
        from ml.inference import load_predictor  # imports TensorFlow: seconds, once per process

        predictor = load_predictor(key[2])
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
