"""A short wait, inside a POST, for the worker to predict what was just stored.

Most drawings are predicted within milliseconds of being queued; waiting up to
settings.SUBMISSION_WAIT_SECONDS lets the POST answer 201 with the prediction instead of
202 and a poll. Eager mode already ran the task on commit, so there is nothing to wait for.
"""

import time

from emnist_site.celery import app
from recognition import services
from recognition.models import Submission, Word


def submission_wait_predicted(submission: Submission, *, seconds: float) -> Submission:
    """Wait for the worker's "done" notification (milliseconds once a worker is warm). It
    carries what the worker stored, so the answer needs no second read of the row; without
    it (a timeout, an older worker) the row is read. With the broker unreachable there is
    nothing to wait for, and the row is still pending: the answer is 202."""
    if seconds > 0 and not app.conf.task_always_eager:
        stored = services.submission_wait_done(submission_id=submission.id, timeout=seconds)
        if isinstance(stored, dict) and services.result_fields_apply(submission, stored):
            return submission
    # Only what the worker writes (not the image bytes just stored).
    submission.refresh_from_db(fields=services.RESULT_FIELDS)
    return submission


def word_wait_predicted(word: Word, *, seconds: float) -> None:
    """Wait for each character's "done" notification, as ``submission_wait_predicted`` does
    for one, all within ``seconds``. The worker may split the word again and replace its
    characters (``services.word_resegment``: the old rows are notified as they go), so the
    characters are read again until every one has been waited for. The caller reads the word
    again afterwards."""
    if seconds <= 0 or app.conf.task_always_eager:
        return
    deadline = time.monotonic() + seconds
    done = set()
    while True:
        waiting = [i for i in word.characters.values_list("id", flat=True) if i not in done]
        if not waiting:
            return
        for character_id in waiting:
            left = deadline - time.monotonic()
            if left <= 0 or not services.submission_wait_done(submission_id=character_id, timeout=left):
                return  # timed out, or nothing to wait on: the caller answers with what is stored
            done.add(character_id)
