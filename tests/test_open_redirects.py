"""Every view that follows a redirect target taken from the request (`next`, HX-Current-URL)
sends the browser only somewhere on this site. An outside or odd target lands on the view's
own safe default instead (spark.httpkit.safe_next)."""

from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse

from orders.batch_editing import batch_create
from orders.models import Batch
from orders.tests.factories import OrderFactory
from spark.httpkit import client_ip, is_safe_redirect, safe_next
from stores.models import StoreMembership
from stores.tests.factories import StoreMembershipFactory

PASSWORD = "pw-for-tests-1"  # UserFactory's
EVIL = ["https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)"]


def _member(store):
    user = StoreMembershipFactory(store=store, role=StoreMembership.Role.ASSOCIATE).user
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def discard_batch(client, store, target):
    client.force_login(_member(store))
    batch = batch_create(store=store, orders=[OrderFactory(store=store)])
    response = client.post(f"/dashboard/s/{store.pk}/batches/{batch.pk}/discard/", {"next": target, "confirmed": "1"})
    assert Batch.objects.get(pk=batch.pk).status == "cancelled"  # the action itself still happened
    return response["Location"], f"/dashboard/s/{store.pk}/batches/"


def log_in(client, store, target):
    user = _member(store)
    response = client.post(f"{reverse('account_login')}?next={target}", {"login": user.email, "password": PASSWORD})
    return response["Location"], "/"


def log_in_with_next_in_the_form(client, store, target):
    user = _member(store)
    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD, "next": target})
    return response["Location"], "/"


def log_out(client, store, target):
    client.force_login(_member(store))
    response = client.post(reverse("account_logout"), {"next": target})
    return response["Location"], "/"


def switch_language(client, store, target):
    response = client.post(reverse("set_language"), {"language": "es", "next": target})
    return response["Location"], "/"


def admin_login_page(client, store, target):
    response = client.get(f"{reverse('admin:login')}?next={target}")
    location = response["Location"]
    assert urlsplit(location).path == reverse("account_login")
    return parse_qs(urlsplit(location).query)["next"][0], reverse("admin:index")


def driver_poll_after_logout(client, store, target):
    # An htmx poll after the session ended sends the whole page to the login, coming back to
    # the page the browser says it is on.
    response = client.get("/driver/offers/live/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL=target)
    location = response["HX-Redirect"]
    assert urlsplit(location).path == reverse("account_login")
    return parse_qs(urlsplit(location).query)["next"][0], reverse("driver_app:home")


VIEWS = [
    discard_batch,
    log_in,
    log_in_with_next_in_the_form,
    log_out,
    switch_language,
    admin_login_page,
    driver_poll_after_logout,
]


@pytest.mark.django_db
@pytest.mark.parametrize("target", EVIL)
@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.__name__)
def test_an_outside_target_lands_on_the_safe_default(client, store, view, target):
    # given a request that names an outside (or odd) place to go next
    # when the view follows it
    location, default = view(client, store, target)
    # then the browser goes to the view's own default, on this site
    assert location == default
    assert "evil" not in location


@pytest.mark.django_db
def test_a_target_on_this_site_is_still_followed(client, store):
    location, _ = discard_batch(client, store, f"/dashboard/s/{store.pk}/")
    assert location == f"/dashboard/s/{store.pk}/"
    client.logout()
    location, _ = log_in(client, store, "/driver/")
    assert location == "/driver/"


@pytest.mark.parametrize(
    ("url", "secure", "safe"),
    [
        ("/dashboard/", False, True),
        ("/dashboard/?a=1#b", True, True),
        ("http://testserver/x", False, True),
        ("http://testserver/x", True, False),  # an https page never sends to http
        ("https://testserver/x", True, True),
        ("https://evil.example/", False, False),
        ("//evil.example", False, False),
        ("/\\evil.example", False, False),
        ("\\\\evil.example", False, False),
        ("javascript:alert(1)", False, False),
        ("alert(1)", False, False),
        ("", False, False),
        (None, False, False),
    ],
)
def test_is_safe_redirect(rf, url, secure, safe):
    request = rf.get("/", secure=secure)
    assert is_safe_redirect(request, url) is safe
    assert safe_next(request, "/home/", url=url) == (url if safe else "/home/")


# --- client IP: X-Forwarded-For trusted for exactly SPARK_TRUSTED_PROXIES hops -------------------


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        (0, "198.51.100.1", None, "198.51.100.1"),
        (0, "198.51.100.1", "203.0.113.9", "198.51.100.1"),  # nobody trusted: the header is ignored
        (1, "10.0.0.2", "203.0.113.9", "203.0.113.9"),
        (1, "10.0.0.2", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # what the client wrote is left of ours
        (2, "10.0.0.2", "6.6.6.6, 203.0.113.9, 10.0.0.1", "203.0.113.9"),
        (2, "10.0.0.2", "203.0.113.9", "203.0.113.9"),  # fewer hops than proxies: the leftmost
        (1, "10.0.0.2", "203.0.113.9:51234", "203.0.113.9"),
        (1, "10.0.0.2", "[2001:db8::1]:443", "2001:db8::1"),
        (1, "10.0.0.2", "not-an-ip", "10.0.0.2"),  # garbage from our proxy: everyone shares its address
        (1, "10.0.0.2", None, "10.0.0.2"),
    ],
)
def test_client_ip(rf, settings, proxies, remote, forwarded, expected):
    settings.SPARK_TRUSTED_PROXIES = proxies
    headers = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_ip(rf.get("/", **headers)) == expected
