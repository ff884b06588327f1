"""Settlement of a batch's pay (payments.settlement, payments.tasks): the final pay formula, once
per batch whatever runs it, pay adjustments with a reason the driver is emailed, the earnings
selectors, and the ops admin page. The worker killed mid-settlement is at the end (slow)."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import time_machine
from django.conf import settings as django_settings
from django.core import mail
from django.db import connection, transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dispatch.tests.factories import OfferFactory
from drivers.tests.factories import DriverFactory
from orders.delivery import batch_check_in
from orders.models import Batch, Stop
from orders.tests.factories import BatchFactory, OrderFactory, StopFactory
from orders.transitions import batch_set_status
from payments import driver_earnings, settlement, tasks
from payments.models import Account, BatchPay, Entry, LedgerTransaction, OfferPaySnapshot, PayAdjustment
from payments.selectors import driver_balance_cents, ledger_total_cents
from payments.services import ledger_post, offer_pay_snapshot_create, system_account, trip_pay_for_released_batch
from payments.tests.factories import PayPolicyFactory
from spark import geo
from spark.errors import DomainError
from spark.money import format_cents
from stores.tests.factories import StoreFactory, UserFactory, ZoneFactory
from tests.helpers import run_in_threads

pytestmark = pytest.mark.django_db

STORE = (Decimal("36.160000"), Decimal("-86.780000"))
POLICY = {
    "base_cents": 400,
    "per_stop_cents": 150,
    "per_mile_cents": 60,
    "heavy_order_cents": 200,
    "wait_grace_minutes": 10,
    "wait_cents_per_minute": 20,
    "incentive_step_cents": 100,
    "incentive_cap_cents": 800,
}


@pytest.fixture
def store(db):
    zone = ZoneFactory()
    PayPolicyFactory(zone=zone, **POLICY)
    return StoreFactory(zone=zone, lat=STORE[0], lng=STORE[1])


def _miles_cents(meters: int) -> int:
    """60 c a mile, rounded half up to the cent (what the offers' quotes do)."""
    return int((Decimal(meters) * 60 / Decimal("1609.344")).quantize(Decimal("1"), rounding="ROUND_HALF_UP"))


def _route(store, stops) -> int:
    points = [geo.Point.of(store.lat, store.lng)]
    points += [geo.Point.of(s.order.lat, s.order.lng) for s in stops]
    return geo.route_m([*points, points[0]])


def closed_batch(
    store,
    *,
    statuses=("delivered", "delivered"),
    heavy=(),
    step_km=1.0,
    snapshot_meters=None,
    incentive=0,
    wait_minutes=None,
    status=Batch.Status.COMPLETED,
    offer=True,
    driver=None,
):
    """A batch its driver finished: stops `statuses` north of the store `step_km` apart (the
    indexes in `heavy` are heavy orders), its accepted offer's snapshot priced when every stop was
    live and the route `snapshot_meters` long (default: as routed), check-in `wait_minutes` before
    the handoff."""
    driver = driver or DriverFactory(home_zone=store.zone)
    now = timezone.now()
    picked = now - timedelta(minutes=50)
    arrived = picked - timedelta(minutes=wait_minutes) if wait_minutes is not None else None
    batch = BatchFactory(
        store=store,
        status=Batch.Status.PICKED_UP,
        driver=driver,
        assigned_at=picked - timedelta(minutes=40),
        arrived_at_store_at=arrived,
        picked_up_at=picked,
        incentive_cents=incentive,
        stops_count=len(statuses),
    )
    stops = [
        StopFactory(
            batch=batch,
            sequence=i + 1,
            order=OrderFactory(
                store=store,
                lat=STORE[0] + Decimal(str(round(step_km * (i + 1) / 111.0, 6))),
                lng=STORE[1],
                is_heavy=i in heavy,
                tip_cents=300,
            ),
        )
        for i in range(len(statuses))
    ]
    batch.route_meters = snapshot_meters if snapshot_meters is not None else _route(store, stops)
    batch.save(update_fields=["route_meters"])
    snapshot = None
    if offer:
        accepted = OfferFactory(batch=batch, driver=driver, status="accepted")
        snapshot = offer_pay_snapshot_create(offer=accepted, incentive_cents=incentive)
    for stop, to in zip(stops, statuses, strict=True):  # what happened after the offer
        Stop.objects.filter(pk=stop.pk).update(status=to)
    Batch.objects.filter(pk=batch.pk).update(status=status, closed_at=now)
    batch.refresh_from_db()
    return batch, driver, snapshot, stops


def _entries(txn) -> dict[str, int]:
    return dict(txn.entries.values_list("account__kind", "amount_cents"))


# --- The formula -----------------------------------------------------------------------------


def test_the_snapshot_wins_when_less_was_driven(store):
    # Offered with 3 stops; one was taken out after the claim: the driver still gets what they were shown.
    batch, driver, snapshot, _ = closed_batch(store, statuses=("delivered", "delivered", "removed"))
    pay = settlement.settle_batch(batch_id=batch.pk)
    promised = snapshot.total_cents - snapshot.tip_cents
    assert pay.snapshot_id == snapshot.pk and pay.snapshot_cents == promised
    assert pay.stops_paid == 2 and pay.base_cents + pay.stops_cents + pay.miles_cents < promised
    assert pay.final_cents == promised
    txn = pay.ledger_transaction
    assert txn.idempotency_key == f"batch-pay:{batch.pk}" and txn.kind == "batch_pay" and txn.batch_id == batch.pk
    assert _entries(txn) == {Account.Kind.DRIVER_PAYABLE: promised, Account.Kind.PLATFORM_EXPENSE: -promised}
    assert driver_balance_cents(driver=driver) == promised


def test_the_recomputed_pay_wins_when_the_route_ran_long(store):
    # Priced on a 2 km route; the stops are 8 km apart: the miles driven are paid.
    batch, driver, snapshot, stops = closed_batch(store, step_km=8.0, snapshot_meters=2000)
    pay = settlement.settle_batch(batch_id=batch.pk)
    routed = _route(store, stops)
    assert pay.routed_meters == routed > 30_000
    assert pay.miles_cents == _miles_cents(routed)
    assert pay.final_cents == 400 + 2 * 150 + _miles_cents(routed) > snapshot.total_cents - snapshot.tip_cents
    assert driver_balance_cents(driver=driver) == pay.final_cents


def test_wait_at_the_store_past_the_grace_is_paid_per_whole_minute(store):
    batch, driver, snapshot, _ = closed_batch(store, wait_minutes=17.9)
    pay = settlement.settle_batch(batch_id=batch.pk)
    assert (pay.wait_minutes, pay.wait_cents) == (7, 7 * 20)
    assert pay.final_cents == snapshot.total_cents - snapshot.tip_cents + 140
    within, _, snap2, _ = closed_batch(store, wait_minutes=9.5)
    pay2 = settlement.settle_batch(batch_id=within.pk)
    assert (pay2.wait_minutes, pay2.wait_cents) == (0, 0) and pay2.final_cents == snap2.total_cents - snap2.tip_cents


def test_wait_pay_starts_at_the_geofenced_check_in_not_at_a_tap_from_afar(store):
    # given an assigned batch handed over at `picked_up_at`
    batch, driver, snapshot, _ = closed_batch(store, status=Batch.Status.ASSIGNED)
    far = (STORE[0] + Decimal("0.05"), STORE[1])  # 5.6 km north of the store
    # when the driver taps "I'm here" from afar 30 minutes before, it is refused
    with time_machine.travel(batch.picked_up_at - timedelta(minutes=30), tick=False):
        with pytest.raises(DomainError, match="You are 3.5 miles from the store"):
            batch_check_in(batch=batch, driver=driver, lat=far[0], lng=far[1])
    # and the check-in at the store 18 minutes before the handoff counts
    with time_machine.travel(batch.picked_up_at - timedelta(minutes=18), tick=False):
        batch_check_in(batch=batch, driver=driver, lat=STORE[0], lng=STORE[1])
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETED)
    pay = settlement.settle_batch(batch_id=batch.pk)
    # then the wait is 18 minutes, 8 past the 10-minute grace
    assert (pay.wait_minutes, pay.wait_cents) == (8, 8 * 20)
    assert pay.final_cents == snapshot.total_cents - snapshot.tip_cents + 160


