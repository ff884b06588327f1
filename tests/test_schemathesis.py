"""Schemathesis against our own OpenAPI schema (/api/schema/), in-process through the WSGI app.

Every operation of the schema is called as the caller it is for (an active driver with a
token, a store integration with an Api-Key), as the wrong one, and anonymously. Each response
must not be a 5xx, and must be documented: its status code, its content type and its body
(the one error body for 4xx). Requests are generated from the schema (valid and invalid ones);
path ids and some bodies are aimed at a seeded world (a store with a key, an active driver
with a slot seat, an offer and a batch in progress, another driver's batch, another store's
order) so the operations reach real objects, not only 404s.

Requests run in-process through spark.wsgi.application inside the test's transaction on the
PostgreSQL test database (on_commit work such as Celery tasks is not run: what is checked is
each HTTP answer). The run is deterministic (the same cases every run), so a red CI names a
real change; for a deeper local search:
    SPARK_FUZZ_RANDOM=1 SPARK_FUZZ_EXAMPLES=200 pytest tests/test_schemathesis.py
"""

import os
import zlib
from datetime import timedelta
from decimal import Decimal

import pytest
import schemathesis
from allauth.account.models import EmailAddress
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token

from dispatch import rounds
from dispatch.models import Offer
from drivers.tests.factories import DriverFactory, SlotClaimFactory
from orders.batch_editing import batch_create, batch_publish
from orders.tests.factories import OrderFactory
from orders.tests.helpers import make_batch
from payments.tests.factories import PayPolicyFactory
from spark.wsgi import application
from stores.tests.factories import DeliverySlotFactory, StoreApiKeyFactory, StoreFactory, ZoneFactory

pytestmark = pytest.mark.slow

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
]
EXAMPLES = int(os.environ.get("SPARK_FUZZ_EXAMPLES", "25"))  # generated cases per operation and caller
LIGHT_EXAMPLES = 5  # the wrong caller and nobody: every answer is a 401/403/404

DRIVER_PATHS = r"^/api/v1/(driver/|me/$|auth/token/$)"
STORE_PATHS = r"^/api/v1/(orders/|me/$)"
STORE_KEY = "schemathesis-store-key-0001-abcdefghijkl"
PASSWORD = "pw-for-tests-1"  # UserFactory's


def _load(*, phases: list[str], max_examples: int):
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    schema.config.phases.update(phases=phases)
    # Credentials are ours to send (below), not generated. DRF refuses NUL in every text field
    # ("Null characters are not allowed."), which the schema does not repeat for each one.
    schema.config.generation.update(
        max_examples=max_examples,
        deterministic=not os.environ.get("SPARK_FUZZ_RANDOM"),
        with_security_parameters=False,
        allow_x00=False,
    )
    schema.config.checks.update(included_check_names=CHECKS)
    return schema


# Examples and boundary values (coverage) plus generated cases for the caller an operation is for.
schema = _load(phases=["examples", "coverage", "fuzzing"], max_examples=EXAMPLES)
# A few generated cases for the others.
light = _load(phases=["fuzzing"], max_examples=LIGHT_EXAMPLES)

