"""payments.services.trip_pay_for_released_batch: what a driver is paid when a batch is taken
from them before pickup through no fault of the delivery (issues #9 and #11)."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from dispatch.tests.factories import OfferFactory
from drivers.tests.factories import DriverFactory
from orders.models import Batch
from orders.tests.factories import BatchFactory
from payments.models import Account, LedgerTransaction
from payments.selectors import driver_balance_cents, ledger_total_cents, trip_pay_cents
from payments.services import offer_pay_snapshot_create, trip_pay_for_released_batch
from payments.tests.factories import PayPolicyFactory
from stores.tests.factories import StoreFactory, ZoneFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(db):
    zone = ZoneFactory()
    PayPolicyFactory(
        zone=zone,
        base_cents=400,
        incentive_step_cents=150,
        incentive_cap_cents=300,
        wait_grace_minutes=10,
        wait_cents_per_minute=25,
    )
    return StoreFactory(zone=zone)


def taken(store, *, incentive=0, arrived_minutes_ago=None):
    driver = DriverFactory(home_zone=store.zone)
    now = timezone.now()
    arrived = now - timedelta(minutes=arrived_minutes_ago) if arrived_minutes_ago is not None else None
    status = Batch.Status.AT_STORE if arrived else Batch.Status.ASSIGNED
    batch = BatchFactory(
        store=store,
        status=status,
        driver=driver,
        assigned_at=now - timedelta(minutes=40),
        arrived_at_store_at=arrived,
        incentive_cents=incentive,
    )
    offer = OfferFactory(batch=batch, driver=driver)
    offer_pay_snapshot_create(offer=offer, incentive_cents=incentive)
    return batch, driver, offer


def test_base_plus_incentive_credited_to_the_driver_once(store):
    batch, driver, offer = taken(store, incentive=150)
    txn = trip_pay_for_released_batch(batch=batch, driver=driver, offer=offer, memo="every order cancelled")
    assert txn.idempotency_key == f"trip-pay:{offer.pk}" and txn.kind == "trip_pay" and txn.batch_id == batch.pk
    amounts = dict(txn.entries.values_list("account__kind", "amount_cents"))
    assert amounts == {Account.Kind.DRIVER_PAYABLE: 550, Account.Kind.PLATFORM_EXPENSE: -550}
    assert driver_balance_cents(driver=driver) == 550 == trip_pay_cents(offer=offer)
    assert "every order cancelled" in txn.memo
    # a second call (a retry, the sweep after ops) posts nothing more
    again = trip_pay_for_released_batch(batch=batch, driver=driver, offer=offer)
    assert again.pk == txn.pk
    assert LedgerTransaction.objects.count() == 1 and ledger_total_cents() == 0


def test_wait_pay_counts_whole_minutes_past_the_grace(store):
    with time_machine.travel(timezone.now(), tick=False):
        batch, driver, offer = taken(store, arrived_minutes_ago=10 + 4.9)
        trip_pay_for_released_batch(batch=batch, driver=driver, offer=offer)
    assert driver_balance_cents(driver=driver) == 400 + 4 * 25


def test_no_wait_pay_within_the_grace(store):
    with time_machine.travel(timezone.now(), tick=False):
        batch, driver, offer = taken(store, arrived_minutes_ago=9)
        trip_pay_for_released_batch(batch=batch, driver=driver, offer=offer)
    assert driver_balance_cents(driver=driver) == 400


def test_the_snapshot_is_the_floor_not_todays_policy(store):
    batch, driver, offer = taken(store, incentive=300)
    store.zone.pay_policy.base_cents = 100  # the policy changed since the offer was made
    store.zone.pay_policy.save()
    trip_pay_for_released_batch(batch=batch, driver=driver, offer=offer)
    assert driver_balance_cents(driver=driver) == 400 + 300


def test_without_an_offer_the_policy_and_the_batch_incentive_apply(store):
    batch, driver, _ = taken(store, incentive=150)
    txn = trip_pay_for_released_batch(batch=batch, driver=driver, offer=None)
    assert driver_balance_cents(driver=driver) == 550
    assert txn.idempotency_key.startswith(f"trip-pay:batch-{batch.pk}:driver-{driver.pk}:")
    assert trip_pay_for_released_batch(batch=batch, driver=driver, offer=None).pk == txn.pk


def test_nothing_to_pay_posts_nothing(store):
    store.zone.pay_policy.base_cents = 0
    store.zone.pay_policy.save()
    batch, driver, offer = taken(store)
    assert trip_pay_for_released_batch(batch=batch, driver=driver, offer=offer) is None
    assert LedgerTransaction.objects.count() == 0