def test_returned_and_failed_stops_are_paid_as_driven(store):
    # A returned batch: one delivered, one brought back, one failed; a heavy one among them. The
    # snapshot was priced on a short route, so the route driven decides.
    batch, driver, _, stops = closed_batch(
        store,
        statuses=("delivered", "returned", "failed", "removed"),
        heavy=(1,),
        step_km=5.0,
        snapshot_meters=1000,
        status=Batch.Status.RETURNED,
    )
    pay = settlement.settle_batch(batch_id=batch.pk)
    driven = _route(store, stops[:3])
    assert (pay.stops_paid, pay.heavy_paid, pay.routed_meters) == (3, 1, driven)
    assert pay.final_cents == 400 + 3 * 150 + 200 + _miles_cents(driven)


def test_the_incentive_is_included(store):
    batch, driver, snapshot, stops = closed_batch(store, incentive=300, step_km=8.0, snapshot_meters=2000)
    pay = settlement.settle_batch(batch_id=batch.pk)
    assert snapshot.incentive_cents == pay.incentive_cents == 300
    assert pay.final_cents == 400 + 2 * 150 + _miles_cents(_route(store, stops)) + 300
    # and the snapshot (incentive included) is the floor when it wins
    short, _, snap2, _ = closed_batch(store, incentive=300, statuses=("delivered", "removed"))
    pay2 = settlement.settle_batch(batch_id=short.pk)
    assert pay2.final_cents == snap2.total_cents - snap2.tip_cents and snap2.incentive_cents == 300


