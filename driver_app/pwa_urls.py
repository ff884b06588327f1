"""The driver app's PWA files at the site root (included from spark/urls.py)."""

from django.urls import path

from . import pwa

urlpatterns = [
    path("sw.js", pwa.service_worker, name="pwa-sw"),
    path("manifest.webmanifest", pwa.manifest, name="pwa-manifest"),
]
