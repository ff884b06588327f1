"""The driver app as an installable PWA: the offline page, the web manifest and the service worker
(served from the site root so it may control /driver/)."""

import hashlib
import json
from functools import cache
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from driver_app.labels import js_strings


@require_GET
def offline(request):
    """The service worker's fallback when a page cannot load. No login and no personal data:
    it is stored in the browser's cache. driver.js fills in the active batch it kept, if any."""
    return render(request, "driver/offline.html", {"js_strings": js_strings()})


def _static_source(name: str) -> str:
    """A file of static/ by its static path: from the source folders (finders), else from the
    collected files (a deploy that ships only STATIC_ROOT)."""
    found = finders.find(name)
    if found:
        return Path(found).read_text(encoding="utf-8")
    from django.contrib.staticfiles.storage import staticfiles_storage

    with staticfiles_storage.open(name) as f:
        return f.read().decode("utf-8")


# The app shell: what the service worker keeps so the app opens on a weak or no signal.
SHELL_ASSETS = (
    "css/driver.css",
    "js/driver.js",
    "vendor/htmx/htmx.min.js",
    "vendor/leaflet/leaflet.js",
    "vendor/leaflet/leaflet.css",
    "vendor/leaflet/images/marker-icon.png",
    "vendor/leaflet/images/marker-icon-2x.png",
    "vendor/leaflet/images/marker-shadow.png",
    "icons/icon-192.png",
    "icons/badge-72.png",
)


def _manifest_data() -> dict:
    data = json.loads(_static_source("manifest.webmanifest"))
    prefix = "/static/"
    for icon in data.get("icons", []):
        if icon.get("src", "").startswith(prefix):
            icon["src"] = static(icon["src"][len(prefix) :])  # hashed names in production
    return data


def _service_worker_source() -> tuple[str, str]:
    """(script, etag). The script is static/sw.js behind a one-line config with the shell's
    URLs; its version is a hash of sw.js and the shell (URLs and contents), so a deploy that
    changes any of them installs a new worker, which drops the old cache."""
    shell = [static(name) for name in SHELL_ASSETS]
    offline_url = reverse("driver_app:offline")
    source = _static_source("sw.js")
    digest = hashlib.sha256(json.dumps([shell, offline_url, source]).encode())
    for name in SHELL_ASSETS:  # unhashed static URLs (DEBUG, tests): the contents decide
        found = finders.find(name)
        if found:
            digest.update(Path(found).read_bytes())
    version = digest.hexdigest()[:12]
    config = {
        "version": version,
        "shell": shell,
        "offline": offline_url,
        "icon": static("icons/icon-192.png"),
        "badge": static("icons/badge-72.png"),
    }
    script = f"self.SPARK_SW = {json.dumps(config)};\n{source}"
    return script, version


if not settings.DEBUG:
    # Files do not change under a running production process; in DEBUG edits show at once.
    _manifest_data = cache(_manifest_data)
    _service_worker_source = cache(_service_worker_source)


@require_GET
def manifest(request):
    data = dict(_manifest_data())
    data["lang"] = getattr(request, "LANGUAGE_CODE", settings.LANGUAGE_CODE)
    data["description"] = _("Spark for drivers: offers on your route, delivery slots and your pay.")
    response = HttpResponse(json.dumps(data, ensure_ascii=False), content_type="application/manifest+json")
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_GET
def service_worker(request):
    """/sw.js at the site root. The app registers it for /driver/; Service-Worker-Allowed: /
    lets a later registration widen the scope without moving the script."""
    script, version = _service_worker_source()
    etag = f'"{version}"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(script, content_type="application/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    response["ETag"] = etag
    # Browsers re-check a worker at least daily anyway; no-cache makes every check a revalidation.
    response["Cache-Control"] = "no-cache"
    return response
