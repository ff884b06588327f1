"""Request body parsers of the API: bounded in size and in JSON nesting depth.

DRF parses the request stream itself, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE (forms only)
does not protect a JSON endpoint: without a cap a 10 MB intake body is read and parsed in full,
and about 1,000 levels of `[` make Python's json module raise RecursionError (a 500). Here:

- a body larger than SPARK_API_MAX_BODY_BYTES is a 413 `request_too_large`, decided from
  Content-Length before anything is read; a body without one (streamed) is read at most one
  byte past the cap;
- JSON nested more than MAX_JSON_DEPTH levels is a 400 `parse_error`, checked before any
  serializer sees the data (our bodies are 3 levels deep; validators walk what they get);
- the body must be a JSON object: every JSON endpoint takes one, and views may rely on it.

JSONParser is the API's only default parser (settings REST_FRAMEWORK), so form and multipart
bodies to JSON endpoints are a 415. The delivery step that uploads photos uses MultiPartParser,
capped at the two photos it may carry plus the JSON limit for its other fields.
"""

import json

from django.conf import settings
from rest_framework import exceptions, parsers, renderers, status
from rest_framework.settings import api_settings
from rest_framework.utils.json import strict_constant

MAX_JSON_DEPTH = 32


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self, limit: int):
        size = f"{limit / (1024 * 1024):.0f} MB" if limit >= 1024 * 1024 else f"{max(1, limit // 1024)} KB"
        super().__init__(f"The request body is larger than {size}, the most this endpoint accepts.")


def _declared_length(parser_context: dict | None) -> int | None:
    request = (parser_context or {}).get("request")
    raw = getattr(request, "META", {}).get("CONTENT_LENGTH") if request is not None else None
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def _refuse_declared_length_over(limit: int, parser_context: dict | None) -> None:
    declared = _declared_length(parser_context)
    if declared is not None and declared > limit:
        raise RequestTooLarge(limit)


def _nested_deeper_than(value, limit: int) -> bool:
    """Whether containers nest more than `limit` levels (the top-level object is level 1).
    Iterative, so it cannot itself run out of stack."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class JSONParser(parsers.BaseParser):
    """JSON with the limits above. Not a subclass of DRF's JSONParser on purpose: DRF (3.18+)
    hands its own JSON parser `request.body`, read in full up to Django's form limit before any
    parser could refuse it; any other parser gets the request stream, which this one reads only
    up to the cap."""

    media_type = "application/json"
    renderer_class = renderers.JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.SPARK_API_MAX_BODY_BYTES
        _refuse_declared_length_over(limit, parser_context)
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise RequestTooLarge(limit)
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            raise exceptions.ParseError(f"JSON parse error - the body is not valid {encoding.upper()} text.") from None
        too_deep = exceptions.ParseError(f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep.")
        try:
            data = json.loads(text, parse_constant=strict_constant if api_settings.STRICT_JSON else None)
        except RecursionError:  # far deeper than the limit: the json module gave up first
            raise too_deep from None
        except ValueError as exc:  # malformed, NaN, an integer of more than 4,300 digits
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        if not isinstance(data, dict):
            raise exceptions.ParseError("The body must be a JSON object.")
        if _nested_deeper_than(data, MAX_JSON_DEPTH):
            raise too_deep
        return data


class PhotoMultiPartParser(parsers.MultiPartParser):
    """Multipart for the delivery step: up to two photos (each capped again by spark.photos)
    and a few small fields. Django streams the parts to temporary files, so the cap is what
    keeps a hostile upload from filling the disk before the photo check runs."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = 2 * settings.SPARK_PHOTO_MAX_BYTES + settings.SPARK_API_MAX_BODY_BYTES
        _refuse_declared_length_over(limit, parser_context)
        return super().parse(stream, media_type, parser_context)
