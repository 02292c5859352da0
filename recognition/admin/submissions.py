"""Drawings: single-character submissions (with their corrections inline) and words (with their characters)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from recognition.admin import display
from recognition.models import Correction, Submission, Word


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
        return display.thumbnail(obj)

    @admin.display(description="28x28 the model saw")
    def thumbnail_large(self, obj):
        return display.thumbnail(obj, 224)

    @admin.display(description="original")
    def original(self, obj):
        return display.image_tag(obj.content_type, obj.image, "max-width:300px;border:1px solid #ccc", alt="original")


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
        return display.image_tag(obj.content_type, obj.image, "max-height:56px;border:1px solid #ccc")

    @admin.display(description="28x28")
    def thumbnail(self, obj):
        return display.thumbnail(obj)

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
        return display.image_tag(obj.content_type, obj.image, "max-height:40px;max-width:240px;border:1px solid #ccc")

    @admin.display(description="drawing")
    def drawing(self, obj):
        return display.image_tag(obj.content_type, obj.image, "max-width:900px;border:1px solid #ccc")
