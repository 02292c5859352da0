"""REST API under /api/v1/: thin interfaces that parse, call one service or selector, answer."""

import base64
import binascii
import io
import re
import sys
import time
import uuid
import zipfile

import numpy as np
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError, connection
from django.http import JsonResponse
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAdminUser
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from recognition import exports, selectors, services, throttles
from recognition.errors import ImageTooLarge, InvalidImage, RecognitionError
from recognition.labels import labels, lookalike_groups, lookalike_pairs
from recognition.models import Submission, Word

CLIENT_ID_KEY = "client_id"
# A 28x28 canvas export of a "1" (transparent background, ink in alpha): the docs' example.
EXAMPLE_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAYAAAByDd+UAAAASklEQVR42u3SwQ0AIAhDUcv+O+MKQprGw+9dXoSeQz5Jbx/KgI1mVOpnG7Adt6gk9gq2s221"
    "KJYSK5UDm5ZGydJEbwgICAgISMK5guUGKqPdE88AAAAASUVORK5CYII="
)
_DATA_URL = re.compile(r"^data:(?P<type>[\w/+.-]+);base64,", re.ASCII)


DATABASE_UNAVAILABLE = {"detail": "The database is unavailable; try again in a few seconds.", "code": "database_unavailable"}


def exception_handler(exc, context):
    """Every error is {"detail", "code"}: domain errors with their status, DRF's own with its
    code; a validation error also keeps the per-field messages under "errors"."""
    if isinstance(exc, RecognitionError):
        return Response({"detail": str(exc), "code": exc.code}, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": f"Request body too large: {exc}", "code": "request_too_large"}, status=413)
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return Response({"detail": str(exc), "code": "too_many_fields"}, status=400)
    if isinstance(exc, (OperationalError, InterfaceError)):
        # A restarting database is a temporary condition, not a bug: 503 with Retry-After.
        # Django closes the broken connection at the end of the request, and the next request
        # opens a new one (CONN_HEALTH_CHECKS), so the process recovers by itself.
        return Response(DATABASE_UNAVAILABLE, status=503, headers={"Retry-After": "5"})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"detail": _validation_summary(errors), "code": "invalid", "errors": errors}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data.setdefault("code", getattr(response.data["detail"], "code", "error"))
    return response


def _validation_summary(errors) -> str:
    """"field: message" for the first message of a (nested) DRF validation error."""
    path = []
    while isinstance(errors, (dict, list)) and errors:
        if isinstance(errors, dict):
            key, errors = next(iter(errors.items()))
            if key not in ("non_field_errors", "detail"):
                path.append(str(key))
        else:
            errors = errors[0]
    message = str(errors) if errors else "Invalid input."
    return f"{'.'.join(path)}: {message}" if path else message


def client_id_get(request, *, create: bool = False) -> str:
    """The anonymous visitor's identity, kept in their session."""
    client_id = request.session.get(CLIENT_ID_KEY, "")
    if not client_id and create:
        client_id = uuid.uuid4().hex
        request.session[CLIENT_ID_KEY] = client_id
    return client_id


def input28_data_url(submission: Submission) -> str:
    from PIL import Image

    array = np.frombuffer(bytes(submission.input28), dtype=np.uint8).reshape(28, 28)
    buffer = io.BytesIO()
    # EMNIST stores images transposed; .T is upright for people.
    Image.fromarray(np.ascontiguousarray(array.T), mode="L").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class StrictCharField(serializers.CharField):
    """A string, as the schema says; DRF's CharField would turn the number 0 into the label "0"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "enum": list(labels())})
class LabelField(StrictCharField):
    """Documented as the 62 labels; an unknown one is the service's 400 unknown_label."""


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
    latency_ms = serializers.FloatField(allow_null=True)
    error = serializers.CharField()
    input_image = serializers.SerializerMethodField(help_text="The 28x28 image the model saw, upright, as a PNG data URL.")
    correction = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    predicted_at = serializers.DateTimeField(allow_null=True)
    word = serializers.UUIDField(source="word_id", allow_null=True, help_text="The word this is a character of, if any.")
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
            "top_k": optional(lambda top: [{"label": str(p["label"]), "probability": float(p["probability"])} for p in top], obj.top_k),
            "model_version": optional(int, obj.model_version_id),
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


class WordOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.SerializerMethodField()
    # A plain string, as on submissions (a ChoiceField would add a "StatusEnum" to the schema).
    status = serializers.CharField(help_text="pending while any character is; failed if any failed; else predicted.")
    text = serializers.CharField(help_text='The predicted label of each character in order; "?" for one not predicted (yet).')
    corrected_text = serializers.SerializerMethodField(help_text="`text` with each character's latest correction (not rejected) applied.")
    source = serializers.CharField()
    segmentation = serializers.CharField(help_text="How the drawing was split: strokes, or components (image only).")
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    boxes = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=4, max_length=4),
        help_text="Per character, in order: [x0, y0, x1, y1] in the drawing's pixels (end exclusive).",
    )
    characters = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_url(self, obj) -> str:
        return reverse("api:word-detail", kwargs={"word_id": obj.id})

    @extend_schema_field(SubmissionOutputSerializer(many=True))
    def get_characters(self, obj):
        return SubmissionOutputSerializer(obj._characters(), many=True).data

    def get_corrected_text(self, obj) -> str:
        text = []
        for character in obj._characters():
            corrections = sorted(
                (c for c in character.corrections.all() if c.status != c.Status.REJECTED),
                key=lambda c: c.created_at,
            )
            text.append(corrections[-1].label if corrections else (character.predicted_label or "?"))
        return "".join(text)


def _submission_response(submission: Submission, *, status_code: int, new: bool = False) -> Response:
    return Response(SubmissionOutputSerializer(submission, context={"new": new}).data, status=status_code)


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


class SubmissionCreateApi(APIView):
    parser_classes = [MultiPartParser, JSONParser]
    throttle_classes = throttles.WRITE

    class InputSerializer(serializers.Serializer):
        image_base64 = StrictCharField(
            help_text="A base64 image, optionally as a data URL (data:image/png;base64,...)."
        )
        content_type = StrictCharField(required=False, help_text="Defaults to the data URL's type, else image/png.")
        strokes = serializers.JSONField(required=False, allow_null=True, help_text="[[[x, y, t], ...], ...]")
        source = serializers.ChoiceField(choices=Submission.Source.choices, required=False)

        class Meta:
            ref_name = "SubmissionCreateInput"

    @extend_schema(
        request={
            "application/json": InputSerializer,
            "multipart/form-data": DRAWING_UPLOAD,
        },
        examples=[
            OpenApiExample(
                "A drawn 1",
                request_only=True,
                media_type="application/json",
                value={"image_base64": "data:image/png;base64," + EXAMPLE_PNG_BASE64, "source": "api"},
            )
        ],
        responses={
            201: SubmissionOutputSerializer,
            202: OpenApiResponse(SubmissionOutputSerializer, description="Queued; poll `url`."),
            400: OpenApiResponse(description="Not an image, blank, malformed base64 or strokes."),
            413: OpenApiResponse(description="Body over the request limit, image over 10 MiB, over 4096 px a side or over 16 megapixels."),
            415: OpenApiResponse(description="Unsupported content type."),
        },
    )
    def post(self, request):
        image, content_type, strokes, source = self._drawing_from_request(request)
        submission = services.submission_create(
            image=image,
            content_type=content_type,
            source=source,
            strokes=strokes,
            owner=request.user,
            client_id="" if request.user.is_authenticated else client_id_get(request, create=True),
        )
        submission = _wait_for_prediction(submission, settings.SUBMISSION_WAIT_SECONDS)
        if submission.status == Submission.Status.PENDING:
            response = _submission_response(submission, status_code=status.HTTP_202_ACCEPTED, new=True)
            response["Location"] = response.data["url"]
            return response
        return _submission_response(submission, status_code=status.HTTP_201_CREATED, new=True)

    def _drawing_from_request(self, request) -> tuple[bytes, str, list | None, str]:
        """(image, content_type, strokes, source) from a multipart upload or a JSON body."""
        # A body over settings.REQUEST_MAX_BYTES never gets here (RequestSizeLimitMiddleware).
        max_bytes = services.submissions.image_max_bytes()
        if request.content_type.startswith("multipart/"):
            return self._from_multipart(request, max_bytes)
        return self._from_json(request, max_bytes)

    @staticmethod
    def _from_multipart(request, max_bytes):
        upload = request.FILES.get("image")
        if upload is None:
            raise InvalidImage("Send the image as the multipart field `image`.")
        if upload.size > max_bytes:
            raise ImageTooLarge(f"Image too large: {upload.size} bytes, the limit is {max_bytes}.")
        strokes = request.data.get("strokes")
        if strokes:
            import json

            try:
                strokes = json.loads(strokes)
            except ValueError:
                raise serializers.ValidationError({"strokes": ["Not valid JSON."]}) from None
        source = request.data.get("source") or Submission.Source.UPLOAD
        return upload.read(), (upload.content_type or "").split(";")[0].strip().lower(), strokes or None, source

    def _from_json(self, request, max_bytes):
        if not isinstance(request.data, dict):
            raise serializers.ValidationError({"detail": "Expected a JSON object."})
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        text = data["image_base64"].strip()
        content_type = data.get("content_type", "image/png")
        match = _DATA_URL.match(text)
        if match:
            content_type = data.get("content_type", match["type"])
            text = text[match.end() :]
        if len(text) * 3 // 4 > max_bytes + 3:
            raise ImageTooLarge(f"Image too large: over {max_bytes} bytes.")
        try:
            image = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImage("image_base64 is not valid base64.") from None
        return image, content_type.lower(), data.get("strokes"), data.get("source", Submission.Source.API)


