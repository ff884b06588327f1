"""Timeouts run by a real Celery worker process on real Redis, against the pytest test database.

Issue 4 / DESIGN rule 3: offer expiry and the slot no-show release each run as a countdown task
and as a beat sweeper calling the same idempotent service. Here a real `celery worker` (threads
pool) consumes a dedicated Redis database while the test process publishes to it:
 - the countdown task expires an offer on time and the next dispatch round is offered;
 - with the countdown lost and no worker running, the sweeper alone does it, and running
   expiry again changes nothing;
 - a worker killed with SIGKILL while holding a countdown task: Redis does not redeliver it
   (visibility_timeout is 6 h), yet the sweeper in a new worker expires the offer, once;
 - a slot no-show is released by its countdown task and the seat reopens.

Rows must be committed to be seen by the worker, hence `django_db(transaction=True)`. No beat
runs: the test sends the sweeper task itself, as beat would every 15 s.
"""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlparse

import kombu.pools
import pytest
import redis
from django.db import connection, transaction
from django.utils import timezone

from dispatch import rounds, tasks
from dispatch import services as dispatch_services
from dispatch.models import Offer, OfferEvent
from drivers import slot_services
from drivers.models import Route, SlotClaim
from drivers.tests.factories import DriverFactory, SlotClaimFactory
from orders.batch_editing import batch_create, batch_publish
from orders.models import Batch
from orders.tests.factories import OrderFactory
from payments.tests.factories import PayPolicyFactory
from spark.celery import app
from stores.models import DeliverySlot
from stores.tests.factories import DeliverySlotFactory, StoreFactory, ZoneFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REPO_ROOT = Path(__file__).resolve().parent.parent
REDIS_DB = 11  # dedicated to these tests; FLUSHDB'd before and after each one
READY_TIMEOUT = 40
POLL = 0.1


def _redis_url() -> str:
    base = os.environ.get("SPARK_TEST_WORKER_REDIS", "redis://127.0.0.1:6379")
    return f"{base.rstrip('/')}/{REDIS_DB}"


def _test_database_url() -> str:
    """DATABASE_URL of the database this test uses (pytest-django's test_<name>)."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = s.get("HOST") or "127.0.0.1"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{quote(s['NAME'], safe='')}"


def _reset_producer_pool() -> None:
    """Drop the app's cached broker connections so the next publish uses the current broker URL.
    (kombu keeps its pools in a global registry keyed by connection; reset() closes and forgets them.)"""
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


class Worker:
    """One `celery -A spark worker` process in its own process group, logging to a file."""

    def __init__(self, log_path: Path, env: dict[str, str]):
        self.log_path = log_path
        self.env = env
        self.name = f"sparktest-{uuid.uuid4().hex[:8]}@%h"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> "Worker":
        self._log = open(self.log_path, "ab")  # closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "spark",
                "worker",
                "--pool=threads",
                "--concurrency=4",
                "-l",
                "INFO",
                "-n",
                self.name,
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the worker exited with {self.proc.returncode} before it was ready")
            if re.search(r"sparktest-\w+@\S+ ready\.", self.log()):
                return self
            time.sleep(POLL)
        raise AssertionError(f"the worker was not ready within {READY_TIMEOUT} s")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match | None:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log())
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(POLL)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the worker's process group and wait for it to be gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), SIGKILL if it hangs. Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.kill(signal.SIGTERM)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


class Broker:
    """The dedicated Redis database, shared by the test process (publisher) and the workers."""

    def __init__(self, url: str):
        self.url = url
        self.redis = redis.Redis.from_url(url)

    def flush(self) -> None:
        self.redis.flushdb()

    def queued(self) -> int:
        return self.redis.llen("celery")

    def unacked(self) -> list[tuple[str, list]]:
        """(task name, args) of each message a worker took and has not acknowledged (kombu keeps
        them in the `unacked` hash until the ack, or redelivers them after visibility_timeout)."""
        held = []
        for raw in self.redis.hvals("unacked"):
            message = json.loads(raw)[0]
            body = json.loads(base64.b64decode(message["body"]))
            held.append((message["headers"]["task"], body[0]))
        return sorted(held)


@pytest.fixture
def broker() -> Iterator[Broker]:
    """Point the test process's Celery app at the dedicated Redis db; restore it afterwards."""
    url = _redis_url()
    b = Broker(url)
    try:
        b.redis.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {url}: {exc}")
    b.flush()
    # The app reads its settings from Django with namespace CELERY: the override must use that key
    # (setting app.conf.broker_url is silently shadowed by CELERY_BROKER_URL).
    key = f"{app.namespace}_BROKER_URL" if app.namespace else "broker_url"
    missing = object()
    previous = app.conf.changes.get(key, missing)
    _reset_producer_pool()
    app.conf[key] = url
    # Compare where the connection points, not its URI text (kombu 5.7 writes an empty password as ":**@").
    conn, wanted = app.connection_for_write(), urlparse(url)
    assert (conn.hostname, conn.port, str(conn.virtual_host)) == (
        wanted.hostname,
        wanted.port,
        wanted.path.lstrip("/"),
    ), conn
    try:
        yield b
    finally:
        _reset_producer_pool()
        if previous is missing:
            app.conf.changes.pop(key, None)
        else:
            app.conf[key] = previous
        b.flush()


