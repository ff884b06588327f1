"""One error body for every 4xx: {"detail": str, "code": str, "fields": {field: [messages]}}.

- 400 validation: `fields` holds each field's messages; `detail` is the first general message
  (non_field_errors) or "Some fields are not valid.".
- 401: no or bad credentials (`WWW-Authenticate` names the schemes: Token, Api-Key).
- 403 / 404 / 405 / 413 / 415 / 429: the message and code of the exception (`Retry-After` kept on
  429); 413 and the 400 `parse_error` of hostile bodies come from spark/api/parsers.py.
- DomainError subclasses (spark.errors): their own status (400/403/409/410/429), code and fields;
  RateLimited adds `Retry-After`.
A 5xx is never turned into a body here: it is a bug and must surface.
"""

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from spark.errors import DomainError, RateLimited


def _flatten(detail) -> list[str]:
    if isinstance(detail, list):
        return [str(m) for item in detail for m in _flatten(item)]
    if isinstance(detail, dict):
        return [f"{k}: {m}" for k, v in detail.items() for m in _flatten(v)]
    return [str(detail)]


def error_body(detail: str, code: str, fields: dict | None = None) -> dict:
    return {"detail": str(detail), "code": code, "fields": fields or {}}


@csrf_exempt  # it changes nothing; a POST without a CSRF token must get this 404, not a 403 page
def not_found(request, *args, **kwargs) -> JsonResponse:
    """The catch-all of /api/ (spark/urls.py): an unknown API URL, or an id that is not a number
    where the route takes <int:...>, is this JSON 404 even with DEBUG on."""
    return JsonResponse(error_body("Not found.", "not_found"), status=404)


def _authenticate_header(request) -> str:
    """The challenges of the view's authenticators that have one (Token, Api-Key).

    DRF asks only the first authenticator, which is SessionAuthentication (no challenge), and
    then turns every "not authenticated" into a 403. We answer 401 with the schemes an API
    client can use instead, as long as the view accepts one of them.
    """
    challenges: list[str] = []
    for authenticator in getattr(request, "authenticators", None) or ():
        header = authenticator.authenticate_header(request)
        if header and header not in challenges:
            challenges.append(header)
    return ", ".join(challenges)


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        set_rollback()
        refusal = Response(error_body(exc.message, exc.code, exc.fields), status=exc.status_code)
        if isinstance(exc, RateLimited):
            refusal["Retry-After"] = str(exc.retry_after)
        return refusal
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {}
        exc = exceptions.ValidationError(detail=fields or exc.messages)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a 5xx: let it surface (and be fixed)
    if isinstance(exc, exceptions.ValidationError):
        data = exc.detail
        if isinstance(data, dict):
            fields = {k: _flatten(v) for k, v in data.items() if k != "non_field_errors"}
            general = _flatten(data.get("non_field_errors", []))
        else:
            fields, general = {}, _flatten(data)
        detail = general[0] if general else "Some fields are not valid."
        response.data = error_body(detail, "invalid", fields)
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response

    codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
    response.data = error_body(str(getattr(exc, "detail", exc)), codes if isinstance(codes, str) else "error")
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        challenge = _authenticate_header(context.get("request"))
        if challenge:
            response.status_code = status.HTTP_401_UNAUTHORIZED
            response["WWW-Authenticate"] = challenge
    return response
