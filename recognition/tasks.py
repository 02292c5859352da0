"""Celery tasks: take ids, call one service. No TensorFlow import here.

Each is registered under its name in ``recognition.services.queueing``, which is how the
services queue them (by name: they never import this module, which imports them).
"""

import contextlib
from collections.abc import Callable
from functools import partial

from celery import shared_task
from django.db import OperationalError

from recognition import services
from recognition.services.predictors import submission_retry_model_failures_probe
from recognition.services.queueing import (
    PREDICT_SUBMISSION,
    PREDICT_WORD,
    RETRAINING_RUN,
    SUBMISSION_REQUEUE_STALE,
    WRITER_MEMORY_PREPARE,
)

# Both prediction tasks: acknowledged after the work, so a worker killed mid-task puts the
# message back instead of dropping the drawing; a database that is down is retried with backoff.
PREDICTION_TASK_OPTIONS = dict(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)


@contextlib.contextmanager
def _failing_on_error(fail: Callable[..., None]):
    """A prediction that raises marks its rows failed with the reason (``fail(reason=...)``)
    and raises on, for Celery's log; an unreachable database is retried instead."""
    try:
        yield
    except OperationalError:
        raise  # the database is unreachable: retry later
    except Exception as exc:
        # The reason is shown to the visitor: no exception text (it may hold a server path);
        # the worker logs the traceback (the exception is raised on).
        fail(reason=f"Prediction failed ({type(exc).__name__}).")
        raise


@shared_task(name=PREDICT_SUBMISSION, **PREDICTION_TASK_OPTIONS)
def predict_submission(submission_id: str) -> str | None:
    """Predict this submission, and every other pending one, batch after batch (see submission_predict)."""
    with _failing_on_error(partial(services.submission_fail, submission_id=submission_id)):
        return services.submission_predict(submission_id=submission_id)


@shared_task(name=PREDICT_WORD, **PREDICTION_TASK_OPTIONS)
def predict_word(word_id: str) -> str | None:
    """All characters of a word in one batch (one model call, not one task per character)."""
    with _failing_on_error(partial(services.word_fail, word_id=word_id)):
        word = services.word_predict(word_id=word_id)
    return word.status if word else None


@shared_task(name=WRITER_MEMORY_PREPARE, acks_late=False, ignore_result=True)
def writer_memory_prepare(owner_id: int | None, client_id: str) -> bool:
    """Work a writer's changed memory out now (their hand, the correction) and store it, so
    their next drawing does not wait for it. Best effort: lost, the next batch does it."""
    return services.writer_memory_prepare(owner_id=owner_id, client_id=client_id) is not None


@shared_task(
    name=RETRAINING_RUN,
    # Acknowledged on receipt, unlike predictions: a run takes minutes, longer than the broker's
    # visibility timeout, and a redelivered copy would only find the lock taken. A run lost
    # with its worker is simply done by the next schedule.
    acks_late=False,
)
def retraining_run(reason: str = "scheduled") -> str:
    try:
        run = services.retraining_run(reason=reason)
    except services.RetrainingBusy as exc:
        return f"busy: {exc}"
    return f"run {run.id}: {run.status}"


@shared_task(name=SUBMISSION_REQUEUE_STALE, acks_late=False, ignore_result=True)
def submission_requeue_stale() -> int:
    """Beat runs this every SUBMISSION_REQUEUE_INTERVAL_SECONDS: rows left pending (broker down
    when they were stored, a lost message) are queued again; so are rows that failed for want
    of a model, once the serving version's file loads."""
    return services.submission_requeue_stale() + submission_retry_model_failures_probe()