def _wait_for_prediction(submission: Submission, seconds: float) -> Submission:
    """Wait for the worker's "done" notification (milliseconds once a worker is warm). It
    carries what the worker stored, so the answer needs no second read of the row; without
    it (a timeout, an older worker) the row is read. Eager mode already ran the task on
    commit; with the broker unreachable there is nothing to wait for, and the answer is 202."""
    from emnist_site.celery import app

    if seconds > 0 and not app.conf.task_always_eager:
        stored = services.submission_wait_done(submission_id=submission.id, timeout=seconds)
        if isinstance(stored, dict) and services.result_fields_apply(submission, stored):
            return submission
    # Only what the worker writes (not the image bytes just stored).
    submission.refresh_from_db(fields=services.RESULT_FIELDS)
    return submission


def _wait_for_word(word: Word, seconds: float) -> Word:
    """Wait for each character's "done" notification, as ``_wait_for_prediction`` does for one,
    all within ``seconds``."""
    from emnist_site.celery import app

    if seconds <= 0 or app.conf.task_always_eager:
        return word
    deadline = time.monotonic() + seconds
    for character_id in word.characters.values_list("id", flat=True):
        left = deadline - time.monotonic()
        if left <= 0 or services.submission_wait_done(submission_id=character_id, timeout=left) is None:
            break
    return word


