from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from recognition.errors import InvalidState, UnknownLabel
from recognition.labels import labels
from recognition.models import Correction, SiteConfiguration, Submission
from recognition.selectors import site_configuration_get
from recognition.services.writer_memory import writer_memory_remember


def _open() -> Q:
    """Corrections still open to change: pending, or approved by an auto-approval rule (no
    reviewer) and not yet learned by a model. A second click replaces such a correction, and a
    person's review may overrule one (auto_rule stays, as the record of what the rule decided)."""
    auto_approved = Q(status=Correction.Status.APPROVED, reviewer__isnull=True, learned_by__isnull=True) & ~Q(
        auto_rule=""
    )
    return Q(status=Correction.Status.PENDING) | auto_approved


def _auto_approval_rule(submission: Submission, label: str) -> str:
    """The SiteConfiguration rule that approves this claim without review, or "" (review it)."""
    config = site_configuration_get()
    top_k = submission.top_k or []
    if config.auto_approve_second_choice and len(top_k) >= 2 and top_k[1].get("label") == label:
        return SiteConfiguration.AutoRule.SECOND_CHOICE
    return ""


@transaction.atomic
def correction_create(*, submission: Submission, label: str, remember: bool = True) -> Correction:
    """Record "it was ``label``". A second click replaces the still-open correction.

    Still open: pending, or approved by an auto-approval rule and not yet learned by a model
    (the user may still change their mind; the new label is judged by the rules again).

    With ``remember`` (the writer corrects their own drawing), the drawing also goes into
    the writer's memory at once, without review: it changes only their own predictions.
    Staff correcting someone else's drawing pass False.
    """
    if not isinstance(label, str) or len(label) != 1 or label not in labels():
        raise UnknownLabel(f"Unknown label {label!r}: expected one of 0-9, A-Z, a-z.")
    # Lock the submission so two clicks at once cannot create two open corrections; its
    # top-k is read from the locked row.
    submission = Submission.objects.select_for_update().get(pk=submission.pk)
    rule = _auto_approval_rule(submission, label)
    decided = {
        "status": Correction.Status.APPROVED if rule else Correction.Status.PENDING,
        "auto_rule": rule,
        "reviewer": None,
        "reviewed_at": timezone.now() if rule else None,
    }
    correction = Correction.objects.filter(_open(), submission=submission).order_by("-id").first()
    if correction is None:
        correction = Correction.objects.create(submission=submission, label=label, **decided)
    else:
        correction.label = label
        for field, value in decided.items():
            setattr(correction, field, value)
        correction.save(update_fields=["label", *decided])
    if remember:
        writer_memory_remember(submission=submission, correction=correction)
    return correction


def correction_review(*, correction_ids: list[int], reviewer: AbstractBaseUser, status: str) -> int:
    """Approve or reject pending corrections; returns how many changed.

    A conditional update: a correction another reviewer already decided is left alone, so two
    reviewers acting at once get one result (the first to commit).
    """
    if status not in (Correction.Status.APPROVED, Correction.Status.REJECTED):
        raise InvalidState(f"A review sets approved or rejected, not {status!r}.")
    # Open ones only: a person may also overrule an auto-approval the model has not learned yet.
    return Correction.objects.filter(_open(), id__in=correction_ids).update(
        status=status, reviewer=reviewer, reviewed_at=timezone.now()
    )
