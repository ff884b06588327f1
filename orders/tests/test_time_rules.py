"""The time rules of batches (orders/time_rules.py) and the services that follow them.

The clock is pinned at 22:10 in the store's zone (America/Chicago), 04:10 UTC the next day:
late in the Central day, when the local date and the UTC date differ (tests that read the clock
unpinned have broken at that hour before)."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from orders.batch_editing import (
    batch_create,
    batch_move_stop,
    batch_publish,
    batch_publish_now,
    batch_schedule_publish,
    batch_set_order,
    batches_publish_now,
)
from orders.cancellation import order_cancel
from orders.models import Batch, Order
from orders.tests.helpers import CENTRAL_NIGHT, order_in_window, stop_sequence
from orders.time_rules import (
    NeedsConfirmation,
    ReadyAtPassed,
    batches_at_risk,
    orders_window_started_unbatched,
    publish_now_plan,
    store_local_time,
)
from stores.tests.factories import StoreFactory


@pytest.fixture(autouse=True)
def night():
    with time_machine.travel(CENTRAL_NIGHT, tick=False):
        yield


def draft(store, *orders) -> Batch:
    return batch_create(store=store, orders=list(orders) or [order_in_window(store, starts_in=60)])


# --- "Publish all drafts now" -------------------------------------------------------------


def test_publish_all_leaves_a_draft_with_its_own_future_ready_at_scheduled(store):
    free, scheduled = draft(store), draft(store)
    ready_at = timezone.now() + timedelta(minutes=45)
    batch_schedule_publish(batch=scheduled, ready_at=ready_at)

    result = batches_publish_now(batches=[free, scheduled])

    assert [b.pk for b in result.published] == [free.pk]
    assert [b.pk for b in result.held] == [scheduled.pk]
    scheduled.refresh_from_db()
    assert scheduled.status == Batch.Status.DRAFT and scheduled.ready_at == ready_at
    # Asking again changes nothing: the published one stays published, the scheduled one waits.
    again = batches_publish_now(batches=[free, scheduled])
    assert again.published == [] and [b.pk for b in again.held] == [scheduled.pk]
    assert Batch.objects.get(pk=scheduled.pk).status == Batch.Status.DRAFT


def test_publish_all_publishes_a_scheduled_draft_early_only_when_confirmed(store):
    scheduled, other_scheduled = draft(store), draft(store)
    for b in (scheduled, other_scheduled):
        batch_schedule_publish(batch=b, ready_at=timezone.now() + timedelta(minutes=30))

    result = batches_publish_now(batches=[scheduled, other_scheduled], confirmed_ids=[scheduled.pk])

    assert [b.pk for b in result.published] == [scheduled.pk]
    assert Batch.objects.get(pk=scheduled.pk).status == Batch.Status.PUBLISHED
    assert Batch.objects.get(pk=other_scheduled.pk).status == Batch.Status.DRAFT


def test_publish_all_plan_sorts_drafts_into_now_scheduled_and_late(store):
    free = draft(store)
    scheduled = draft(store)
    batch_schedule_publish(batch=scheduled, ready_at=timezone.now() + timedelta(minutes=20))
    late_order = order_in_window(store, starts_in=-58)  # its window closes in 2 min: the drive is longer
    late = draft(store, late_order, order_in_window(store, starts_in=30))
    published = draft(store)
    batch_publish(batch=published)
    batches = list(Batch.objects.filter(pk__in=[free.pk, scheduled.pk, late.pk, published.pk]).order_by("pk"))

    plan = publish_now_plan(batches=batches, now=timezone.now())

    assert [b.pk for b in plan.now] == [free.pk]
    assert [b.pk for b in plan.scheduled] == [scheduled.pk]
    assert [(b.pk, [x.order.pk for x in orders]) for b, orders in plan.late] == [(late.pk, [late_order.pk])]
    assert [b.pk for b in plan.needs_confirmation] == [scheduled.pk, late.pk]


# --- "Ready at" -------------------------------------------------------------------------------


@pytest.mark.parametrize("minutes_ago", [0, 5, 60 * 20])
def test_a_ready_at_that_has_passed_is_refused_and_never_scheduled(store, minutes_ago):
    batch = draft(store)
    with pytest.raises(ReadyAtPassed) as asked:
        batch_schedule_publish(batch=batch, ready_at=timezone.now() - timedelta(minutes=minutes_ago))
    batch.refresh_from_db()
    assert batch.status == Batch.Status.DRAFT and batch.ready_at is None
    # The time the associate typed, read back in the store's zone (10:05 PM, not 4:05 AM UTC).
    shown = store_local_time(store, timezone.now() - timedelta(minutes=minutes_ago)).strftime("%-I:%M %p")
    assert asked.value.message.startswith(shown) and "Publish the batch now instead?" in asked.value.message


def test_a_ready_at_ahead_is_scheduled(store):
    batch = draft(store)
    ready_at = timezone.now() + timedelta(minutes=1)
    batch_schedule_publish(batch=batch, ready_at=ready_at)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.DRAFT and batch.ready_at == ready_at


# --- Moving stops -------------------------------------------------------------------------------


def _early_and_late(store):
    early = order_in_window(store, starts_in=10, external_id="EARLY")  # 22:20 - 23:20
    later = order_in_window(store, starts_in=120, external_id="LATER")  # 00:10 - 01:10, the next local day
    return early, later, draft(store, early, later)


def test_moving_a_stop_out_of_window_order_needs_confirmation(store):
    early, later, batch = _early_and_late(store)
    stop = batch.stops.get(order=later)

    with pytest.raises(NeedsConfirmation) as asked:
        batch_move_stop(stop=stop, offset=-1)

    assert stop_sequence(batch) == ["EARLY", "LATER"]  # nothing moved
    (late,) = asked.value.late
    assert late.order.pk == early.pk
    # The driver waits for LATER's window to open, then drives on: EARLY's window has closed.
    assert late.arrives_at > later.window_start > early.window_end
    assert list(asked.value.proposal) == [stop.pk, batch.stops.get(order=early).pk]

    batch_move_stop(stop=stop, offset=-1, confirmed=True)
    assert stop_sequence(batch) == ["LATER", "EARLY"]
    # Publishing it asks too, and says why: its pickup time is ahead, its stop order is the trouble.
    assert batch.pickup_by > timezone.now()
    with pytest.raises(NeedsConfirmation) as asked:
        batch_publish_now(batch=batch)
    assert asked.value.message.startswith("Leaving now, in this stop order")
    assert [x.order.pk for x in asked.value.late] == [early.pk]


def test_a_dragged_sequence_that_makes_orders_late_needs_confirmation(store):
    early, later, batch = _early_and_late(store)
    reversed_ids = list(batch.stops.order_by("-sequence").values_list("pk", flat=True))
    with pytest.raises(NeedsConfirmation):
        batch_set_order(batch=batch, stop_ids=reversed_ids)
    assert stop_sequence(batch) == ["EARLY", "LATER"]
    batch_set_order(batch=batch, stop_ids=reversed_ids, confirmed=True)
    assert stop_sequence(batch) == ["LATER", "EARLY"]


def test_moves_that_keep_every_window_are_not_questioned(store):
    # The same window for all: any order keeps it. Back into window order: nothing newly late.
    a, b = order_in_window(store, starts_in=30, external_id="A"), order_in_window(store, starts_in=30, external_id="B")
    batch = draft(store, a, b)
    batch_move_stop(stop=batch.stops.get(order=b), offset=-1)
    assert stop_sequence(batch) == ["B", "A"]
    early, later, batch = _early_and_late(store)
    batch_move_stop(stop=batch.stops.get(order=later), offset=-1, confirmed=True)
    batch_move_stop(stop=batch.stops.get(order=later), offset=1)
    assert stop_sequence(batch) == ["EARLY", "LATER"]


# --- Publishing a batch whose pickup time has passed ---------------------------------------------


def test_publishing_a_batch_whose_pickup_passed_needs_confirmation(store):
    closing = order_in_window(store, starts_in=-58, external_id="CLOSING")  # its window closes in 2 min
    fine = order_in_window(store, starts_in=30, external_id="FINE")
    batch = draft(store, closing, fine)
    assert batch.pickup_by < timezone.now()  # the drive to CLOSING takes longer than 2 min

    with pytest.raises(NeedsConfirmation) as asked:
        batch_publish_now(batch=batch)

    assert [x.order.external_id for x in asked.value.late] == ["CLOSING"]
    shown = store_local_time(store, batch.pickup_by).strftime("%-I:%M %p")
    assert asked.value.message.startswith(f"Its pickup time ({shown}) has passed")
    batch.refresh_from_db()
    assert batch.status == Batch.Status.DRAFT
    assert set(Order.objects.filter(pk__in=[closing.pk, fine.pk]).values_list("status", flat=True)) == {"batched"}

    batch_publish_now(batch=batch, confirmed=True)
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.PUBLISHED
    batch_publish_now(batch=batch)  # a repeat changes nothing and asks nothing
    assert batch.events.filter(to_status=Batch.Status.PUBLISHED).count() == 1


def test_publishing_a_batch_in_time_is_not_questioned(store):
    batch = draft(store, order_in_window(store, starts_in=30))
    batch_publish_now(batch=batch)
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.PUBLISHED


# --- Orders in their window with no batch -----------------------------------------------------------


def test_orders_whose_window_started_without_a_batch_are_flagged(store):
    waiting = order_in_window(store, starts_in=-25, external_id="WAITING")
    closed = order_in_window(store, starts_in=-90, external_id="CLOSED")  # window closed 30 min ago, still no batch
    order_in_window(store, starts_in=15, external_id="NOT-YET")
    draft(store, order_in_window(store, starts_in=-10, external_id="BATCHED"))
    order_cancel(order=order_in_window(store, starts_in=-10, external_id="CANCELLED"), reason="customer")
    order_in_window(StoreFactory(zone=store.zone), starts_in=-10, external_id="OTHER-STORE")

    flagged = orders_window_started_unbatched(store_id=store.pk, now=timezone.now())

    assert [o.external_id for o in flagged] == [closed.external_id, waiting.external_id]


# --- The at-risk box -------------------------------------------------------------------------------


def _published(store, *, pickup_in: int) -> Batch:
    batch = draft(store, order_in_window(store, starts_in=60, hours=3))
    batch_publish(batch=batch)
    Batch.objects.filter(pk=batch.pk).update(pickup_by=timezone.now() + timedelta(minutes=pickup_in))
    return batch


def test_at_risk_shows_real_lateness_in_the_zone(store):
    three_hours_late = _published(store, pickup_in=-180)
    late = _published(store, pickup_in=-12)
    soon = _published(store, pickup_in=8)
    _published(store, pickup_in=store.zone.at_risk_minutes + 5)  # not near yet

    rows = batches_at_risk(store_ids=[store.pk], now=timezone.now())

    assert [(x.batch.pk, x.label) for x in rows] == [
        (three_hours_late.pk, "180 min late"),
        (late.pk, "12 min late"),
        (soon.pk, "pickup in 8 min"),
    ]
    # 12 minutes before 22:10 in Chicago, whatever the server's clock zone.
    assert store_local_time(store, rows[1].pickup_by).strftime("%H:%M") == "21:58"
