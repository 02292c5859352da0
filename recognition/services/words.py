"""Words: a drawing of several characters, split into one Submission per character."""

import logging
import time

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from recognition.models import Submission, Word
from recognition.services.submissions import drawing_check, ml_input_errors, prediction_store

logger = logging.getLogger(__name__)


def word_create(
    *,
    image: bytes,
    content_type: str,
    source: str = Word.Source.API,
    strokes: list | None = None,
    owner: AbstractBaseUser | None = None,
    client_id: str = "",
) -> Word:
    """Split a drawing into characters, store the word and one Submission per character, and
    queue their prediction (one task for the word) once the rows are committed.

    Each character's ``image`` is its own crop as a PNG (what a reviewer of a correction needs
    to see), its ``input28`` that crop through the EMNIST steps, its ``strokes`` those that
    drew it, moved into the crop's coordinates.

    Raises:
        UnsupportedImageType, ImageTooLarge, InvalidImage, BlankImage, InvalidStrokes,
        TooManyCharacters: nothing is stored.
    """
    from ml import segment

    drawing_check(image=image, content_type=content_type, strokes=strokes)
    # Segment and preprocess in the request (Pillow + NumPy, milliseconds a character), so
    # bad input is a 4xx and never a row; the worker then only runs the model.
    with ml_input_errors():
        found = segment.segment_image_bytes(image, strokes)
        inputs = segment.pieces_to_emnist(found.pieces)
    if source not in Submission.Source.values:
        source = Submission.Source.API
    owner = owner if owner is not None and owner.is_authenticated else None

    with transaction.atomic():
        word = Word.objects.create(
            image=image,
            content_type=content_type,
            strokes=strokes,
            source=source,
            segmentation=found.method,
            boxes=[list(piece.box) for piece in found.pieces],
            width=found.width,
            height=found.height,
            owner=owner,
            client_id=client_id,
        )
        Submission.objects.bulk_create(
            [
                Submission(
                    word=word,
                    position=position,
                    image=segment.ink_png(piece.ink),
                    content_type="image/png",
                    strokes=_strokes_in_crop(strokes, piece, found.stroke_scale),
                    input28=np.ascontiguousarray(input28, dtype=np.uint8).tobytes(),
                    source=source,
                    owner=owner,
                    client_id=client_id,
                )
                for position, (piece, input28) in enumerate(zip(found.pieces, inputs))
            ]
        )
        word_id = str(word.id)
        transaction.on_commit(lambda: _queue_prediction(word_id))
    return word


def _strokes_in_crop(strokes, piece, scale: float) -> list | None:
    """The strokes that drew ``piece``, in the pixels of the character's own PNG."""
    if not strokes or piece.strokes is None:
        return None
    x0, y0 = piece.box[0], piece.box[1]
    return [[[round(p[0] * scale - x0, 2), round(p[1] * scale - y0, 2), *p[2:]] for p in strokes[i]] for i in piece.strokes]


def _queue_prediction(word_id: str) -> None:
    from recognition.tasks import predict_word as predict_word_task

    try:
        predict_word_task.apply_async(args=[word_id], queue="inference")
    except Exception as exc:  # noqa: BLE001 - any broker failure: say so on the rows, not a 500
        logger.exception("could not queue prediction for word %s", word_id)
        word_fail(word_id=word_id, reason=f"Could not queue the prediction: {exc}")


def word_fail(*, word_id: str, reason: str) -> None:
    """Mark the word's still-pending characters failed (predicted ones keep their answer)."""
    Submission.objects.filter(word_id=word_id, status=Submission.Status.PENDING).update(
        status=Submission.Status.FAILED, error=reason[:2000]
    )


def word_predict(*, word_id: str) -> Word | None:
    """Run the active model on the word's pending characters, in one batch.

    Idempotent like ``submission_predict``: a redelivered task finds the characters done.
    """
    from ml.errors import MLInputError, ModelFileError

    from recognition.selectors import model_version_get_active
    from recognition.services.predictors import predictor_get

    word = Word.objects.filter(id=word_id).first()
    if word is None:
        logger.warning("word %s vanished before prediction", word_id)
        return None
    pending = list(
        Submission.objects.filter(word_id=word_id, status=Submission.Status.PENDING)
        .order_by("position")
        .only("id", "input28")
    )
    if not pending:
        return word
    Submission.objects.filter(id__in=[c.id for c in pending]).update(attempts=F("attempts") + 1)
    if settings.PREDICT_DELAY_SECONDS:
        time.sleep(settings.PREDICT_DELAY_SECONDS)

    model_version = model_version_get_active()
    if model_version is None:
        word_fail(word_id=word_id, reason="No active model version.")
        return word
    try:
        predictor = predictor_get(model_version=model_version)
        images = np.stack([np.frombuffer(bytes(c.input28), dtype=np.uint8).reshape(28, 28) for c in pending])
        started = time.perf_counter()
        tops = predictor.predict_batch(images, k=settings.PREDICTION_TOP_K)
        # One batch for the word: each character's share of the time.
        latency_ms = (time.perf_counter() - started) * 1000 / len(pending)
    except (ModelFileError, MLInputError, ValueError) as exc:
        word_fail(word_id=word_id, reason=f"{type(exc).__name__}: {exc}")
        return word

    with transaction.atomic():
        for character, top in zip(pending, tops):
            prediction_store(submission_id=character.id, top=top, model_version=model_version, latency_ms=latency_ms)
    return word
