"""The Celery app. Configuration comes from Django settings prefixed CELERY_."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

from emnist_site.heartbeat import Heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emnist_site.settings")

app = Celery("emnist_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Each worker writes a heartbeat per queue it consumes, which health and the metrics read.
app.steps["consumer"].add(Heartbeat)


@task_prerun.connect
@task_postrun.connect
def close_old_connections(**kwargs) -> None:
    """Between tasks, what Django does between requests: close a database connection that
    failed (the database restarted) or outlived CONN_MAX_AGE, keep a good one. (Celery itself
    only closes every 2 x CELERY_DB_REUSE_MAX tasks, see settings.)"""
    task = kwargs.get("task")
    if task is not None and getattr(task.request, "is_eager", False):
        return  # in-process (eager): the request's own connection, Django manages it
    from django.db import close_old_connections as django_close_old_connections

    django_close_old_connections()
