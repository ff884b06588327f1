"""Auto-batching runs turn a proposal into draft batches: every servable order ends up in one,
and only orders that cannot be served even alone are reported as left out."""

from datetime import timedelta

from django.utils import timezone

from orders.batch_editing import batch_create
from orders.batching_runs import _trip_create, batching_run_execute
from orders.models import BatchingRun, Order
from orders.tests.factories import OrderFactory


def _run(store, *, hours=6):
    now = timezone.now()
    return BatchingRun.objects.create(
        store=store, window_from=now, window_to=now + timedelta(hours=hours), time_limit_seconds=1
    )


def test_a_run_reports_only_the_orders_that_cannot_be_served_alone(store):
    start = timezone.now() + timedelta(hours=1)
    servable = [OrderFactory(store=store, window_start=start, window_end=start + timedelta(hours=1)) for _ in range(7)]
    too_big = OrderFactory(store=store, totes=store.batch_max_totes + 1, window_start=start)
    closes_too_soon = OrderFactory(
        store=store, window_start=timezone.now() - timedelta(hours=1), window_end=timezone.now() + timedelta(seconds=5)
    )
    run = _run(store)
    assert batching_run_execute(run_id=run.pk) is True
    run.refresh_from_db()
    assert run.status == "done", run.error
    assert sorted(run.unassigned_order_ids) == sorted([too_big.pk, closes_too_soon.pk])
    assert all(Order.objects.get(pk=o.pk).status == "batched" for o in servable)
    assert run.orders_considered == 9


def test_a_trip_with_an_order_batched_by_hand_meanwhile_places_the_others_alone(store):
    """The associate batched one order while the solver ran: the proposed trip cannot be made,
    so its other orders get a draft batch each rather than being dropped."""
    orders = [OrderFactory(store=store) for _ in range(3)]
    batch_create(store=store, orders=[Order.objects.get(pk=orders[1].pk)])  # by hand
    run = _run(store)
    assert _trip_create(run=run, orders=orders) == 2
    for o in (orders[0], orders[2]):
        stops = list(Order.objects.get(pk=o.pk).stops.select_related("batch"))
        assert [(s.batch.batching_run_id, s.batch.stops.count()) for s in stops] == [(run.pk, 1)]
    assert not run.batches.filter(stops__order=orders[1]).exists()
