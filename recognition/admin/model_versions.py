"""Model versions: their metrics and quality gates, and activation (promote / roll back)."""

import base64
import io

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from ml.evaluate import save_confusion_png  # matplotlib loads only when a picture is drawn
from recognition import services
from recognition.admin import display
from recognition.admin.retraining import RetrainingStartMixin
from recognition.errors import RecognitionError
from recognition.models import ModelVersion


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
        return format_html("<strong>{}</strong>{}", self.gates(obj), display.json_block(obj.gate_results))

    @admin.display(description="metrics (validation split)")
    def metrics_summary(self, obj):
        val = obj.metrics.get("validation") or {}
        keys = ("n", "top1", "top3", "top5", "lookalike_top1", "ece")
        shown = {k: val[k] for k in keys if k in val}
        if obj.metrics.get("held_back"):
            shown["held_back"] = obj.metrics["held_back"]
        return display.json_block(shown) if shown else "-"

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
        buffer = io.BytesIO()
        save_confusion_png(cm, buffer, title=f"{obj.name}: validation")
        src = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        return format_html('<img src="{}" style="max-width:100%" alt="confusion matrix">', src)

    @admin.display(description="training data")
    def training_summary_view(self, obj):
        return display.json_block(obj.training_summary) if obj.training_summary else "-"

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