def test_a_batch_assigned_without_an_offer_is_paid_as_driven(store):
    batch, driver, _, stops = closed_batch(store, offer=False, incentive=5000)
    pay = settlement.settle_batch(batch_id=batch.pk)
    assert pay.snapshot_id is None and pay.snapshot_cents == 0
    assert pay.incentive_cents == 800  # capped by the zone
    assert pay.final_cents == 400 + 2 * 150 + _miles_cents(_route(store, stops)) + 800


# --- Once ----------------------------------------------------------------------------------


def test_settling_twice_posts_once(store):
    batch, driver, _, _ = closed_batch(store)
    first = settlement.settle_batch(batch_id=batch.pk)
    again = settlement.settle_batch(batch_id=batch.pk)
    assert again.pk == first.pk
    assert settlement.settle_unsettled() == 0
    assert LedgerTransaction.objects.filter(idempotency_key=f"batch-pay:{batch.pk}").count() == 1
    assert driver_balance_cents(driver=driver) == first.final_cents and ledger_total_cents() == 0


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_post_once(store):
    batch, driver, _, _ = closed_batch(store)
    results = run_in_threads(4, lambda i: settlement.settle_batch(batch_id=batch.pk))
    assert not any(isinstance(r, BaseException) for r in results), results
    assert BatchPay.objects.filter(batch=batch).count() == 1
    assert LedgerTransaction.objects.filter(kind="batch_pay").count() == 1
    pay = BatchPay.objects.get(batch=batch)
    assert driver_balance_cents(driver=driver) == pay.final_cents and ledger_total_cents() == 0


@pytest.mark.django_db(transaction=True)
def test_the_sweep_and_the_task_racing_post_once(store):
    batches = [closed_batch(store)[0] for _ in range(6)]

    def settle(i: int):
        if i == 0:
            return settlement.settle_unsettled()
        return [settlement.settle_batch(batch_id=b.pk) for b in batches]

    results = run_in_threads(3, settle)
    assert not any(isinstance(r, BaseException) for r in results), results
    assert BatchPay.objects.count() == 6 == LedgerTransaction.objects.filter(kind="batch_pay").count()
    assert ledger_total_cents() == 0


def test_only_completed_and_returned_batches_with_a_driver_settle(store):
    open_batch, driver, _, _ = closed_batch(store, status=Batch.Status.PICKED_UP)
    assert settlement.settle_batch(batch_id=open_batch.pk) is None
    # Taken back before pickup and paid the trip: back on offer, nothing more to settle.
    released, driver2, snapshot, _ = closed_batch(store, status=Batch.Status.AT_STORE)
    trip_pay_for_released_batch(batch=released, driver=driver2, offer=snapshot.offer)
    Batch.objects.filter(pk=released.pk).update(status=Batch.Status.PUBLISHED, driver=None)
    assert settlement.settle_batch(batch_id=released.pk) is None
    assert settlement.settle_unsettled() == 0
    assert not BatchPay.objects.exists()
    assert driver_balance_cents(driver=driver) == 0
    assert driver_balance_cents(driver=driver2) == snapshot.base_cents  # the trip, once


