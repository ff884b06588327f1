"""The Celery broker is down: a committed change is never turned into an error page.

The broker is a real unreachable one: a Redis URL on a local port nothing listens on (or, for
the timeout case, a socket that accepts and never answers). The change commits, the request
answers quickly, and the beat sweeper does the queued work once the broker is back.
`/healthz` says which of the database and the broker is down.
"""

import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

import pytest
import redis
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from dispatch import rounds
from dispatch.models import Offer
from dispatch.tasks import expire_offer
from drivers.tests.factories import DriverFactory, SlotClaimFactory
from orders.batch_editing import batch_create, batch_publish
from orders.models import Batch, Order
from orders.tests.factories import OrderFactory
from payments.tests.factories import PayPolicyFactory
from spark import celery as spark_celery
from spark.celery import app, queue_on_commit
from stores.tests.factories import DeliverySlotFactory, StoreApiKeyFactory, StoreFactory, ZoneFactory

# A request that queues a task must not wait on a dead broker: well under this.
FAST_SECONDS = 2.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def broker_at(url: str):
    """Point Celery at `url` for the block. Celery keeps the connections it made, so they are
    dropped on the way in and out (the next publish connects to the URL then in settings)."""
    app._after_fork()
    try:
        with override_settings(CELERY_BROKER_URL=url):
            yield url
    finally:
        app._after_fork()


@contextmanager
def broker_down():
    """A broker URL on a port with nothing listening: every connection is refused."""
    with broker_at(f"redis://127.0.0.1:{_free_port()}/0") as url:
        yield url


