"""Words: a drawing of several characters, split into one Submission per character."""

import logging

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from ml import segment
from recognition.models import Submission, Word
from recognition.services.batches import predict_pending_batch
from recognition.services.drawings import drawing_check, drawing_owner, drawing_source, ml_input_errors
from recognition.services.notifications import submission_notify_done
from recognition.services.queueing import PREDICT_WORD, queue_or_note
from recognition.services.results import submissions_mark_failed
from recognition.services.word_readings import word_readings_store

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
    drawing_check(image=image, content_type=content_type, strokes=strokes)
    # Segment and preprocess in the request (Pillow + NumPy, milliseconds a character), so
    # bad input is a 4xx and never a row; the worker then only runs the model.
    with ml_input_errors():
        found = segment.segment_image_bytes(image, strokes)
        inputs = segment.pieces_to_emnist(found.pieces)
    source, owner = drawing_source(source), drawing_owner(owner)

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
    return [
        [[round(p[0] * scale - x0, 2), round(p[1] * scale - y0, 2), *p[2:]] for p in strokes[i]] for i in piece.strokes
    ]


def _queue_prediction(word_id: str) -> None:
    queue_or_note(PREDICT_WORD, word_id, Submission.objects.filter(word_id=word_id))


def _pending_character_ids(word_id: str) -> list[str]:
    pending = Submission.objects.filter(word_id=word_id, status=Submission.Status.PENDING)
    return [str(i) for i in pending.values_list("id", flat=True)]


def word_fail(*, word_id: str, reason: str) -> None:
    """Mark the word's still-pending characters failed (predicted ones keep their answer)."""
    ids = _pending_character_ids(word_id)
    submissions_mark_failed(ids, reason)
    submission_notify_done(submission_ids=ids)


def word_predict(*, word_id: str) -> Word | None:
    """Run the active model on the word's pending characters, in one batch with any other
    pending rows (``predict_pending_batch``: claimed with SKIP LOCKED, stored in one transaction).

    Idempotent like ``submission_predict``: a redelivered task finds the characters done.
    Once every character is predicted, the word's readings in context are stored
    (``word_readings_store``).
    """
    word = Word.objects.filter(id=word_id).first()
    if word is None:
        logger.warning("word %s vanished before prediction", word_id)
        return None
    own_ids = _pending_character_ids(word_id)
    if not own_ids:
        if not word.readings:  # redelivered after the characters were stored, before the readings
            word_readings_store(word_id=word_id)
        return word
    Submission.objects.filter(id__in=own_ids, status=Submission.Status.PENDING).update(attempts=F("attempts") + 1)
    results = predict_pending_batch(own_ids=own_ids)
    # Before the notification: a client woken by it reads the word with its readings.
    word_readings_store(word_id=word_id)
    submission_notify_done(results=results)
    return word