def test_the_sweep_settles_what_the_tasks_missed(store):
    missed = [closed_batch(store)[0] for _ in range(3)]
    settlement.settle_batch(batch_id=missed[0].pk)
    closed_batch(store, status=Batch.Status.PICKED_UP)
    assert tasks.sweep_unsettled_batches() == 2
    assert set(BatchPay.objects.values_list("batch_id", flat=True)) == {b.pk for b in missed}
    assert tasks.sweep_unsettled_batches() == 0
    assert "payments.tasks.sweep_unsettled_batches" in {
        e["task"] for e in django_settings.CELERY_BEAT_SCHEDULE.values()
    }


def test_settle_task_options():
    for task in (tasks.settle_batch, tasks.sweep_unsettled_batches):
        assert task.acks_late is True
        assert task.retry_backoff and task.autoretry_for


def _queued_settlements(r: redis.Redis) -> list[int]:
    """batch ids of the settle_batch messages waiting in the broker's queue (taken off it)."""
    found, keep = [], []
    while (raw := r.lpop("celery")) is not None:
        message = json.loads(raw)
        if message["headers"]["task"] == "payments.tasks.settle_batch":
            found.append(json.loads(base64.b64decode(message["body"]))[0][0])
        else:
            keep.append(raw)
    for raw in keep:
        r.rpush("celery", raw)
    return found


def test_completing_a_batch_queues_its_settlement_after_commit(store, django_capture_on_commit_callbacks):
    r = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    _queued_settlements(r)
    batch, driver, _, _ = closed_batch(store, status=Batch.Status.PICKED_UP)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batch_set_status(batch=batch, to=Batch.Status.COMPLETED, actor=driver.user)
    assert _queued_settlements(r) == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert _queued_settlements(r) == [batch.pk]
    assert tasks.settle_batch(batch.pk).startswith("settled")
    assert BatchPay.objects.filter(batch=batch).exists()


# --- Adjustments -----------------------------------------------------------------------------


@pytest.fixture
def ops(db):
    return UserFactory(email="ops@example.test", is_staff=True)


def test_an_adjustment_is_posted_and_the_driver_is_emailed_with_the_reason(store, ops, commit):
    batch, driver, _, _ = closed_batch(store)
    pay = settlement.settle_batch(batch_id=batch.pk)
    with commit():
        adjustment = settlement.pay_adjust(
            batch_pay=pay, amount_cents=250, reason="wait", note="<b>Store was slow</b>", actor=ops
        )
    txn = adjustment.ledger_transaction
    assert txn.idempotency_key == f"pay-adjustment:{adjustment.pk}" and txn.created_by == ops
    assert _entries(txn) == {Account.Kind.DRIVER_PAYABLE: 250, Account.Kind.PLATFORM_EXPENSE: -250}
    assert driver_balance_cents(driver=driver) == pay.final_cents + 250
    [email] = [m for m in mail.outbox if driver.user.email in m.to]
    assert f"batch {batch.pk}" in email.subject
    assert "Wait at the store not counted" in email.body and "+$2.50" in email.body
    html = email.alternatives[0][0]
    assert "&lt;b&gt;Store was slow&lt;/b&gt;" in html and "<b>Store was slow</b>" not in html
    adjustment.refresh_from_db()
    assert adjustment.driver_notified_at is not None


def test_the_adjustment_email_is_in_the_language_the_driver_uses_the_app_in(store, ops, commit):
    batch, driver, _, _ = closed_batch(store)
    driver.user.language = "es"
    driver.user.save(update_fields=["language"])
    pay = settlement.settle_batch(batch_id=batch.pk)
    with commit():
        settlement.pay_adjust(batch_pay=pay, amount_cents=250, reason="wait", actor=ops)
    [email] = [m for m in mail.outbox if driver.user.email in m.to]
    assert email.subject == f"Spark: cambió el pago del lote {batch.pk}"
    assert "Motivo: " in email.body and "+$2.50" in email.body and "Reason" not in email.body
    assert "Reason" not in email.alternatives[0][0] and 'lang="es"' in email.alternatives[0][0]


