"""The driver app's PWA files at the site root (included from spark/urls.py)."""

from django.urls import path

from . import app_views

urlpatterns = [
    path("sw.js", app_views.service_worker, name="pwa-sw"),
    path("manifest.webmanifest", app_views.manifest, name="pwa-manifest"),
]