@contextmanager
def broker_silent():
    """A broker that accepts connections and never answers (a hung Redis, a black-holed route)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        with broker_at(f"redis://127.0.0.1:{listener.getsockname()[1]}/0") as url:
            yield url


@pytest.fixture
def zone(db):
    z = ZoneFactory()
    PayPolicyFactory(zone=z)
    return z


@pytest.fixture
def store(zone):
    return StoreFactory(zone=zone)


def _slot_holder(store, zone):
    slot = DeliverySlotFactory(
        store=store, starts_at=timezone.now() - timedelta(minutes=5), ends_at=timezone.now() + timedelta(hours=2)
    )
    return SlotClaimFactory(driver=DriverFactory(home_zone=zone), slot=slot).driver


def _draft(store, n=2):
    start = timezone.now() + timedelta(hours=1)
    orders = [
        OrderFactory(
            store=store,
            window_start=start,
            window_end=start + timedelta(hours=2),
            lat=Decimal("36.161234"),
            lng=Decimal("-86.781234"),
        )
        for _ in range(n)
    ]
    return batch_create(store=store, orders=orders)


def _api_for(user) -> APIClient:
    client = APIClient(raise_request_exception=False)
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


# Real commits (transaction=True): the on-commit publish runs as it does in production.


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker", [broker_down, broker_silent], ids=["refused", "never-answers"])
def test_dashboard_publish_with_the_broker_down_publishes_and_says_dispatch_follows(
    client, store, zone, associate, broker
):
    holder = _slot_holder(store, zone)
    batch = _draft(store)
    client.force_login(associate)
    client.raise_request_exception = False
    with broker():
        started = time.monotonic()
        res = client.post(f"/dashboard/s/{store.pk}/batches/{batch.pk}/publish/")
        elapsed = time.monotonic() - started
        assert res.status_code == 302, res.status_code
        page = client.get(res.url)
    assert elapsed < FAST_SECONDS, f"the publish request took {elapsed:.2f} s with the broker down"
    assert page.status_code == 200
    assert f"Batch {batch.pk} is published; offers to drivers will follow." in page.content.decode()
    batch.refresh_from_db()
    assert batch.status == Batch.Status.PUBLISHED
    assert set(Order.objects.filter(stops__batch=batch).values_list("status", flat=True)) == {"ready"}
    assert not Offer.objects.filter(batch=batch).exists()  # the dispatch task never left

    # The broker is back: the beat sweeper offers the batch to the slot holder.
    rounds.dispatch_sweep()
    assert Offer.objects.filter(batch=batch, driver=holder, status=Offer.Status.PENDING).exists()


@pytest.mark.django_db(transaction=True)
def test_intake_api_with_the_broker_down_creates_the_order(store):
    StoreApiKeyFactory(store=store, raw_key="store-a-key-0123456789")
    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION="Api-Key store-a-key-0123456789")
    start = (timezone.now() + timedelta(hours=3)).replace(microsecond=0)
    body = {
        "store": store.number,
        "external_id": "WM-DOWN-1",
        "customer": {"name": "Ada Lovelace", "phone": "+1 615 555 0100", "email": "ada@example.test"},
        "address": {
            "line1": "501 Broadway",
            "city": "Nashville",
            "state": "TN",
            "postal_code": "37203",
            "lat": "36.160500",
            "lng": "-86.777000",
        },
        "delivery_window": {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()},
        "totes": 2,
        "weight_lb": "10.0",
        "items_count": 5,
        "contains_alcohol": False,
        "tip_cents": 300,
    }
    with broker_down():
        started = time.monotonic()
        res = api.post("/api/v1/orders/", body, format="json")
        elapsed = time.monotonic() - started
    assert res.status_code == 201, res.content
    assert elapsed < FAST_SECONDS
    assert Order.objects.filter(store=store, external_id="WM-DOWN-1").exists()


@pytest.mark.django_db(transaction=True)
def test_driver_declines_an_offer_with_the_broker_down_and_the_sweeper_moves_dispatch_on(store, zone):
    holder = _slot_holder(store, zone)
    batch = _draft(store)
    batch_publish(batch=batch)
    rounds.dispatch_advance(batch_id=batch.pk)
    offer = Offer.objects.get(batch=batch, driver=holder)
    with broker_down():
        started = time.monotonic()
        res = _api_for(holder.user).post(
            f"/api/v1/driver/offers/{offer.pk}/decline/", {"reason": "too_far"}, format="json"
        )
        elapsed = time.monotonic() - started
    # declining queues the next dispatch round (advance_dispatch), which cannot be sent
    assert res.status_code == 200, res.content
    assert res.json()["status"] == "declined"
    assert elapsed < FAST_SECONDS
    offer.refresh_from_db()
    assert offer.status == Offer.Status.DECLINED and offer.decline_reason == "too_far"
    stage = Batch.objects.get(pk=batch.pk).dispatch_stage
    # the sweeper runs the round the lost task would have run
    rounds.dispatch_sweep()
    assert Batch.objects.get(pk=batch.pk).dispatch_stage != stage


# /healthz


def test_healthz_ok_when_database_and_broker_answer(client, db):
    res = client.get("/healthz")
    assert res.status_code == 200
    assert res.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.parametrize("broker", [broker_down, broker_silent], ids=["refused", "never-answers"])
def test_healthz_says_the_broker_is_down(client, db, broker):
    with broker():
        started = time.monotonic()
        res = client.get("/healthz")
        elapsed = time.monotonic() - started
    assert res.status_code == 503
    body = res.json()
    assert body["status"] == "degraded" and body["database"] == "ok"
    assert body["broker"].startswith("error: "), body
    assert elapsed < FAST_SECONDS


@pytest.mark.django_db(transaction=True)
def test_healthz_says_the_database_is_down(client):
    # The default connection itself is pointed at a port where no PostgreSQL listens, so the
    # view's real connection attempt is refused (no second alias, no mock).
    connection.close()
    saved_port = connection.settings_dict["PORT"]
    connection.settings_dict["PORT"] = str(_free_port())
    try:
        client.raise_request_exception = False
        res = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = saved_port
    assert res.status_code == 503
    body = res.json()
    assert body["status"] == "down" and body["broker"] == "ok"
    assert body["database"].startswith("error: "), body
    assert "127.0.0.1" not in body["database"]  # a public endpoint names no hosts


def test_healthz_is_exempt_from_the_ssl_redirect():
    """Production settings, in a fresh interpreter: plain-http /healthz is answered (a load balancer
    probes it without TLS) while every other page is redirected to https."""
    from spark.tests.helpers import _env, _run

    probe = (
        "import django; django.setup(); from django.test import Client; c = Client(); "
        "print(c.get('/healthz', HTTP_HOST='spark.example.com').status_code, "
        "c.get('/accounts/login/', HTTP_HOST='spark.example.com').status_code)"
    )
    result = _run(["-c", probe], _env(DATABASE_CONNECT_TIMEOUT="2"))
    assert result.returncode == 0, result.stderr
    healthz, login = result.stdout.split()
    assert healthz in ("200", "503") and login == "301"


def _start_redis(port: int, tmp_path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.ping()
            return proc
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail("redis-server did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=10)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_publishing_resumes_on_the_same_connections_after_the_broker_restarts(transactional_db, tmp_path, monkeypatch):
    # A broker of our own, on its own port, that this test can stop and start again.
    monkeypatch.setattr(spark_celery, "PUBLISH_BACKOFF_SECONDS", 0.2)
    port = _free_port()
    queued = redis.Redis(port=port, socket_connect_timeout=0.5)
    server = _start_redis(port, tmp_path)
    try:
        with broker_at(f"redis://127.0.0.1:{port}/0"):
            queue_on_commit(expire_offer, 1)
            assert queued.llen("celery") == 1

            _stop(server)
            started = time.monotonic()
            queue_on_commit(expire_offer, 2)  # logged and dropped, quickly
            assert time.monotonic() - started < FAST_SECONDS

            server = _start_redis(port, tmp_path)
            time.sleep(0.3)  # past the back-off
            queue_on_commit(expire_offer, 3)
            assert queued.llen("celery") == 1  # a fresh server: only the task sent after the restart
    finally:
        _stop(server)


@pytest.mark.django_db(transaction=True)
def test_auto_batching_started_with_the_broker_down_is_run_by_the_sweeper(client, store, associate):
    from orders.models import BatchingRun
    from orders.tasks import sweep_batching_runs

    start = timezone.now() + timedelta(hours=1)
    for _ in range(3):
        OrderFactory(store=store, window_start=start, window_end=start + timedelta(hours=2))
    window_from = timezone.localtime(start - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    window_to = timezone.localtime(start + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    client.force_login(associate)
    client.raise_request_exception = False
    with broker_down():
        res = client.post(f"/dashboard/s/{store.pk}/auto/", {"window_from": window_from, "window_to": window_to})
    run = BatchingRun.objects.get()
    assert res.status_code == 302 and res.url.endswith(f"/auto/{run.pk}/")
    assert run.status == BatchingRun.Status.QUEUED

    # A run queued moments ago may still be on its way to a worker: left alone.
    assert sweep_batching_runs() == 0
    # Its task never reached the broker: a minute on, the sweeper runs it.
    BatchingRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=2), time_limit_seconds=1)
    assert sweep_batching_runs() == 1
    run.refresh_from_db()
    assert run.status == BatchingRun.Status.DONE and run.batches_proposed >= 1
    assert sweep_batching_runs() == 0  # done runs are not run again
