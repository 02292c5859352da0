"""Celery tasks: take ids, call one service. No TensorFlow import here."""

from celery import shared_task
from django.db import OperationalError

from recognition import services
from recognition.services.model_recovery import submission_retry_model_failures_probe

# Both prediction tasks: acknowledged after the work, so a worker killed mid-task puts the
# message back instead of dropping the drawing; a database that is down is retried with backoff.
PREDICTION_TASK_OPTIONS = dict(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)


@shared_task(name="recognition.tasks.predict_submission", **PREDICTION_TASK_OPTIONS)
def predict_submission(submission_id: str) -> str | None:
    """Predict this submission, and every other pending one, batch after batch (see submission_predict)."""
    try:
        return services.submission_predict(submission_id=submission_id)
    except OperationalError:
        raise  # the database is unreachable: retry later
    except Exception as exc:
        # The message is shown to the visitor: no exception text (it may hold a server path);
        # the worker logs the traceback (the exception is raised on).
        services.submission_fail(submission_id=submission_id, reason=f"Prediction failed ({type(exc).__name__}).")
        raise


@shared_task(name="recognition.tasks.predict_word", **PREDICTION_TASK_OPTIONS)
def predict_word(word_id: str) -> str | None:
    """All characters of a word in one batch (one model call, not one task per character)."""
    try:
        word = services.word_predict(word_id=word_id)
    except OperationalError:
        raise  # the database is unreachable: retry later
    except Exception as exc:
        services.word_fail(word_id=word_id, reason=f"Prediction failed ({type(exc).__name__}).")  # as above
        raise
    return word.status if word else None


@shared_task(
    name="recognition.tasks.retraining_run",
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


@shared_task(name="recognition.tasks.submission_requeue_stale", acks_late=False, ignore_result=True)
def submission_requeue_stale() -> int:
    """Beat runs this every SUBMISSION_REQUEUE_INTERVAL_SECONDS: rows left pending (broker down
    when they were stored, a lost message) are queued again; so are rows that failed for want
    of a model, once the serving version's file loads."""
    return services.submission_requeue_stale() + submission_retry_model_failures_probe()
