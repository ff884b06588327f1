from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from spark import roles


def healthz(request):
    """Liveness + database reachability, for load balancers and docker-compose."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


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
