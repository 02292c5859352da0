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

    with transaction.atomic():
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


def _queue_prediction(submission_id: str) -> None:
    from recognition.tasks import predict_submission as predict_submission_task

    try:
        predict_submission_task.apply_async(args=[submission_id], queue="inference")
    except Exception as exc:  # noqa: BLE001 - any broker failure: say so on the row, not a 500
        logger.exception("could not queue prediction for %s", submission_id)
        submission_fail(submission_id=submission_id, reason=f"Could not queue the prediction: {exc}")


def submission_fail(*, submission_id: str, reason: str) -> None:
    Submission.objects.filter(id=submission_id, status=Submission.Status.PENDING).update(
        status=Submission.Status.FAILED, error=reason[:2000]
    )


def submission_predict(*, submission_id: str) -> Submission | None:
    """Run the active model on a pending submission and store the top-k.

    Idempotent: a redelivered task (worker died after predicting) finds the row done and
    returns. A missing or broken model marks the submission failed with the reason.
    """
    from ml.errors import MLInputError, ModelFileError

    from recognition.selectors import model_version_get_active
    from recognition.services.predictors import predictor_get

    submission = Submission.objects.filter(id=submission_id).first()
    if submission is None:
        logger.warning("submission %s vanished before prediction", submission_id)
        return None
    if submission.status != Submission.Status.PENDING:
        return submission
    Submission.objects.filter(id=submission_id).update(attempts=F("attempts") + 1)
    if settings.PREDICT_DELAY_SECONDS:
        time.sleep(settings.PREDICT_DELAY_SECONDS)

    model_version = model_version_get_active()
    if model_version is None:
        submission_fail(submission_id=submission_id, reason="No active model version.")
        return Submission.objects.get(id=submission_id)
    try:
        predictor = predictor_get(model_version=model_version)
        image = np.frombuffer(bytes(submission.input28), dtype=np.uint8).reshape(28, 28)
        started = time.perf_counter()
        top = predictor.predict(image, k=settings.PREDICTION_TOP_K)
        latency_ms = (time.perf_counter() - started) * 1000
    except (ModelFileError, MLInputError, ValueError) as exc:
        submission_fail(submission_id=submission_id, reason=f"{type(exc).__name__}: {exc}")
        return Submission.objects.get(id=submission_id)

    prediction_store(submission_id=submission_id, top=top, model_version=model_version, latency_ms=latency_ms)
    return Submission.objects.get(id=submission_id)


def prediction_store(*, submission_id, top: list[tuple[str, float]], model_version, latency_ms: float) -> None:
    """Write a top-k onto a still-pending row (a redelivered task finds it done and changes nothing)."""
    Submission.objects.filter(id=submission_id, status=Submission.Status.PENDING).update(
        status=Submission.Status.PREDICTED,
        predicted_label=top[0][0],
        confidence=top[0][1],
        top_k=[{"label": label, "probability": round(prob, 6)} for label, prob in top],
        model_version=model_version,
        latency_ms=latency_ms,
        predicted_at=timezone.now(),
        error="",
    )
