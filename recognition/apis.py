"""REST API under /api/v1/: thin interfaces that parse, call one service or selector, answer."""

import base64
import binascii
import io
import re
import sys
import uuid
import zipfile

import numpy as np
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import JsonResponse
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAdminUser
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from recognition import exports, selectors, services
from recognition.errors import ImageTooLarge, InvalidImage, RecognitionError
from recognition.labels import labels
from recognition.models import Submission

CLIENT_ID_KEY = "client_id"
_DATA_URL = re.compile(r"^data:(?P<type>[\w/+.-]+);base64,", re.ASCII)


DATABASE_UNAVAILABLE = {"detail": "The database is unavailable; try again in a few seconds.", "code": "database_unavailable"}


def exception_handler(exc, context):
    """Domain errors become {"detail", "code"} with their status; DRF's own get a code too."""
    if isinstance(exc, RecognitionError):
        return Response({"detail": str(exc), "code": exc.code}, status=exc.status_code)
    if isinstance(exc, (OperationalError, InterfaceError)):
        # A restarting database is a temporary condition, not a bug: 503 with Retry-After.
        # Django closes the broken connection at the end of the request, and the next request
        # opens a new one (CONN_HEALTH_CHECKS), so the process recovers by itself.
        return Response(DATABASE_UNAVAILABLE, status=503, headers={"Retry-After": "5"})
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data.setdefault("code", getattr(response.data["detail"], "code", "error"))
    return response


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


class PredictionSerializer(serializers.Serializer):
    label = serializers.CharField()
    probability = serializers.FloatField()


class CorrectionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


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

    def get_url(self, obj) -> str:
        return reverse("api:submission-detail", kwargs={"submission_id": obj.id})

    def get_input_image(self, obj) -> str:
        return input28_data_url(obj)

    def get_correction(self, obj) -> dict | None:
        if self.context.get("new"):
            return None  # just created: no correction can exist yet (saves a query per POST)
        corrections = sorted(obj.corrections.all(), key=lambda c: c.created_at, reverse=True)
        return CorrectionOutputSerializer(corrections[0]).data if corrections else None


def _submission_response(submission: Submission, *, status_code: int, new: bool = False) -> Response:
    return Response(SubmissionOutputSerializer(submission, context={"new": new}).data, status=status_code)


class SubmissionCreateApi(APIView):
    parser_classes = [MultiPartParser, JSONParser]

    class InputSerializer(serializers.Serializer):
        image_base64 = serializers.CharField(
            help_text="A base64 image, optionally as a data URL (data:image/png;base64,...)."
        )
        content_type = serializers.CharField(required=False, help_text="Defaults to the data URL's type, else image/png.")
        strokes = serializers.JSONField(required=False, allow_null=True, help_text="[[[x, y, t], ...], ...]")
        source = serializers.ChoiceField(choices=Submission.Source.choices, required=False)

        class Meta:
            ref_name = "SubmissionCreateInput"

    @extend_schema(
        request={
            "application/json": InputSerializer,
            "multipart/form-data": inline_serializer(
                "SubmissionUpload",
                {
                    "image": serializers.FileField(),
                    "strokes": serializers.CharField(required=False, help_text="JSON"),
                    "source": serializers.ChoiceField(choices=Submission.Source.choices, required=False),
                },
            ),
        },
        responses={
            201: SubmissionOutputSerializer,
            202: OpenApiResponse(SubmissionOutputSerializer, description="Queued; poll `url`."),
            400: OpenApiResponse(description="Not an image, blank, malformed base64 or strokes."),
            413: OpenApiResponse(description="Image over 10 MiB or over 4096 px a side."),
            415: OpenApiResponse(description="Unsupported content type."),
        },
    )
    def post(self, request):
        # Refuse an oversized body before parsing it into memory.
        max_bytes = services.submissions.image_max_bytes()
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > max_bytes * 4 // 3 + 64 * 1024:
            raise ImageTooLarge(f"Request too large: {int(length)} bytes; images may be at most {max_bytes} bytes.")

        if request.content_type.startswith("multipart/"):
            image, content_type, strokes, source = self._from_multipart(request, max_bytes)
        else:
            image, content_type, strokes, source = self._from_json(request, max_bytes)

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


PREDICTION_FIELDS = ["status", "predicted_label", "confidence", "top_k", "model_version", "latency_ms", "error", "predicted_at"]


def _wait_for_prediction(submission: Submission, seconds: float) -> Submission:
    """Wait for the worker's "done" notification (milliseconds once a worker is warm), then
    read the row. Eager mode already ran the task on commit; with the broker unreachable there
    is nothing to wait for, and the answer is 202 at once."""
    from emnist_site.celery import app

    if seconds > 0 and not app.conf.task_always_eager:
        services.submission_wait_done(submission_id=submission.id, timeout=seconds)
    # Only what the worker writes (not the image bytes just stored).
    submission.refresh_from_db(fields=PREDICTION_FIELDS)
    return submission


class SubmissionPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 100


class SubmissionListApi(APIView):
    @extend_schema(responses=SubmissionOutputSerializer(many=True))
    def get(self, request):
        submissions = selectors.submission_list_visible(user=request.user, client_id=client_id_get(request))
        paginator = SubmissionPagination()
        page = paginator.paginate_queryset(submissions.defer("image"), request, view=self)
        return paginator.get_paginated_response(SubmissionOutputSerializer(page, many=True).data)


class SubmissionDetailApi(APIView):
    @extend_schema(responses={200: SubmissionOutputSerializer, 404: OpenApiResponse(description="Not yours or not there.")})
    def get(self, request, submission_id):
        submission = selectors.submission_get_visible(
            submission_id=submission_id, user=request.user, client_id=client_id_get(request)
        )
        return _submission_response(submission, status_code=status.HTTP_200_OK)


class SubmissionCorrectionApi(APIView):
    class InputSerializer(serializers.Serializer):
        label = serializers.CharField(max_length=10, help_text="The right answer: one of the 62 labels.")

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
    @extend_schema(responses=inline_serializer("Labels", {"labels": serializers.ListField(child=serializers.CharField())}))
    def get(self, request):
        return Response({"labels": list(labels())})


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


class CorrectionExportApi(APIView):
    """Approved corrections as a dataset, for staff: ``?kind=npz`` (default) or ``?kind=zip`` (not ``format``: DRF reserves it)."""

    permission_classes = [IsAdminUser]
    FORMATS = {"npz": "application/octet-stream", "zip": "application/zip"}

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=["npz", "zip"], description="npz: images (EMNIST orientation), labels, label_chars; zip: PNGs + labels.csv")],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, (200, "application/zip"): OpenApiTypes.BINARY},
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
