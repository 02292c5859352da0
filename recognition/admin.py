import base64
import io
import json

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from recognition import exports, services
from recognition.errors import RecognitionError
from recognition.images import input28_data_url
from recognition.labels import corrections_split_by_label
from recognition.models import Correction, ModelVersion, SiteConfiguration, Submission, TrainingRun, Word


def _thumbnail(submission: Submission, size: int = 56):
    if not submission.input28:
        return "-"
    return format_html(
        '<img src="{}" width="{}" height="{}" style="image-rendering:pixelated;background:#000" alt="28x28">',
        input28_data_url(submission),
        size,
        size,
    )


def _image_tag(content_type: str, data: bytes, style: str, alt: str = "drawing"):
    data = bytes(data or b"")
    if not data or len(data) > 512 * 1024:
        return f"{len(data)} bytes"
    src = f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"
    return format_html('<img src="{}" style="{}" alt="{}">', src, style, alt)


class ConfidenceFilter(admin.SimpleListFilter):
    title = "confidence"
    parameter_name = "confidence"
    BUCKETS = {"low": (0, 0.5), "medium": (0.5, 0.9), "high": (0.9, 1.01)}

    def lookups(self, request, model_admin):
        return [("low", "< 50%"), ("medium", "50-90%"), ("high", ">= 90%")]

    def queryset(self, request, queryset):
        if self.value() in self.BUCKETS:
            low, high = self.BUCKETS[self.value()]
            return queryset.filter(confidence__gte=low, confidence__lt=high)
        return queryset


