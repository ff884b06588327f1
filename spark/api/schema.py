"""OpenAPI pieces shared by every API view: the error body and its responses.

Use in a view:  @extend_schema(responses={200: MySerializer, **ERROR_RESPONSES})
or pick some:   responses={200: MySerializer, **error_responses(400, 404, 409)}
"""

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """The body of every 4xx answer (spark.api.errors.exception_handler)."""

    detail = serializers.CharField(help_text="A message for people.")
    code = serializers.CharField(help_text="A stable machine-readable code, e.g. invalid, not_found, conflict.")
    # The metaclass pops declared fields from the class, so this does not shadow Serializer.fields.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per field of the request; empty unless the input was not valid.",
    )

    class Meta:
        ref_name = "Error"


_DESCRIPTIONS = {
    400: "The input is not valid; `fields` says which fields and why. Nothing was changed.",
    401: "No credentials, or they are unknown, revoked or expired.",
    403: "Authenticated, but this caller may not do this.",
    404: "Not found (or not visible to this caller).",
    405: "Method not allowed.",
    409: "Conflict: the object changed first (someone else got there), or the status change is not allowed.",
    410: "Gone: the object no longer accepts this (e.g. an offer that expired).",
    413: "The request body is larger than SPARK_API_MAX_BODY_BYTES (1 MB by default); nothing was read.",
    415: "The body is not JSON (`Content-Type: application/json`), or not the media type this endpoint takes.",
    429: "Too many requests; retry after the number of seconds in `Retry-After`.",
}

ERROR_RESPONSES = {
    status: OpenApiResponse(response=ErrorSerializer, description=description)
    for status, description in _DESCRIPTIONS.items()
    if status not in (405, 413, 415)  # only for endpoints that take a body: pick them with error_responses()
}


def error_responses(*statuses: int) -> dict:
    return {s: OpenApiResponse(response=ErrorSerializer, description=_DESCRIPTIONS[s]) for s in statuses}
