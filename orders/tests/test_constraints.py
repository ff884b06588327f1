"""Database constraints of orders, batches and stops (offers: dispatch/tests/test_constraints.py).

Every test bypasses the services (QuerySet.update() / objects.create()) and checks that the
database itself refuses the write, so a buggy or racing writer cannot break the invariant.
"""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from drivers.tests.factories import DriverFactory
from orders.models import Batch, Order, Stop
from orders.tests.factories import BatchFactory, OrderFactory, StopFactory
from stores.tests.factories import StoreFactory

pytestmark = pytest.mark.django_db

ACTIVE = [s.value for s in Batch.ACTIVE_STATUSES]


# --- Order ---------------------------------------------------------------------------


def test_order_external_id_unique_per_store():
    # given an order with external id X at a store
    order = OrderFactory(external_id="X-1")
    # when another order with X is written at the same store, then the database refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderFactory(store=order.store, external_id="X-1")
    assert Order.objects.filter(external_id="X-1").count() == 1


def test_order_same_external_id_at_another_store_is_fine():
    order = OrderFactory(external_id="X-1")
    OrderFactory(store=StoreFactory(), external_id="X-1")
    assert Order.objects.filter(external_id="X-1").count() == 2
    assert Order.objects.filter(store=order.store).count() == 1


def test_order_idempotency_key_unique_per_store():
    order = OrderFactory(idempotency_key="key-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderFactory(store=order.store, idempotency_key="key-1")
    # the same key at another store, and any number of orders without a key, are fine
    OrderFactory(store=StoreFactory(), idempotency_key="key-1")
    OrderFactory(store=order.store, idempotency_key=None)
    OrderFactory(store=order.store, idempotency_key=None)


def test_order_idempotency_key_unique_via_update():
    order = OrderFactory(idempotency_key="key-1")
    other = OrderFactory(store=order.store, idempotency_key="key-2")
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=other.pk).update(idempotency_key="key-1")


def test_order_tip_non_negative():
    order = OrderFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(tip_cents=-1)
    Order.objects.filter(pk=order.pk).update(tip_cents=0)


def test_order_weight_non_negative():
    order = OrderFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(weight_lb=-1)


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(minutes=-30)])
def test_order_window_end_after_start(delta):
    order = OrderFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(window_end=F("window_start") + delta)


def test_order_status_check_rejects_unknown_status():
    order = OrderFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(status="lost")
    order.refresh_from_db()
    assert order.status == Order.Status.RECEIVED


# --- Batch ---------------------------------------------------------------------------


def test_one_active_batch_per_driver():
    # given a driver holding an assigned batch
    driver = DriverFactory()
    BatchFactory(status=Batch.Status.ASSIGNED, driver=driver)
    other = BatchFactory(status=Batch.Status.PUBLISHED)
    # when a second batch is assigned to the same driver, then the database refuses it
    for status in ACTIVE:
        with pytest.raises(IntegrityError), transaction.atomic():
            Batch.objects.filter(pk=other.pk).update(status=status, driver=driver)
    other.refresh_from_db()
    assert other.status == Batch.Status.PUBLISHED
    assert other.driver_id is None


def test_closed_batches_do_not_count_as_active():
    driver = DriverFactory()
    BatchFactory(status=Batch.Status.COMPLETED, driver=driver)
    BatchFactory(status=Batch.Status.RETURNED, driver=driver)
    BatchFactory(status=Batch.Status.CANCELLED, driver=driver)
    BatchFactory(status=Batch.Status.ASSIGNED, driver=driver)
    assert Batch.objects.filter(driver=driver).count() == 4


@pytest.mark.parametrize("status", [*ACTIVE, "completed", "returned"])
def test_batch_needs_a_driver_once_assigned(status):
    batch = BatchFactory(status=Batch.Status.PUBLISHED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Batch.objects.filter(pk=batch.pk).update(status=status)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.PUBLISHED


def test_assigned_batch_cannot_lose_its_driver():
    batch = BatchFactory(status=Batch.Status.ASSIGNED, driver=DriverFactory())
    with pytest.raises(IntegrityError), transaction.atomic():
        Batch.objects.filter(pk=batch.pk).update(driver=None)


def test_batch_incentive_non_negative():
    batch = BatchFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Batch.objects.filter(pk=batch.pk).update(incentive_cents=-1)


def test_batch_status_check_rejects_unknown_status():
    batch = BatchFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Batch.objects.filter(pk=batch.pk).update(status="lost")


# --- Stop ----------------------------------------------------------------------------


def test_order_in_at_most_one_live_stop():
    # given an order on a live stop of one batch
    stop = StopFactory()
    other_batch = BatchFactory(store=stop.batch.store)
    # when it is put on a second batch, then the database refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        Stop.objects.create(batch=other_batch, order=stop.order, sequence=1)
    # once the first stop is removed, the order may join another batch
    Stop.objects.filter(pk=stop.pk).update(status=Stop.Status.REMOVED)
    Stop.objects.create(batch=other_batch, order=stop.order, sequence=1)
    assert Stop.objects.filter(order=stop.order).count() == 2


def test_order_cannot_be_revived_on_two_batches():
    stop = StopFactory()
    removed = Stop.objects.create(
        batch=BatchFactory(store=stop.batch.store), order=stop.order, sequence=1, status=Stop.Status.REMOVED
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Stop.objects.filter(pk=removed.pk).update(status=Stop.Status.PENDING)


def test_live_stop_sequence_unique_per_batch():
    stop = StopFactory(sequence=1)
    order = OrderFactory(store=stop.batch.store)
    with pytest.raises(IntegrityError), transaction.atomic():
        Stop.objects.create(batch=stop.batch, order=order, sequence=1)
    # a removed stop keeps its number without blocking it
    Stop.objects.filter(pk=stop.pk).update(status=Stop.Status.REMOVED)
    Stop.objects.create(batch=stop.batch, order=order, sequence=1)


def test_stop_sequence_positive():
    stop = StopFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Stop.objects.filter(pk=stop.pk).update(sequence=0)


def test_stop_status_check_rejects_unknown_status():
    stop = StopFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Stop.objects.filter(pk=stop.pk).update(status="lost")
