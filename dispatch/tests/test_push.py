"""Web Push for offers, against a real local HTTP server acting as the push service.

The "browser" is a P-256 key pair plus an auth secret made here; the test decrypts what the
push service received with them, exactly as the phone would. Nothing leaves 127.0.0.1.
"""

import json
import os
import socket
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from django.utils import timezone
from py_vapid import Vapid

from dispatch import push
from dispatch.models import Offer
from dispatch.push import (
    offer_push_payload,
    push_subscription_delete,
    push_subscription_save,
    send_offer_push,
    send_offer_push_task,
    vapid_configured,
)
from dispatch.tests.factories import OfferFactory
from dispatch.tests.helpers import Browser, PushService, b64url, b64url_decode, uncompressed, vapid_keys
from drivers.models import PushSubscription
from drivers.tests.factories import DriverFactory
from orders.models import Batch
from orders.tests.factories import BatchFactory, StopFactory
from payments.models import OfferPaySnapshot
from spark.errors import DomainError

SUBJECT = "mailto:ops@spark.test"


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """No proxy from the environment may carry a request off this machine."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def push_service():
    service = PushService()
    yield service
    service.close()


@pytest.fixture
def vapid(settings):
    private, public = vapid_keys()
    settings.SPARK_VAPID_PRIVATE_KEY = private
    settings.SPARK_VAPID_PUBLIC_KEY = public
    settings.SPARK_VAPID_SUBJECT = SUBJECT
    settings.SPARK_PUSH_ALLOW_INSECURE_ENDPOINTS = True  # the local push service is plain http
    return {"private": private, "public": public}


def make_offer(*, driver=None, ttl_seconds: int = 60, **kwargs) -> Offer:
    batch = BatchFactory(route_meters=12070)
    for _ in range(2):
        StopFactory(batch=batch)
    offer = OfferFactory(
        batch=batch,
        driver=driver or DriverFactory(),
        expires_at=timezone.now() + timedelta(seconds=ttl_seconds),
        **kwargs,
    )
    OfferPaySnapshot.objects.create(
        offer=offer,
        base_cents=700,
        stops_cents=200,
        miles_cents=450,
        heavy_cents=0,
        incentive_cents=100,
        tip_cents=1000,
        total_cents=700 + 200 + 450 + 0 + 100 + 1000,
        routed_meters=12070,  # 7.5 mi
    )
    return offer


def subscribe(driver, service: PushService, path: str, browser: Browser | None = None) -> PushSubscription:
    browser = browser or Browser()
    return push_subscription_save(driver=driver, endpoint=service.url(path), p256dh=browser.p256dh, auth=browser.auth)


def jwt_claims(token: str) -> dict:
    header_b64, payload_b64, signature_b64 = token.split(".")
    assert json.loads(b64url_decode(header_b64)) == {"typ": "JWT", "alg": "ES256"}
    assert len(b64url_decode(signature_b64)) == 64  # raw r||s of ES256
    return json.loads(b64url_decode(payload_b64))


# --- The push itself ------------------------------------------------------------------------


def test_offer_push_arrives_encrypted_with_vapid_headers(db, push_service, vapid):
    offer = make_offer()
    browser = Browser()
    subscription = subscribe(offer.driver, push_service, "/push/abc123", browser)

    before = int(time.time())
    assert send_offer_push(offer_id=offer.pk) == 1

    assert len(push_service.requests) == 1
    request = push_service.requests[0]
    headers = request["headers"]
    assert request["method"] == "POST"
    assert request["path"] == "/push/abc123"
    assert headers["content-encoding"] == "aes128gcm"
    assert 50 <= int(headers["ttl"]) <= 60  # seconds left on the offer
    assert headers["urgency"] == "high"

    # RFC 8292: Authorization: vapid t=<JWT>, k=<application server public key>
    scheme, _, params = headers["authorization"].partition(" ")
    assert scheme == "vapid"
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    assert parts["k"] == vapid["public"]
    claims = jwt_claims(parts["t"])
    assert claims["aud"] == f"http://127.0.0.1:{push_service.port}"
    assert claims["sub"] == SUBJECT
    assert before < claims["exp"] <= before + 24 * 3600 + 5
    assert Vapid.verify(headers["authorization"])  # signed by the key the browser subscribed with

    # The body is an RFC 8188 aes128gcm record only the browser can open.
    assert b"offer" not in request["body"]
    payload = browser.decrypt(request["body"])
    assert payload["type"] == "offer"
    assert payload["offer_id"] == offer.pk
    assert payload["batch_id"] == offer.batch_id
    assert payload["title"] == "New offer: $24.50"
    assert payload["body"].startswith("2 stops · 7.5 mi · expires in ")
    assert payload["url"] == "/driver/offers/"
    assert payload["expires_at"] == offer.expires_at.isoformat()

    text = json.dumps(payload, ensure_ascii=False)
    for stop in offer.batch.stops.select_related("order"):
        order = stop.order
        for private in (order.customer_name, order.address_line1, order.customer_phone, order.customer_email):
            assert private not in text
        assert order.postal_code not in text

    subscription.refresh_from_db()
    assert subscription.last_success_at is not None
    assert subscription.failures == 0


def test_every_subscription_of_the_driver_and_no_one_else(db, push_service, vapid):
    offer = make_offer()
    phone, laptop = Browser(), Browser()
    subscribe(offer.driver, push_service, "/push/phone", phone)
    subscribe(offer.driver, push_service, "/push/laptop", laptop)
    subscribe(DriverFactory(), push_service, "/push/someone-else")

    assert send_offer_push(offer_id=offer.pk) == 2

    by_path = {r["path"]: r for r in push_service.requests}
    assert set(by_path) == {"/push/phone", "/push/laptop"}
    assert phone.decrypt(by_path["/push/phone"]["body"])["offer_id"] == offer.pk
    assert laptop.decrypt(by_path["/push/laptop"]["body"])["offer_id"] == offer.pk


def test_the_task_is_named_and_runs_the_service(db, push_service, vapid):
    offer = make_offer()
    subscribe(offer.driver, push_service, "/push/1")
    assert send_offer_push_task.name == "dispatch.push.send_offer_push_task"
    assert send_offer_push_task.apply(args=(offer.pk,)).get() == 1
    assert len(push_service.requests) == 1


def test_pem_private_key_works_too(db, push_service, settings, vapid):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    settings.SPARK_VAPID_PRIVATE_KEY = pem.strip().replace("\n", "\\n")  # one-line env var form
    settings.SPARK_VAPID_PUBLIC_KEY = b64url(uncompressed(key.public_key()))
    offer = make_offer()
    subscribe(offer.driver, push_service, "/push/1")

    assert send_offer_push(offer_id=offer.pk) == 1
    auth = push_service.requests[0]["headers"]["authorization"]
    assert f"k={settings.SPARK_VAPID_PUBLIC_KEY}" in auth
    assert Vapid.verify(auth)


# --- Failures never reach dispatch ----------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410])
def test_gone_subscription_is_deleted(db, push_service, vapid, status):
    offer = make_offer()
    gone = subscribe(offer.driver, push_service, "/push/gone")
    alive = subscribe(offer.driver, push_service, "/push/alive")
    push_service.status_by_path["/push/gone"] = status

    assert send_offer_push(offer_id=offer.pk) == 1

    assert not PushSubscription.objects.filter(pk=gone.pk).exists()
    assert PushSubscription.objects.filter(pk=alive.pk).exists()


def test_server_error_counts_a_failure_and_returns_zero(db, push_service, vapid):
    offer = make_offer()
    subscription = subscribe(offer.driver, push_service, "/push/flaky")
    push_service.status_by_path["/push/flaky"] = 500

    assert send_offer_push(offer_id=offer.pk) == 0
    assert send_offer_push(offer_id=offer.pk) == 0
    subscription.refresh_from_db()
    assert subscription.failures == 2
    assert subscription.last_success_at is None

    # It recovers: the next success clears the count.
    push_service.status_by_path["/push/flaky"] = 201
    assert send_offer_push(offer_id=offer.pk) == 1
    subscription.refresh_from_db()
    assert subscription.failures == 0
    assert subscription.last_success_at is not None


def test_connection_refused_does_not_raise(db, vapid):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nobody listens once the socket is closed
    offer = make_offer()
    browser = Browser()
    subscription = push_subscription_save(
        driver=offer.driver, endpoint=f"http://127.0.0.1:{closed_port}/push/1", p256dh=browser.p256dh, auth=browser.auth
    )

    assert send_offer_push(offer_id=offer.pk) == 0
    subscription.refresh_from_db()
    assert subscription.failures == 1


def test_slow_push_service_times_out_without_raising(db, push_service, vapid, monkeypatch):
    monkeypatch.setattr(push, "PUSH_TIMEOUT_SECONDS", 0.3)
    offer = make_offer()
    slow = subscribe(offer.driver, push_service, "/push/slow")
    subscribe(offer.driver, push_service, "/push/fast")
    push_service.delay_by_path["/push/slow"] = 2

    started = time.monotonic()
    assert send_offer_push(offer_id=offer.pk) == 1
    assert time.monotonic() - started < 1.8
    slow.refresh_from_db()
    assert slow.failures == 1


def test_redirects_are_not_followed(db, push_service, vapid):
    offer = make_offer()
    subscription = subscribe(offer.driver, push_service, "/push/moved")
    push_service.status_by_path["/push/moved"] = 307

    assert send_offer_push(offer_id=offer.pk) == 0
    assert [r["path"] for r in push_service.requests] == ["/push/moved"]
    subscription.refresh_from_db()
    assert subscription.failures == 1


def test_a_broken_stored_key_is_a_failure_not_an_exception(db, push_service, vapid):
    offer = make_offer()
    subscription = subscribe(offer.driver, push_service, "/push/1")
    PushSubscription.objects.filter(pk=subscription.pk).update(p256dh="not-a-key")

    assert send_offer_push(offer_id=offer.pk) == 0
    assert push_service.requests == []
    subscription.refresh_from_db()
    assert subscription.failures == 1


# --- When nothing is sent -------------------------------------------------------------------


def test_no_vapid_settings_sends_nothing(db, push_service, settings):
    settings.SPARK_PUSH_ALLOW_INSECURE_ENDPOINTS = True
    for name in ("SPARK_VAPID_PRIVATE_KEY", "SPARK_VAPID_PUBLIC_KEY", "SPARK_VAPID_SUBJECT"):
        if hasattr(settings, name):
            delattr(settings, name)
    offer = make_offer()
    subscribe(offer.driver, push_service, "/push/1")

    assert vapid_configured() is False
    assert send_offer_push(offer_id=offer.pk) == 0
    assert push_service.requests == []


@pytest.mark.parametrize("missing", ["SPARK_VAPID_PRIVATE_KEY", "SPARK_VAPID_PUBLIC_KEY", "SPARK_VAPID_SUBJECT"])
def test_partial_vapid_settings_send_nothing(db, push_service, settings, vapid, missing):
    setattr(settings, missing, "")
    offer = make_offer()
    subscribe(offer.driver, push_service, "/push/1")

    assert vapid_configured() is False
    assert send_offer_push(offer_id=offer.pk) == 0
    assert push_service.requests == []


def test_mismatched_vapid_public_key_sends_nothing(db, push_service, settings, vapid):
    settings.SPARK_VAPID_PUBLIC_KEY = vapid_keys()[1]  # another pair's public key
    offer = make_offer()
    subscribe(offer.driver, push_service, "/push/1")

    assert vapid_configured() is False
    assert send_offer_push(offer_id=offer.pk) == 0
    assert push_service.requests == []


@pytest.mark.parametrize(
    ("name", "value"),
    [("SPARK_VAPID_PRIVATE_KEY", "definitely-not-a-key"), ("SPARK_VAPID_SUBJECT", "ops@spark.test")],
)
def test_malformed_vapid_settings_are_not_configured(db, settings, vapid, name, value):
    assert vapid_configured() is True
    setattr(settings, name, value)
    assert vapid_configured() is False


def test_sec1_pem_private_key_is_read(db, settings, vapid):
    key = ec.generate_private_key(ec.SECP256R1())
    settings.SPARK_VAPID_PRIVATE_KEY = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    settings.SPARK_VAPID_PUBLIC_KEY = b64url(uncompressed(key.public_key()))
    assert vapid_configured() is True


@pytest.mark.parametrize("status", [Offer.Status.ACCEPTED, Offer.Status.DECLINED, Offer.Status.EXPIRED])
def test_non_pending_offer_sends_nothing(db, push_service, vapid, status):
    offer = make_offer(status=status)
    subscribe(offer.driver, push_service, "/push/1")

    assert send_offer_push(offer_id=offer.pk) == 0
    assert push_service.requests == []


def test_offer_past_its_deadline_sends_nothing(db, push_service, vapid):
    offer = make_offer(created_at=timezone.now() - timedelta(minutes=2), ttl_seconds=-30)
    assert offer.status == Offer.Status.PENDING  # the sweeper has not run yet
    subscribe(offer.driver, push_service, "/push/1")

    assert send_offer_push(offer_id=offer.pk) == 0
    assert push_service.requests == []


def test_missing_offer_sends_nothing(db, vapid):
    assert send_offer_push(offer_id=987654321) == 0


def test_driver_without_subscriptions_sends_nothing(db, push_service, vapid):
    offer = make_offer()
    assert send_offer_push(offer_id=offer.pk) == 0
    assert push_service.requests == []


# --- Payload ----------------------------------------------------------------------------------


def test_payload_is_small_and_has_no_customer_details(db):
    offer = make_offer(ttl_seconds=45)
    now = offer.expires_at - timedelta(seconds=45)
    payload = offer_push_payload(offer, now=now)
    assert payload == {
        "type": "offer",
        "offer_id": offer.pk,
        "batch_id": offer.batch_id,
        "title": "New offer: $24.50",
        "body": "2 stops · 7.5 mi · expires in 45 s",
        "url": "/driver/offers/",
        "tag": f"offer-{offer.pk}",
        "expires_at": offer.expires_at.isoformat(),
    }
    assert len(json.dumps(payload).encode()) < 1024


def test_payload_of_a_one_stop_offer_without_snapshot(db):
    batch = BatchFactory(route_meters=1609)
    StopFactory(batch=batch)
    offer = OfferFactory(batch=batch)
    payload = offer_push_payload(offer, now=offer.expires_at + timedelta(seconds=5))
    assert payload["title"] == "New offer"
    assert payload["body"] == "1 stop · 1.0 mi · expires in 0 s"


def test_payload_of_a_late_batch_says_late(db):
    offer = make_offer()
    Batch.objects.filter(pk=offer.batch_id).update(
        status=Batch.Status.PUBLISHED, stops_count=2, pickup_by=timezone.now() - timedelta(minutes=1)
    )
    offer.batch.refresh_from_db()
    assert offer_push_payload(offer)["title"] == "Late · New offer: $24.50"


# --- Subscriptions ----------------------------------------------------------------------------

ENDPOINT = "https://fcm.googleapis.com/fcm/send/abc:def"


def test_save_creates_then_refreshes_keys(db, driver):
    first, second = Browser(), Browser()
    sub = push_subscription_save(driver=driver, endpoint=ENDPOINT, p256dh=first.p256dh, auth=first.auth)
    PushSubscription.objects.filter(pk=sub.pk).update(failures=4)

    again = push_subscription_save(driver=driver, endpoint=ENDPOINT, p256dh=second.p256dh, auth=second.auth)
    assert again.pk == sub.pk
    again.refresh_from_db()
    assert (again.p256dh, again.auth, again.failures) == (second.p256dh, second.auth, 0)
    assert PushSubscription.objects.count() == 1


def test_endpoint_moves_to_the_new_driver(db, driver, other_driver):
    browser = Browser()
    sub = push_subscription_save(driver=driver, endpoint=ENDPOINT, p256dh=browser.p256dh, auth=browser.auth)
    moved = push_subscription_save(driver=other_driver, endpoint=ENDPOINT, p256dh=browser.p256dh, auth=browser.auth)
    assert moved.pk == sub.pk
    assert PushSubscription.objects.get().driver == other_driver


def test_delete_only_touches_own_subscription(db, driver, other_driver):
    browser = Browser()
    push_subscription_save(driver=driver, endpoint=ENDPOINT, p256dh=browser.p256dh, auth=browser.auth)

    assert push_subscription_delete(driver=other_driver, endpoint=ENDPOINT) == 0
    assert PushSubscription.objects.count() == 1
    assert push_subscription_delete(driver=driver, endpoint=ENDPOINT) == 1
    assert PushSubscription.objects.count() == 0
    assert push_subscription_delete(driver=driver, endpoint=ENDPOINT) == 0  # twice is fine


def test_subscriptions_per_driver_are_capped(db, driver):
    now = timezone.now()
    for i in range(push.MAX_SUBSCRIPTIONS_PER_DRIVER + 3):
        browser = Browser()
        sub = push_subscription_save(driver=driver, endpoint=f"{ENDPOINT}{i}", p256dh=browser.p256dh, auth=browser.auth)
        PushSubscription.objects.filter(pk=sub.pk).update(created_at=now + timedelta(seconds=i))
    endpoints = set(PushSubscription.objects.filter(driver=driver).values_list("endpoint", flat=True))
    assert len(endpoints) == push.MAX_SUBSCRIPTIONS_PER_DRIVER
    assert f"{ENDPOINT}0" not in endpoints
    assert f"{ENDPOINT}{push.MAX_SUBSCRIPTIONS_PER_DRIVER + 2}" in endpoints


@pytest.mark.parametrize(
    "endpoint",
    [
        "",
        "not a url",
        "ftp://push.example.com/x",
        "http://push.example.com/x",  # plain http outside tests
        "https://127.0.0.1/push",
        "https://localhost:8443/push",
        "https://10.0.0.5/push",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/push",
        "https://redis.internal/push",
        "https://push.example.com:notaport/x",
        "https://push.example.com/" + "x" * 1000,
    ],
)
def test_save_refuses_endpoints_that_are_not_public_https(db, driver, endpoint):
    browser = Browser()
    with pytest.raises(DomainError) as exc:
        push_subscription_save(driver=driver, endpoint=endpoint, p256dh=browser.p256dh, auth=browser.auth)
    assert "endpoint" in exc.value.fields
    assert PushSubscription.objects.count() == 0


@pytest.mark.parametrize(
    ("p256dh", "auth", "field"),
    [
        ("not base64!!", None, "p256dh"),
        (b64url(b"\x04" + os.urandom(64)), None, "p256dh"),  # 65 bytes but not on the curve
        (b64url(os.urandom(33)), None, "p256dh"),
        (None, b64url(os.urandom(8)), "auth"),
        (None, "", "auth"),
    ],
)
def test_save_refuses_bad_keys(db, driver, p256dh, auth, field):
    browser = Browser()
    with pytest.raises(DomainError) as exc:
        push_subscription_save(
            driver=driver,
            endpoint=ENDPOINT,
            p256dh=p256dh or browser.p256dh,
            auth=browser.auth if auth is None else auth,
        )
    assert field in exc.value.fields
    assert PushSubscription.objects.count() == 0


# --- Key generation ---------------------------------------------------------------------------


def _parse_env_lines(output: str) -> dict:
    values = dict(line.split("=", 1) for line in output.strip().splitlines())
    return {k: v.strip('"') for k, v in values.items()}


@pytest.mark.parametrize("args", [[], ["--pem"]])
def test_generate_vapid_keys_prints_a_working_pair(db, push_service, settings, args, capsys):
    call_command("generate_vapid_keys", "--subject", SUBJECT, *args)
    values = _parse_env_lines(capsys.readouterr().out)
    assert set(values) == {"SPARK_VAPID_PRIVATE_KEY", "SPARK_VAPID_PUBLIC_KEY", "SPARK_VAPID_SUBJECT"}
    assert len(b64url_decode(values["SPARK_VAPID_PUBLIC_KEY"])) == 65
    if not args:
        assert len(b64url_decode(values["SPARK_VAPID_PRIVATE_KEY"])) == 32
    else:
        assert values["SPARK_VAPID_PRIVATE_KEY"].startswith("-----BEGIN PRIVATE KEY-----\\n")
    for name, value in values.items():
        setattr(settings, name, value)
    settings.SPARK_PUSH_ALLOW_INSECURE_ENDPOINTS = True
    assert vapid_configured()

    offer = make_offer()
    subscribe(offer.driver, push_service, "/push/1")
    assert send_offer_push(offer_id=offer.pk) == 1
    assert Vapid.verify(push_service.requests[0]["headers"]["authorization"])
