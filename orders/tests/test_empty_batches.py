"""Issue #9, empty batches: a batch whose last live stop goes is withdrawn in the same
transaction (offers withdrawn and their drivers told, a driver who held it released and paid
for the trip, the store shown why), and a batch without a live stop is never published,
accepted, claimed, handed over or completed (the services refuse; a CHECK backs them)."""

from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
import time_machine
from celery import Task
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from dispatch import rounds
from dispatch import services as dispatch_services
from dispatch.models import Offer
from dispatch.tests.factories import OfferFactory
from drivers.tests.factories import DriverFactory
from orders.batch_editing import batch_create, batch_publish, batch_remove_stop
from orders.cancellation import order_cancel
from orders.delivery import batch_check_in, batch_complete, batch_handoff
from orders.models import Batch, Order, Stop
from orders.tests.factories import OrderFactory
from payments.models import LedgerTransaction
from payments.selectors import driver_balance_cents, ledger_total_cents
from payments.services import offer_pay_snapshot_create
from payments.tests.factories import PayPolicyFactory
from spark.errors import DomainError
from stores.tests.factories import StoreApiKeyFactory, StoreFactory, ZoneFactory

pytestmark = pytest.mark.django_db

KEY = "store-empty-batches-key-0123"


@pytest.fixture
def zone(db):
    z = ZoneFactory()
    z.claim_pool_seconds = 0  # board claims are first come in these tests
    z.save()
    PayPolicyFactory(
        zone=z,
        base_cents=400,
        incentive_step_cents=150,
        incentive_cap_cents=600,
        wait_grace_minutes=10,
        wait_cents_per_minute=20,
    )
    return z


@pytest.fixture
def store(zone):
    return StoreFactory(zone=zone)


@pytest.fixture
def api(store):
    StoreApiKeyFactory(store=store, raw_key=KEY)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {KEY}")
    return client


def published_batch(store, n=2) -> Batch:
    start = timezone.now() + timedelta(hours=1)
    orders = [
        OrderFactory(
            store=store,
            window_start=start,
            window_end=start + timedelta(hours=2),
            lat=Decimal("36.155000") + Decimal(i) / 1000,
        )
        for i in range(n)
    ]
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    batch.refresh_from_db()
    return batch


def offer_to(batch, driver, *, incentive=0) -> Offer:
    """A pending offer with its pay snapshot, as dispatch makes them."""
    offer = OfferFactory(batch=batch, driver=driver, round=1)
    offer_pay_snapshot_create(offer=offer, incentive_cents=incentive)
    return offer


def assigned_batch(store, driver, *, incentive=150, n=2) -> tuple[Batch, Offer]:
    batch = published_batch(store, n=n)
    offer = offer_to(batch, driver, incentive=incentive)
    dispatch_services.offer_accept(offer=offer, driver=driver)
    batch.refresh_from_db()
    return batch, offer


def orders_of(batch) -> list[Order]:
    return [s.order for s in batch.stops.select_related("order").order_by("sequence")]


def state(batch) -> tuple:
    """What a repeat must leave as it was."""
    batch.refresh_from_db()
    return (
        batch.status,
        batch.stops_count,
        batch.events.count(),
        sorted(Offer.objects.filter(batch=batch).values_list("pk", "status")),
        LedgerTransaction.objects.count(),
    )


def hollow(batch) -> None:
    """A path that forgot the rule: every stop gone, the batch left as it was (what the
    services must still refuse at every entry point)."""
    Stop.objects.filter(batch=batch).update(status=Stop.Status.REMOVED)


# --- withdrawn when the last order is cancelled ---------------------------------------


def test_cancelling_every_order_through_the_api_withdraws_the_published_batch(api, store, zone):
    # given a published batch of two orders with an offer out to a driver
    batch = published_batch(store)
    offer = offer_to(batch, DriverFactory(home_zone=zone))
    first, second = orders_of(batch)
    # when the store's system cancels the first order, the batch goes on with one stop
    assert (
        api.post(f"/api/v1/orders/{first.pk}/cancel/", {"reason": "customer changed mind"}, format="json").status_code
        == 200
    )
    batch.refresh_from_db()
    assert (batch.status, batch.stops_count) == (Batch.Status.PUBLISHED, 1)
    # and when it cancels the second, the batch is withdrawn in the same request
    res = api.post(f"/api/v1/orders/{second.pk}/cancel/", {"reason": "out of stock"}, format="json")
    assert res.status_code == 200 and res.json()["status"] == "cancelled"
    batch.refresh_from_db()
    assert (batch.status, batch.stops_count) == (Batch.Status.CANCELLED, 0)
    event = batch.events.get(to_status=Batch.Status.CANCELLED)
    assert second.external_id in event.reason and "out of stock" in event.reason
    offer.refresh_from_db()
    assert offer.status == Offer.Status.WITHDRAWN
    # then dispatch stops: no further round, no incentive raised
    assert rounds.dispatch_advance(batch_id=batch.pk) == "closed"
    assert Offer.objects.filter(batch=batch).count() == 1
    # and cancelling again changes nothing
    before = state(batch)
    assert api.post(f"/api/v1/orders/{second.pk}/cancel/", {}, format="json").status_code == 200
    assert state(batch) == before