@pytest.mark.parametrize(
    ("amount", "reason", "code"),
    [(0, "wait", "bad_amount"), (100, "because", "bad_reason"), (-1, "correction", "below_snapshot")],
)
def test_a_refused_adjustment_writes_nothing(store, ops, amount, reason, code):
    batch, driver, _, _ = closed_batch(store)
    pay = settlement.settle_batch(batch_id=batch.pk)
    assert pay.final_cents == pay.snapshot_cents  # nothing above the floor to take
    before = (LedgerTransaction.objects.count(), PayAdjustment.objects.count(), driver_balance_cents(driver=driver))
    with pytest.raises(DomainError) as refused:
        settlement.pay_adjust(batch_pay=pay, amount_cents=amount, reason=reason, actor=ops)
    assert refused.value.code == code and refused.value.status_code == 400
    after = (LedgerTransaction.objects.count(), PayAdjustment.objects.count(), driver_balance_cents(driver=driver))
    assert after == before


def test_adjustments_never_take_the_total_below_the_snapshot(store, ops):
    batch, driver, _, _ = closed_batch(store, wait_minutes=20)  # 10 min past the grace: $2.00 over the floor
    pay = settlement.settle_batch(batch_id=batch.pk)
    assert pay.final_cents == pay.snapshot_cents + 200
    settlement.pay_adjust(batch_pay=pay, amount_cents=-150, reason="correction", actor=ops)
    with pytest.raises(DomainError):
        settlement.pay_adjust(batch_pay=pay, amount_cents=-51, reason="correction", actor=ops)
    settlement.pay_adjust(batch_pay=pay, amount_cents=-50, reason="correction", actor=ops)
    assert settlement.adjusted_total_cents(batch_pay=pay) == pay.snapshot_cents
    assert driver_balance_cents(driver=driver) == pay.snapshot_cents


# --- Earnings selectors ------------------------------------------------------------------------


def test_a_drivers_history_pending_batches_and_balance(store, ops):
    driver = DriverFactory(home_zone=store.zone)
    done, _, _, _ = closed_batch(store, driver=driver)
    pending, _, _, _ = closed_batch(store, driver=driver, status=Batch.Status.RETURNED)
    closed_batch(store, driver=driver, status=Batch.Status.CANCELLED)  # never paid as a batch
    returning, _, _, _ = closed_batch(store, driver=driver, status=Batch.Status.RETURNING)  # the active one
    pay = settlement.settle_batch(batch_id=done.pk)
    settlement.pay_adjust(batch_pay=pay, amount_cents=125, reason="route", note="detour", actor=ops)
    line = driver_earnings.batch_earnings(driver=driver, batch_id=done.pk)
    assert (line.paid.snapshot_cents, line.paid.final_cents) == (pay.snapshot_cents, pay.final_cents)
    assert [(a.amount_cents, a.reason, a.note) for a in line.adjustments] == [(125, "route", "detour")]
    assert line.pay_cents == pay.final_cents + 125
    summary = driver_earnings.earnings_summary(driver=driver)
    assert {(p.batch_id, p.status) for p in summary.pending_batches} == {
        (pending.pk, "returned"),
        (returning.pk, "returning"),
    }
    assert (summary.balance_cents, summary.earnings_cents, summary.tips_cents) == (pay.final_cents + 125,) * 2 + (0,)


# --- Ops admin -------------------------------------------------------------------------------


def test_ops_adjust_a_batch_pay_from_the_admin(client, settings, store):
    admin_user = UserFactory(email="ops-admin@example.test", is_staff=True, is_superuser=True)
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [admin_user.email]
    client.force_login(admin_user)
    batch, driver, _, _ = closed_batch(store)
    pay = settlement.settle_batch(batch_id=batch.pk)
    changelist = reverse("admin:payments_batchpay_changelist")
    assert client.get(changelist).status_code == 200
    page = client.get(reverse("admin:payments_batchpay_change", args=[pay.pk]))
    assert page.status_code == 200 and b"Wait pay" in page.content

    def adjust(**data):
        response = client.post(changelist, {"action": "adjust_pay", "_selected_action": [pay.pk], **data}, follow=True)
        return [str(m) for m in response.context["messages"]]

    assert "Give the amount" in adjust(amount="lots", reason="goodwill")[0]
    assert "below" in adjust(amount="-1.00", reason="goodwill")[0]
    assert "reason" in adjust(amount="3.00", reason="")[0].lower()
    assert not PayAdjustment.objects.exists()
    assert "1 adjusted by $3.00" in adjust(amount="3.00", reason="goodwill", note="thanks")[0]
    [adjustment] = PayAdjustment.objects.all()
    assert (adjustment.amount_cents, adjustment.reason, adjustment.created_by) == (300, "goodwill", admin_user)
    page = client.get(reverse("admin:payments_batchpay_change", args=[pay.pk]))
    assert b"thanks" in page.content
    listed = client.get(changelist).content.decode()
    assert format_cents(pay.final_cents + 300) in listed  # the total with the adjustment
    assert client.get(reverse("admin:payments_payadjustment_changelist")).status_code == 200


