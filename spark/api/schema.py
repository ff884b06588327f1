"""OpenAPI pieces shared by every API view: the error body and the error responses.

SparkAutoSchema (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]) documents the errors every operation
can give from what the operation is, so the schema stays true as views are added:
- 401 and 403 when it needs credentials (401: none or bad ones; 403: this caller may not);
- 404 when its path names an object (another store's or driver's object is a 404 too);
- 400 when it takes a body or query parameters (validation), 413 and 415 when it takes a body;
- 429 when the view has a throttle.
Request bodies are documented as JSON only (see map_parsers).
A view adds what only it can give (409 conflicts, 410 gone, a 429 from a gate, a 404 without
a path id) with `@extend_schema(responses={200: MySerializer, **error_responses(409, 410)})`.
"""

from drf_spectacular.openapi import AutoSchema
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

# Headers spark.api.errors.exception_handler (and DRF) send with some errors.
_ERROR_HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": "The schemes this operation accepts, e.g. `Token, Api-Key`.",
        }
    },
    "429": {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 0},
            "description": "Seconds to wait before trying again (when the limit knows it).",
        }
    },
}

ERROR_RESPONSES = {
    status: OpenApiResponse(response=ErrorSerializer, description=description)
    for status, description in _DESCRIPTIONS.items()
    if status not in (405, 413, 415)  # only for endpoints that take a body: pick them with error_responses()
}


def error_responses(*statuses: int) -> dict:
    return {s: OpenApiResponse(response=ErrorSerializer, description=_DESCRIPTIONS[s]) for s in statuses}


class SparkAutoSchema(AutoSchema):
    def map_parsers(self):
        media_types = super().map_parsers()
        # DRF also parses form bodies by default, but a form cannot carry a nested object, a null
        # or a JSON integer, so most of our bodies would not survive it: the contract is JSON.
        # A view that takes uploads names its own parsers (multipart) and keeps them.
        if "application/json" in media_types:
            return ["application/json"]
        return media_types

    def get_auth(self):
        """Only the schemes the view's permissions let in: a permission class that accepts only
        some credentials names them in `openapi_schemes` (a store key gets a 403 on the driver
        API, so the driver API does not list it)."""
        requirements = super().get_auth()
        accepted = [set(p.openapi_schemes) for p in self.view.get_permissions() if hasattr(p, "openapi_schemes")]
        if not accepted:
            return requirements
        allowed = set.intersection(*accepted)
        return [r for r in requirements if not r or set(r) <= allowed]

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        for status in self._common_error_statuses(operation):
            # What a view declares itself wins (its own description or body).
            if str(status) not in responses:
                # Always JSON (spark.api.errors), also from a view that renders CSV when asked.
                responses[str(status)] = self._get_response_for_code(
                    OpenApiResponse(response=ErrorSerializer, description=_DESCRIPTIONS[status]),
                    str(status),
                    media_types=["application/json"],
                )
        for code, headers in _ERROR_HEADERS.items():
            if code in responses:
                responses[code].setdefault("headers", {}).update(headers)
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _common_error_statuses(self, operation: dict) -> list[int]:
        statuses = []
        # `{}` among the requirements means anonymous callers are let in (drf-spectacular adds it for AllowAny).
        security = operation.get("security") or []
        if security and {} not in security:
            statuses += [401, 403]
        parameters = operation.get("parameters", [])
        if any(p["in"] == "path" for p in parameters):
            statuses.append(404)
        has_body = "requestBody" in operation
        if has_body or any(p["in"] == "query" for p in parameters):
            statuses.append(400)
        if has_body:
            statuses += [413, 415]
        if self.view.get_throttles():
            statuses.append(429)
        return statuses


def forms_have_no_null(result, generator, request, public):
    """drf-spectacular postprocessing hook: a form field cannot be null. An optional field of a
    form-only body (the photo upload) is left out instead (DRF reads an empty one as null too),
    so the components only forms use do not say `nullable`."""
    components = result.get("components", {}).get("schemas", {})
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            content = operation.get("requestBody", {}).get("content", {})
            if not content or "application/json" in content:
                continue
            for media in content.values():
                name = media.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
                for prop in components.get(name, {}).get("properties", {}).values():
                    prop.pop("nullable", None)
    return result
