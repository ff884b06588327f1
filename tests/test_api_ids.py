"""Every /api/ URL with an id in its path, walked with ids that cannot be ours: "abc", a
25-digit number (past bigint), a 5,000-digit number (past Python's int() limit) and a
superscript digit (str.isdigit() says yes, int() says no). For each method the view allows and
for every kind of caller (anonymous, store integration, driver by token and by session) the
answer is a 4xx in the one JSON error body, never a 5xx or an HTML page.

OPTIONS and HEAD are left out: OPTIONS describes the endpoint without looking the object up
(a 200), HEAD is GET without a body to check."""

import re

import pytest
from django.test import Client
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from drivers.tests.factories import DriverFactory
from stores.tests.factories import StoreApiKeyFactory

# A path converter (<int:pk>, <pk>) or a regex group ((?P<pk>[^/.]+)).
PARAMETER = re.compile(r"<(?:\w+:)?\w+>|\(\?P<\w+>[^)]*\)")
BAD_IDS = {"abc": "abc", "25-digits": "9" * 25, "5000-digits": "9" * 5000, "superscript": "%C2%B2"}
ERROR_KEYS = {"detail", "code", "fields"}


def _patterns(resolver: URLResolver, prefix: str = ""):
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern).lstrip("^").rstrip("$").replace("\\", "")
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, route)
        elif isinstance(entry, URLPattern):
            yield route, entry.callback


def _methods(callback) -> list[str]:
    actions = getattr(callback, "actions", None)  # a viewset route: {"get": "retrieve"}
    if actions:
        return sorted(actions)
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    return sorted(m for m in view_class.http_method_names if m not in ("head", "options") and hasattr(view_class, m))


def api_routes_with_ids() -> list[tuple[str, str]]:
    return sorted(
        {
            (route, method)
            for route, callback in _patterns(get_resolver())
            if route.startswith("api/") and PARAMETER.search(route)
            for method in _methods(callback)
        }
    )


ROUTES = api_routes_with_ids()


def test_the_walk_finds_the_api_routes_with_ids():
    routes = {PARAMETER.sub("{id}", route) for route, _ in ROUTES}
    assert {
        "api/v1/orders/{id}/",
        "api/v1/orders/{id}/cancel/",
        "api/v1/driver/offers/{id}/accept/",
        "api/v1/driver/batches/{id}/claim/",
        "api/v1/driver/stops/{id}/deliver/",
        "api/v1/driver/slots/{id}/check-in/",
    } <= routes
    assert len(ROUTES) >= 14


def _matches(url: str, route: str) -> bool:
    """Whether `url` reaches the view of `route` (not the API's catch-all not-found view)."""
    try:
        return resolve(url).route == route
    except Resolver404:
        return False


@pytest.fixture
def callers(db):
    StoreApiKeyFactory(raw_key="ids-store-key-0123456789")
    store = APIClient()
    store.credentials(HTTP_AUTHORIZATION="Api-Key ids-store-key-0123456789")
    driver = DriverFactory()
    by_token = APIClient()
    by_token.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=driver.user).key}")
    by_session = APIClient()
    by_session.force_login(driver.user)
    return {"anonymous": APIClient(), "store": store, "driver-token": by_token, "driver-session": by_session}


@pytest.mark.parametrize("bad_id", BAD_IDS.values(), ids=BAD_IDS.keys())
@pytest.mark.parametrize(("route", "method"), ROUTES, ids=[f"{m.upper()} {r}" for r, m in ROUTES])
def test_an_id_that_cannot_be_ours_is_a_json_4xx(callers, route, method, bad_id):
    url = "/" + PARAMETER.sub(bad_id, route)
    for who, client in callers.items():
        kwargs = {"data": {}, "format": "json"} if method in ("post", "put", "patch") else {}
        response = getattr(client, method)(url, **kwargs)
        where = f"{who} {method.upper()} {url[:80]}"
        assert 400 <= response.status_code < 500, f"{where}: {response.status_code}"
        assert response["Content-Type"] == "application/json", where
        assert set(response.json()) == ERROR_KEYS, where
        if who != "anonymous":
            # A caller on the other surface's endpoint (a driver on a store URL and back) is refused
            # as such (403, whatever the id) once the URL matches; an id the URL cannot match, or a
            # number that is none of the caller's, is not found.
            other_surface = (who == "store") != route.startswith("api/v1/orders")
            assert response.status_code == (403 if other_surface and _matches(url, route) else 404), where


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_an_unknown_api_path_is_the_json_404_with_or_without_debug(settings, debug):
    settings.DEBUG = debug  # `make run` serves with DEBUG on: Django's own 404 page is HTML
    client = Client(enforce_csrf_checks=True)  # as a browser or a script would meet it
    for path in [
        "/api/v1/orders/abc/",
        "/api/v1/orders/abc/cancel/",
        "/api/v1/driver/offers/abc/accept/",
        "/api/v1/no-such-thing/",
        "/api/",
    ]:
        res = client.post(path) if path.endswith("cancel/") else client.get(path)
        assert res.status_code == 404, path
        assert res.json() == {"detail": "Not found.", "code": "not_found", "fields": {}}, path


def test_an_api_path_without_its_slash_is_still_redirected(client):
    res = client.get("/api/v1/me")
    assert res.status_code == 301 and res.url == "/api/v1/me/"
