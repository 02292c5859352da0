import contextlib
import logging
import time

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from recognition.errors import (
    BlankImage,
    ImageTooLarge,
    InvalidImage,
    InvalidStrokes,
    TooManyCharacters,
    UnsupportedImageType,
)
from recognition.images import input28_array
from recognition.models import Submission

logger = logging.getLogger(__name__)

ALLOWED_CONTENT_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
MAX_STROKES = 500
MAX_STROKE_POINTS = 20_000


def image_max_bytes() -> int:
    from ml.preprocess import MAX_BYTES

    return MAX_BYTES


def _image_to_input28(image: bytes) -> np.ndarray:
    """Validate and preprocess in the request (cheap: Pillow + numpy), so bad input is a 4xx
    and never a row; the worker then only runs the model."""
    from ml import preprocess

    with ml_input_errors():
        return preprocess.image_bytes_to_emnist(image)


@contextlib.contextmanager
def ml_input_errors():
    """``ml``'s input errors -> the domain errors the APIs answer with."""
    from ml import errors

    try:
        yield
    except errors.ImageTooLargeError as exc:
        raise ImageTooLarge(f"Image too large: {exc}") from exc
    except errors.BlankImageError as exc:
        raise BlankImage("The image is blank: draw or upload a character first.") from exc
    except errors.TooManyCharactersError as exc:
        raise TooManyCharacters(f"Too many characters: {exc}.") from exc
    except errors.MLInputError as exc:
        raise InvalidImage(f"Not a readable image: {exc}") from exc


def drawing_check(*, image: bytes, content_type: str, strokes) -> None:
    """What every drawing must pass before it is decoded: type, size, strokes' shape."""
    if content_type not in ALLOWED_CONTENT_TYPES:
        raise UnsupportedImageType(
            f"Unsupported image type {content_type!r}: send one of {', '.join(sorted(ALLOWED_CONTENT_TYPES))}."
        )
    if len(image) > image_max_bytes():
        raise ImageTooLarge(f"Image too large: {len(image)} bytes, the limit is {image_max_bytes()}.")
    _check_strokes(strokes)


def _check_strokes(strokes) -> None:
    """Strokes: a list of strokes, each a list of points [x, y] or [x, y, t] (numbers)."""
    if strokes is None:
        return
    if not isinstance(strokes, list) or len(strokes) > MAX_STROKES:
        raise InvalidStrokes(f"strokes must be a list of at most {MAX_STROKES} strokes.")
    total = 0
    for stroke in strokes:
        if not isinstance(stroke, list):
            raise InvalidStrokes("Each stroke must be a list of points.")
        total += len(stroke)
        for point in stroke:
            if (
                not isinstance(point, list)
                or not 2 <= len(point) <= 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
            ):
                raise InvalidStrokes("Each point must be [x, y] or [x, y, t] with numbers.")
    if total > MAX_STROKE_POINTS:
        raise InvalidStrokes(f"strokes may hold at most {MAX_STROKE_POINTS} points in all.")


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
    if source not in Submission.Source.values:
        source = Submission.Source.API

    # One INSERT, atomic by itself; on_commit runs at once in autocommit, or after an outer transaction.
    submission = Submission.objects.create(
        image=image,
        content_type=content_type,
        strokes=strokes,
        input28=np.ascontiguousarray(input28, dtype=np.uint8).tobytes(),
        source=source,
        owner=owner if owner is not None and owner.is_authenticated else None,
        client_id=client_id,
    )
    submission_id = str(submission.id)
    transaction.on_commit(lambda: _queue_prediction(submission_id))
    return submission


# Batches up to this size go image by image through the single-image path.
SINGLE_PATH_MAX = 3
QUEUE_DELAYED_NOTE = "Prediction delayed: the task queue was unreachable; it is queued again automatically."


def _queue_prediction(submission_id: str) -> None:
    """Queue a prediction task for this row, unless one is queued already: that task drains
    every pending row, this one included (``prediction_wake_claim``)."""
    from recognition.services.notifications import prediction_wake_claim, prediction_wake_release
    from recognition.tasks import predict_submission as predict_submission_task

    if not prediction_wake_claim():
        return
    if not queue_or_note(predict_submission_task, submission_id, Submission.objects.filter(id=submission_id)):
        prediction_wake_release()  # nothing was queued: the next request must try again


