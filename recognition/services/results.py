"""A stored prediction as the worker writes it and the notification carries it to the waiting
request, and marking rows failed."""

from django.utils.dateparse import parse_datetime

from recognition.models import Submission

# What the worker writes, and the notification carries to the waiting request.
RESULT_FIELDS = [
    "status",
    "predicted_label",
    "confidence",
    "top_k",
    "adapted",
    "model_version",
    "latency_ms",
    "error",
    "predicted_at",
]
_RESULT_ATTNAMES = [Submission._meta.get_field(name).attname for name in RESULT_FIELDS]  # model_version_id


def top_k_entries(tops: list[list[tuple[str, float, float]]]) -> list[list[dict]]:
    """Stored ``top_k`` of each row from (label, shown, raw) triples (``Predictor.shown_top_k``).

    ``probability`` is what the page and the API show (calibrated: ``ml.confidence``); ``raw``,
    the CNN's own probability, is kept where it differs, for what was fitted on raw
    probabilities (the word context: ``raw_top_k``).
    """
    rows = []
    for top in tops:
        entries = []
        for label, shown, raw in top:
            entry = {"label": label, "probability": round(shown, 6)}
            if round(raw, 6) != entry["probability"]:
                entry["raw"] = round(raw, 6)
            entries.append(entry)
        rows.append(entries)
    return rows


def raw_top_k(top_k: list[dict]) -> list[tuple[str, float]]:
    """(label, raw probability) of a stored ``top_k``: ``raw`` where kept, else ``probability``
    (equal to it then, and in every row stored before calibration)."""
    return [(p["label"], p.get("raw", p["probability"])) for p in top_k]


def result_fields(row: Submission) -> dict:
    """The stored prediction of ``row`` as JSON-ready values (``RESULT_FIELDS``, by attname)."""
    values = {name: getattr(row, name) for name in _RESULT_ATTNAMES}
    values["predicted_at"] = row.predicted_at.isoformat() if row.predicted_at else None
    return values


def result_fields_apply(submission: Submission, stored: dict) -> bool:
    """Set ``result_fields`` (as they come back from JSON) on ``submission``, all or none;
    False if ``stored`` is not such a record (then the caller reads the row)."""
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


def submissions_mark_failed(ids: list[str], reason: str) -> str:
    """Mark the still-pending rows among ``ids`` failed with ``reason``; returns the reason as
    stored (cut to the column's size). A row predicted meanwhile keeps its answer."""
    reason = reason[:2000]
    Submission.objects.filter(id__in=ids, status=Submission.Status.PENDING).update(
        status=Submission.Status.FAILED, error=reason
    )
    return reason


def submissions_fail_results(ids: list[str], reason: str) -> dict[str, dict]:
    """Mark these (claimed) rows failed with ``reason``; returns their ``result_fields``."""
    reason = submissions_mark_failed(ids, reason)
    failed = Submission(status=Submission.Status.FAILED, error=reason, top_k=[])
    return {str(i): result_fields(failed) for i in ids}