def test_emptied_assigned_batch_releases_the_driver_and_pays_the_trip_once(store, zone):
    driver = DriverFactory(home_zone=zone)
    batch, offer = assigned_batch(store, driver, incentive=150)
    for order in orders_of(batch):
        order_cancel(order=order, reason="store out of stock")
    batch.refresh_from_db()
    offer.refresh_from_db()
    assert batch.status == Batch.Status.CANCELLED
    assert offer.status == Offer.Status.RELEASED
    # the trip is paid: the snapshot's base + incentive, no wait (they had not checked in)
    assert driver_balance_cents(driver=driver) == 400 + 150
    txn = LedgerTransaction.objects.get(idempotency_key=f"trip-pay:{offer.pk}")
    assert txn.batch_id == batch.pk and ledger_total_cents() == 0
    # the driver can take other work (no active batch left), and a repeat pays nothing more
    assert not Batch.objects.filter(driver=driver, status__in=Batch.ACTIVE_STATUSES).exists()
    before = state(batch)
    for order in orders_of(batch):
        order_cancel(order=order, reason="again")
    assert state(batch) == before
    assert driver_balance_cents(driver=driver) == 550


def test_emptied_batch_at_the_store_pays_the_wait_past_the_grace_period(store, zone):
    driver = DriverFactory(home_zone=zone)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        batch, offer = assigned_batch(store, driver, incentive=0, n=1)
        batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
        clock.shift(timedelta(minutes=10 + 7, seconds=40))  # 7 whole minutes past the grace
        order_cancel(order=orders_of(batch)[0], reason="customer cancelled")
    assert driver_balance_cents(driver=driver) == 400 + 7 * 20


def test_the_drivers_are_told_after_commit(store, zone, django_capture_on_commit_callbacks):
    holder = DriverFactory(home_zone=zone)
    batch, accepted = assigned_batch(store, holder)
    with mock.patch.object(Task, "apply_async", autospec=True) as apply_async:
        with django_capture_on_commit_callbacks(execute=True):
            for order in orders_of(batch):
                order_cancel(order=order, reason="cancelled")
    sent = [(c.args[0].name, c.kwargs["args"]) for c in apply_async.call_args_list]
    assert ("dispatch.push.send_offer_update_push_task", (accepted.pk,)) in sent


def test_pending_offers_of_a_withdrawn_batch_are_pushed_as_withdrawn(store, zone, django_capture_on_commit_callbacks):
    batch = published_batch(store, n=1)
    offer = offer_to(batch, DriverFactory(home_zone=zone))
    with mock.patch.object(Task, "apply_async", autospec=True) as apply_async:
        with django_capture_on_commit_callbacks(execute=True):
            order_cancel(order=orders_of(batch)[0], reason="cancelled")
    sent = [(c.args[0].name, c.kwargs["args"]) for c in apply_async.call_args_list]
    assert ("dispatch.push.send_offer_update_push_task", (offer.pk,)) in sent


def test_removing_the_last_stop_of_a_draft_withdraws_it(store):
    order = OrderFactory(store=store)
    batch = batch_create(store=store, orders=[order])
    batch_remove_stop(stop=batch.stops.get(), actor=None)
    batch.refresh_from_db()
    assert (batch.status, batch.stops_count) == (Batch.Status.CANCELLED, 0)
    assert "last order was taken out" in batch.events.get(to_status=Batch.Status.CANCELLED).reason
    order.refresh_from_db()
    assert order.status == Order.Status.RECEIVED  # back in the queue


def test_the_store_sees_the_withdrawn_batch_and_why(client, store, associate):
    batch = published_batch(store, n=1)
    order_cancel(order=orders_of(batch)[0], reason="customer cancelled")
    client.force_login(associate)
    page = client.get(f"/dashboard/s/{store.pk}/batches/{batch.pk}/").content.decode()
    assert "Cancelled" in page
    assert "Withdrawn: its last order" in page and "customer cancelled" in page
    assert "Driver pay offered" not in page  # no trip is left to pay for