def queue_or_note(task, arg: str, rows) -> bool:
    """Queue ``task(arg)`` on `inference`; with the broker unreachable, note the delay on the
    still-pending ``rows`` instead of failing them (or answering 500). True if queued.

    Not "failed": the rows are stored, and submission_requeue_stale queues them again once
    the broker is back. The note tells the client why it is slow.
    """
    try:
        task.apply_async(args=[arg], queue="inference")
    except Exception as exc:  # noqa: BLE001 - any broker failure: the rows wait, not a 500
        logger.warning("could not queue %s(%s): %s", task.name, arg, exc)
        rows.filter(status=Submission.Status.PENDING).update(error=f"{QUEUE_DELAYED_NOTE} ({type(exc).__name__})"[:2000])
        return False
    return True


def submission_requeue_stale(*, older_than_seconds: float | None = None, limit: int = 1000) -> int:
    """Queue again the predictions of rows still pending after ``older_than_seconds``.

    Covers a broker that was down when the row was stored, and a message lost any other
    way. Safe to run any number of times: the task does nothing for a row that is done, and
    a row claimed by a worker is skipped by the others. Returns how many were queued.
    """
    from recognition.tasks import predict_submission as predict_submission_task

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
        predict_submission_task.apply_async(args=[str(submission_id)], queue="inference")
        queued += 1
    if ids:
        logger.info("re-queued %d messages for %d pending submissions", queued, len(ids))
    return queued


def submission_fail(*, submission_id: str, reason: str) -> None:
    from recognition.services.notifications import submission_notify_done

    Submission.objects.filter(id=submission_id, status=Submission.Status.PENDING).update(
        status=Submission.Status.FAILED, error=reason[:2000]
    )
    submission_notify_done(submission_ids=[submission_id])


# A task drains at most this many batches, then queues a successor, so that other queued
# work (words, another worker's turn) is not held behind an endless stream of drawings.
DRAIN_MAX_BATCHES = 50


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
    from recognition.services.notifications import prediction_wake_release, submission_notify_done

    prediction_wake_release()
    # One statement both counts the attempt and tells whether there is anything to do.
    started = Submission.objects.filter(id=submission_id, status=Submission.Status.PENDING).update(
        attempts=F("attempts") + 1
    )
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


def _claim_pending(own_ids: list[str], batch_size: int) -> list[Submission]:
    """Lock the task's own pending rows (all of them), then others up to ``batch_size`` in all."""
    pending = Submission.objects.select_for_update(skip_locked=True).filter(status=Submission.Status.PENDING)
    fields = ("id", "input28")
    rows = list(pending.filter(id__in=own_ids).order_by("position", "created_at").only(*fields))
    if batch_size > len(rows):
        rows += list(pending.exclude(id__in=own_ids).order_by("created_at").only(*fields)[: batch_size - len(rows)])
    return rows


def predict_pending_batch(*, own_ids: list[str]) -> dict[str, dict]:
    """Claim, predict and store one batch.

    ``own_ids`` are the rows the task was queued for (their attempt already counted): a
    submission, or the characters of a word. Every one of them is in the batch.

    Returns:
        {submission id: what was stored (``result_fields``)} for each row it finished
        (predicted or failed), in batch order; the notification carries these.
    """
    own_ids = [str(i) for i in own_ids]
    from ml.errors import ModelFileError

    from recognition.selectors import model_version_get_serving
    from recognition.services.model_recovery import submission_fail_model_unavailable
    from recognition.services.model_versions import model_version_record_load
    from recognition.services.predictors import predictor_get, predictor_peek

    def load(version):
        try:
            return predictor_get(model_version=version), None
        except ModelFileError as exc:
            model_version_record_load(model_version=version, error=str(exc))
            return None, exc

    if predictor_peek() is None:
        # The first load in a process takes seconds: do it before locking any row.
        first = model_version_get_serving()
        if first is not None:
            load(first)
    with transaction.atomic():
        rows = _claim_pending(own_ids, max(1, settings.SUBMISSION_BATCH_SIZE))
        if not rows:
            return {}
        # The active version, read once the rows are claimed: a row that arrived after a
        # promotion must not be predicted by the version it retired. A version other than
        # the cached one (rare: a promotion) loads here.
        model_version = model_version_get_serving()
        ids = [str(row.id) for row in rows]
        if settings.PREDICT_DELAY_SECONDS:
            # Fault injection: a test kills the worker here, with the batch claimed (rows locked).
            logger.warning("PREDICT_DELAY_SECONDS: sleeping with %d submissions claimed", len(ids))
            time.sleep(settings.PREDICT_DELAY_SECONDS)
        if model_version is None:
            return submission_fail_model_unavailable(ids=ids, model_version=None)
        predictor, load_error = load(model_version)
        if predictor is None:
            return submission_fail_model_unavailable(ids=ids, model_version=model_version, detail=str(load_error))
        results, good, images = {}, [], []
        for row in rows:
            try:
                image = input28_array(row.input28)
            except ValueError as exc:  # "Stored input is N bytes, not 28x28."
                results.update(_fail_rows([str(row.id)], str(exc)))
                continue
            good.append(row)
            images.append(image)
        if good:
            started = time.perf_counter()
            k = settings.PREDICTION_TOP_K
            if len(images) <= SINGLE_PATH_MAX:
                # Predictor.predict's single-image path (a Lite interpreter, ~0.5 ms) beats the
                # batch path's fixed ~2 ms of TensorFlow dispatch for a few images.
                tops = [predictor.predict(image, k=k) for image in images]
            else:
                tops = predictor.predict_batch(np.stack(images), k=k)
            latency_ms = (time.perf_counter() - started) * 1000 / len(good)
            now = timezone.now()
            for row, top in zip(good, tops):
                row.status = Submission.Status.PREDICTED
                row.predicted_label, row.confidence = top[0]
                row.top_k = [{"label": label, "probability": round(prob, 6)} for label, prob in top]
                row.model_version = model_version
                row.latency_ms, row.predicted_at, row.error = latency_ms, now, ""
                fields = {name: getattr(row, name) for name in RESULT_FIELDS}
                if str(row.id) not in own_ids:
                    fields["attempts"] = F("attempts") + 1  # the own rows were counted before the claim
                # One UPDATE per row: Django's bulk_update (CASE per field) costs more CPU here
                # than the few statements of a batch. The row is locked: no status check needed.
                Submission.objects.filter(id=row.id).update(**fields)
                results[str(row.id)] = result_fields(row)
    if model_version.load_error:  # it loads now (the file was fixed): clear the old error
        model_version_record_load(model_version=model_version, error="")
    return {i: results[i] for i in ids if i in results}


