"""A word's best readings in context, stored by the worker's batch that predicts its last character.

The characters' own top-k (what the worker stored on each Submission) and the word's boxes go
through ``ml.word_context``: CNN x geometry x the language's letter trigrams and word list.
Picking a reading on the page corrects the characters that differ, through the ordinary
per-character correction; the readings themselves are the model's and never change.
"""

import logging

from django.conf import settings

from ml.word_context import READINGS, load_context
from recognition.models import Submission, Word
from recognition.services.results import raw_top_k

logger = logging.getLogger(__name__)


def _decode(word_id, boxes, characters) -> list[dict]:
    """The readings of characters given as (status, top_k) in order; [] while any is not predicted."""
    if not characters or any(status != Submission.Status.PREDICTED or not top for status, top in characters):
        return []
    # The raw probabilities: the word context's weights were fitted on them, not on the shown ones.
    tops = [raw_top_k(top) for _, top in characters]
    try:
        readings = load_context(language=settings.WORD_LANGUAGE).decode(tops, boxes, count=READINGS)
    except (OSError, LookupError, KeyError, ValueError):
        logger.exception("word %s could not be read in context", word_id)
        return []
    return [{"text": r.text, "score": r.score} for r in readings]


def word_readings_store(*, word_id: str) -> list[dict]:
    """Decode the word and store its ``READINGS`` best readings; [] (nothing stored) while any
    character is not predicted. A failure to read in context (a bad word list, say) is logged
    and leaves the readings empty: the characters' own answers stand."""
    word = Word.objects.filter(id=word_id).only("id", "boxes").first()
    if word is None:
        return []
    characters = list(Submission.objects.filter(word_id=word_id).order_by("position").values_list("status", "top_k"))
    stored = _decode(word_id, word.boxes, characters)
    if stored:
        Word.objects.filter(id=word_id).update(readings=stored)
    return stored


def word_readings_get(word: Word) -> list[dict]:
    """The stored readings: [] until the batch that predicted the word's last character stored
    them, in the same transaction (``recognition.services.batches``), or when they could not be
    read. Never decoded here: the web process does not load the word list."""
    return word.readings or []