# --- Properties ------------------------------------------------------------------------------

_stop_status = st.sampled_from(["delivered", "delivered", "failed", "returned", "removed"])


@st.composite
def _closed(draw):
    n = draw(st.integers(min_value=1, max_value=4))
    statuses = [draw(_stop_status) for _ in range(n)]
    if all(s == "removed" for s in statuses):
        statuses[0] = "delivered"
    return {
        "statuses": tuple(statuses),
        "heavy": tuple(i for i in range(n) if draw(st.booleans())),
        "step_km": draw(st.floats(min_value=0.2, max_value=15.0)),
        "snapshot_meters": draw(st.integers(min_value=0, max_value=60_000)),
        "incentive": draw(st.integers(min_value=0, max_value=800)),
        "wait_minutes": draw(st.one_of(st.none(), st.floats(min_value=0, max_value=60))),
        "status": draw(st.sampled_from([Batch.Status.COMPLETED, Batch.Status.RETURNED])),
        "offer": draw(st.booleans()),
    }


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    batches=st.lists(_closed(), min_size=1, max_size=4),
    adjustments=st.lists(
        st.tuples(st.integers(min_value=0, max_value=3), st.integers(min_value=-2000, max_value=2000)), max_size=6
    ),
    settle_twice=st.booleans(),
)
def test_settlement_properties(store, batches, adjustments, settle_twice):
    """Every transaction balances; a driver's balance is their earnings plus adjustments; final
    pay is never below the snapshot, nor is the adjusted total."""
    ops = UserFactory(email="ops-prop@example.test")
    with transaction.atomic():  # each example rolled back: examples do not see each other
        driver = DriverFactory(home_zone=store.zone)
        built = [closed_batch(store, driver=driver, **spec) for spec in batches]
        for batch, _, _, _ in built if settle_twice else built[:1]:
            settlement.settle_batch(batch_id=batch.pk)
        settlement.settle_unsettled()
        pays = list(BatchPay.objects.filter(driver=driver))
        assert len(pays) == len(built)
        for pay, (_, _, snapshot, _) in zip(sorted(pays, key=lambda p: p.batch_id), built, strict=True):
            floor = snapshot.total_cents - snapshot.tip_cents if snapshot else 0
            assert pay.snapshot_cents == floor and pay.final_cents >= floor
        accepted = 0
        for index, amount in adjustments:
            pay = pays[index % len(pays)]
            try:
                settlement.pay_adjust(batch_pay=pay, amount_cents=amount, reason="correction", actor=ops)
                accepted += amount
            except DomainError:
                pass
            assert settlement.adjusted_total_cents(batch_pay=pay) >= pay.snapshot_cents
        assert driver_balance_cents(driver=driver) == sum(p.final_cents for p in pays) + accepted
        unbalanced = Entry.objects.values("transaction").annotate(s=Sum("amount_cents")).exclude(s=0)
        assert not unbalanced.exists() and ledger_total_cents() == 0
        transaction.set_rollback(True)


def test_the_balance_counts_every_flow_of_the_ledger(store, ops):
    """earnings + adjustments + tips - payouts - fees: a balance is the driver's payable entries."""
    batch, driver, _, _ = closed_batch(store, wait_minutes=30)
    pay = settlement.settle_batch(batch_id=batch.pk)
    settlement.pay_adjust(batch_pay=pay, amount_cents=-100, reason="correction", actor=ops)
    tips, _ = Account.objects.get_or_create(kind=Account.Kind.TIPS_PAYABLE, driver=driver, defaults={"name": "tips"})
    held = system_account(kind=Account.Kind.TIPS_HELD)
    ledger_post(idempotency_key="tip-credit:1", kind="tip_credited", entries=[(tips, 600), (held, -600)])
    payable = Account.objects.get(kind=Account.Kind.DRIVER_PAYABLE, driver=driver)
    clearing = system_account(kind=Account.Kind.PAYOUT_CLEARING)
    ledger_post(idempotency_key="payout:1", kind="payout", entries=[(payable, -1000), (clearing, 1000)])
    fees = system_account(kind=Account.Kind.FEES)
    ledger_post(idempotency_key="payout-fee:1", kind="payout_fee", entries=[(payable, -50), (fees, 50)])
    assert driver_balance_cents(driver=driver) == pay.final_cents - 100 + 600 - 1000 - 50
    assert ledger_total_cents() == 0