class WordCreateApi(SubmissionCreateApi):
    @extend_schema(
        request={"application/json": SubmissionCreateApi.InputSerializer, "multipart/form-data": DRAWING_UPLOAD},
        responses={
            201: WordOutputSerializer,
            202: OpenApiResponse(WordOutputSerializer, description="Queued; poll `url`."),
            400: OpenApiResponse(description="Not an image, blank, malformed base64 or strokes, more than 32 characters."),
            413: OpenApiResponse(description="Image over 10 MiB or over 4096 px a side."),
            415: OpenApiResponse(description="Unsupported content type."),
        },
        description=(
            "A drawing of several characters in a row. It is split into characters by its strokes "
            "(in the image's pixel coordinates) when given, else by the ink's connected components; "
            "each character is a submission (correct one with POST submissions/{id}/correction)."
        ),
    )
    def post(self, request):
        image, content_type, strokes, source = self._drawing_from_request(request)
        word = services.word_create(
            image=image,
            content_type=content_type,
            source=source,
            strokes=strokes,
            owner=request.user,
            client_id="" if request.user.is_authenticated else client_id_get(request, create=True),
        )
        _wait_for_word(word, settings.SUBMISSION_WAIT_SECONDS)
        word = selectors.word_list_visible(user=request.user, client_id=client_id_get(request)).get(id=word.id)
        code = status.HTTP_202_ACCEPTED if word.status == Word.Status.PENDING else status.HTTP_201_CREATED
        response = Response(WordOutputSerializer(word).data, status=code)
        if code == status.HTTP_202_ACCEPTED:
            response["Location"] = response.data["url"]
        return response


class SubmissionPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 100


class ListQuerySerializer(serializers.Serializer):
    page = serializers.IntegerField(min_value=1, required=False, help_text="1-based page number.")
    page_size = serializers.IntegerField(min_value=1, max_value=SubmissionPagination.max_page_size, required=False)

    class Meta:
        ref_name = "SubmissionListQuery"

    def validate(self, attrs):
        # DRF takes an empty optional field (?page_size=) as absent; it is not a number.
        blank = [name for name in self.fields if self.initial_data.get(name) == ""]
        if blank:
            raise serializers.ValidationError({name: ["A valid integer is required."] for name in blank})
        return attrs


def _paginated_responses(name: str, item_serializer) -> dict:
    """The schema of a paginated list (DRF's page: count, next, previous, results) and its errors."""
    return {
        200: inline_serializer(
            name,
            {
                "count": serializers.IntegerField(),
                "next": serializers.CharField(allow_null=True, help_text="URL of the next page."),
                "previous": serializers.CharField(allow_null=True, help_text="URL of the previous page."),
                "results": item_serializer(many=True),
            },
        ),
        400: OpenApiResponse(description="page or page_size is not a number in range."),
        404: OpenApiResponse(description="No such page."),
    }


def _paginated_list(view, request, queryset, serializer_class) -> Response:
    """One page of ``queryset``; a bad page or page_size is a 400 (DRF's paginator would
    silently ignore a bad page_size)."""
    ListQuerySerializer(data=request.query_params).is_valid(raise_exception=True)
    paginator = SubmissionPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class WordListApi(APIView):
    @extend_schema(
        operation_id="words_list",
        parameters=[ListQuerySerializer],
        responses=_paginated_responses("PaginatedWordList", WordOutputSerializer),
    )
    def get(self, request):
        words = selectors.word_list_visible(user=request.user, client_id=client_id_get(request))
        return _paginated_list(self, request, words.defer("image", "strokes"), WordOutputSerializer)


class WordCollectionApi(WordCreateApi, WordListApi):
    """/api/v1/words: GET lists yours (paginated), POST creates one."""


class WordDetailApi(APIView):
    @extend_schema(responses={200: WordOutputSerializer, 404: OpenApiResponse(description="Not yours or not there.")})
    def get(self, request, word_id):
        word = selectors.word_get_visible(word_id=word_id, user=request.user, client_id=client_id_get(request))
        return Response(WordOutputSerializer(word).data)


class SubmissionListApi(APIView):
    @extend_schema(
        operation_id="submissions_list",
        parameters=[ListQuerySerializer],
        responses=_paginated_responses("PaginatedSubmissionList", SubmissionOutputSerializer),
    )
    def get(self, request):
        submissions = selectors.submission_list_visible(user=request.user, client_id=client_id_get(request))
        return _paginated_list(self, request, submissions.defer("image"), SubmissionOutputSerializer)


