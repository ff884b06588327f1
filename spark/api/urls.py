"""Project-wide API endpoints, included under /api/v1/ by spark/urls.py."""

from django.urls import path

from spark.api.me import MeView

urlpatterns = [
    path("me/", MeView.as_view(), name="api-me"),
]
