import base64

from django.contrib import admin, messages
from django.utils.html import format_html

from recognition import services
from recognition.apis import input28_data_url
from recognition.models import Correction, ModelVersion, Submission, TrainingRun


def _thumbnail(submission: Submission, size: int = 56):
    if not submission.input28:
        return "-"
    return format_html(
        '<img src="{}" width="{}" height="{}" style="image-rendering:pixelated;background:#000" alt="28x28">',
        input28_data_url(submission),
        size,
        size,
    )


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
    model = Correction
    extra = 0
    fields = ("label", "status", "reviewer", "reviewed_at", "created_at")
    readonly_fields = ("reviewer", "reviewed_at", "created_at")


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = ("thumbnail", "id", "predicted_label", "confidence", "status", "source", "model_version", "owner", "created_at")
    list_filter = ("status", ConfidenceFilter, "predicted_label", "source", "model_version", "created_at")
    search_fields = ("id", "predicted_label", "client_id", "owner__username", "corrections__label")
    date_hierarchy = "created_at"
    readonly_fields = ("thumbnail_large", "original", "id", "top_k", "latency_ms", "attempts", "created_at", "predicted_at", "error")
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
        data = bytes(obj.image or b"")
        if not data or len(data) > 512 * 1024:
            return f"{len(data)} bytes"
        src = f"data:{obj.content_type};base64,{base64.b64encode(data).decode('ascii')}"
        return format_html('<img src="{}" style="max-width:300px;border:1px solid #ccc" alt="original">', src)


@admin.register(Correction)
class CorrectionAdmin(admin.ModelAdmin):
    list_display = ("thumbnail", "submission_prediction", "label", "status", "reviewer", "reviewed_at", "created_at")
    list_filter = ("status", "label", "submission__model_version", "created_at")
    search_fields = ("label", "submission__id", "submission__predicted_label")
    date_hierarchy = "created_at"
    readonly_fields = ("reviewer", "reviewed_at", "created_at")
    raw_id_fields = ("submission",)
    list_select_related = ("submission", "reviewer")
    actions = ("approve", "reject")

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
        self.message_user(request, f"{changed} correction(s) {status}; {skipped} already reviewed, left alone.", messages.SUCCESS)

    @admin.action(description="Approve selected corrections")
    def approve(self, request, queryset):
        self._review(request, queryset, Correction.Status.APPROVED)

    @admin.action(description="Reject selected corrections")
    def reject(self, request, queryset):
        self._review(request, queryset, Correction.Status.REJECTED)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "top1", "top3", "lookalike_top1", "ece", "parent", "created_at", "activated_at")
    list_filter = ("status",)
    readonly_fields = ("created_at", "activated_at", "status")
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

    @admin.display(description="look-alike top-1")
    def lookalike_top1(self, obj):
        return self._metric(obj, "lookalike_top1")

    @admin.display(description="ECE")
    def ece(self, obj):
        return self._metric(obj, "ece")

    @admin.action(description="Activate (promote / roll back to) the selected version")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        version = services.model_version_activate(model_version=queryset.get())
        self.message_user(request, f"{version.name} is now active.", messages.SUCCESS)


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "reason", "status", "result", "created_at", "finished_at")
    list_filter = ("status", "reason")
