"""The driver app (phone-first web app) and the driver sign-up funnel."""

from django.urls import include, path

urlpatterns = [
    path("driver/join/", include("drivers.onboarding_urls")),
    path("driver/", include("drivers.app_urls")),
]
