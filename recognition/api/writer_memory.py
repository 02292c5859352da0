"""/api/v1/writer-memory: a writer's own memory of their corrected drawings (list, export,
forget one, forget all). Ownership as for submissions: a signed-in user's by account, a
visitor's by the client id of their session; another writer's entry is "not found"."""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from recognition import exports, selectors, throttles
from recognition.api.pagination import paginated_list, paginated_list_schema
from recognition.identity import client_id_get
from recognition.images import input28_data_url
from recognition.services.writer_memory import writer_memory_clear, writer_memory_forget


# The schema's component "WriterMemoryEntry".
class WriterMemoryEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField(help_text="The label you gave the drawing.")
    submission = serializers.UUIDField(source="submission_id", help_text="The corrected drawing.")
    correction = serializers.IntegerField(source="correction_id")
    model_version = serializers.IntegerField(
        source="model_version_id",
        help_text="The model version whose embedding is stored; entries of another version than the active one are not used.",
    )
    input_image = serializers.SerializerMethodField(
        help_text="The 28x28 image the model saw, upright, as a PNG data URL."
    )
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "WriterMemoryEntry"

    def get_input_image(self, obj) -> str:
        return input28_data_url(obj.submission)


def _writer(request) -> dict:
    user = request.user if request.user.is_authenticated else None
    return {"owner_id": user.pk if user else None, "client_id": "" if user else client_id_get(request)}


class WriterMemoryApi(APIView):
    """GET lists your memory (paginated, newest first); DELETE forgets all of it."""

    throttle_classes = throttles.WRITE

    @paginated_list_schema(
        operation_id="writer_memory_list", name="PaginatedWriterMemoryList", item_serializer=WriterMemoryEntrySerializer
    )
    def get(self, request):
        entries = selectors.writer_memory_list_own(user=request.user, client_id=client_id_get(request))
        return paginated_list(self, request, entries, WriterMemoryEntrySerializer)

    @extend_schema(
        operation_id="writer_memory_clear",
        description="Forget my handwriting: every drawing your corrections put in your memory. "
        "The corrections themselves stay (they still go to review).",
        responses={
            200: inline_serializer("WriterMemoryCleared", {"deleted": serializers.IntegerField()}),
            403: OpenApiResponse(description="CSRF failure."),
        },
    )
    def delete(self, request):
        return Response({"deleted": writer_memory_clear(**_writer(request))})


class WriterMemoryEntryApi(APIView):
    throttle_classes = throttles.WRITE

    @extend_schema(
        operation_id="writer_memory_forget",
        description="Forget one drawing of your memory (its correction stays).",
        responses={
            204: None,
            403: OpenApiResponse(description="CSRF failure."),
            404: OpenApiResponse(description="Not yours or not there."),
        },
    )
    def delete(self, request, entry_id):
        entry = selectors.writer_memory_get_own(entry_id=entry_id, user=request.user, client_id=client_id_get(request))
        writer_memory_forget(entry=entry)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WriterMemoryExportApi(APIView):
    @extend_schema(
        operation_id="writer_memory_export",
        description="Your memory as a NumPy .npz: images (EMNIST orientation), labels, label_chars, vectors "
        "(float16 embeddings), vector_lengths, model_versions, submission_ids, created_at; and what it was "
        "worked into, one row per model version: adaptation_model_versions, adaptation_memory_counts, "
        "adaptation_hands (turn in degrees, width), adaptation_vectors, adaptation_corrections.",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def get(self, request):
        owner = {"user": request.user, "client_id": client_id_get(request)}
        entries = selectors.writer_memory_list_own(**owner)
        content = exports.writer_memory_export_npz(
            entries.order_by("created_at", "id")
            .defer(None)
            .only("id", "label", "model_version_id", "created_at", "vector", "submission__id", "submission__input28"),
            selectors.writer_adaptation_list_own(**owner).order_by("model_version_id"),
        )
        response = HttpResponse(content, content_type="application/octet-stream")
        response["Content-Disposition"] = 'attachment; filename="my-handwriting-memory.npz"'
        return response
