"""The one code path per status change: order, batch, stop and offer.

For each: an allowed transition moves the row and writes exactly one event (from, to, actor,
reason); a forbidden one raises InvalidTransition and changes nothing; repeating the same
transition is a no-op (changed=False, no second event).
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from dispatch.models import Offer
from dispatch.services import offer_set_status
from dispatch.tests.factories import OfferFactory
from orders.models import Batch, Order, Stop
from orders.tests.factories import BatchFactory, OrderFactory, StopFactory
from orders.transitions import batch_set_status, order_set_status, stop_set_status
from spark.errors import InvalidTransition

pytestmark = pytest.mark.django_db


def draft_with_a_stop() -> Batch:
    """A draft batch with one live stop, counted (a batch past draft needs one: a CHECK)."""
    batch = BatchFactory(stops_count=1)
    StopFactory(batch=batch)
    return batch


def _set(kind: str, obj, to: str, **kwargs):
    service = {
        "order": order_set_status,
        "batch": batch_set_status,
        "stop": stop_set_status,
        "offer": offer_set_status,
    }[kind]
    return service(**{kind: obj}, to=to, **kwargs)


# (entity, factory kwargs, allowed target, forbidden target)
CASES = [
    ("order", lambda: OrderFactory(), Order.Status.BATCHED, Order.Status.DELIVERED),
    ("batch", draft_with_a_stop, Batch.Status.PUBLISHED, Batch.Status.COMPLETED),
    ("stop", lambda: StopFactory(), Stop.Status.ARRIVED, Stop.Status.DELIVERED),
    ("offer", lambda: OfferFactory(), Offer.Status.DECLINED, "bogus"),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize(("kind", "make", "allowed", "forbidden"), CASES, ids=IDS)
def test_allowed_transition_writes_one_event(kind, make, allowed, forbidden, ops_user):
    # given an object in its initial status
    obj = make()
    initial = obj.status
    before = timezone.now()
    # when it moves along an allowed edge
    result = _set(kind, obj, allowed, actor=ops_user, reason="because")
    # then the row moved, the instance was refreshed, and exactly one event tells who/what/why
    assert result.changed is True
    assert (result.from_status, result.to_status) == (initial, allowed)
    assert obj.status == allowed
    assert type(obj).objects.get(pk=obj.pk).status == allowed
    assert obj.status_changed_at >= before
    [event] = obj.events.all()
    assert (event.from_status, event.to_status) == (initial, allowed)
    assert event.actor == ops_user
    assert event.reason == "because"


@pytest.mark.parametrize(("kind", "make", "allowed", "forbidden"), CASES, ids=IDS)
def test_forbidden_transition_changes_nothing(kind, make, allowed, forbidden):
    obj = make()
    initial, changed_at = obj.status, obj.status_changed_at
    with pytest.raises(InvalidTransition):
        _set(kind, obj, forbidden, reason="nope")
    obj.refresh_from_db()
    assert obj.status == initial
    assert obj.status_changed_at == changed_at
    assert obj.events.count() == 0


@pytest.mark.parametrize(("kind", "make", "allowed", "forbidden"), CASES, ids=IDS)
def test_repeating_a_transition_is_a_no_op(kind, make, allowed, forbidden, ops_user):
    obj = make()
    _set(kind, obj, allowed, actor=ops_user)
    changed_at = obj.status_changed_at
    # when the same change is asked again (a retry, a double tap)
    result = _set(kind, obj, allowed, actor=ops_user, reason="again")
    # then nothing changes and no second event is written
    assert result.changed is False
    assert obj.status == allowed
    obj.refresh_from_db()
    assert obj.status_changed_at == changed_at
    assert obj.events.count() == 1


def test_event_without_a_saved_actor_records_none():
    order = OrderFactory()
    order_set_status(order=order, to=Order.Status.CANCELLED, actor=None, reason="x" * 300)
    [event] = order.events.all()
    assert event.actor is None
    assert len(event.reason) == 255


# --- Order ---------------------------------------------------------------------------


def test_order_terminal_statuses_are_final():
    order = OrderFactory()
    for to in (Order.Status.BATCHED, Order.Status.READY, Order.Status.PICKED_UP, Order.Status.DELIVERED):
        assert order_set_status(order=order, to=to).changed
    for to in (Order.Status.CANCELLED, Order.Status.RECEIVED, Order.Status.UNDELIVERABLE):
        with pytest.raises(InvalidTransition):
            order_set_status(order=order, to=to)
    assert order.status == Order.Status.DELIVERED
    assert order.events.count() == 4


def test_order_cannot_be_cancelled_after_pickup():
    order = OrderFactory(status=Order.Status.PICKED_UP)
    with pytest.raises(InvalidTransition):
        order_set_status(order=order, to=Order.Status.CANCELLED)
    order.refresh_from_db()
    assert order.status == Order.Status.PICKED_UP


def test_order_updates_are_written_with_the_status():
    order = OrderFactory()
    order_set_status(order=order, to=Order.Status.CANCELLED, reason="customer", updates={"cancel_reason": "customer"})
    order.refresh_from_db()
    assert (order.status, order.cancel_reason) == (Order.Status.CANCELLED, "customer")


# --- Batch ---------------------------------------------------------------------------


def test_batch_lifecycle_stamps_each_timestamp(driver, ops_user):
    # given a draft batch
    batch = draft_with_a_stop()
    assert batch.published_at is None
    steps = [
        (Batch.Status.PUBLISHED, "published_at", {}),
        (Batch.Status.ASSIGNED, "assigned_at", {"driver": driver}),
        (Batch.Status.AT_STORE, "arrived_at_store_at", {}),
        (Batch.Status.PICKED_UP, "picked_up_at", {}),
        (Batch.Status.COMPLETED, "closed_at", {}),
    ]
    # when it goes all the way through
    for to, stamp, updates in steps:
        before = timezone.now()
        result = batch_set_status(batch=batch, to=to, actor=ops_user, updates=updates)
        # then every step stamps its own column and keeps the driver
        assert result.changed
        assert getattr(batch, stamp) is not None and getattr(batch, stamp) >= before
        if to != Batch.Status.PUBLISHED:
            assert batch.driver == driver
    events = list(batch.events.values_list("from_status", "to_status"))
    assert events == [
        ("draft", "published"),
        ("published", "assigned"),
        ("assigned", "at_store"),
        ("at_store", "picked_up"),
        ("picked_up", "completed"),
    ]


def test_batch_repeat_keeps_the_first_timestamp():
    batch = draft_with_a_stop()
    batch_set_status(batch=batch, to=Batch.Status.PUBLISHED)
    published_at = batch.published_at
    assert batch_set_status(batch=batch, to=Batch.Status.PUBLISHED).changed is False
    batch.refresh_from_db()
    assert batch.published_at == published_at


def test_batch_back_on_offer_drops_its_driver(driver):
    batch = BatchFactory(status=Batch.Status.PUBLISHED)
    batch_set_status(batch=batch, to=Batch.Status.ASSIGNED, updates={"driver": driver})
    result = batch_set_status(batch=batch, to=Batch.Status.PUBLISHED, reason="driver dropped it")
    assert result.changed
    assert batch.driver is None
    assert batch.events.last().reason == "driver dropped it"


def test_batch_cancel_stamps_closed_at():
    batch = BatchFactory(status=Batch.Status.PUBLISHED)
    batch_set_status(batch=batch, to=Batch.Status.CANCELLED, reason="store closed")
    assert batch.closed_at is not None
    with pytest.raises(InvalidTransition):
        batch_set_status(batch=batch, to=Batch.Status.PUBLISHED)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.CANCELLED


def test_batch_event_records_where(driver):
    batch = BatchFactory(status=Batch.Status.ASSIGNED, driver=driver)
    batch_set_status(batch=batch, to=Batch.Status.AT_STORE, lat=Decimal("36.150000"), lng=Decimal("-86.790000"))
    event = batch.events.get()
    assert (event.lat, event.lng) == (Decimal("36.150000"), Decimal("-86.790000"))


def test_batch_forbidden_transition_stamps_nothing():
    batch = BatchFactory()
    with pytest.raises(InvalidTransition):
        batch_set_status(batch=batch, to=Batch.Status.PICKED_UP)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.DRAFT
    assert batch.picked_up_at is None
    assert batch.events.count() == 0


# --- Stop ----------------------------------------------------------------------------


def test_stop_delivery_records_where_and_when(ops_user):
    stop = StopFactory()
    now = timezone.now()
    stop_set_status(
        stop=stop, to=Stop.Status.ARRIVED, lat=Decimal("36.1"), lng=Decimal("-86.7"), updates={"arrived_at": now}
    )
    stop_set_status(stop=stop, to=Stop.Status.DELIVERED, updates={"delivered_at": now + timedelta(minutes=2)})
    assert stop.arrived_at == now
    assert stop.delivered_at == now + timedelta(minutes=2)
    assert list(stop.events.values_list("to_status", flat=True)) == ["arrived", "delivered"]
    assert stop.events.first().lat == Decimal("36.1")
    with pytest.raises(InvalidTransition):
        stop_set_status(stop=stop, to=Stop.Status.FAILED)
