"""What the API reads and answers with, and so what its OpenAPI schema documents.

Component names in the schema come from the class names (less "Serializer") or ``ref_name``;
clients generated from the schema depend on them, so rename neither lightly. A serializer's
docstring would become its component's description in the schema: these have comments.
"""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from recognition.images import input28_data_url
from recognition.labels import labels
from recognition.models import ModelVersion, Submission
from recognition.services.word_readings import word_readings_get

# A 28x28 canvas export of a "1" (transparent background, ink in alpha): the docs' example.
EXAMPLE_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAYAAAByDd+UAAAASklEQVR42u3SwQ0AIAhDUcv+O+MKQprGw+9dXoSeQz5Jbx/KgI1mVOpnG7Adt6gk9gq2s221"
    "KJYSK5UDm5ZGydJEbwgICAgISMK5guUGKqPdE88AAAAASUVORK5CYII="
)


class StrictCharField(serializers.CharField):
    """A string, as the schema says; DRF's CharField would turn the number 0 into the label "0"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class Base64Field(StrictCharField):
    """A base64 string of up to megabytes: ASCII, which also rules out surrogates.

    CharField's surrogate check is a Python loop over every character: 0.4 s of CPU for the
    largest image, before anything could refuse it. ``str.isascii`` is one C pass.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitSurrogateCharactersValidator)]

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value.isascii():
            raise serializers.ValidationError("Not valid base64: only ASCII characters may appear.", code="invalid")
        return value


@extend_schema_field({"type": "string", "enum": list(labels())})
class LabelField(StrictCharField):
    """Documented as the 62 labels; an unknown one is the service's 400 unknown_label."""


# ---------------------------------------------------------------------------------------------
# Drawings in (POST submissions, POST words) and corrections in


# A drawing sent as JSON; recognition.api.inputs decodes it (multipart is DRAWING_UPLOAD).
class DrawingInputSerializer(serializers.Serializer):
    image_base64 = Base64Field(
        help_text="A base64 image, optionally as a data URL (data:image/png;base64,...); line breaks are allowed."
    )
    content_type = StrictCharField(required=False, help_text="Defaults to the data URL's type, else image/png.")
    strokes = serializers.JSONField(required=False, allow_null=True, help_text="[[[x, y, t], ...], ...]")
    source = serializers.ChoiceField(choices=Submission.Source.choices, required=False)

    class Meta:
        ref_name = "SubmissionCreateInput"


# One component for both POST submissions and POST words (two inline serializers of one
# name would clash in the schema).
DRAWING_UPLOAD = inline_serializer(
    "SubmissionUpload",
    {
        "image": serializers.FileField(),
        "strokes": serializers.CharField(required=False, help_text="JSON"),
        "source": serializers.ChoiceField(choices=Submission.Source.choices, required=False),
    },
)

DRAWING_REQUEST = {"application/json": DrawingInputSerializer, "multipart/form-data": DRAWING_UPLOAD}


class CorrectionInputSerializer(serializers.Serializer):
    label = LabelField(max_length=10, help_text="The right answer: one of the 62 labels.")

    class Meta:
        ref_name = "CorrectionInput"


# ---------------------------------------------------------------------------------------------
# Submissions, corrections and words out


class PredictionSerializer(serializers.Serializer):
    label = serializers.CharField()
    probability = serializers.FloatField()


class CorrectionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    status = serializers.CharField()
    auto_rule = serializers.CharField(help_text='The rule that approved it without review ("second_choice"), or "".')
    created_at = serializers.DateTimeField()


_DATETIME = serializers.DateTimeField()  # its ISO 8601 output, for the hand-written representations


class SubmissionOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.SerializerMethodField()
    status = serializers.CharField()
    source = serializers.CharField()
    predicted_label = serializers.CharField()
    confidence = serializers.FloatField(allow_null=True)
    top_k = PredictionSerializer(many=True)
    model_version = serializers.IntegerField(source="model_version_id", allow_null=True)
    adapted = serializers.BooleanField(
        help_text="Whether your memory of your own corrections changed the top answer (read using your corrections)."
    )
    latency_ms = serializers.FloatField(allow_null=True)
    error = serializers.CharField()
    input_image = serializers.SerializerMethodField(
        help_text="The 28x28 image the model saw, upright, as a PNG data URL."
    )
    correction = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    predicted_at = serializers.DateTimeField(allow_null=True)
    word = serializers.UUIDField(
        source="word_id", allow_null=True, help_text="The word this is a character of, if any."
    )
    position = serializers.IntegerField(allow_null=True, help_text="Its place in the word, from 0 (left).")

    def get_url(self, obj) -> str:
        return reverse("api:submission-detail", kwargs={"submission_id": obj.id})

    def to_representation(self, obj) -> dict:
        """What DRF's generic loop over the fields above gives, written out.

        The loop deep-copies the 17 declared fields for every instance and calls each one: about
        0.8 ms a submission, more than the INSERT of the drawing, and 20 times that for a page
        of a list. The declared fields stay the schema (and the documentation); a test checks
        that this gives exactly what the generic loop gives.
        """

        def optional(convert, value):
            return None if value is None else convert(value)

        return {
            "id": str(obj.id),
            "url": self.get_url(obj),
            "status": str(obj.status),
            "source": str(obj.source),
            "predicted_label": optional(str, obj.predicted_label),
            "confidence": optional(float, obj.confidence),
            "top_k": optional(
                lambda top: [{"label": str(p["label"]), "probability": float(p["probability"])} for p in top], obj.top_k
            ),
            "model_version": optional(int, obj.model_version_id),
            "adapted": bool(obj.adapted),
            "latency_ms": optional(float, obj.latency_ms),
            "error": optional(str, obj.error),
            "input_image": self.get_input_image(obj),
            "correction": self.get_correction(obj),
            "created_at": optional(_DATETIME.to_representation, obj.created_at),
            "predicted_at": optional(_DATETIME.to_representation, obj.predicted_at),
            "word": optional(str, obj.word_id),
            "position": optional(int, obj.position),
        }

    def get_input_image(self, obj) -> str:
        return input28_data_url(obj)

    def get_correction(self, obj) -> dict | None:
        if self.context.get("new"):
            return None  # just created: no correction can exist yet (saves a query per POST)
        corrections = sorted(obj.corrections.all(), key=lambda c: c.created_at, reverse=True)
        return CorrectionOutputSerializer(corrections[0]).data if corrections else None


class WordReadingSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="One character per character of the word.")
    score = serializers.FloatField(help_text="Its share of the probability among the readings found, 0..1.")


class WordOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.SerializerMethodField()
    # A plain string, as on submissions (a ChoiceField would add a "StatusEnum" to the schema).
    status = serializers.CharField(help_text="pending while any character is; failed if any failed; else predicted.")
    text = serializers.CharField(
        help_text='The predicted label of each character in order; "?" for one not predicted (yet).'
    )
    corrected_text = serializers.SerializerMethodField(
        help_text="`text` with each character's latest correction (not rejected) applied."
    )
    source = serializers.CharField()
    segmentation = serializers.CharField(help_text="How the drawing was split: strokes, or components (image only).")
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    boxes = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=4, max_length=4),
        help_text="Per character, in order: [x0, y0, x1, y1] in the drawing's pixels (end exclusive).",
    )
    readings = serializers.SerializerMethodField(
        help_text="The word's best readings in context (each character's guesses weighed with its size and "
        "baseline against the others, letter frequencies and the word list), best first; empty until every "
        "character is predicted. Picking one means correcting the characters where it differs.",
    )
    characters = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_url(self, obj) -> str:
        return reverse("api:word-detail", kwargs={"word_id": obj.id})

    @extend_schema_field(SubmissionOutputSerializer(many=True))
    def get_characters(self, obj):
        return SubmissionOutputSerializer(obj._characters(), many=True).data

    @extend_schema_field(WordReadingSerializer(many=True))
    def get_readings(self, obj):
        return word_readings_get(obj)

    def get_corrected_text(self, obj) -> str:
        text = []
        for character in obj._characters():
            corrections = sorted(
                (c for c in character.corrections.all() if c.status != c.Status.REJECTED),
                key=lambda c: c.created_at,
            )
            text.append(corrections[-1].label if corrections else (character.predicted_label or "?"))
        return "".join(text)


# ---------------------------------------------------------------------------------------------
# Labels, model versions and the figures of the model page


LABELS = inline_serializer(
    "Labels",
    {
        "labels": serializers.ListField(child=serializers.CharField()),
        "lookalike_groups": serializers.ListField(
            child=serializers.ListField(child=serializers.CharField()),
            help_text="Labels that handwriting makes hard to tell apart (o/O/0, l/I/1, s/S, ...), one list per group.",
        ),
        "lookalike_pairs": serializers.ListField(
            child=serializers.ListField(child=serializers.CharField()),
            help_text="The pairs the groups are joined from.",
        ),
    },
)


class ModelVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    parent = serializers.IntegerField(source="parent_id", allow_null=True)
    metrics = serializers.JSONField()
    training_summary = serializers.JSONField()
    gate_results = serializers.JSONField()
    created_at = serializers.DateTimeField()
    activated_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ModelVersion"


# What the model page draws: the version, and the class names that index its per-class
# metrics and confusion matrix.
class ModelVersionDetailSerializer(ModelVersionSerializer):
    parent_name = serializers.CharField(source="parent.name", allow_null=True, default=None)
    classes = serializers.SerializerMethodField(help_text="Row/column names of metrics.validation.confusion_matrix.")

    class Meta:
        ref_name = "ModelVersionDetail"

    def get_classes(self, obj) -> list[str]:
        return list(labels())


def model_version_summary(version: ModelVersion) -> dict:
    """The figures of one version for the history chart, without the big arrays."""
    validation = version.metrics.get("validation") or {}
    held_back = version.metrics.get("held_back") or {}
    return {
        "id": version.id,
        "name": version.name,
        "status": version.status,
        "parent": version.parent_id,
        "created_at": version.created_at,
        "activated_at": version.activated_at,
        "top1": validation.get("top1"),
        "top3": validation.get("top3"),
        "lookalike_top1": validation.get("lookalike_top1"),
        "held_back_top1": held_back.get("top1"),
        "corrections_used": (version.training_summary or {}).get("corrections"),
        "gate_reason": (version.gate_results or {}).get("reason", ""),
    }
