"""The Content-Security-Policy (django-csp) and what it relies on, without a browser.

- Every surface answers with the policy: scripts from our own origin only (no 'unsafe-inline', no
  'unsafe-eval'), styles from files, map tiles from the host of SPARK_MAP_TILE_URL, requests to
  ourselves only. The maps are given that same tile URL.
- Our templates carry no inline script, no inline event handler, no javascript: URL, nothing htmx
  would have to eval, and no inline style (e-mails excepted: mail clients need inline styles and
  run no script). Our JavaScript never hands server data to an HTML parser.
The browser side (no violation reported on any page, the hostile address on the map) is
tests/browser/test_xss_csp.py.
"""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from drivers.tests.factories import DriverFactory
from orders.batch_editing import batch_create, batch_publish
from orders.tests.factories import OrderFactory
from orders.transitions import batch_set_status
from spark.settings.base import csp_tile_source
from stores.models import StoreMembership
from stores.tests.factories import StoreMembershipFactory, UserFactory

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "templates"
SCRIPTS = sorted((REPO / "static" / "js").glob("*.js")) + [REPO / "static" / "sw.js"]


def policy_of(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_strict(policy: dict[str, list[str]]) -> None:
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["img-src"] == ["'self'", "data:", "blob:", csp_tile_source(settings.SPARK_MAP_TILE_URL)]
    for values in policy.values():
        assert "'unsafe-inline'" not in values and "'unsafe-eval'" not in values


@pytest.fixture
def trip(db):
    """A store with an associate, a draft batch and an order on its way with a driver."""
    membership = StoreMembershipFactory(role=StoreMembership.Role.ASSOCIATE)
    store = membership.store
    start = timezone.now() + timedelta(hours=1)
    on_way = OrderFactory(store=store, window_start=start, window_end=start + timedelta(hours=2))
    draft = batch_create(store=store, orders=[OrderFactory(store=store)])
    batch = batch_create(store=store, orders=[on_way])
    batch_publish(batch=batch)
    driver = DriverFactory()
    batch_set_status(batch=batch, to="assigned", updates={"driver": driver})
    return {"store": store, "associate": membership.user, "draft": draft, "order": on_way, "driver": driver}


def test_every_surface_sends_the_strict_policy(client, trip, settings):
    ops = UserFactory(email="ops-csp@example.test", is_staff=True, is_superuser=True)
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [ops.email]
    store = trip["store"]
    pages = {
        "login": (None, "/accounts/login/"),
        "sign-up funnel": (None, "/driver/join/"),
        "tracking": (None, f"/t/{trip['order'].tracking_token}"),
        "dashboard queue": (trip["associate"], f"/dashboard/s/{store.pk}/"),
        "dashboard batch map": (trip["associate"], f"/dashboard/s/{store.pk}/batches/{trip['draft'].pk}/"),
        "driver app": (trip["driver"].user, "/driver/"),
        "admin": (ops, "/admin/orders/order/"),
        "api docs": (ops, "/api/docs/"),
    }
    for what, (user, path) in pages.items():
        client.logout()
        if user:
            client.force_login(user)
        res = client.get(path)
        assert res.status_code == 200, (what, res.status_code)
        assert_strict(policy_of(res))


def test_maps_use_the_tile_url_the_policy_allows(client, trip, settings):
    tiles = settings.SPARK_MAP_TILE_URL
    client.force_login(trip["associate"])
    page = client.get(f"/dashboard/s/{trip['store'].pk}/batches/{trip['draft'].pk}/").content.decode()
    assert f'data-tiles="{tiles}"' in page
    client.force_login(trip["driver"].user)
    assert f'data-tiles="{tiles}"' in client.get("/driver/").content.decode()


@pytest.mark.parametrize(
    ("template", "source"),
    [
        ("https://tile.openstreetmap.org/{z}/{x}/{y}.png", "https://tile.openstreetmap.org"),
        ("https://{s}.tiles.example.com:8443/v1/{z}/{x}/{y}{r}.png?key=abc", "https://*.tiles.example.com:8443"),
        ("/tiles/{z}/{x}/{y}.png", "'self'"),
    ],
)
def test_tile_source_is_the_host_of_the_tile_url(template, source):
    assert csp_tile_source(template) == source


def test_api_docs_start_script_is_a_file(db):
    """Swagger UI's start-up script comes from /api/docs/?script= (drf-spectacular's split view)."""
    from django.test import Client

    page = Client().get("/api/docs/").content.decode()
    assert re.search(r'<script src="/api/docs/\?[^"]*script=[^"]*"></script>', page), page


# --- Static checks of the templates and scripts ---------------------------------------------------

TAG = re.compile(r"<[a-zA-Z][^<>]*>")
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/(?:ld\+)?json\")[^>]*>", re.I)
HANDLER = re.compile(r"(?:^|\s)on[a-z]+\s*=", re.I)
EVAL_ATTRS = re.compile(r"""\bhx-on\b|hx-on[:-]|\bhx-(?:vals|vars)\s*=\s*["']\s*(?:js|javascript):""", re.I)
TRIGGER_FILTER = re.compile(r"""\bhx-trigger\s*=\s*(?:"[^"]*\[[^"]*"|'[^']*\[[^']*')""", re.I)


