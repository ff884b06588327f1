import logging

from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.shortcuts import render

from spark import roles
from spark.celery import broker_check

logger = logging.getLogger(__name__)


def healthz(request):
    """Database and broker reachability, for load balancers and docker-compose.

    200 {"status": "ok"} when both answer; 503 when either does not: "degraded" when only the
    broker is down (pages and APIs still work, queued work waits for the beat sweepers), "down"
    when the database is. Each check has a short timeout. The failure is named by its exception
    class only: this endpoint is public, the details (hosts, ports) go to the log.
    """
    checks = {"database": _database_error(), "broker": broker_check()}
    body = {name: "ok" if error is None else f"error: {error}" for name, error in checks.items()}
    if checks["database"] is not None:
        status = "down"
    elif checks["broker"] is not None:
        status = "degraded"
    else:
        status = "ok"
    return JsonResponse({"status": status, **body}, status=200 if status == "ok" else 503)


def _database_error() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logger.warning("health check: database unreachable: %s", exc)
        return type(exc).__name__
    return None


@login_required
def home(request):
    """Landing page after login: tells each role where its app lives."""
    driver = roles.driver_of(request.user)
    context = {
        "driver": driver,
        "store_ids": roles.store_ids_for(request.user),
        "is_ops": roles.is_ops(request.user),
    }
    return render(request, "home.html", context)


def not_found(request, exception):
    """JSON 404 under /api/ (the one error body), Django's page elsewhere."""
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found", "fields": {}}, status=404)
    return page_not_found(request, exception)
