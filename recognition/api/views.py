"""One class per endpoint: parse the request, call one service or selector, answer.

Decoding a drawing is ``inputs``, the bodies are ``serializers``, list pages ``pagination``,
the wait for the worker ``waiting``; errors of every kind become one body in ``errors``.
"""

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from drf_spectacular.views import SpectacularAPIView
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from recognition import exports, selectors, services, throttles
from recognition.api.errors import JsonErrorsMixin
from recognition.api.inputs import drawing_from_request
from recognition.api.pagination import paginated_list, paginated_list_schema
from recognition.api.parsers import BoundedJSONParser
from recognition.api.serializers import (
    DRAWING_REQUEST,
    EXAMPLE_PNG_BASE64,
    LABELS,
    CorrectionInputSerializer,
    CorrectionOutputSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    SubmissionOutputSerializer,
    WordOutputSerializer,
    model_version_summary,
)
from recognition.api.waiting import submission_wait_predicted, word_wait_predicted
from recognition.errors import RecognitionError
from recognition.identity import client_id_get, client_id_keep
from recognition.labels import labels, lookalike_groups, lookalike_pairs
from recognition.models import Submission, Word
from recognition.permissions import ADD_CORRECTIONS, CanViewCorrections, staff_has_perm
from recognition.services.health import health_check, health_public


def _created(data: dict, *, pending: bool) -> Response:
    """201 with the result, or 202 with Location: the worker has not answered yet; poll it."""
    if not pending:
        return Response(data, status=status.HTTP_201_CREATED)
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


def _created_responses(serializer, *, invalid: str, too_large: str) -> dict:
    """The schema of a POST answered by ``_created``, and of a drawing's 400/413/415."""
    return {
        201: serializer,
        202: OpenApiResponse(serializer, description="Queued; poll `url`."),
        400: OpenApiResponse(description=invalid),
        413: OpenApiResponse(description=too_large),
        415: OpenApiResponse(description="Unsupported content type."),
    }


class SubmissionCollectionApi(APIView):
    """/api/v1/submissions: GET lists yours (paginated), POST creates one."""

    parser_classes = [MultiPartParser, BoundedJSONParser]
    throttle_classes = throttles.WRITE

    @paginated_list_schema(
        operation_id="submissions_list", name="PaginatedSubmissionList", item_serializer=SubmissionOutputSerializer
    )
    def get(self, request):
        submissions = selectors.submission_list_visible(user=request.user, client_id=client_id_get(request))
        return paginated_list(self, request, submissions.defer("image"), SubmissionOutputSerializer)

    @extend_schema(
        request=DRAWING_REQUEST,
        examples=[
            OpenApiExample(
                "A drawn 1",
                request_only=True,
                media_type="application/json",
                value={"image_base64": "data:image/png;base64," + EXAMPLE_PNG_BASE64, "source": "api"},
            )
        ],
        responses=_created_responses(
            SubmissionOutputSerializer,
            invalid="Not an image, blank, malformed base64 or strokes.",
            too_large="Body over the request limit, image over 1.5 MiB, over 4096 px a side, or over 4 megapixels (not a JPEG).",
        ),
    )
    def post(self, request):
        drawing = drawing_from_request(request)
        submission = services.submission_create(**drawing)
        client_id_keep(request, drawing["client_id"])
        submission = submission_wait_predicted(submission, seconds=settings.SUBMISSION_WAIT_SECONDS)
        data = SubmissionOutputSerializer(submission, context={"new": True}).data
        return _created(data, pending=submission.status == Submission.Status.PENDING)


class SubmissionDetailApi(APIView):
    @extend_schema(
        responses={200: SubmissionOutputSerializer, 404: OpenApiResponse(description="Not yours or not there.")}
    )
    def get(self, request, submission_id):
        submission = selectors.submission_get_visible(
            submission_id=submission_id, user=request.user, client_id=client_id_get(request)
        )
        return Response(SubmissionOutputSerializer(submission).data)


class SubmissionCorrectionApi(APIView):
    throttle_classes = throttles.WRITE

    @extend_schema(
        request=CorrectionInputSerializer,
        responses={
            201: CorrectionOutputSerializer,
            400: OpenApiResponse(description="Unknown label."),
            403: OpenApiResponse(
                description="Someone else's submission, seen by staff without the add correction permission; or a CSRF failure."
            ),
            404: OpenApiResponse(description="Not yours or not there."),
        },
    )
    def post(self, request, submission_id):
        serializer = CorrectionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        submission = selectors.submission_get_visible(
            submission_id=submission_id, user=request.user, client_id=client_id_get(request)
        )
        someone_elses = _is_someone_elses(submission, request.user)
        if someone_elses and not staff_has_perm(request.user, ADD_CORRECTIONS):
            # Seen by a staff member who may view submissions, but not one who may correct them.
            raise PermissionDenied("Correcting someone else's submission needs the add correction permission.")
        # Only the writer's own correction teaches their memory; staff's goes to review alone.
        correction = services.correction_create(
            submission=submission, label=serializer.validated_data["label"], remember=not someone_elses
        )
        return Response(CorrectionOutputSerializer(correction).data, status=status.HTTP_201_CREATED)


