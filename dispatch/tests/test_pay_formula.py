"""One pay formula: the feed's SQL ranking and the Python formula (payments.pay_breakdown, used
by quotes, snapshots and the feed's cards) give the same pay, so the SQL prefilter never cuts
a batch the exact pay would show."""

from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch import feed as dispatch_feed
from dispatch import feed_prefilter
from dispatch.feed import route_feed
from dispatch.feed_prefilter import OVERFETCH_MIN
from drivers.tests.helpers import LNG, batch_on_meridian, store_at, trip
from orders.batch_editing import batch_create, batch_refresh_route, batch_remove_stop
from orders.models import Batch, Order, Stop
from orders.tests.factories import BatchFactory, OrderFactory, StopFactory
from payments.models import PayPolicy
from payments.services import pay_quote
from stores.tests.factories import ZoneFactory

pytestmark = pytest.mark.django_db


def test_a_high_tip_batch_is_not_cut_from_the_feed_by_the_sql_prefilter():
    # More look-alike batches than the SQL step fetches for a feed of 3 (3 + OVERFETCH_MIN),
    # all on the same trip with the same base pay; the newest one carries a $40 tip and a heavy
    # order. Its exact pay per hour is the best of all, so it must lead the feed. (The old SQL
    # ranking ignored tips and heavy pay: the tied rows came back oldest first, the rich batch
    # was past the LIMIT and never reached the exact ranking.)
    store = store_at("36.120000")
    for _ in range(3 + OVERFETCH_MIN + 2):
        batch_on_meridian(store, "36.180000")
    rich = batch_on_meridian(store, "36.180000")
    Order.objects.filter(stops__batch=rich).update(tip_cents=4000, is_heavy=True)
    batch_refresh_route(batch=rich)  # as any change to a batched order's tip does
    feed = route_feed(trip(k=1000).driver, now=timezone.now(), limit=3)
    assert feed[0]["batch_id"] == rich.pk
    assert feed[0]["pay_total_cents"] > feed[1]["pay_total_cents"]


# --- Properties: the SQL formula is the Python one ----------------------------------------

policies = st.fixed_dictionaries(
    {
        "base_cents": st.integers(0, 2000),
        "per_stop_cents": st.integers(0, 1000),
        "per_mile_cents": st.integers(0, 500),
        "heavy_order_cents": st.integers(0, 1500),
        "incentive_cap_cents": st.integers(0, 3000),
    }
)
# One stop: (heavy, tip in cents, taken out of the batch)
stop_rows = st.lists(st.tuples(st.booleans(), st.integers(0, 20_000), st.booleans()), min_size=1, max_size=5).filter(
    lambda rows: any(not removed for _, _, removed in rows)
)
batches = st.fixed_dictionaries(
    {
        "stops": stop_rows,
        "route_meters": st.integers(0, 400_000),
        "incentive_cents": st.integers(0, 5000),
    }
)


def _policy(values: dict) -> PayPolicy:
    return PayPolicy.objects.update_or_create(zone=ZoneFactory(), defaults={**values, "incentive_step_cents": 0})[0]


