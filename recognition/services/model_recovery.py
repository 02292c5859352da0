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

from recognition.models import ModelVersion, Submission
from recognition.services.model_versions import model_version_path
from recognition.services.queueing import PREDICT_SUBMISSION, queue_or_note
from recognition.services.results import result_fields

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
    transaction.on_commit(lambda: queue_or_note(PREDICT_SUBMISSION, first, Submission.objects.filter(id=first)))
    return retried