COMMENTS = re.compile(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}|{#.*?#}", re.S)


def source(path: Path) -> str:
    """The template's text without its Django comments (which may name what they avoid)."""
    return COMMENTS.sub("", path.read_text())


def web_templates():
    # E-mails are not web pages: mail clients run no script and need inline styles.
    return [p for p in sorted(TEMPLATES.rglob("*.html")) if "emails" not in p.relative_to(TEMPLATES).parts]


def test_templates_have_no_inline_script_handlers_or_eval():
    problems = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = source(path)
        name = path.relative_to(REPO)
        problems += [f"{name}: inline <script>: {m.group(0)}" for m in INLINE_SCRIPT.finditer(text)]
        for tag in TAG.findall(text):
            if HANDLER.search(tag):
                problems.append(f"{name}: inline event handler in {tag}")
        problems += [f"{name}: javascript: URL" for _ in re.finditer(r"javascript:", text, re.I)]
        problems += [f"{name}: htmx eval attribute: {m.group(0)}" for m in EVAL_ATTRS.finditer(text)]
        problems += [f"{name}: hx-trigger filter (eval): {m.group(0)}" for m in TRIGGER_FILTER.finditer(text)]
    assert problems == []


def test_web_templates_have_no_inline_styles():
    problems = []
    for path in web_templates():
        text = source(path)
        name = path.relative_to(REPO)
        problems += [f"{name}: <style> element" for _ in re.finditer(r"<style\b", text, re.I)]
        problems += [f"{name}: style attribute in {t}" for t in TAG.findall(text) if re.search(r"\sstyle\s*=", t)]
    assert problems == []


def test_the_scan_catches_what_it_looks_for():
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert INLINE_SCRIPT.search('<script type="module">')
    assert not INLINE_SCRIPT.search('<script src="/static/js/x.js" defer></script>')
    assert not INLINE_SCRIPT.search('<script id="d" type="application/json">{}</script>')
    assert HANDLER.search('<select id="s" onchange="go()">') and HANDLER.search("<img src=x onerror=alert(1)>")
    assert not HANDLER.search('<button data-done="done" aria-controls="x">')
    assert EVAL_ATTRS.search('<div hx-on:click="x()">') and EVAL_ATTRS.search("<div hx-vals='js:{a: b()}'>")
    assert TRIGGER_FILTER.search('<div hx-trigger="every 5s [ok()]">')
    assert TRIGGER_FILTER.search("""<div hx-trigger="every 15s [document.activeElement.tagName != 'INPUT']">""")
    assert not TRIGGER_FILTER.search('<div hx-trigger="every 5s, spark:push from:body">')


# Leaflet inserts a string given to bindTooltip/bindPopup/setContent as HTML: only DOM nodes.
HTML_SINKS = re.compile(r"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\(|new Function\b")
LEAFLET_CONTENT = re.compile(r"\.(?:bindTooltip|bindPopup|setTooltipContent|setPopupContent|setContent)\(\s*([^,)]*)")


def test_scripts_never_parse_server_data_as_html():
    problems = []
    for path in SCRIPTS:
        text = path.read_text()
        name = path.relative_to(REPO)
        problems += [f"{name}: {m.group(0)}" for m in HTML_SINKS.finditer(text)]
        for m in LEAFLET_CONTENT.finditer(text):
            argument = m.group(1).strip()
            if not (re.fullmatch(r"[A-Za-z_$][\w$]*", argument) or argument.startswith("textNode(")):
                problems.append(f"{name}: Leaflet content from {argument!r}, not a DOM node")
    assert problems == []