class CorrectionInline(admin.TabularInline):
    """Read-only: corrections come from users, and review goes through the change list's
    approve/reject actions, which record who and when."""

    model = Correction
    extra = 0
    fields = ("label", "status", "reviewer", "reviewed_at", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = (
        "thumbnail",
        "id",
        "predicted_label",
        "confidence",
        "status",
        "source",
        "model_version",
        "owner",
        "created_at",
    )
    list_filter = ("status", ConfidenceFilter, "predicted_label", "source", "model_version", "created_at")
    search_fields = ("id", "predicted_label", "client_id", "owner__username", "corrections__label")
    date_hierarchy = "created_at"
    readonly_fields = (
        "thumbnail_large",
        "original",
        "id",
        "top_k",
        "latency_ms",
        "attempts",
        "word",
        "position",
        "created_at",
        "predicted_at",
        "error",
    )
    exclude = ("image", "input28")
    inlines = [CorrectionInline]
    list_select_related = ("model_version", "owner")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("image")

    @admin.display(description="input")
    def thumbnail(self, obj):
        return _thumbnail(obj)

    @admin.display(description="28x28 the model saw")
    def thumbnail_large(self, obj):
        return _thumbnail(obj, 224)

    @admin.display(description="original")
    def original(self, obj):
        return _image_tag(obj.content_type, obj.image, "max-width:300px;border:1px solid #ccc", alt="original")


class CharacterInline(admin.TabularInline):
    """A word's characters, in order, each linking to its submission (corrections live there)."""

    model = Submission
    fk_name = "word"
    extra = 0
    can_delete = False
    ordering = ("position",)
    fields = ("position", "crop", "thumbnail", "predicted_label", "confidence", "status", "corrections_given", "link")
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("corrections")

    @admin.display(description="drawn")
    def crop(self, obj):
        return _image_tag(obj.content_type, obj.image, "max-height:56px;border:1px solid #ccc")

    @admin.display(description="28x28")
    def thumbnail(self, obj):
        return _thumbnail(obj)

    @admin.display(description="corrections")
    def corrections_given(self, obj):
        return ", ".join(f"{c.label} ({c.status})" for c in obj.corrections.all()) or "-"

    @admin.display(description="submission")
    def link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:recognition_submission_change", args=[obj.pk]), obj.pk)


@admin.register(Word)
class WordAdmin(admin.ModelAdmin):
    list_display = ("thumbnail", "id", "text", "status", "segmentation", "source", "owner", "created_at")
    list_filter = ("segmentation", "source", "created_at")
    search_fields = ("id", "client_id", "owner__username")
    date_hierarchy = "created_at"
    readonly_fields = (
        "drawing",
        "id",
        "text",
        "status",
        "segmentation",
        "boxes",
        "width",
        "height",
        "source",
        "owner",
        "client_id",
        "created_at",
    )
    exclude = ("image", "strokes")
    inlines = [CharacterInline]
    list_select_related = ("owner",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("characters")

    @admin.display(description="drawing")
    def thumbnail(self, obj):
        return _image_tag(obj.content_type, obj.image, "max-height:40px;max-width:240px;border:1px solid #ccc")

    @admin.display(description="drawing")
    def drawing(self, obj):
        return _image_tag(obj.content_type, obj.image, "max-width:900px;border:1px solid #ccc")


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
        return _thumbnail(obj.submission)

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


@admin.register(SiteConfiguration)
class SiteConfigurationAdmin(admin.ModelAdmin):
    """One row: the list page goes straight to it (created with the defaults on first visit)."""

    fields = ("auto_approve_second_choice", "updated_at")
    readonly_fields = ("updated_at",)

    def changelist_view(self, request, extra_context=None):
        config, _ = SiteConfiguration.objects.get_or_create(pk=SiteConfiguration.SINGLETON_PK)
        return HttpResponseRedirect(reverse("admin:recognition_siteconfiguration_change", args=[config.pk]))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def retraining_start(request) -> None:
    """Queue a manual retraining run once the request's transaction commits."""
    from recognition.tasks import retraining_run as retraining_run_task

    transaction.on_commit(lambda: retraining_run_task.apply_async(kwargs={"reason": "manual"}, queue="training"))


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


def _json_block(value) -> str:
    return format_html(
        "<pre style='white-space:pre-wrap;max-height:30em;overflow:auto'>{}</pre>",
        json.dumps(value, indent=1, sort_keys=True),
    )


@admin.register(ModelVersion)
class ModelVersionAdmin(RetrainingStartMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "status",
        "top1",
        "top3",
        "held_back",
        "gates",
        "loads",
        "parent",
        "created_at",
        "activated_at",
    )
    list_filter = ("status",)
    readonly_fields = (
        "created_at",
        "activated_at",
        "status",
        "gate_summary",
        "metrics_summary",
        "per_class_table",
        "confusion_matrix_image",
        "training_summary_view",
        "load_error",
        "load_checked_at",
    )
    exclude = ("metrics", "training_summary", "gate_results")
    actions = ("activate",)

    def _metric(self, obj, key):
        value = (obj.metrics.get("validation") or {}).get(key)
        return f"{value:.4f}" if isinstance(value, (int, float)) else "-"

    @admin.display(description="top-1")
    def top1(self, obj):
        return self._metric(obj, "top1")

    @admin.display(description="top-3")
    def top3(self, obj):
        return self._metric(obj, "top3")

    @admin.display(description="held-back top-1")
    def held_back(self, obj):
        held = obj.metrics.get("held_back") or {}
        return f"{held['top1']:.4f} ({held.get('n')})" if isinstance(held.get("top1"), (int, float)) else "-"

    @admin.display(description="gates")
    def gates(self, obj):
        if not obj.gate_results:
            return "-"
        return "passed" if obj.gate_results.get("passed") else f"failed: {obj.gate_results.get('reason', '')}"

    @admin.display(description="model file")
    def loads(self, obj):
        # Written by workers and promotions: a file that does not load is shown, not hidden.
        if obj.load_error:
            return format_html('<strong style="color:#ba2121">does not load: {}</strong>', obj.load_error[:300])
        return "loads" if obj.load_checked_at else "-"

    @admin.display(description="quality gates")
    def gate_summary(self, obj):
        if not obj.gate_results:
            return "No gates (not produced by a retraining run)."
        return format_html("<strong>{}</strong>{}", self.gates(obj), _json_block(obj.gate_results))

    @admin.display(description="metrics (validation split)")
    def metrics_summary(self, obj):
        val = obj.metrics.get("validation") or {}
        keys = ("n", "top1", "top3", "top5", "lookalike_top1", "ece")
        shown = {k: val[k] for k in keys if k in val}
        if obj.metrics.get("held_back"):
            shown["held_back"] = obj.metrics["held_back"]
        return _json_block(shown) if shown else "-"

    @admin.display(description="per-class recall / precision")
    def per_class_table(self, obj):
        per_class = (obj.metrics.get("validation") or {}).get("per_class") or {}
        if not per_class:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{:.3f}</td><td>{:.3f}</td><td>{}</td></tr>",
            ((c, m["recall"], m["precision"], m["support"]) for c, m in per_class.items()),
        )
        return format_html(
            "<table><tr><th>class</th><th>recall</th><th>precision</th><th>support</th></tr>{}</table>", rows
        )

    @admin.display(description="confusion matrix (validation split)")
    def confusion_matrix_image(self, obj):
        cm = (obj.metrics.get("validation") or {}).get("confusion_matrix")
        if not cm:
            return "-"
        from ml.evaluate import save_confusion_png  # matplotlib, not TensorFlow

        buffer = io.BytesIO()
        save_confusion_png(cm, buffer, title=f"{obj.name}: validation")
        src = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        return format_html('<img src="{}" style="max-width:100%" alt="confusion matrix">', src)

    @admin.display(description="training data")
    def training_summary_view(self, obj):
        return _json_block(obj.training_summary) if obj.training_summary else "-"

    @admin.action(description="Activate (promote / roll back to) the selected version", permissions=["change"])
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        try:
            version = services.model_version_activate(model_version=queryset.get())
        except RecognitionError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{version.name} is now active.", messages.SUCCESS)


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
        return _json_block(obj.summary) if obj.summary else "-"

    @admin.display(description="log")
    def log_view(self, obj):
        return format_html("<pre style='white-space:pre-wrap;max-height:40em;overflow:auto'>{}</pre>", obj.log or "")
