"""Submissions: store a drawing, queue its prediction, drain the pending rows in the worker."""

import logging

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from ml import preprocess
from recognition.models import Submission
from recognition.services.batch_queries import count_attempt
from recognition.services.batches import predict_pending_batch
from recognition.services.drawings import (
    drawing_check,
    drawing_owner,
    drawing_source,
    ml_input_errors,
)
from recognition.services.notifications import prediction_wake_claim, prediction_wake_release, submission_notify_done
from recognition.services.queueing import PREDICT_SUBMISSION, queue_or_note, task_send
from recognition.services.results import submissions_mark_failed

logger = logging.getLogger(__name__)

# A task drains at most this many batches, then queues a successor, so that other queued
# work (words, another worker's turn) is not held behind an endless stream of drawings.
DRAIN_MAX_BATCHES = 50


def _image_to_input28(image: bytes) -> np.ndarray:
    """Validate and preprocess in the request (cheap: Pillow + numpy), so bad input is a 4xx
    and never a row; the worker then only runs the model."""
    with ml_input_errors():
        return preprocess.image_bytes_to_emnist(image)


def submission_create(
    *,
    image: bytes,
    content_type: str,
    source: str = Submission.Source.API,
    strokes: list | None = None,
    owner: AbstractBaseUser | None = None,
    client_id: str = "",
) -> Submission:
    """Store a drawing and queue its prediction once the row is committed.

    Raises:
        UnsupportedImageType, ImageTooLarge, InvalidImage, BlankImage, InvalidStrokes: nothing
        is stored.
    """
    drawing_check(image=image, content_type=content_type, strokes=strokes)
    input28 = _image_to_input28(image)

    # One INSERT, atomic by itself; on_commit runs at once in autocommit, or after an outer transaction.
    submission = Submission.objects.create(
        image=image,
        content_type=content_type,
        strokes=strokes,
        input28=np.ascontiguousarray(input28, dtype=np.uint8).tobytes(),
        source=drawing_source(source),
        owner=drawing_owner(owner),
        client_id=client_id,
    )
    submission_id = str(submission.id)
    transaction.on_commit(lambda: _queue_prediction(submission_id))
    return submission


def _queue_prediction(submission_id: str) -> None:
    """Queue a prediction task for this row, unless one is queued already: that task drains
    every pending row, this one included (``prediction_wake_claim``)."""
    if not prediction_wake_claim():
        return
    if not queue_or_note(PREDICT_SUBMISSION, submission_id, Submission.objects.filter(id=submission_id)):
        prediction_wake_release()  # nothing was queued: the next request must try again


def submission_requeue_stale(*, older_than_seconds: float | None = None, limit: int = 1000) -> int:
    """Queue again the predictions of rows still pending after ``older_than_seconds``.

    Covers a broker that was down when the row was stored, and a message lost any other
    way. Safe to run any number of times: the task does nothing for a row that is done, and
    a row claimed by a worker is skipped by the others. Returns how many were queued.
    """
    if older_than_seconds is None:
        older_than_seconds = settings.SUBMISSION_REQUEUE_AFTER_SECONDS
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    ids = list(
        Submission.objects.filter(status=Submission.Status.PENDING, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("id", flat=True)[:limit]
    )
    # Each task drains up to SUBMISSION_BATCH_SIZE pending rows, so one message per batch.
    step = max(1, settings.SUBMISSION_BATCH_SIZE)
    queued = 0
    for submission_id in ids[::step]:
        task_send(PREDICT_SUBMISSION, args=[str(submission_id)], queue="inference")
        queued += 1
    if ids:
        logger.info("re-queued %d messages for %d pending submissions", queued, len(ids))
    return queued


def submission_fail(*, submission_id: str, reason: str) -> None:
    submissions_mark_failed([submission_id], reason)
    submission_notify_done(submission_ids=[submission_id])


def submission_predict(*, submission_id: str) -> str | None:
    """Run the active model on a pending submission, and on every other pending one.

    Worker-side batching: the task claims its own row and up to SUBMISSION_BATCH_SIZE - 1
    other pending rows (``SELECT ... FOR UPDATE SKIP LOCKED``, so two workers never claim the
    same row), runs one batch through the model and stores every top-k in the same
    transaction; then it claims the next batch, until a claim comes back short of a full
    batch. A worker killed mid-batch rolls the transaction back: the rows are pending again
    and the redelivered message (acks_late) or the next batch predicts them.

    Draining is what lets requests queue one task between them (``prediction_wake_claim``):
    the task clears the wake-up mark first, so a row committed before that is claimed here,
    and a row committed after it queues a task of its own.

    Idempotent: a redelivered task, or the task of a row someone else's batch took, finds
    the row done (and drains whatever else is pending). A missing or broken model marks the
    claimed rows failed with the reason and records it on the model version (health and
    admin show it).

    Returns:
        The submission's status afterwards, or None if it does not exist. (Not the row: the
        worker does not need it, and reading it back cost a query per task.)
    """
    prediction_wake_release()
    # One statement both counts the attempt and tells whether there is anything to do.
    started = count_attempt(str(submission_id))
    batch_size = max(1, settings.SUBMISSION_BATCH_SIZE)
    own, batches = None, 1
    results = predict_pending_batch(own_ids=[submission_id] if started else [])
    while True:
        submission_notify_done(results=results)
        own = own or results.get(str(submission_id))
        if len(results) < batch_size:
            break  # nothing left that another task has not claimed
        if batches >= DRAIN_MAX_BATCHES:
            _queue_prediction(submission_id)  # more is pending: a successor goes on
            break
        results = predict_pending_batch(own_ids=[])
        batches += 1

    if own is not None:
        return own["status"]
    # Done already (a redelivery, or another task's batch took it), or not in our batches.
    status = Submission.objects.filter(id=submission_id).values_list("status", flat=True).first()
    if status is None:
        logger.warning("submission %s vanished before prediction", submission_id)
    return status
