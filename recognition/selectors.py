"""Reads shared by APIs, pages and admin."""

import uuid

from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch, QuerySet

from recognition.errors import NotFound
from recognition.models import (
    Correction,
    ModelVersion,
    SiteConfiguration,
    Submission,
    Word,
)
from recognition.permissions import VIEW_SUBMISSIONS, VIEW_WORDS, staff_has_perm


def site_configuration_get() -> SiteConfiguration:
    """The admin-edited settings; every default when nobody has saved them yet."""
    return SiteConfiguration.objects.filter(pk=SiteConfiguration.SINGLETON_PK).first() or SiteConfiguration()


def model_version_get_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()


def model_version_get_serving() -> ModelVersion | None:
    """The active version without its metrics, summary and gate results: what a worker reads
    on every batch (the metrics alone are ~18 KB of JSON to decode)."""
    return (
        ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)
        .defer("metrics", "training_summary", "gate_results")
        .first()
    )


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("parent").order_by("-created_at")


def submission_list_visible(*, user, client_id: str) -> QuerySet[Submission]:
    """Staff who may view submissions (the admin's permission) see everything, a signed-in user
    their own, an anonymous visitor their session's."""
    # Responses carry model_version_id, never the version's row (its metrics are ~18 KB of
    # JSON), nor the drawing itself: neither is read here.
    qs = Submission.objects.defer("image", "strokes").prefetch_related("corrections")
    if user is not None and user.is_authenticated:
        return qs if staff_has_perm(user, VIEW_SUBMISSIONS) else qs.filter(owner=user)
    if not client_id:
        return qs.none()
    return qs.filter(owner__isnull=True, client_id=client_id)


def submission_get_visible(*, submission_id, user, client_id: str) -> Submission:
    """The submission if this caller may see it. Someone else's is "not found", so ids leak nothing."""
    try:
        submission_uuid = uuid.UUID(str(submission_id))
    except ValueError:
        raise NotFound("Submission not found.") from None  # not an id at all: the same answer as someone else's
    try:
        return submission_list_visible(user=user, client_id=client_id).get(id=submission_uuid)
    except Submission.DoesNotExist:
        raise NotFound("Submission not found.") from None


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
    """Same visibility as submissions: staff who may view words all, a user theirs, a visitor their session's."""
    characters = Submission.objects.select_related("model_version").prefetch_related("corrections").order_by("position")
    qs = Word.objects.prefetch_related(Prefetch("characters", queryset=characters))
    if user is not None and user.is_authenticated:
        return qs if staff_has_perm(user, VIEW_WORDS) else qs.filter(owner=user)
    if not client_id:
        return qs.none()
    return qs.filter(owner__isnull=True, client_id=client_id)


def word_get_visible(*, word_id, user, client_id: str) -> Word:
    """The word if this caller may see it; someone else's is "not found"."""
    try:
        return word_list_visible(user=user, client_id=client_id).get(id=word_id)
    except (Word.DoesNotExist, ValueError, ValidationError):  # ValidationError: not a UUID
        raise NotFound("Word not found.") from None
