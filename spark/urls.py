from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from spark import views
from spark.api import errors as api_errors
from spark.api.auth import ObtainTokenView

# The admin's own login form would skip MFA: send admin logins through allauth instead.
admin.site.login = login_required(admin.site.login)  # type: ignore[method-assign]
admin.site.site_header = "Spark ops"
admin.site.site_title = "Spark ops"

api_v1: list = [
    path("auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("", include("spark.api.urls")),  # /api/v1/me/
    path("", include("store_api.urls")),  # the store integration API (orders)
    path("", include("driver_app.api.urls")),  # the driver API (the driver app uses it too)
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("", include("tracking.urls")),  # /t/<token>: the customer's tracking page
    path("dashboard/", include("dashboard.urls")),  # store associates
    path("driver/join/", include("driver_app.onboarding_urls")),  # driver sign-up
    path("driver/", include("driver_app.urls")),  # the driver app
    path("", include("driver_app.pwa_urls")),  # /sw.js, /manifest.webmanifest (driver app PWA)
    path("webhooks/", include("webhooks.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file (/api/docs/?script=) instead
    # of inline, so the page runs under our Content-Security-Policy unchanged.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include(api_v1)),
    # Last: any other /api/.../ URL is the JSON 404, DEBUG or not. Only paths ending in "/", so
    # CommonMiddleware still redirects /api/v1/me to /api/v1/me/.
    re_path(r"^api/(?:.*/)?$", api_errors.not_found),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

handler404 = "spark.views.not_found"