# --- a batch without a live stop is refused at every entry point ---------------------


def test_publish_refuses_a_batch_without_stops(store):
    batch = batch_create(store=store, orders=[OrderFactory(store=store)])
    hollow(batch)
    with pytest.raises(DomainError) as err:
        batch_publish(batch=batch)
    assert err.value.code == "empty_batch"
    batch.refresh_from_db()
    assert batch.status == Batch.Status.DRAFT


def test_offer_accept_refuses_a_batch_without_stops(store, zone):
    batch = published_batch(store)
    driver = DriverFactory(home_zone=zone)
    offer = offer_to(batch, driver)
    hollow(batch)
    before = state(batch)
    with pytest.raises(DomainError) as err:
        dispatch_services.offer_accept(offer=offer, driver=driver)
    assert err.value.code == "empty_batch"
    assert state(batch) == before  # the offer is still pending, the batch published


def test_board_claim_refuses_a_batch_without_stops(store, zone):
    batch = published_batch(store)
    Batch.objects.filter(pk=batch.pk).update(
        dispatch_stage=Batch.Stage.BOARD, board_at=timezone.now() - timedelta(minutes=1)
    )
    hollow(batch)
    before = state(batch)
    with pytest.raises(DomainError) as err:
        rounds.board_claim(driver=DriverFactory(home_zone=zone, is_online=True), batch_id=batch.pk)
    assert err.value.code == "empty_batch"
    assert state(batch) == before


def test_board_claim_of_a_withdrawn_batch_says_so(store, zone):
    batch = published_batch(store, n=1)
    Batch.objects.filter(pk=batch.pk).update(dispatch_stage=Batch.Stage.BOARD, board_at=timezone.now())
    order_cancel(order=orders_of(batch)[0], reason="cancelled")
    with pytest.raises(DomainError) as err:
        rounds.board_claim(driver=DriverFactory(home_zone=zone, is_online=True), batch_id=batch.pk)
    assert err.value.code == "batch_withdrawn"


def test_handoff_refuses_a_batch_without_stops(store, zone):
    batch, _ = assigned_batch(store, DriverFactory(home_zone=zone))
    hollow(batch)
    before = state(batch)
    with pytest.raises(DomainError) as err:
        batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    assert err.value.code == "empty_batch"
    assert state(batch) == before


def test_complete_refuses_a_batch_without_stops(store, zone):
    driver = DriverFactory(home_zone=zone)
    batch, _ = assigned_batch(store, driver)
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    hollow(batch)
    before = state(batch)
    with pytest.raises(DomainError) as err:
        batch_complete(batch=batch, driver=driver)
    assert err.value.code == "empty_batch"
    assert state(batch) == before


def test_the_database_refuses_a_dispatched_batch_without_stops(store):
    batch = published_batch(store, n=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Batch.objects.filter(pk=batch.pk).update(stops_count=0)


# --- races on PostgreSQL -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_cancel_racing_board_claims_never_leaves_a_driver_with_an_empty_batch():
    from tests.helpers import run_in_threads

    zone = ZoneFactory(slug="race-zone", name="Race")
    zone.claim_pool_seconds = 0
    zone.save()
    PayPolicyFactory(zone=zone)
    store = StoreFactory(zone=zone)
    batch = published_batch(store, n=1)
    Batch.objects.filter(pk=batch.pk).update(
        dispatch_stage=Batch.Stage.BOARD, board_at=timezone.now() - timedelta(minutes=1)
    )
    order = orders_of(batch)[0]
    drivers = [DriverFactory(home_zone=zone) for _ in range(6)]

    def target(i: int):
        if i == 0:
            return order_cancel(order=Order.objects.get(pk=order.pk), reason="customer cancelled")
        return rounds.board_claim(driver=drivers[i - 1], batch_id=batch.pk)

    results = run_in_threads(len(drivers) + 1, target)
    assert isinstance(results[0], Order), results[0]  # the cancel always goes through
    batch.refresh_from_db()
    assert (batch.status, batch.stops_count) == (Batch.Status.CANCELLED, 0)
    assert not Batch.objects.filter(status__in=Batch.ACTIVE_STATUSES).exists()
    assert not Offer.objects.filter(batch=batch, status=Offer.Status.ACCEPTED).exists()
    released = list(Offer.objects.filter(batch=batch, status=Offer.Status.RELEASED))
    # a claim that landed before the cancel was released and paid, once
    assert len(released) <= 1
    for offer in released:
        assert LedgerTransaction.objects.filter(idempotency_key=f"trip-pay:{offer.pk}").count() == 1
    assert ledger_total_cents() == 0
