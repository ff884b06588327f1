"""Login rate limits against what an attacker controls (X-Forwarded-For, which email it types)
and what the owner must still be able to do (sign in from their own phone, reset the password).

- X-Forwarded-For is believed for exactly SPARK_TRUSTED_PROXIES hops (default 0: not at all),
  by allauth's limits and the API token throttle alike (spark.httpkit.client_ip).
- Every 429 carries Retry-After.
- Five wrong passwords lock the email for minutes, but not on a browser the owner signed in
  from before (accounts.known_devices); the per-IP limit holds for everybody.
"""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import known_devices
from stores.tests.factories import UserFactory

PASSWORD = "pw-for-tests-1"  # UserFactory's
NEW_PASSWORD = "Grocery-Run-2025!"
TOKEN_URL = "/api/v1/auth/token/"
LOCKED = "Too many failed login attempts"

pytestmark = pytest.mark.django_db


def verified_user(**kwargs):
    user = UserFactory(**kwargs)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def web_login(client, email, password, **headers):
    return client.post(reverse("account_login"), {"login": email, "password": password}, **headers)


def logged_in(response) -> bool:
    return response.status_code == 302 and response.wsgi_request.user.is_authenticated


def locked(response) -> bool:
    return response.status_code == 200 and LOCKED in response.content.decode()


def rotating(i: int) -> str:
    return f"203.0.113.{i + 1}"


# --- X-Forwarded-For is not a way round the limits ---------------------------------------------------


def test_web_login_failures_with_a_rotating_forwarded_for_are_throttled(client):
    # given a credential-stuffing run: a new email and a new X-Forwarded-For on every try
    owner = verified_user()
    answers = [
        web_login(client, f"victim{i}@example.test", "guess", HTTP_X_FORWARDED_FOR=rotating(i)) for i in range(25)
    ]
    # then after ten failures the client's (real) address is refused
    assert not any(locked(r) for r in answers[:10])
    assert all(locked(r) for r in answers[10:])
    # and even a right password does not get through from it for now
    assert locked(web_login(client, owner.email, PASSWORD, HTTP_X_FORWARDED_FOR=rotating(99)))


