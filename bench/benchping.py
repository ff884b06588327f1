"""Bench-only WSGI entry point and URLconf; production never loads this module.

bench/bench_claim_storm.py serves `bench.benchping:application` with gunicorn: Django's own
WSGI handler, the settings of DJANGO_SETTINGS_MODULE, every URL of spark.urls, plus two
baselines the claim storm is compared against:

- POST /bench/ping/       a DRF APIView with the driver API's stack (token authentication,
                          IsActiveDriver: the driver row, status and documents) returning
                          {"ok": true}. The fair "bare JSON endpoint" for a driver API call.
- POST /bench/ping-bare/  a plain Django view returning {"ok": true}: middleware only, no
                          authentication, no database.

Two knobs, read once at start-up, for the bench server only:
BENCH_CONN_MAX_AGE overrides DATABASES["default"]["CONN_MAX_AGE"] (the test settings pin 0,
a new PostgreSQL connection per request; production keeps connections 60 s).
BENCH_CACHE_URL (redis://...) replaces the test settings' per-process LocMem cache with the
Redis cache production uses (claim throttle counters and taken markers shared by all workers).
The settings have no ROOT_URLCONF override from the environment, hence this entry point sets
ROOT_URLCONF to this module after Django is set up.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spark.settings.test")

from django.conf import settings

if os.environ.get("BENCH_CONN_MAX_AGE"):
    settings.DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["BENCH_CONN_MAX_AGE"])
if os.environ.get("BENCH_CACHE_URL"):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["BENCH_CACHE_URL"]}
    }

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
settings.ROOT_URLCONF = __name__

from django.http import JsonResponse  # noqa: E402
from django.urls import include, path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from spark.roles import IsActiveDriver  # noqa: E402


class DriverPingView(APIView):
    """What every driver API call pays before its own work: authentication and the driver check."""

    permission_classes = [IsActiveDriver]

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        return Response({"ok": True})


@csrf_exempt
def bare_ping(request):
    return JsonResponse({"ok": True})


urlpatterns = [
    path("bench/ping/", DriverPingView.as_view(), name="bench-ping"),
    path("bench/ping-bare/", bare_ping, name="bench-ping-bare"),
    path("", include("spark.urls")),
]
handler404 = "spark.views.not_found"
