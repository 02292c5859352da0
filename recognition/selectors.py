"""Reads shared by APIs, pages and admin."""

import uuid

from django.db import connection
from django.db.models import Count, Model, Prefetch, QuerySet

from recognition.errors import NotFound
from recognition.models import (
    Correction,
    ModelVersion,
    SiteConfiguration,
    Submission,
    Word,
    WriterAdaptation,
    WriterMemoryEntry,
)
from recognition.permissions import VIEW_SUBMISSIONS, VIEW_WORDS, staff_has_perm


def site_configuration_get() -> SiteConfiguration:
    """The admin-edited settings; every default when nobody has saved them yet."""
    return SiteConfiguration.objects.filter(pk=SiteConfiguration.SINGLETON_PK).first() or SiteConfiguration()


def model_version_get_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()


# {database vendor: (sql, params)} of model_version_get_serving's query, compiled once.
_serving_sql: dict[str, tuple[str, tuple]] = {}


def model_version_get_serving() -> ModelVersion | None:
    """The active version without its metrics, summary and gate results: what a worker reads
    on every batch (the metrics alone are ~18 KB of JSON to decode).

    The query is compiled once per database vendor and run with ``raw`` (which still applies
    the fields' converters): building it through the ORM each time was 14 % of a worker's
    CPU at concurrency 1, twice what running it costs (bench/RESULTS.md, issue 20)."""
    compiled = _serving_sql.get(connection.vendor)
    if compiled is None:
        query = (
            ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)
            .defer("metrics", "training_summary", "gate_results")
            .order_by("pk")[:1]
        ).query
        sql, params = query.sql_with_params()
        compiled = _serving_sql[connection.vendor] = (sql, tuple(str(p) for p in params))
    return next(iter(ModelVersion.objects.raw(*compiled)), None)


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("parent").order_by("-created_at")


def _own(qs: QuerySet, *, user, client_id: str) -> QuerySet:
    """The caller's own rows of ``qs``: a signed-in user's by owner, an anonymous visitor's by
    their session's client id, nobody's without either."""
    if user is not None and user.is_authenticated:
        return qs.filter(owner=user)
    if not client_id:
        return qs.none()
    return qs.filter(owner__isnull=True, client_id=client_id)


def _visible(qs: QuerySet, *, user, client_id: str, permission: str) -> QuerySet:
    """Staff who hold ``permission`` (the admin's view permission) see everything, anyone else
    their own (``_own``)."""
    if user is not None and user.is_authenticated and staff_has_perm(user, permission):
        return qs
    return _own(qs, user=user, client_id=client_id)


def _get_visible(qs: QuerySet, object_id, what: str) -> Model:
    """The row of ``qs`` with this id. Someone else's is "not found", and so is a string that
    is not an id at all, so ids leak nothing."""
    try:
        return qs.get(id=uuid.UUID(str(object_id)))
    except (ValueError, qs.model.DoesNotExist):
        raise NotFound(f"{what} not found.") from None


def submission_list_visible(*, user, client_id: str) -> QuerySet[Submission]:
    # Responses carry model_version_id, never the version's row (its metrics are ~18 KB of
    # JSON), nor the drawing itself: neither is read here.
    qs = Submission.objects.defer("image", "strokes", "embedding").prefetch_related("corrections")
    return _visible(qs, user=user, client_id=client_id, permission=VIEW_SUBMISSIONS)


def submission_get_visible(*, submission_id, user, client_id: str) -> Submission:
    return _get_visible(submission_list_visible(user=user, client_id=client_id), submission_id, "Submission")


def model_version_get(*, model_version_id) -> ModelVersion:
    try:
        return ModelVersion.objects.select_related("parent").get(id=model_version_id)
    except (ModelVersion.DoesNotExist, ValueError):
        raise NotFound("Model version not found.") from None


def correction_counts() -> dict:
    """How many corrections people have contributed, by review status, and how many a promoted
    model has learned from (public aggregate numbers, nothing about whose)."""
    by_status = dict(Correction.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {
        "total": sum(by_status.values()),
        "approved": by_status.get(Correction.Status.APPROVED, 0),
        "pending": by_status.get(Correction.Status.PENDING, 0),
        "rejected": by_status.get(Correction.Status.REJECTED, 0),
        "learned": Correction.objects.filter(learned_by__isnull=False).count(),
    }


def submission_count_predicted() -> int:
    return Submission.objects.filter(status=Submission.Status.PREDICTED).count()


def word_list_visible(*, user, client_id: str) -> QuerySet[Word]:
    characters = Submission.objects.select_related("model_version").prefetch_related("corrections").order_by("position")
    qs = Word.objects.prefetch_related(Prefetch("characters", queryset=characters))
    return _visible(qs, user=user, client_id=client_id, permission=VIEW_WORDS)


def word_get_visible(*, word_id, user, client_id: str) -> Word:
    return _get_visible(word_list_visible(user=user, client_id=client_id), word_id, "Word")


def writer_memory_list_own(*, user, client_id: str) -> QuerySet[WriterMemoryEntry]:
    """The caller's own memory, newest first: a signed-in user's by owner, a visitor's by their
    client id, as for submissions. Nobody, staff included, lists another writer's here."""
    qs = _own(WriterMemoryEntry.objects.all(), user=user, client_id=client_id)
    return qs.select_related("submission").only(
        "id", "label", "model_version_id", "created_at", "correction_id", "submission__id", "submission__input28"
    )


def writer_adaptation_list_own(*, user, client_id: str) -> QuerySet[WriterAdaptation]:
    """What the caller's memory was worked into (one row per model version), by the same
    ownership as ``writer_memory_list_own``."""
    return _own(WriterAdaptation.objects.all(), user=user, client_id=client_id)


def writer_memory_get_own(*, entry_id, user, client_id: str) -> WriterMemoryEntry:
    """One entry of the caller's own memory; another writer's is "not found", as a submission."""
    try:
        number = int(str(entry_id))
        if not 1 <= number < 2**63:  # beyond the column: the database would fail, not answer
            raise ValueError(number)
        return writer_memory_list_own(user=user, client_id=client_id).get(id=number)
    except (ValueError, WriterMemoryEntry.DoesNotExist):
        raise NotFound("Memory entry not found.") from None
