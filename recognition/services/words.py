"""Words: a drawing of several characters, split into one Submission per character."""

import functools
import logging

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from ml import segment, word_cuts
from recognition.models import Correction, Submission, Word
from recognition.selectors import model_version_get_serving
from recognition.services.batches import predict_pending_batch
from recognition.services.drawings import drawing_check, drawing_owner, drawing_source, ml_input_errors
from recognition.services.notifications import submission_notify_done
from recognition.services.predictors import predictor_get
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
        Submission.objects.bulk_create(_character_rows(word, found.pieces, inputs, strokes, found.stroke_scale))
        word_id = str(word.id)
        transaction.on_commit(lambda: _queue_prediction(word_id))
    return word


def _character_rows(word: Word, pieces, inputs, strokes, stroke_scale: float) -> list[Submission]:
    """One unsaved Submission per piece of ``word``, in order, with the word's source and writer."""
    return [
        Submission(
            word=word,
            position=position,
            image=segment.ink_png(piece.ink),
            content_type="image/png",
            strokes=_strokes_in_crop(strokes, piece, stroke_scale),
            input28=np.ascontiguousarray(input28, dtype=np.uint8).tobytes(),
            source=word.source,
            owner_id=word.owner_id,
            client_id=word.client_id,
        )
        for position, (piece, input28) in enumerate(zip(pieces, inputs))
    ]


@functools.cache
def _cuts() -> tuple[word_cuts.CutWeights, word_cuts.Verifier]:
    return word_cuts.load_cuts()


def word_resegment(*, word: Word) -> bool:
    """Split the word again by recognition before its characters are read: touching characters
    cut apart, a letter drawn in several side-by-side strokes joined (``ml.word_cuts`` with the
    shipped verifier, on the active model's reading of each candidate). Replaces the word's
    character rows and boxes when the split changes; True if it did.

    Only while every character is still pending, uncorrected and claimed by no other batch
    (PostgreSQL: locked here, ``SKIP LOCKED``); otherwise, or when the active model's embedding
    is not the one the verifier was fitted on, the web request's split stands.
    """
    if not word_cuts.may_resplit(word.boxes):
        return False  # spaced characters of ordinary width: nothing to decide, no need to segment again
    model_version = model_version_get_serving()
    if model_version is None:
        return False
    weights, verifier = _cuts()
    predictor = predictor_get(model_version=model_version)
    if predictor.embedding_size + word_cuts.SHAPE_FEATURES != verifier.mean.shape[0]:
        return False
    found = segment.resplit(bytes(word.image), word.strokes, word.boxes, predictor.read, weights, verifier)
    if found is None:
        return False
    boxes = [list(piece.box) for piece in found.pieces]
    with transaction.atomic():
        pending = Submission.objects.select_for_update(skip_locked=True).filter(
            word=word, status=Submission.Status.PENDING
        )
        ids = list(pending.values_list("id", flat=True))
        if len(ids) != len(word.boxes) or Correction.objects.filter(submission_id__in=ids).exists():
            return False
        Submission.objects.filter(id__in=ids).delete()
        # The chosen runs' inputs were made for reading them: the same 28x28 arrays.
        rows = _character_rows(word, found.pieces, found.inputs, word.strokes, found.stroke_scale)
        Submission.objects.bulk_create(rows)
        Word.objects.filter(id=word.id).update(boxes=boxes)
    word.boxes = boxes
    # A request waiting on the old rows (recognition.api.waiting) wakes, finds the new ones and waits on them.
    submission_notify_done(submission_ids=[str(i) for i in ids])
    logger.info("word %s split again by recognition: %d -> %d characters", word.id, len(ids), len(boxes))
    return True


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
    The batch that predicts a word's last character stores the word's readings in context in
    the same transaction (``word_readings_store``).
    """
    word = Word.objects.filter(id=word_id).first()
    if word is None:
        logger.warning("word %s vanished before prediction", word_id)
        return None
    own_ids = _pending_character_ids(word_id)
    if not own_ids:
        # The batch stored the readings with the last character; none here means they could not be
        # read then (a bad word list, say), or the characters were stored before it did so: try again.
        if not word.readings:
            word_readings_store(word_id=word_id)
        return word
    if word_resegment(word=word):
        own_ids = _pending_character_ids(word_id)
    Submission.objects.filter(id__in=own_ids, status=Submission.Status.PENDING).update(attempts=F("attempts") + 1)
    # The batch stores the word's readings with its characters' answers, before the notification.
    results = predict_pending_batch(own_ids=own_ids)
    submission_notify_done(results=results)
    return word