class SubmissionDetailApi(APIView):
    @extend_schema(responses={200: SubmissionOutputSerializer, 404: OpenApiResponse(description="Not yours or not there.")})
    def get(self, request, submission_id):
        submission = selectors.submission_get_visible(
            submission_id=submission_id, user=request.user, client_id=client_id_get(request)
        )
        return _submission_response(submission, status_code=status.HTTP_200_OK)


class SubmissionCorrectionApi(APIView):
    throttle_classes = throttles.WRITE

    class InputSerializer(serializers.Serializer):
        label = LabelField(max_length=10, help_text="The right answer: one of the 62 labels.")

        class Meta:
            ref_name = "CorrectionInput"

    @extend_schema(
        request=InputSerializer,
        responses={201: CorrectionOutputSerializer, 400: OpenApiResponse(description="Unknown label."), 404: OpenApiResponse(description="Not yours or not there.")},
    )
    def post(self, request, submission_id):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        submission = selectors.submission_get_visible(
            submission_id=submission_id, user=request.user, client_id=client_id_get(request)
        )
        correction = services.correction_create(submission=submission, label=serializer.validated_data["label"])
        return Response(CorrectionOutputSerializer(correction).data, status=status.HTTP_201_CREATED)


class LabelListApi(APIView):
    @extend_schema(
        responses=inline_serializer(
            "Labels",
            {
                "labels": serializers.ListField(child=serializers.CharField()),
                "lookalike_groups": serializers.ListField(
                    child=serializers.ListField(child=serializers.CharField()),
                    help_text="Labels that handwriting makes hard to tell apart (o/O/0, l/I/1, s/S, ...), one list per group.",
                ),
                "lookalike_pairs": serializers.ListField(
                    child=serializers.ListField(child=serializers.CharField()), help_text="The pairs the groups are joined from."
                ),
            },
        )
    )
    def get(self, request):
        return Response({"labels": list(labels()), "lookalike_groups": lookalike_groups(), "lookalike_pairs": lookalike_pairs()})


class ModelVersionListApi(APIView):
    class OutputSerializer(serializers.Serializer):
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

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        return Response(self.OutputSerializer(selectors.model_version_list(), many=True).data)


class ModelVersionDetailApi(APIView):
    """One version with everything the model page draws: metrics (per class, confusion matrix)
    and the class names that index them."""

    class OutputSerializer(ModelVersionListApi.OutputSerializer):
        parent_name = serializers.CharField(source="parent.name", allow_null=True, default=None)
        classes = serializers.SerializerMethodField(help_text="Row/column names of metrics.validation.confusion_matrix.")

        class Meta:
            ref_name = "ModelVersionDetail"

        def get_classes(self, obj) -> list[str]:
            return list(labels())

    @extend_schema(responses={200: OutputSerializer, 404: OpenApiResponse(description="No such version.")})
    def get(self, request, model_version_id):
        version = selectors.model_version_get(model_version_id=model_version_id)
        return Response(self.OutputSerializer(version).data)


def _version_summary(version) -> dict:
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


