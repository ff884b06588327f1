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