def _is_someone_elses(submission: Submission, user) -> bool:
    """A signed-in user's row that is not theirs (a visitor sees only their own rows)."""
    return user is not None and user.is_authenticated and submission.owner_id != user.pk


class WordCollectionApi(APIView):
    """/api/v1/words: GET lists yours (paginated), POST creates one."""

    parser_classes = [MultiPartParser, BoundedJSONParser]
    throttle_classes = throttles.WRITE

    @paginated_list_schema(operation_id="words_list", name="PaginatedWordList", item_serializer=WordOutputSerializer)
    def get(self, request):
        words = selectors.word_list_visible(user=request.user, client_id=client_id_get(request))
        return paginated_list(self, request, words.defer("image", "strokes"), WordOutputSerializer)

    @extend_schema(
        request=DRAWING_REQUEST,
        responses=_created_responses(
            WordOutputSerializer,
            invalid="Not an image, blank, malformed base64 or strokes, more than 32 characters.",
            too_large="Body over the request limit, image over 1.5 MiB, over 4096 px a side, or over 4 megapixels (not a JPEG).",
        ),
        description=(
            "A drawing of several characters in a row. It is split into characters by its strokes "
            "(in the image's pixel coordinates) when given, else by the ink's connected components; "
            "each character is a submission (correct one with POST submissions/{id}/correction)."
        ),
    )
    def post(self, request):
        drawing = drawing_from_request(request)
        word = services.word_create(**drawing)
        client_id_keep(request, drawing["client_id"])
        word_wait_predicted(word, seconds=settings.SUBMISSION_WAIT_SECONDS)
        # Read again with its characters, as a GET would show it.
        word = selectors.word_get_visible(word_id=word.id, user=request.user, client_id=client_id_get(request))
        return _created(WordOutputSerializer(word).data, pending=word.status == Word.Status.PENDING)


class WordDetailApi(APIView):
    @extend_schema(responses={200: WordOutputSerializer, 404: OpenApiResponse(description="Not yours or not there.")})
    def get(self, request, word_id):
        word = selectors.word_get_visible(word_id=word_id, user=request.user, client_id=client_id_get(request))
        return Response(WordOutputSerializer(word).data)


class LabelListApi(APIView):
    @extend_schema(responses=LABELS)
    def get(self, request):
        return Response(
            {"labels": list(labels()), "lookalike_groups": lookalike_groups(), "lookalike_pairs": lookalike_pairs()}
        )


class ModelVersionListApi(APIView):
    @extend_schema(responses=ModelVersionSerializer(many=True))
    def get(self, request):
        return Response(ModelVersionSerializer(selectors.model_version_list(), many=True).data)


class ModelVersionDetailApi(APIView):
    """One version with everything the model page draws: metrics (per class, confusion matrix)
    and the class names that index them."""

    @extend_schema(responses={200: ModelVersionDetailSerializer, 404: OpenApiResponse(description="No such version.")})
    def get(self, request, model_version_id):
        version = selectors.model_version_get(model_version_id=model_version_id)
        return Response(ModelVersionDetailSerializer(version).data)


class StatsApi(APIView):
    """Public, read-only figures for the model page: the active model, the history of versions
    (the learning loop) and how many corrections people have contributed."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        active = selectors.model_version_get_active()
        versions = [model_version_summary(v) for v in selectors.model_version_list().order_by("created_at")]
        return Response(
            {
                "active_model": model_version_summary(active) if active else None,
                "model_versions": versions,
                "corrections": selectors.correction_counts(),
                "predictions": selectors.submission_count_predicted(),
            }
        )


class CorrectionExportApi(APIView):
    """Approved corrections as a dataset, for staff: ``?kind=npz`` (default) or ``?kind=zip`` (not ``format``: DRF reserves it)."""

    permission_classes = [CanViewCorrections]
    FORMATS = {"npz": "application/octet-stream", "zip": "application/zip"}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "kind",
                str,
                enum=["npz", "zip"],
                description="npz: images (EMNIST orientation), labels, label_chars; zip: PNGs + labels.csv",
            )
        ],
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


class HealthApi(APIView):
    @extend_schema(
        description="`{ok, status}` for anyone; staff also get `checks`, each part's state and details.",
        responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        report = health_check()
        # The details name the broker's host and database and the model's file path: staff only.
        body = report if request.user.is_staff else health_public(report)
        return Response(body, status=200 if report["ok"] else 503)


class SchemaApi(JsonErrorsMixin, SpectacularAPIView):
    """The OpenAPI document (YAML, or JSON with ?format=json); its errors in JSON."""
