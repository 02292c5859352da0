"""The site's Celery app, for the kill-the-worker tests: a prediction task pauses with its batch
claimed (rows locked in its transaction), so that the test can kill the worker right there.

Started as ``celery -A tests.site.slow_claim_worker worker ...`` (see ``Worker(app=...)`` in
test_worker.py); the production worker has no such pause or setting.
"""

import logging
import time

from celery.signals import worker_process_init

from emnist_site.celery import app  # noqa: F401 - what `celery -A` finds in this module

CLAIM_DELAY_SECONDS = 60

logger = logging.getLogger(__name__)


@worker_process_init.connect
def pause_after_each_claim(**kwargs) -> None:
    """In each pool process (after the fork, with Django set up): wrap the claim step."""
    from recognition.services import batches

    claim = batches.submission_claim_pending

    def claim_then_pause(*args, **kwargs):
        rows = claim(*args, **kwargs)
        if rows:
            # The tests wait for this line in the worker's log before they kill it.
            logger.warning("sleeping with %d submissions claimed", len(rows))
            time.sleep(CLAIM_DELAY_SECONDS)
        return rows

    batches.submission_claim_pending = claim_then_pause