# Function-scoped fixtures (the seeded world) are shared by the cases of one operation: fine,
# the cases act on it one after another like a client would.
HYPOTHESIS = hypothesis_settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest.fixture
def in_process(db):
    """Requests run in this thread on the test's own connection, inside its transaction.
    Django closes "old" connections at the start and end of each request; Django's test client
    turns that off for the same reason, so we do too."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(in_process, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    zone = ZoneFactory()
    PayPolicyFactory(zone=zone)
    store = StoreFactory(zone=zone)
    StoreApiKeyFactory(store=store, raw_key=STORE_KEY)
    orders = [OrderFactory(store=store) for _ in range(3)]
    foreign_order = OrderFactory(store=StoreFactory(zone=zone))
    driver, other_driver = DriverFactory(home_zone=zone), DriverFactory(home_zone=zone)
    EmailAddress.objects.create(user=driver.user, email=driver.user.email, verified=True, primary=True)
    now = timezone.now()
    seat = DeliverySlotFactory(store=store, starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=2))
    SlotClaimFactory(driver=driver, slot=seat)
    later = DeliverySlotFactory(store=store, starts_at=now + timedelta(hours=3), ends_at=now + timedelta(hours=5))
    # A published batch offered to the driver (a slot holder gets the first offer).
    start = now + timedelta(hours=1)
    offered = batch_create(
        store=store, orders=[OrderFactory(store=store, window_start=start, window_end=start + timedelta(hours=2))]
    )
    batch_publish(batch=offered)
    rounds.dispatch_advance(batch_id=offered.pk)
    offer = Offer.objects.get(batch=offered, driver=driver)
    mine, my_stops = make_batch(store, driver)  # picked up: the stops can be worked
    theirs, their_stops = make_batch(store, other_driver)
    return {
        "driver": driver,
        "driver_token": Token.objects.create(user=driver.user).key,
        "store": store,
        "ids": {
            "id": [o.pk for o in orders] + [foreign_order.pk],
            "batch_id": [offered.pk, mine.pk, theirs.pk],
            "offer_id": [offer.pk],
            "slot_id": [seat.pk, later.pk],
            "stop_id": [s.pk for s in my_stops] + [their_stops[0].pk],
        },
    }


# --- aiming generated requests at the world ------------------------------------------------


def _aim(case, world) -> None:
    """Most generated path ids become ids of seeded objects (some stay as generated: unknown ids
    must be a 404). Some valid bodies get values that pass the rules a schema cannot state (in
    the driver's zone, near the store, a window in the coming hours, the caller's own store), so
    the operation gets past validation to the service."""
    for name, value in list((case.path_parameters or {}).items()):
        ids = world["ids"].get(name)
        if ids and isinstance(value, int) and not isinstance(value, bool) and value % 5:
            case.path_parameters[name] = ids[value % len(ids)]
    body = case.body
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    if negative or not isinstance(body, dict) or zlib.crc32(repr(body).encode()) % 3 == 0:
        return
    store = world["store"]
    for target in (body, body.get("address")):
        if isinstance(target, dict):
            for lat, lng in (("lat", "lng"), ("origin_lat", "origin_lng"), ("dest_lat", "dest_lng")):
                _near_store(target, lat, lng, store)
    if case.operation.path == "/api/v1/orders/":
        now = timezone.now()
        body["store"] = store.number
        body["delivery_window"] = {
            "start": (now + timedelta(hours=2)).isoformat(),
            "end": (now + timedelta(hours=3)).isoformat(),
        }
        if isinstance(body.get("customer"), dict):
            body["customer"]["phone"] = "+1 615 555 0100"
    if case.operation.path == "/api/v1/auth/token/":
        body.update(email=world["driver"].user.email, password=PASSWORD)


def _near_store(body: dict, lat: str, lng: str, store) -> None:
    """Move a generated point within about 200 m of the store, keeping its variety."""
    a, b = body.get(lat), body.get(lng)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b)):
        body[lat] = float(store.lat + Decimal(str(a)) / 90 * Decimal("0.0015"))
        body[lng] = float(store.lng + Decimal(str(b)) / 180 * Decimal("0.0015"))


def _call(case, headers: dict) -> None:
    cache.clear()  # rate limits: every case starts from none
    # A WSGI server sets REMOTE_ADDR; Werkzeug's test client does not (allauth's rate limits need it).
    case.call_and_validate(headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})


# --- the runs --------------------------------------------------------------------------------


@schema.include(path_regex=DRIVER_PATHS).parametrize()
@HYPOTHESIS
def test_driver_api_as_a_driver(case, world):
    _aim(case, world)
    _call(case, {"Authorization": f"Token {world['driver_token']}"})


@schema.include(path_regex=STORE_PATHS).parametrize()
@HYPOTHESIS
def test_store_api_as_a_store(case, world):
    _aim(case, world)
    _call(case, {"Authorization": f"Api-Key {STORE_KEY}"})


@light.exclude(path_regex=r"^/api/v1/(me/|auth/token/)$").parametrize()
@HYPOTHESIS
def test_each_operation_as_the_wrong_caller(case, world):
    _aim(case, world)
    is_store_operation = case.operation.path.startswith("/api/v1/orders/")
    wrong = f"Token {world['driver_token']}" if is_store_operation else f"Api-Key {STORE_KEY}"
    _call(case, {"Authorization": wrong})


@light.parametrize()
@HYPOTHESIS
def test_each_operation_anonymously(case, in_process):
    _call(case, {})