def test_token_requests_with_a_rotating_forwarded_for_are_throttled():
    # given 25 token requests with a right password, each claiming another client address
    user = verified_user()
    api = APIClient()
    codes = [
        api.post(
            TOKEN_URL, {"email": user.email, "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR=rotating(i)
        )
        for i in range(25)
    ]
    # then the throttle (20 a minute per client) counts them all as one client
    assert [r.status_code for r in codes[:20]] == [200] * 20
    assert {r.status_code for r in codes[20:]} == {429}
    assert all(int(r["Retry-After"]) > 0 for r in codes[20:])


def test_token_failures_with_a_rotating_forwarded_for_are_throttled_with_retry_after():
    api = APIClient()
    answers = [
        api.post(
            TOKEN_URL,
            {"email": f"victim{i}@example.test", "password": "guess"},
            format="json",
            HTTP_X_FORWARDED_FOR=rotating(i),
        )
        for i in range(25)
    ]
    assert [r.status_code for r in answers[:10]] == [400] * 10
    assert {r.status_code for r in answers[10:]} == {429}
    for response in answers[10:]:
        assert response.json()["code"] == "throttled"
        assert int(response["Retry-After"]) >= 60  # at least the per-IP window


def test_a_locked_email_answers_the_token_endpoint_with_retry_after():
    user = verified_user()
    api = APIClient()
    for _ in range(5):
        assert api.post(TOKEN_URL, {"email": user.email, "password": "guess"}, format="json").status_code == 400
    response = api.post(TOKEN_URL, {"email": user.email, "password": PASSWORD}, format="json")
    assert response.status_code == 429 and int(response["Retry-After"]) == 300  # the per-email window


class TestBehindTrustedProxies:
    """With N proxies of ours in front, the client is the Nth entry from the right."""

    def test_one_proxy_the_entry_it_added_is_the_client(self, client, settings):
        settings.SPARK_TRUSTED_PROXIES = 1
        # a client that writes its own X-Forwarded-For gets our proxy's entry appended: the
        # left part is whatever it likes, the rightmost entry is the truth
        answers = [
            web_login(client, f"victim{i}@example.test", "guess", HTTP_X_FORWARDED_FOR=f"{rotating(i)}, 198.51.100.7")
            for i in range(12)
        ]
        assert not any(locked(r) for r in answers[:10])
        assert all(locked(r) for r in answers[10:])
        # other clients behind the same proxy are not affected
        assert not locked(web_login(client, "someone@example.test", "guess", HTTP_X_FORWARDED_FOR="198.51.100.8"))

    def test_one_proxy_different_clients_are_counted_apart(self, client, settings):
        settings.SPARK_TRUSTED_PROXIES = 1
        answers = [
            web_login(client, f"victim{i}@example.test", "guess", HTTP_X_FORWARDED_FOR=rotating(i)) for i in range(25)
        ]
        assert not any(locked(r) for r in answers)
        user = verified_user()
        api = APIClient()
        codes = {
            api.post(
                TOKEN_URL, {"email": user.email, "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR=rotating(i)
            ).status_code
            for i in range(25)
        }
        assert codes == {200}

    def test_two_proxies(self, client, settings):
        settings.SPARK_TRUSTED_PROXIES = 2
        answers = [
            web_login(
                client,
                f"victim{i}@example.test",
                "guess",
                HTTP_X_FORWARDED_FOR=f"{rotating(i)}, 198.51.100.7, 10.0.0.1",
            )
            for i in range(11)
        ]
        assert locked(answers[10])


# --- 429 says when to come back ------------------------------------------------------------------------


def test_the_web_login_429_has_retry_after(client):
    answers = [web_login(client, f"victim{i}@example.test", "guess") for i in range(31)]
    assert answers[29].status_code == 200
    assert answers[30].status_code == 429  # allauth's "login" limit: 30 a minute per IP
    assert int(answers[30]["Retry-After"]) == 60


# --- the owner is not locked out by somebody else's guesses -------------------------------------------


def _lock(email: str, *, ip: str = "198.51.100.66") -> None:
    attacker = Client(REMOTE_ADDR=ip)
    answers = [web_login(attacker, email, f"guess-{i}") for i in range(6)]
    assert locked(answers[-1])


def test_the_owner_on_a_browser_they_used_before_gets_past_the_lock(client):
    owner = verified_user()
    # given the owner signed in on this phone before
    assert logged_in(web_login(client, owner.email, PASSWORD))
    assert known_devices.COOKIE_NAME in client.cookies
    client.post(reverse("account_logout"))
    # when somebody else types five wrong passwords for the owner's email
    _lock(owner.email)
    # then a new browser is locked out even with the right password
    assert locked(web_login(Client(), owner.email, PASSWORD))
    # but the owner's phone signs in
    assert logged_in(web_login(client, owner.email, PASSWORD))


def test_the_known_browser_still_needs_the_right_password(client):
    owner = verified_user()
    assert logged_in(web_login(client, owner.email, PASSWORD))
    client.post(reverse("account_logout"))
    _lock(owner.email)
    response = web_login(client, owner.email, "wrong")
    assert response.status_code == 200 and not response.wsgi_request.user.is_authenticated
    assert not locked(response)


def test_the_known_browser_does_not_pass_the_per_ip_limit(client):
    owner = verified_user()
    assert logged_in(web_login(client, owner.email, PASSWORD))
    client.post(reverse("account_logout"))
    # ten failures from the owner's own network (a stuffing run from the same address)
    for i in range(10):
        web_login(Client(), f"victim{i}@example.test", "guess")
    assert locked(web_login(client, owner.email, PASSWORD))


def test_a_browser_known_for_another_account_or_a_forged_cookie_is_no_pass(client):
    owner, other = verified_user(), verified_user()
    assert logged_in(web_login(client, other.email, PASSWORD))  # known for `other` only
    client.post(reverse("account_logout"))
    _lock(owner.email)
    assert locked(web_login(client, owner.email, PASSWORD))
    forged = Client()
    forged.cookies[known_devices.COOKIE_NAME] = f"[{owner.pk}]"  # unsigned
    assert locked(web_login(forged, owner.email, PASSWORD))


def test_a_password_reset_clears_the_lock(client):
    owner = verified_user()
    _lock(owner.email)
    assert locked(web_login(client, owner.email, PASSWORD))
    # the owner resets the password from the emailed link
    assert client.post(reverse("account_reset_password"), {"email": owner.email}).status_code == 302
    path = re.search(r"https?://testserver(/\S+)", mail.outbox[-1].body).group(1)
    set_password = client.get(path)["Location"]
    response = client.post(set_password, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    # and signs in with the new one from any browser
    assert logged_in(web_login(Client(), owner.email, NEW_PASSWORD))
