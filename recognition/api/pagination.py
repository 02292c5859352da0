"""The list endpoints' pages: DRF's page-number pagination, with a bad query a 400."""

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response


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


def paginated_list_schema(*, operation_id: str, name: str, item_serializer):
    """@extend_schema of a list view: the page and page_size parameters, the page (DRF's:
    count, next, previous, results; component ``name``) and its errors."""
    responses = {
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
    return extend_schema(operation_id=operation_id, parameters=[ListQuerySerializer], responses=responses)


def paginated_list(view, request, queryset, serializer_class) -> Response:
    """One page of ``queryset``; a bad page or page_size is a 400 (DRF's paginator would
    silently ignore a bad page_size)."""
    ListQuerySerializer(data=request.query_params).is_valid(raise_exception=True)
    paginator = SubmissionPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)
