"""Queueing Celery tasks by name.

The tasks call the services, so the services never import ``recognition.tasks``: they queue a
task by the name it is registered under. The names live here, and ``recognition.tasks``
registers each task under its constant, so the two cannot drift apart.
"""

import logging

from celery import current_app
from celery.result import AsyncResult
from django.db.models import QuerySet

from recognition.models import Submission

logger = logging.getLogger(__name__)

PREDICT_SUBMISSION = "recognition.tasks.predict_submission"
PREDICT_WORD = "recognition.tasks.predict_word"
RETRAINING_RUN = "recognition.tasks.retraining_run"
SUBMISSION_REQUEUE_STALE = "recognition.tasks.submission_requeue_stale"
WRITER_MEMORY_PREPARE = "recognition.tasks.writer_memory_prepare"

QUEUE_DELAYED_NOTE = "Prediction delayed: the task queue was unreachable; it is queued again automatically."


def task_send(name: str, *, queue: str, args: list | None = None, kwargs: dict | None = None) -> AsyncResult:
    """Queue the task registered as ``name`` on ``queue``; raises what the broker raises.

    In eager mode (the embedded default, and the tests) the task runs here and now, as
    ``.delay()`` would run it: ``send_task`` ignores CELERY_TASK_ALWAYS_EAGER and would try to
    reach a broker that does not exist (celery/celery#581), so eager mode goes through the
    registered task's own ``apply_async``, which honours it.
    """
    app = current_app
    if not app.conf.task_always_eager:
        return app.send_task(name, args=args, kwargs=kwargs, queue=queue)
    if name not in app.tasks:
        # Nothing in this process has imported the task modules yet (a web process: only a
        # worker imports them at start-up); find them as the worker does.
        app.autodiscover_tasks(force=True)
    return app.tasks[name].apply_async(args=args, kwargs=kwargs, queue=queue)


def queue_or_note(name: str, arg: str, rows: QuerySet[Submission]) -> bool:
    """Queue the task ``name(arg)`` on `inference`; with the broker unreachable, note the delay
    on the still-pending ``rows`` instead of failing them (or answering 500). True if queued.

    Not "failed": the rows are stored, and submission_requeue_stale queues them again once
    the broker is back. The note tells the client why it is slow.
    """
    try:
        task_send(name, args=[arg], queue="inference")
    except Exception as exc:  # noqa: BLE001 - any broker failure: the rows wait, not a 500
        logger.warning("could not queue %s(%s): %s", name, arg, exc)
        rows.filter(status=Submission.Status.PENDING).update(
            error=f"{QUEUE_DELAYED_NOTE} ({type(exc).__name__})"[:2000]
        )
        return False
    return True