class StatsApi(APIView):
    """Public, read-only figures for the model page: the active model, the history of versions
    (the learning loop) and how many corrections people have contributed."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        active = selectors.model_version_get_active()
        versions = [_version_summary(v) for v in selectors.model_version_list().order_by("created_at")]
        return Response(
            {
                "active_model": _version_summary(active) if active else None,
                "model_versions": versions,
                "corrections": selectors.correction_counts(),
                "predictions": selectors.submission_count_predicted(),
            }
        )


class CorrectionExportApi(APIView):
    """Approved corrections as a dataset, for staff: ``?kind=npz`` (default) or ``?kind=zip`` (not ``format``: DRF reserves it)."""

    permission_classes = [IsAdminUser]
    FORMATS = {"npz": "application/octet-stream", "zip": "application/zip"}

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=["npz", "zip"], description="npz: images (EMNIST orientation), labels, label_chars; zip: PNGs + labels.csv")],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            (200, "application/zip"): OpenApiTypes.BINARY,
            400: OpenApiResponse(description="kind is neither npz nor zip."),
        },
    )
    def get(self, request):
        fmt = request.query_params.get("kind", "npz")
        if fmt not in self.FORMATS:
            raise RecognitionError(f"kind must be npz or zip, not {fmt!r}.")
        rows = exports.correction_list_approved()
        content = exports.corrections_export_npz(rows) if fmt == "npz" else exports.corrections_export_zip(rows)
        response = HttpResponse(content, content_type=self.FORMATS[fmt])
        response["Content-Disposition"] = f'attachment; filename="approved-corrections.{fmt}"'
        return response


def _check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True, "detail": connection.vendor}


def _check_broker() -> dict:
    from emnist_site.celery import app

    if app.conf.task_always_eager:
        return {"ok": True, "detail": "eager: tasks run in the web process"}
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
    return {"ok": True, "detail": conn.as_uri()}


_archive_checks: dict = {}


def _archive_problem(path) -> str:
    """"" if ``path`` is a complete Keras archive (config.json present, every CRC right).
    Cached per (path, size, mtime): a health probe every few seconds must not re-read it."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _archive_checks:
        try:
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    problem = "has no config.json"
                else:
                    bad = archive.testzip()
                    problem = f"is corrupted ({bad} fails its CRC)" if bad else ""
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            problem = f"is not a readable archive ({exc})"
        _archive_checks.clear()
        _archive_checks[key] = problem
    return _archive_checks[key]


def _check_model() -> dict:
    """The active version's file exists, is a whole Keras archive, and the last load a worker
    (or a promotion) tried succeeded. Loading it here would import TensorFlow into the web
    process, which only the eager default does anyway. Versions refused because their file
    does not load are listed, without making the site unhealthy."""
    from recognition.models import ModelVersion
    from recognition.services.predictors import predictor_loaded_version_id

    refused = [
        {"id": v.id, "name": v.name, "error": v.load_error}
        for v in ModelVersion.objects.exclude(load_error="").exclude(status=ModelVersion.Status.ACTIVE)[:10]
    ]
    extra = {"unloadable_versions": refused} if refused else {}
    version = selectors.model_version_get_active()
    if version is None:
        return {"ok": False, "detail": "no active model version", **extra}
    path = services.model_version_path(version)
    if not path.is_file():
        return {"ok": False, "detail": f"{version.name}: model file missing: {version.file_path}", **extra}
    problem = _archive_problem(path)
    if problem:
        return {"ok": False, "detail": f"{version.name}: {version.file_path} {problem}", **extra}
    if version.load_error:
        return {"ok": False, "detail": f"{version.name} does not load: {version.load_error}", **extra}
    return {"ok": True, "detail": version.name, "loaded_here": predictor_loaded_version_id() == version.id, **extra}


class HealthApi(APIView):
    @extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT})
    def get(self, request):
        checks = {}
        for name, check in (("database", _check_database), ("broker", _check_broker), ("model", _check_model)):
            try:
                checks[name] = check()
            except Exception as exc:  # noqa: BLE001 - report any failure as unhealthy
                checks[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        healthy = all(c["ok"] for c in checks.values())
        return Response({"ok": healthy, "checks": checks}, status=200 if healthy else 503)


class SubmissionCollectionApi(SubmissionCreateApi, SubmissionListApi):
    """/api/v1/submissions: GET lists yours (paginated), POST creates one."""


def server_error(request, *args, **kwargs):
    """handler500: errors outside a DRF view (middleware saving the session, say) still get a
    {"detail", "code"} body under /api/, and a database outage is 503 there as everywhere."""
    exc = sys.exc_info()[1]
    if isinstance(exc, (OperationalError, InterfaceError)):
        response = JsonResponse(DATABASE_UNAVAILABLE, status=503)
        response["Retry-After"] = "5"
        return response
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)
    from django.views.defaults import server_error as html_server_error

    return html_server_error(request)