def _make_batch(store, *, stops, route_meters: int = 0, incentive_cents: int = 0, last_lat: str = "36.180000"):
    """A published batch whose live stops are `stops` (heavy, tip, removed), all at one point."""
    live = sum(1 for *_, removed in stops if not removed)
    template = batch_on_meridian(store, last_lat)
    batch = BatchFactory(
        store=store,
        status=Batch.Status.PUBLISHED,
        route_meters=route_meters or template.route_meters,
        route_seconds=template.route_seconds,
        last_stop_lat=template.last_stop_lat,
        last_stop_lng=template.last_stop_lng,
        stops_count=live,
        stops_tip_cents=sum(tip for _, tip, removed in stops if not removed),
        stops_heavy=sum(1 for heavy, _, removed in stops if heavy and not removed),
        published_at=timezone.now(),
        incentive_cents=incentive_cents,
    )
    Batch.objects.filter(pk=template.pk).update(status=Batch.Status.CANCELLED)  # only the geometry was wanted
    sequence = 0
    for heavy, tip, removed in stops:
        sequence += 1
        StopFactory(
            batch=batch,
            sequence=sequence,
            status=Stop.Status.REMOVED if removed else Stop.Status.PENDING,
            order__lat=template.last_stop_lat,
            order__lng=LNG,
            order__is_heavy=heavy,
            order__tip_cents=tip,
        )
    return batch


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies, batch_list=st.lists(batches, min_size=1, max_size=4))
def test_the_sql_pay_is_the_pay_quote(policy, batch_list):
    with transaction.atomic():
        pay_policy = _policy(policy)
        store = store_at("36.120000")
        made = [_make_batch(store, **b) for b in batch_list]
        sql = dict(
            Batch.objects.filter(pk__in=[b.pk for b in made])
            .annotate(sql_pay=feed_prefilter.pay_sql(pay_policy))  # not "pay": Batch.pay is its BatchPay
            .values_list("pk", "sql_pay")
        )
        for batch in made:
            batch.refresh_from_db()
            quote = pay_quote(batch=batch, incentive_cents=batch.incentive_cents)
            assert sql[batch.pk] == quote["total_cents"]
            # the feed's own pricing of loaded rows is the same formula again, part by part (its
            # cards show the breakdown)
            stops = dispatch_feed._stops_of([batch.pk])[batch.pk]
            feed_pay = dispatch_feed._pay(
                pay_policy, route_meters=batch.route_meters, incentive_cents=batch.incentive_cents, stops=stops
            )
            assert {k: v for k, v in feed_pay.items() if k.endswith("_cents")} == {
                k: v for k, v in quote.items() if k.endswith("_cents")
            }
        transaction.set_rollback(True)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=policies,
    batch_list=st.lists(batches.map(lambda b: {**b, "route_meters": 0}), min_size=2, max_size=7),
    limit=st.integers(1, 4),
)
def test_the_feed_never_drops_a_batch_that_pays_enough_to_be_shown(policy, batch_list, limit):
    # Same trip and the same road for every batch, so only the pay tells them apart; the SQL
    # step fetches just limit + limit // 2 rows (no spare), so a SQL pay that disagreed with
    # the exact one would cut a batch the exact ranking shows.
    with transaction.atomic(), mock.patch.object(feed_prefilter, "OVERFETCH_MIN", 0):
        _policy(policy)
        store = store_at("36.120000")
        made = [_make_batch(store, **b) for b in batch_list]
        driver = trip(k=1000).driver
        pays = {}
        for batch in made:
            batch.refresh_from_db()
            pays[batch.pk] = pay_quote(batch=batch, incentive_cents=batch.incentive_cents)["total_cents"]
        expected = sorted(pays, key=lambda pk: (-pays[pk], pk))[:limit]
        feed = route_feed(driver, now=timezone.now(), limit=limit)
        assert [c["batch_id"] for c in feed] == expected
        assert [c["pay_total_cents"] for c in feed] == [pays[pk] for pk in expected]
        transaction.set_rollback(True)


def test_the_batch_row_keeps_its_live_stops_tips_and_heavy_orders(store):
    """The feed prices a batch from its row: every edit of its stops keeps the row true."""
    orders = [
        OrderFactory(store=store, tip_cents=500, is_heavy=True),
        OrderFactory(store=store, tip_cents=250, is_heavy=False),
        OrderFactory(store=store, tip_cents=1000, is_heavy=True),
    ]
    batch = batch_create(store=store, orders=orders)
    batch.refresh_from_db()
    assert (batch.stops_count, batch.stops_tip_cents, batch.stops_heavy) == (3, 1750, 2)
    batch_remove_stop(stop=batch.stops.get(order=orders[2]))
    batch.refresh_from_db()
    assert (batch.stops_count, batch.stops_tip_cents, batch.stops_heavy) == (2, 750, 1)
