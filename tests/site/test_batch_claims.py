"""The worker's claim and store of a batch: one statement each on PostgreSQL
(recognition/services/batch_queries.py), the ORM's queries on SQLite; the same rows either way."""

import datetime

import numpy as np
import pytest
from django.db import transaction
from django.utils import timezone

from recognition.models import Submission
from recognition.services.batches import submission_claim_pending, submissions_store_predictions

pytestmark = pytest.mark.django_db

INPUT = np.eye(28, dtype=np.uint8).tobytes()


def pending_row(*, age_seconds: int, position: int | None = None) -> Submission:
    row = Submission.objects.create(image=b"png", content_type="image/png", input28=INPUT, position=position)
    created = timezone.now() - datetime.timedelta(seconds=age_seconds)
    Submission.objects.filter(id=row.id).update(created_at=created)
    return row


def test_a_claim_takes_the_own_rows_by_position_then_the_oldest_others():
    others = [pending_row(age_seconds=age) for age in (30, 50, 40)]  # the oldest is others[1]
    own = [pending_row(age_seconds=5, position=1), pending_row(age_seconds=1, position=0)]
    Submission.objects.filter(id=pending_row(age_seconds=90).id).update(status=Submission.Status.PREDICTED)
    with transaction.atomic():
        rows = submission_claim_pending([str(own[0].id), str(own[1].id)], 3)
    assert [row.id for row in rows] == [own[1].id, own[0].id, others[1].id]
    assert all(bytes(row.input28) == INPUT for row in rows)


def test_a_claim_holds_every_own_row_even_past_the_batch_size():
    own = [pending_row(age_seconds=10 - i, position=i) for i in range(4)]
    pending_row(age_seconds=60)
    with transaction.atomic():
        rows = submission_claim_pending([str(row.id) for row in own], 2)
    assert [row.id for row in rows] == [row.id for row in own]


def test_storing_a_batch_writes_each_rows_answer_and_counts_attempts_only_where_asked():
    first, second = pending_row(age_seconds=2), pending_row(age_seconds=1)
    now = timezone.now()
    for row, label in ((first, "a"), (second, "B")):
        row.status, row.predicted_label, row.confidence = Submission.Status.PREDICTED, label, 0.75
        row.top_k = [{"label": label, "probability": 0.75}, {"label": "0", "probability": 0.25}]
        row.model_version_id, row.latency_ms, row.predicted_at, row.error = None, 1.5, now, ""
    with transaction.atomic():
        submissions_store_predictions([(first, False), (second, True)])
    stored = {row.id: row for row in Submission.objects.filter(id__in=[first.id, second.id])}
    assert [stored[first.id].predicted_label, stored[second.id].predicted_label] == ["a", "B"]
    assert stored[second.id].top_k == [{"label": "B", "probability": 0.75}, {"label": "0", "probability": 0.25}]
    assert stored[first.id].predicted_at == now and stored[first.id].latency_ms == 1.5
    assert [stored[first.id].attempts, stored[second.id].attempts] == [0, 1]
    assert {row.status for row in stored.values()} == {Submission.Status.PREDICTED}
