"""Corrections users gave: reviewed (approve/reject) and exported from the change list."""

from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils import timezone

from recognition import exports, services
from recognition.admin import display
from recognition.labels import corrections_split_by_label
from recognition.models import Correction


@admin.register(Correction)
class CorrectionAdmin(admin.ModelAdmin):
    list_display = (
        "thumbnail",
        "submission_prediction",
        "label",
        "status",
        "reviewer",
        "auto_rule",
        "reviewed_at",
        "created_at",
    )
    list_filter = ("status", "auto_rule", "label", "submission__model_version", "created_at")
    search_fields = ("label", "submission__id", "submission__predicted_label")
    date_hierarchy = "created_at"
    # The form edits the label of a pending correction and nothing else: a status typed in
    # here would skip the reviewer and time the approve/reject actions record, and moving a
    # correction to another drawing or setting learned_by would rewrite what a model learned.
    fields = ("submission", "label", "status", "reviewer", "auto_rule", "reviewed_at", "learned_by", "created_at")
    readonly_fields = ("submission", "status", "reviewer", "auto_rule", "reviewed_at", "learned_by", "created_at")
    list_select_related = ("submission", "reviewer")
    actions = ("approve", "reject", "export_npz", "export_zip")

    def get_readonly_fields(self, request, obj=None):
        # A reviewed label is what the review decided on: changing it would approve a label
        # nobody reviewed.
        if obj is not None and obj.status != Correction.Status.PENDING:
            return ("label", *self.readonly_fields)
        return self.readonly_fields

    def has_add_permission(self, request):
        return False  # corrections come from users (correction_create), never typed in

    def get_queryset(self, request):
        return super().get_queryset(request).defer("submission__image")

    @admin.display(description="input")
    def thumbnail(self, obj):
        return display.thumbnail(obj.submission)

    @admin.display(description="predicted")
    def submission_prediction(self, obj):
        return obj.submission.predicted_label

    def _review(self, request, queryset, status):
        changed = services.correction_review(
            correction_ids=list(queryset.values_list("id", flat=True)), reviewer=request.user, status=status
        )
        skipped = queryset.count() - changed
        self.message_user(
            request, f"{changed} correction(s) {status}; {skipped} already reviewed, left alone.", messages.SUCCESS
        )

    @admin.action(description="Approve selected corrections", permissions=["change"])
    def approve(self, request, queryset):
        self._review(request, queryset, Correction.Status.APPROVED)

    @admin.action(description="Reject selected corrections", permissions=["change"])
    def reject(self, request, queryset):
        self._review(request, queryset, Correction.Status.REJECTED)

    def _export(self, queryset, content: bytes, extension: str, content_type: str) -> HttpResponse:
        response = HttpResponse(content, content_type=content_type)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="corrections-{stamp}.{extension}"'
        return response

    def _exportable(self, request, queryset) -> list[Correction]:
        rows = list(exports.correction_list_approved(ids=list(queryset.values_list("id", flat=True))))
        _, skipped = corrections_split_by_label(rows)
        if skipped:
            # The file is the response, so the admin sees this note on the next page they open.
            self.message_user(
                request,
                f"Left out of the export: {len(skipped)} correction(s) whose label is not one of the 62 classes "
                f"({', '.join(str(c.id) for c in skipped)}); listed in the file too.",
                messages.WARNING,
            )
        return rows

    @admin.action(description="Export the approved ones among the selected as .npz (EMNIST orientation)")
    def export_npz(self, request, queryset):
        rows = self._exportable(request, queryset)
        return self._export(queryset, exports.corrections_export_npz(rows), "npz", "application/octet-stream")

    @admin.action(description="Export the approved ones among the selected as PNGs + CSV (.zip)")
    def export_zip(self, request, queryset):
        rows = self._exportable(request, queryset)
        return self._export(queryset, exports.corrections_export_zip(rows), "zip", "application/zip")
