"""Drawings that failed because no model could be loaded are predicted once one loads.

No active version, or an active file that does not load, is not the drawing's fault: the rows
a worker claimed meanwhile are marked failed with ``FailureReason.MODEL_UNAVAILABLE`` and a
message that names the version but never its file (anonymous visitors read it; the path goes
to the server log, and to the version's ``load_error``, which only staff see). When a process
then loads a predictor (``predictors.predictor_get``: the file fixed in place, a promotion,
a rollback, a worker restart), those rows go back to pending and one prediction task is
queued, which drains them all.
"""

import logging

from django.db import transaction

from ml.errors import ModelFileError
from recognition.models import ModelVersion, Submission
from recognition.selectors import model_version_get_serving
from recognition.services.model_versions import model_version_path
from recognition.services.submissions import queue_or_note, result_fields

logger = logging.getLogger(__name__)

NO_ACTIVE_VERSION = "No active model version."
CANNOT_LOAD = "The active model {name} cannot be loaded ({cause}); the drawing is predicted again once a model loads."


def submission_fail_model_unavailable(
    *, ids: list[str], model_version: ModelVersion | None, detail: str = ""
) -> dict[str, dict]:
    """Mark these claimed rows failed for want of a model; returns their ``result_fields``.

    ``detail`` (the loader's error, with the file's path) is logged, never stored on the rows.
    """
    if model_version is None:
        reason = NO_ACTIVE_VERSION
    else:
        cause = "file does not load" if model_version_path(model_version).is_file() else "file not found"
        reason = CANNOT_LOAD.format(name=model_version.name, cause=cause)
    logger.warning("%d submission(s) wait for a model: %s %s", len(ids), reason, detail)
    Submission.objects.filter(id__in=ids, status=Submission.Status.PENDING).update(
        status=Submission.Status.FAILED, error=reason, failure_reason=Submission.FailureReason.MODEL_UNAVAILABLE
    )
    failed = Submission(status=Submission.Status.FAILED, error=reason, top_k=[])
    return {str(i): result_fields(failed) for i in ids}


def submission_retry_model_failures() -> int:
    """Put the rows that failed for want of a model back to pending and queue their prediction
    once this transaction commits; returns how many. Called when a predictor has loaded."""
    from recognition.tasks import predict_submission as predict_submission_task

    waiting = Submission.objects.filter(
        status=Submission.Status.FAILED, failure_reason=Submission.FailureReason.MODEL_UNAVAILABLE
    )
    first = waiting.order_by("created_at").values_list("id", flat=True).first()
    if first is None:
        return 0
    # Conditional on still being such a row: two processes loading at once retry each row once.
    retried = waiting.update(status=Submission.Status.PENDING, error="", failure_reason="")
    logger.info("a model loads: %d submission(s) that failed for want of one are queued again", retried)
    first = str(first)
    # One task drains every pending row (submission_predict), so one message is enough.
    transaction.on_commit(lambda: queue_or_note(predict_submission_task, first, Submission.objects.filter(id=first)))
    return retried


def submission_retry_model_failures_probe() -> int:
    """For the periodic sweep (on the inference queue): when rows wait for a model, try the
    serving version's file, and retry them if it loads. Without this, a file fixed in place
    would be noticed only when the next drawing arrives. Returns how many were retried."""
    # predictors calls back into this module when it loads a model, so it is imported here.
    from recognition.services.predictors import predictor_get

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
