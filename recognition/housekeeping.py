"""Periodic clean-up that no request does: expired sessions.

Django deletes a session row only at logout; ``clearsessions`` deletes the expired ones and
is meant to run on a schedule. Here it is a task, scheduled (django-celery-beat, editable in
the admin) by ``setup_site`` beside the other schedules. Its own module, imported by
RecognitionConfig.ready() so that every worker registers the task.
"""

from importlib import import_module

from celery import shared_task
from django.conf import settings
from django.utils import timezone

SESSIONS_CLEAR_SCHEDULE_NAME = "Clear expired sessions"
SESSIONS_CLEAR_TASK = "recognition.housekeeping.sessions_clear"
# Daily, at a quiet hour and away from the 03:00 retraining run.
SESSIONS_CLEAR_CRONTAB = {"minute": "30", "hour": "4", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}


@shared_task(name=SESSIONS_CLEAR_TASK, ignore_result=False)
def sessions_clear() -> int:
    """What ``manage.py clearsessions`` does for our database-backed engine
    (recognition.sessions), counting the rows: cached copies expire from Redis by themselves."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    deleted, _ = store.get_model_class().objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted


def sessions_clear_schedule_ensure() -> bool:
    """Create the daily session sweep once; True if it was created."""
    from django_celery_beat.models import (  # an app's models: not at import
        CrontabSchedule,
        PeriodicTask,
    )

    if PeriodicTask.objects.filter(name=SESSIONS_CLEAR_SCHEDULE_NAME).exists():
        return False
    crontab, _ = CrontabSchedule.objects.get_or_create(**SESSIONS_CLEAR_CRONTAB, timezone=settings.TIME_ZONE)
    PeriodicTask.objects.create(
        name=SESSIONS_CLEAR_SCHEDULE_NAME,
        task=SESSIONS_CLEAR_TASK,
        crontab=crontab,
        queue="inference",
        description="Deletes expired sessions (Django's clearsessions): one DELETE, harmless when there are none.",
    )
    return True
