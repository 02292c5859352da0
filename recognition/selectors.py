"""Reads shared by APIs, pages and admin."""

from django.db.models import QuerySet

from recognition.errors import NotFound
from recognition.models import ModelVersion, SiteConfiguration, Submission


def site_configuration_get() -> SiteConfiguration:
    """The admin-edited settings; every default when nobody has saved them yet."""
    return SiteConfiguration.objects.filter(pk=SiteConfiguration.SINGLETON_PK).first() or SiteConfiguration()


def model_version_get_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("parent").order_by("-created_at")


def submission_list_visible(*, user, client_id: str) -> QuerySet[Submission]:
    """Staff see everything, a signed-in user their own, an anonymous visitor their session's."""
    qs = Submission.objects.select_related("model_version").prefetch_related("corrections")
    if user is not None and user.is_authenticated:
        return qs if user.is_staff else qs.filter(owner=user)
    if not client_id:
        return qs.none()
    return qs.filter(owner__isnull=True, client_id=client_id)


def submission_get_visible(*, submission_id, user, client_id: str) -> Submission:
    """The submission if this caller may see it. Someone else's is "not found", so ids leak nothing."""
    try:
        return submission_list_visible(user=user, client_id=client_id).get(id=submission_id)
    except (Submission.DoesNotExist, ValueError):
        raise NotFound("Submission not found.") from None
