"""Every periodic task, created once by `setup_site` (django-celery-beat).

Every schedule lives in the database and is edited in the admin (Periodic tasks). Each is only
created, never updated: after the first start the schedule is the admin's to edit, and
`setup_site` on the next deploy must not undo that.
"""

import json

from django.conf import settings
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from recognition.models import TrainingRun
from recognition.services.queueing import RETRAINING_RUN, SUBMISSION_REQUEUE_STALE

RETRAINING_SCHEDULE_NAME = "Nightly retraining"
REQUEUE_SCHEDULE_NAME = "Re-queue pending predictions"


def retraining_schedule_ensure() -> bool:
    """Create the nightly retraining (RETRAIN_SCHEDULE_CRONTAB) once; True if it was created."""
    if PeriodicTask.objects.filter(name=RETRAINING_SCHEDULE_NAME).exists():
        return False
    minute, hour, day_of_month, month_of_year, day_of_week = settings.RETRAIN_SCHEDULE_CRONTAB.split()
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=settings.TIME_ZONE,
    )
    PeriodicTask.objects.create(
        name=RETRAINING_SCHEDULE_NAME,
        task=RETRAINING_RUN,
        crontab=crontab,
        kwargs=json.dumps({"reason": TrainingRun.Reason.SCHEDULED}),
        queue="training",
        description=(
            "Fine-tunes the active model on new approved corrections; skipped when fewer than "
            "RETRAIN_MIN_NEW_CORRECTIONS are new. Edit the crontab here, no deploy needed."
        ),
    )
    return True


def submission_requeue_schedule_ensure() -> bool:
    """Create the re-queue sweep (every SUBMISSION_REQUEUE_INTERVAL_SECONDS) once; True if it was created."""
    if PeriodicTask.objects.filter(name=REQUEUE_SCHEDULE_NAME).exists():
        return False
    every, _ = IntervalSchedule.objects.get_or_create(
        every=settings.SUBMISSION_REQUEUE_INTERVAL_SECONDS, period=IntervalSchedule.SECONDS
    )
    PeriodicTask.objects.create(
        name=REQUEUE_SCHEDULE_NAME,
        task=SUBMISSION_REQUEUE_STALE,
        interval=every,
        queue="inference",
        description=(
            "Queues again the predictions of submissions still pending after "
            "SUBMISSION_REQUEUE_AFTER_SECONDS (the broker was down when they were stored, or a "
            "message was lost). Harmless when nothing is pending."
        ),
    )
    return True