# What the worker writes, and the notification carries to the waiting request.
RESULT_FIELDS = ["status", "predicted_label", "confidence", "top_k", "model_version", "latency_ms", "error", "predicted_at"]
_RESULT_ATTNAMES = [Submission._meta.get_field(name).attname for name in RESULT_FIELDS]  # model_version_id


def result_fields(row: Submission) -> dict:
    """The stored prediction of ``row`` as JSON-ready values (``RESULT_FIELDS``, by attname)."""
    values = {name: getattr(row, name) for name in _RESULT_ATTNAMES}
    values["predicted_at"] = row.predicted_at.isoformat() if row.predicted_at else None
    return values


def result_fields_apply(submission: Submission, stored: dict) -> bool:
    """Set ``result_fields`` (as they come back from JSON) on ``submission``, all or none;
    False if ``stored`` is not such a record (then the caller reads the row)."""
    from django.utils.dateparse import parse_datetime

    try:
        predicted_at = parse_datetime(stored["predicted_at"]) if stored["predicted_at"] else None
        values = {name: stored[name] for name in _RESULT_ATTNAMES}
    except (KeyError, TypeError, ValueError):
        return False
    if values["status"] not in Submission.Status.values or (stored["predicted_at"] and predicted_at is None):
        return False
    values["predicted_at"] = predicted_at
    for name, value in values.items():
        setattr(submission, name, value)
    return True


def _fail_rows(ids: list[str], reason: str) -> dict[str, dict]:
    """Mark these (claimed) rows failed with ``reason``; returns their ``result_fields``."""
    reason = reason[:2000]
    Submission.objects.filter(id__in=ids, status=Submission.Status.PENDING).update(
        status=Submission.Status.FAILED, error=reason
    )
    failed = Submission(status=Submission.Status.FAILED, error=reason, top_k=[])
    return {str(i): result_fields(failed) for i in ids}


REQUEUE_SCHEDULE_NAME = "Re-queue pending predictions"
REQUEUE_TASK = "recognition.tasks.submission_requeue_stale"


def submission_requeue_schedule_ensure() -> bool:
    """Create the periodic re-queue sweep once (django-celery-beat); True if it was created.

    Created by `setup_site` beside the retraining schedule, so every schedule lives in the
    database and is edited in the admin (Periodic tasks).
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if PeriodicTask.objects.filter(name=REQUEUE_SCHEDULE_NAME).exists():
        return False
    every, _ = IntervalSchedule.objects.get_or_create(
        every=settings.SUBMISSION_REQUEUE_INTERVAL_SECONDS, period=IntervalSchedule.SECONDS
    )
    PeriodicTask.objects.create(
        name=REQUEUE_SCHEDULE_NAME,
        task=REQUEUE_TASK,
        interval=every,
        queue="inference",
        description=(
            "Queues again the predictions of submissions still pending after "
            "SUBMISSION_REQUEUE_AFTER_SECONDS (the broker was down when they were stored, or a "
            "message was lost). Harmless when nothing is pending."
        ),
    )
    return True
