"""Retraining: the "Start a retraining run" button and the list of training runs."""

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from recognition.admin import display
from recognition.models import TrainingRun
from recognition.services.queueing import RETRAINING_RUN, task_send


def retraining_start(request) -> None:
    """Queue a manual retraining run once the request's transaction commits."""
    transaction.on_commit(lambda: task_send(RETRAINING_RUN, queue="training", kwargs={"reason": "manual"}))


class RetrainingStartMixin:
    """A "Start a retraining run" button above the change list (admin/…/start-retraining/)."""

    change_list_template = "admin/recognition/change_list_with_retraining.html"

    def get_urls(self):
        name = f"{self.model._meta.app_label}_{self.model._meta.model_name}_start_retraining"
        return [
            path("start-retraining/", self.admin_site.admin_view(self.start_retraining_view), name=name),
            *super().get_urls(),
        ]

    def start_retraining_view(self, request):
        changelist = reverse(f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_changelist")
        if request.method != "POST" or not request.user.has_perm("recognition.add_trainingrun"):
            self.message_user(
                request, "Starting a run needs a POST by a user allowed to add training runs.", messages.ERROR
            )
            return HttpResponseRedirect(changelist)
        retraining_start(request)
        self.message_user(
            request, "Retraining run queued on the training queue; it appears under Training runs.", messages.SUCCESS
        )
        return HttpResponseRedirect(changelist)


@admin.register(TrainingRun)
class TrainingRunAdmin(RetrainingStartMixin, admin.ModelAdmin):
    list_display = ("id", "reason", "status", "result", "outcome", "duration_seconds", "created_at", "finished_at")
    list_filter = ("status", "reason")
    readonly_fields = (
        "reason",
        "status",
        "result",
        "created_at",
        "started_at",
        "finished_at",
        "duration_seconds",
        "error",
        "summary_view",
        "log_view",
    )
    exclude = ("log", "summary")

    def has_add_permission(self, request):
        return False  # runs are started with the button, not typed in

    @admin.display(description="outcome")
    def outcome(self, obj):
        summary = obj.summary or {}
        if obj.status == TrainingRun.Status.SKIPPED:
            return summary.get("message", "nothing to do")
        if obj.status == TrainingRun.Status.FAILED:
            return obj.error[:200]
        if "promoted" in summary:
            return "promoted" if summary["promoted"] else f"rejected: {(summary.get('gates') or {}).get('reason', '')}"
        return "-"

    @admin.display(description="summary")
    def summary_view(self, obj):
        return display.json_block(obj.summary) if obj.summary else "-"

    @admin.display(description="log")
    def log_view(self, obj):
        return format_html("<pre style='white-space:pre-wrap;max-height:40em;overflow:auto'>{}</pre>", obj.log or "")