# --- A worker killed with SIGKILL in the middle of settlement (real Celery worker, Redis) ------

REPO_ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="") + (":" + quote(s["PASSWORD"], safe="") if s.get("PASSWORD") else "")
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{s.get('HOST') or '127.0.0.1'}{port}/{quote(s['NAME'], safe='')}"


class _Worker:
    """`celery -A spark worker` (threads pool) in its own process group, logging to a file."""

    def __init__(self, log: Path, env: dict[str, str]):
        self.log_path, self.env, self.proc = log, env, None

    def start(self) -> "_Worker":
        self._log = open(self.log_path, "ab")  # closed in stop()
        name = f"settletest-{uuid.uuid4().hex[:8]}@%h"
        cmd = [sys.executable, "-m", "celery", "-A", "spark", "worker", "--pool=threads", "--concurrency=2"]
        cmd += ["-l", "INFO", "-n", name, "--without-mingle", "--without-gossip"]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        assert self.wait_for(r"settletest-\w+@\S+ ready\.", 60), "the worker did not start"
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, pattern: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log()):
                return True
            assert self.proc.poll() is None, f"the worker exited:\n{self.log()[-3000:]}"
            time.sleep(0.1)
        return False

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pause_at", ["computed", "posted"])
def test_a_worker_killed_mid_settlement_and_the_task_run_again_posts_once(store, tmp_path, pause_at):
    """The worker pauses (test-only setting) after computing the pay, before posting it (the
    transaction dies with the process), or after posting, before acknowledging the message (it
    stays unacked in Redis). SIGKILL it; a new worker runs the task again: one BatchPay, one
    ledger posting."""
    from spark.celery import app

    broker_url = django_settings.CELERY_BROKER_URL
    r = redis.Redis.from_url(broker_url)
    r.flushdb()
    batch, driver, _, _ = closed_batch(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    env.update(
        DJANGO_SETTINGS_MODULE="spark.settings.test",
        DATABASE_URL=_database_url(),
        REDIS_URL=broker_url,
        PYTHONUNBUFFERED="1",
        SPARK_SETTLEMENT_TEST_PAUSE=f"{pause_at}:120",
    )
    workers = [_Worker(tmp_path / "worker-1.log", env)]
    try:
        first = workers[0].start()
        app.send_task("payments.tasks.settle_batch", args=[batch.pk])
        assert first.wait_for(f"settlement paused at {pause_at}", 60), first.log()[-3000:]
        first.kill()
        assert r.hlen("unacked") == 1  # acks_late: the message was never acknowledged
        settled = BatchPay.objects.filter(batch=batch).count()
        assert settled == (1 if pause_at == "posted" else 0)

        env["SPARK_SETTLEMENT_TEST_PAUSE"] = ""
        workers.append(_Worker(tmp_path / "worker-2.log", env))
        second = workers[1].start()
        # Redis gives the unacked message back only after visibility_timeout; the task is sent
        # again, as the beat sweep would settle it.
        app.send_task("payments.tasks.settle_batch", args=[batch.pk])
        app.send_task("payments.tasks.sweep_unsettled_batches")
        assert second.wait_for(r"sweep_unsettled_batches\[[^\]]+\] succeeded", 60), second.log()[-3000:]
        assert second.wait_for(r"settle_batch\[[^\]]+\] succeeded", 60), second.log()[-3000:]
    finally:
        for worker in workers:
            worker.stop()
        r.flushdb()
    pay = BatchPay.objects.get(batch=batch)
    assert LedgerTransaction.objects.filter(idempotency_key=f"batch-pay:{batch.pk}").count() == 1
    assert driver_balance_cents(driver=driver) == pay.final_cents and ledger_total_cents() == 0
    assert OfferPaySnapshot.objects.filter(offer__batch=batch).count() == 1
