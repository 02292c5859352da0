from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from recognition.errors import InvalidState, UnknownLabel
from recognition.labels import labels
from recognition.models import Correction, Submission


@transaction.atomic
def correction_create(*, submission: Submission, label: str) -> Correction:
    """Record "it was ``label``". A second click replaces the still-open correction."""
    if not isinstance(label, str) or len(label) != 1 or label not in labels():
        raise UnknownLabel(f"Unknown label {label!r}: expected one of 0-9, A-Z, a-z.")
    # Lock the submission so two clicks at once cannot create two open corrections.
    Submission.objects.select_for_update().filter(pk=submission.pk).first()
    correction = Correction.objects.filter(submission=submission, status=Correction.Status.PENDING).first()
    if correction is None:
        return Correction.objects.create(submission=submission, label=label)
    correction.label = label
    correction.save(update_fields=["label"])
    return correction


def correction_review(*, correction_ids: list[int], reviewer: AbstractBaseUser, status: str) -> int:
    """Approve or reject pending corrections; returns how many changed.

    A conditional update: a correction another reviewer already decided is left alone.
    """
    if status not in (Correction.Status.APPROVED, Correction.Status.REJECTED):
        raise InvalidState(f"A review sets approved or rejected, not {status!r}.")
    return Correction.objects.filter(id__in=correction_ids, status=Correction.Status.PENDING).update(
        status=status, reviewer=reviewer, reviewed_at=timezone.now()
    )
