"""Every workflow that writes. Interfaces (APIs, admin, tasks, views) call these."""

from recognition.services.corrections import correction_create, correction_review
from recognition.services.model_versions import (
    model_version_activate,
    model_version_path,
    model_version_record_load,
    model_version_register_shipped,
)
from recognition.services.notifications import submission_notify_done, submission_wait_done
from recognition.services.results import RESULT_FIELDS, result_fields_apply
from recognition.services.retraining import RetrainingBusy, retraining_run
from recognition.services.schedules import retraining_schedule_ensure, submission_requeue_schedule_ensure
from recognition.services.submissions import (
    submission_create,
    submission_fail,
    submission_predict,
    submission_requeue_stale,
)
from recognition.services.words import word_create, word_fail, word_predict, word_resegment
from recognition.services.writer_adaptation import writer_memory_prepare

__all__ = [
    "RESULT_FIELDS",
    "result_fields_apply",
    "correction_create",
    "correction_review",
    "model_version_activate",
    "model_version_path",
    "model_version_record_load",
    "model_version_register_shipped",
    "retraining_run",
    "retraining_schedule_ensure",
    "RetrainingBusy",
    "submission_create",
    "submission_fail",
    "submission_notify_done",
    "submission_predict",
    "submission_requeue_schedule_ensure",
    "submission_requeue_stale",
    "submission_wait_done",
    "word_create",
    "word_fail",
    "word_predict",
    "word_resegment",
    "writer_memory_prepare",
]