@pytest.fixture
def start_worker(transactional_db, broker, tmp_path) -> Iterator[Callable[[], Worker]]:
    """start_worker() -> a ready Worker on the test database and the dedicated Redis db. Every
    worker is stopped before the test database is flushed; logs are printed when a test fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    env.update(
        DJANGO_SETTINGS_MODULE="spark.settings.test",
        DATABASE_URL=_test_database_url(),
        REDIS_URL=broker.url,
        PYTHONUNBUFFERED="1",
    )
    workers: list[Worker] = []

    def start() -> Worker:
        worker = Worker(tmp_path / f"worker-{len(workers) + 1}.log", env)
        workers.append(worker)
        return worker.start()

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()
        # Captured output: pytest shows it only for a failed test.
        for worker in workers:
            tail = "\n".join(worker.log().splitlines()[-60:])
            print(f"---- last lines of {worker.log_path.name} ----\n{tail}")


# --- World ---------------------------------------------------------------------------


def _zone(*, ttl: int = 5, grace_minutes: int = 15):
    zone = ZoneFactory()
    zone.offer_ttl_seconds, zone.route_round_size, zone.route_rounds = ttl, 1, 1
    zone.no_show_grace_minutes = grace_minutes
    zone.save()
    PayPolicyFactory(zone=zone)
    return zone


def _slot_holder(store, zone):
    slot = DeliverySlotFactory(
        store=store, starts_at=timezone.now() - timedelta(minutes=10), ends_at=timezone.now() + timedelta(hours=2)
    )
    return SlotClaimFactory(driver=DriverFactory(home_zone=zone), slot=slot).driver


def _online_driver(store, zone):
    driver = DriverFactory(home_zone=zone, is_online=True, online_since=timezone.now() - timedelta(minutes=20))
    Route.objects.create(
        driver=driver,
        zone=zone,
        mode=Route.Mode.ONLINE,
        origin_lat=store.lat + Decimal("0.009"),
        origin_lng=store.lng,
        max_detour_meters=15000,
    )
    return driver


def _published_batch(store):
    start = timezone.now() + timedelta(hours=1)
    orders = [
        OrderFactory(
            store=store,
            lat=Decimal("36.155000") + Decimal(i) / 1000,
            lng=Decimal("-86.785000"),
            window_start=start,
            window_end=start + timedelta(hours=2),
            tip_cents=300,
        )
        for i in range(2)
    ]
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    return batch


def _world(*, ttl: int = 5):
    """A published batch with one slot holder (round 1) and one online route-matched driver (round 2)."""
    zone = _zone(ttl=ttl)
    store = StoreFactory(zone=zone)
    holder, rider = _slot_holder(store, zone), _online_driver(store, zone)
    return _published_batch(store), holder, rider


def _start_dispatch(batch) -> Offer:
    """Round 1 as the publish task runs it: the slot offer, its countdown queued on commit."""
    with transaction.atomic():
        assert rounds.dispatch_advance(batch_id=batch.pk) == Batch.Stage.SLOT
    return Offer.objects.get(batch=batch, kind=Offer.Kind.SLOT)


def _wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)


def _expiries(offer: Offer) -> int:
    return OfferEvent.objects.filter(offer=offer, to_status=Offer.Status.EXPIRED).count()


def _route_offer_pending(batch, driver) -> bool:
    return Offer.objects.filter(batch=batch, driver=driver, kind=Offer.Kind.ROUTE, status=Offer.Status.PENDING).exists()


# --- Tests ---------------------------------------------------------------------------


def test_countdown_task_expires_the_offer_on_time_and_the_next_round_is_offered(broker, start_worker):
    batch, holder, rider = _world(ttl=5)
    broker.flush()  # the publish task: this test starts dispatch itself
    worker = start_worker()

    offer = _start_dispatch(batch)
    assert offer.driver_id == holder.pk

    def done() -> bool:
        offer.refresh_from_db()
        return offer.status == Offer.Status.EXPIRED and _route_offer_pending(batch, rider)

    assert _wait_until(done, timeout=25), f"slot offer {offer.status}; offers: {list(batch.offers.values())}"
    lateness = (offer.status_changed_at - offer.expires_at).total_seconds()
    print(f"countdown expiry lateness: {lateness:.3f} s")
    assert 0 <= lateness < 3, f"expired {lateness:.2f} s after its deadline: not the countdown task"
    assert _expiries(offer) == 1
    assert worker.wait_for_log(r"Task dispatch\.tasks\.expire_offer\[[^\]]+\] succeeded in [\d.]+s: True", 5)
    # The expiry queued the next round; the worker ran it: the route-matched driver, round 2.
    assert worker.wait_for_log(r"Task dispatch\.tasks\.advance_dispatch\[[^\]]+\] succeeded in [\d.]+s: 'route'", 5)
    route_offer = Offer.objects.get(batch=batch, driver=rider)
    assert route_offer.round == 2 and route_offer.expires_at > offer.expires_at


def test_sweeper_alone_expires_a_due_offer_whose_countdown_was_lost_and_twice_changes_nothing(broker, start_worker):
    batch, holder, rider = _world(ttl=5)
    broker.flush()
    offer = _start_dispatch(batch)  # no worker running
    assert broker.queued() >= 1, "the countdown task did not reach the dedicated Redis db"
    broker.flush()  # ... and is lost (Redis restarted with no persistence)
    now = timezone.now()
    Offer.objects.filter(pk=offer.pk).update(
        created_at=now - timedelta(minutes=1), expires_at=now - timedelta(seconds=1)
    )

    worker = start_worker()
    assert not _wait_until(lambda: Offer.objects.get(pk=offer.pk).status != Offer.Status.PENDING, timeout=1)
    tasks.sweep_expired_offers.delay()  # what beat sends every 15 s

    def done() -> bool:
        offer.refresh_from_db()
        return offer.status == Offer.Status.EXPIRED and _route_offer_pending(batch, rider)

    assert _wait_until(done, timeout=15), f"slot offer {offer.status}; offers: {list(batch.offers.values())}"
    assert worker.wait_for_log(r"Task dispatch\.tasks\.sweep_expired_offers\[[^\]]+\] succeeded in [\d.]+s: 1\b", 5)
    assert "dispatch.tasks.expire_offer[" not in worker.log().split("sweep_expired_offers", 1)[0]
    changed_at = offer.status_changed_at

    # Expiry again, every way it can run: the service, the sweeper here, both tasks in the worker.
    assert dispatch_services.offer_expire(offer_id=offer.pk) is False
    tasks.sweep_expired_offers()
    tasks.expire_offer.delay(offer.pk)
    tasks.sweep_expired_offers.delay()
    assert worker.wait_for_log(r"Task dispatch\.tasks\.expire_offer\[[^\]]+\] succeeded in [\d.]+s: False", 10)
    assert worker.wait_for_log(
        r"(?s)sweep_expired_offers\[[^\]]+\] succeeded.*sweep_expired_offers\[[^\]]+\] succeeded", 10
    )
    offer.refresh_from_db()
    assert offer.status == Offer.Status.EXPIRED and offer.status_changed_at == changed_at
    assert _expiries(offer) == 1
    assert Offer.objects.filter(batch=batch, driver=rider).count() == 1  # no second round 2 offer


def test_a_killed_worker_loses_its_countdown_task_and_the_sweeper_in_a_new_worker_expires_the_offer(
    broker, start_worker
):
    batch, holder, rider = _world(ttl=6)
    broker.flush()
    first = start_worker()
    offer = _start_dispatch(batch)
    # The first worker holds the countdown task (reserved, not acknowledged) until the deadline.
    held = [("dispatch.tasks.expire_offer", [offer.pk])]
    assert first.wait_for_log(r"Task dispatch\.tasks\.expire_offer\[[^\]]+\] received", 5)
    assert first.wait_for_log(r"Task dispatch\.push\.send_offer_push_task\[[^\]]+\] succeeded", 5)
    assert _wait_until(lambda: broker.unacked() == held and broker.queued() == 0, timeout=5), broker.unacked()
    first.kill(signal.SIGKILL)  # kill -9: no warm shutdown, nothing put back into the queue
    assert broker.unacked() == held and broker.queued() == 0

    second = start_worker()
    # Past the deadline (and the time the countdown task would have taken), still pending:
    # Redis redelivers the dead worker's task only after visibility_timeout (6 h).
    wait = (offer.expires_at - timezone.now()).total_seconds() + 2
    time.sleep(max(0.0, wait))
    offer.refresh_from_db()
    assert offer.status == Offer.Status.PENDING, "the dead worker's countdown task was redelivered"
    assert "dispatch.tasks.expire_offer[" not in second.log()
    assert broker.unacked() == held  # still parked for the dead worker

    tasks.sweep_expired_offers.delay()  # the beat sweeper's next run

    def done() -> bool:
        offer.refresh_from_db()
        return offer.status == Offer.Status.EXPIRED and _route_offer_pending(batch, rider)

    assert _wait_until(done, timeout=15), f"slot offer {offer.status}; offers: {list(batch.offers.values())}"
    assert second.wait_for_log(r"Task dispatch\.tasks\.sweep_expired_offers\[[^\]]+\] succeeded in [\d.]+s: 1\b", 5)
    assert _expiries(offer) == 1


def test_a_real_worker_releases_a_slot_no_show_and_the_seat_reopens(broker, start_worker):
    zone = _zone(grace_minutes=0)  # check in by the start: the release is due when the slot starts
    store = StoreFactory(zone=zone)
    driver = DriverFactory(home_zone=zone)
    worker = start_worker()
    slot = DeliverySlotFactory(
        store=store,
        starts_at=timezone.now() + timedelta(seconds=3),
        ends_at=timezone.now() + timedelta(hours=2),
        capacity=4,
    )

    claim = slot_services.slot_claim(driver=driver, slot=slot)
    assert claim.release_at == slot.starts_at
    assert DeliverySlot.objects.get(pk=slot.pk).claimed == 1

    def released() -> bool:
        claim.refresh_from_db()
        return claim.status == SlotClaim.Status.RELEASED

    assert _wait_until(released, timeout=20), f"claim still {claim.status}"
    lateness = (timezone.now() - claim.release_at).total_seconds()
    print(f"no-show released within {lateness:.2f} s of its deadline")
    assert lateness < 3
    assert _wait_until(lambda: DeliverySlot.objects.get(pk=slot.pk).claimed == 0, timeout=2)
    found = worker.wait_for_log(r"Task drivers\.tasks\.release_no_show\[[^\]]+\] succeeded in [\d.]+s: True", 5)
    assert found, "the countdown task did not release it"
    # Running the release again (task and sweeper) changes nothing.
    assert slot_services.slot_release_no_show(claim_id=claim.pk) is False
    assert slot_services.slot_release_due() == 0
    assert DeliverySlot.objects.get(pk=slot.pk).claimed == 0
