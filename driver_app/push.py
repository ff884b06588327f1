"""Web Push subscriptions from the driver app (the browser posts JSON with the session's CSRF token)."""

import json

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from dispatch import push
from drivers.models import Driver
from spark import roles
from spark.errors import DomainError


def _json_body(request) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested ~1,000 levels deep
        return {}
    return data if isinstance(data, dict) else {}


def _error(message: str, code: str, status: int, fields: dict | None = None) -> JsonResponse:
    return JsonResponse({"detail": message, "code": code, "fields": fields or {}}, status=status)


def _driver_for_json(request) -> Driver | None:
    return roles.driver_of(request.user) if request.user.is_authenticated else None


@require_POST
@never_cache
def push_subscribe(request):
    """Store this browser's push subscription (the JSON of PushSubscription.toJSON())."""
    driver = _driver_for_json(request)
    if driver is None:
        return _error("This endpoint is for drivers.", "forbidden", 403)
    data = _json_body(request)
    keys = data.get("keys")
    if not isinstance(keys, dict):
        keys = {}
    try:
        push.push_subscription_save(
            driver=driver,
            endpoint=str(data.get("endpoint") or ""),
            p256dh=str(keys.get("p256dh") or ""),
            auth=str(keys.get("auth") or ""),
        )
    except DomainError as exc:
        return _error(exc.message, exc.code, exc.status_code, exc.fields)
    return JsonResponse({"status": "subscribed", "detail": "Offer notifications are on."}, status=201)


@require_POST
@never_cache
def push_unsubscribe(request):
    driver = _driver_for_json(request)
    if driver is None:
        return _error("This endpoint is for drivers.", "forbidden", 403)
    deleted = push.push_subscription_delete(driver=driver, endpoint=str(_json_body(request).get("endpoint") or ""))
    return JsonResponse({"status": "unsubscribed", "deleted": deleted})
