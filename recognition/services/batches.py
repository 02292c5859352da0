"""Worker-side batching: claim pending rows, run them through the model at once, store the answers."""

import time

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ml.errors import ModelFileError
from recognition.images import input28_array
from recognition.models import ModelVersion, Submission
from recognition.selectors import model_version_get_serving
from recognition.services import batch_queries
from recognition.services.model_recovery import submission_fail_model_unavailable
from recognition.services.model_versions import model_version_record_load
from recognition.services.predictors import predictor_get, predictor_peek
from recognition.services.results import RESULT_FIELDS, result_fields, submissions_fail_results, top_k_entries
from recognition.services.word_readings import word_readings_store
from recognition.services.writer_adaptation import writer_memory_apply
from recognition.services.writer_memory import SINGLE_PATH_MAX, embedding_bytes

# What the worker writes on each predicted row: the result, and the drawing's embedding (which a
# correction copies into its writer's memory).
STORED_FIELDS = (*RESULT_FIELDS, "embedding")


def submission_claim_pending(own_ids: list[str], batch_size: int) -> list[Submission]:
    """Lock the task's own pending rows (all of them), then others up to ``batch_size`` in all.

    ``SELECT ... FOR UPDATE SKIP LOCKED``: two workers never claim the same row. Call it
    inside the transaction that stores the answers.
    """
    if connection.vendor == "postgresql":
        return batch_queries.claim_pending_rows(own_ids, batch_size)  # the same, one statement
    pending = Submission.objects.select_for_update(skip_locked=True).filter(status=Submission.Status.PENDING)
    # The writer (whose memory reads it) and the word (whose readings the batch stores).
    fields = ("id", "input28", "owner", "client_id", "word")
    rows = list(pending.filter(id__in=own_ids).order_by("position", "created_at").only(*fields))
    if batch_size > len(rows):
        rows += list(pending.exclude(id__in=own_ids).order_by("created_at").only(*fields)[: batch_size - len(rows)])
    return rows


def submissions_store_predictions(rows: list[tuple[Submission, bool]]) -> None:
    """Store ``STORED_FIELDS`` of each claimed (locked: no status check needed) row, counting an
    attempt where the flag is True. PostgreSQL: one statement; SQLite: one UPDATE a row
    (Django's bulk_update, a CASE a field, costs more CPU than those few statements)."""
    if connection.vendor == "postgresql":
        batch_queries.store_results(rows, STORED_FIELDS)
        return
    for row, count_attempt in rows:
        fields = {name: getattr(row, name) for name in STORED_FIELDS}
        if count_attempt:
            fields["attempts"] = F("attempts") + 1
        Submission.objects.filter(id=row.id).update(**fields)


def _predictor_load(model_version: ModelVersion):
    """(predictor, None), or (None, the error) with the error recorded on the version."""
    try:
        return predictor_get(model_version=model_version), None
    except ModelFileError as exc:
        model_version_record_load(model_version=model_version, error=str(exc))
        return None, exc


def predict_pending_batch(*, own_ids: list[str]) -> dict[str, dict]:
    """Claim, predict and store one batch.

    ``own_ids`` are the rows the task was queued for (their attempt already counted): a
    submission, or the characters of a word. Every one of them is in the batch.

    Returns:
        {submission id: what was stored (``result_fields``)} for each row it finished
        (predicted or failed), in batch order; the notification carries these.
    """
    own_ids = [str(i) for i in own_ids]
    if predictor_peek() is None:
        # The first load in a process takes seconds: do it before locking any row.
        first = model_version_get_serving()
        if first is not None:
            _predictor_load(first)
    with transaction.atomic():
        rows = submission_claim_pending(own_ids, max(1, settings.SUBMISSION_BATCH_SIZE))
        if not rows:
            return {}
        # The active version, read once the rows are claimed: a row that arrived after a
        # promotion must not be predicted by the version it retired. A version other than
        # the cached one (rare: a promotion) loads here.
        model_version = model_version_get_serving()
        ids = [str(row.id) for row in rows]
        if model_version is None:
            return submission_fail_model_unavailable(ids=ids, model_version=None)
        predictor, load_error = _predictor_load(model_version)
        if predictor is None:
            return submission_fail_model_unavailable(ids=ids, model_version=model_version, detail=str(load_error))
        results, good, images = {}, [], []
        for row in rows:
            try:
                image = input28_array(row.input28)
            except ValueError as exc:  # "Stored input is N bytes, not 28x28."
                results.update(submissions_fail_results([str(row.id)], str(exc)))
                continue
            good.append(row)
            images.append(image)
        if good:
            started = time.perf_counter()
            k = settings.PREDICTION_TOP_K
            # Up to SINGLE_PATH_MAX images go one by one through the single-image path (a Lite
            # interpreter, ~0.5 ms), which beats the batch path's fixed ~2 ms of dispatch for a few.
            batch = np.stack(images)
            probs, embeddings = predictor.read(batch, single_max=SINGLE_PATH_MAX)
            probs, adapted = writer_memory_apply(good, probs, embeddings, model_version, predictor, batch)
            # Shown calibrated; ranked, and kept for the word context, raw (results.top_k_entries).
            tops = top_k_entries(predictor.shown_top_k(probs, embeddings, k))
            latency_ms = (time.perf_counter() - started) * 1000 / len(good)
            now = timezone.now()
            for row, top, embedding, changed in zip(good, tops, embeddings, adapted):
                row.embedding, row.adapted = embedding_bytes(embedding), bool(changed)
                row.status = Submission.Status.PREDICTED
                row.predicted_label, row.confidence = top[0]["label"], top[0]["probability"]
                row.top_k = top
                row.model_version = model_version
                row.latency_ms, row.predicted_at, row.error = latency_ms, now, ""
                results[str(row.id)] = result_fields(row)
            # The own rows' attempts were counted before the claim.
            submissions_store_predictions([(row, str(row.id) not in own_ids) for row in good])
            # In the same transaction: nobody sees a word's characters all predicted and its
            # readings missing, whichever task's batch predicted its last character.
            for word_id in dict.fromkeys(row.word_id for row in good if row.word_id):
                word_readings_store(word_id=str(word_id))
    if model_version.load_error:  # it loads now (the file was fixed): clear the old error
        model_version_record_load(model_version=model_version, error="")
    return {i: results[i] for i in ids if i in results}
