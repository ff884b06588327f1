"""Demo money history: driver1 and driver2 have delivered a few batches, been paid for them, had
a weekly payout and (driver1) an instant cash-out, so their Earnings screens, statements and
payout history have something true to show and ops can trace a batch's money in the admin.

Everything goes through the services the app itself uses, in the order it happens:
the board claim (dispatch.rounds.board_claim, an accepted offer with its pay snapshot), check-in,
the handoff with the pickup code, each stop delivered with a JPEG photo, the batch completed
(orders.delivery), its pay settled (payments.settlement.settle_batch), the zone's weekly payout
run (payments.payouts.weekly_payouts_run, given the time of the latest run due as `now`) and a
cash-out (cashout_request), each payout then sent as its task would (payout_send; the sandbox
backend moves money in the ledger only). The tips' sweep runs as the beat runs it
(tips_settle_due at the real time): a tip is credited when its adjust window has really closed,
so on a fresh seed the tips show as "not credited yet" with the time they will be.

Nothing is back-dated: the services stamp the real time, so the history happened "just now"
(the time of the first seed). Money only moves in the sandbox (no Stripe key): with a real
payment backend the history is skipped, with a warning.

Idempotent: the history orders have fixed external ids; once they exist nothing is made again.
Deterministic: their contents come from their own fixed seed.
"""

import io
import logging
import random
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from dispatch import rounds
from drivers.models import Driver
from drivers.services import driver_go_offline, driver_go_online
from orders.batch_editing import batch_create, batch_publish
from orders.delivery import batch_check_in, batch_complete, batch_handoff, stop_arrive, stop_deliver
from orders.models import Batch, Order, Stop
from payments import payouts, settlement, tips
from spark.demo.bookkeeping import Counter
from spark.demo.metros import ZONES
from spark.demo.orders import OrderPlan, plan_order, seed_orders
from spark.demo.people import Staff
from spark.errors import DomainError
from stores.models import Store

logger = logging.getLogger(__name__)

HISTORY_SEED = 20261206
PREFIX = "DEMO-HISTORY"
CASHOUT_KEY = "demo-history"
MAX_POOL_WAIT_SECONDS = 10  # the zones' claim_pool_seconds is 3 unless ops raised it


@dataclass(frozen=True)
class Step:
    """One thing that happened, in order: a batch delivered by `driver` at `store_index` (of
    the Nashville stores), or a payout."""

    kind: str  # "batch", "weekly", "cashout"
    driver: int = 0  # driverN@spark.test
    store_index: int = 1
    stops: int = 2


# Not the first Nashville store: demo drivers hold seats in its running slot, so its batches
# go to them as slot offers; at the others a batch reaches the open board, claimed first come.
STEPS = (
    Step("batch", driver=1, store_index=1, stops=2),
    Step("batch", driver=2, store_index=2, stops=2),
    Step("batch", driver=1, store_index=2, stops=3),
    Step("weekly"),
    Step("batch", driver=1, store_index=1, stops=2),
    Step("cashout", driver=1),
    Step("batch", driver=1, store_index=2, stops=2),
    Step("batch", driver=2, store_index=1, stops=2),
)


def history_external_ids() -> list[str]:
    n = 0
    ids = []
    for step in STEPS:
        if step.kind == "batch":
            for _ in range(step.stops):
                n += 1
                ids.append(f"{PREFIX}-{n:03d}")
    return ids


def _jpeg(n: int) -> SimpleUploadedFile:
    """A small phone-like photo of the groceries at the door."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (40 + 20 * (n % 8), 120, 60)).save(buf, "JPEG")
    return SimpleUploadedFile(f"door-{n}.jpg", buf.getvalue(), content_type="image/jpeg")


def _plans(stores: list[dict], now: datetime) -> list[tuple[Step, list[OrderPlan]]]:
    """The history's orders, drawn from their own seed; their window is the one running now."""
    zone = ZONES[0]
    tz = ZoneInfo(zone["timezone"])
    rng = random.Random(HISTORY_SEED)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    out: list[tuple[Step, list[OrderPlan]]] = []
    n = 0
    for step in STEPS:
        if step.kind != "batch":
            out.append((step, []))
            continue
        store = stores[step.store_index]
        orders = []
        for _ in range(step.stops):
            n += 1
            plan = plan_order(rng, zone, store, timezone.localdate(now, tz), tz, n)
            plan.external_id = f"{PREFIX}-{n:03d}"
            plan.fields.update(
                window_start=start,
                window_end=start + timedelta(hours=3),
                contains_alcohol=False,  # no ID check to fake
                totes=min(plan.fields["totes"], 5),
                customer_email="",  # no delivery emails to made-up people
            )
            if not plan.fields["tip_cents"]:
                plan.fields["tip_cents"] = 300 + 25 * n
            orders.append(plan)
        out.append((step, orders))
    return out


def latest_run_due(now: datetime, tz: ZoneInfo) -> datetime:
    """The weekly payout run time (SPARK_WEEKLY_PAYOUT_WEEKDAY/HOUR, local) most recently come."""
    local = timezone.localtime(now, tz)
    monday = local.date() - timedelta(days=local.weekday())
    run = datetime.combine(
        monday + timedelta(days=settings.SPARK_WEEKLY_PAYOUT_WEEKDAY),
        time(settings.SPARK_WEEKLY_PAYOUT_HOUR),
        tzinfo=tz,
    )
    return run if run <= local else run - timedelta(days=7)


def _driver(n: int) -> Driver | None:
    return Driver.objects.select_related("home_zone", "user").filter(user__email=f"driver{n}@spark.test").first()


def _to_board(batches: list[Batch]) -> None:
    """Dispatch each batch (no slot holder at these stores, no stated route: the open board),
    then wait out the board's first seconds, in which claims are pooled for a draw
    (zone.claim_pool_seconds): the demo's claims are then first come. One wait for them all."""
    pool_ends = timezone.now()
    for batch in batches:
        rounds.dispatch_advance(batch_id=batch.pk)
        batch.refresh_from_db()
        if batch.dispatch_stage != Batch.Stage.BOARD or batch.board_at is None:
            raise DomainError(f"Batch {batch.pk} went to {batch.dispatch_stage} offers, not the board.")
        pool_ends = max(pool_ends, batch.board_at + timedelta(seconds=batch.store.zone.claim_pool_seconds))
    wait = (pool_ends - timezone.now()).total_seconds()
    if wait > MAX_POOL_WAIT_SECONDS:
        raise DomainError(f"The board pools claims for {wait:.0f} s here; the demo does not wait that long.")
    if wait > 0:
        clock.sleep(wait + 0.05)


def _deliver_batch(batch: Batch, driver: Driver, photo_no: int) -> int:
    """Claimed on the board by `driver` (online at the store: claims are for drivers on duty),
    picked up, every stop delivered, completed, settled; then offline again."""
    store = batch.store
    driver_go_online(driver=driver, lat=store.lat, lng=store.lng)
    rounds.board_claim(driver=driver, batch=batch)
    batch.refresh_from_db()
    batch_check_in(batch=batch, driver=driver, lat=store.lat, lng=store.lng)
    batch_handoff(batch=batch, pickup_code=batch.pickup_code, actor=None)
    for stop in Stop.objects.filter(batch=batch).select_related("order").order_by("sequence"):
        stop_arrive(stop=stop, driver=driver, lat=stop.order.lat, lng=stop.order.lng)
        photo_no += 1
        stop_deliver(stop=stop, driver=driver, photo=_jpeg(photo_no), lat=stop.order.lat, lng=stop.order.lng)
    batch_complete(batch=batch, driver=driver)
    driver_go_offline(driver=driver)
    settlement.settle_batch(batch_id=batch.pk)
    return photo_no


def seed_history(counter: Counter, stores: dict[str, Store], staff: Staff, warn: Callable[[str], None]) -> None:
    """Run outside any transaction (the tips' sweep and payouts call the payment backend
    outside transactions, as their tasks do). Makes nothing when the history exists."""
    if settings.SPARK_PAYMENT_BACKEND != "sandbox":
        warn("  Skipped the demo money history: it is made with test payments only (no Stripe key).")
        return
    ids = history_external_ids()
    if Order.objects.filter(external_id__in=ids).exists():
        return
    drivers = {n: _driver(n) for n in (1, 2)}
    if any(d is None for d in drivers.values()):
        return
    busy = Batch.objects.filter(driver__in=drivers.values(), status__in=Batch.ACTIVE_STATUSES).exists()
    if busy:
        warn("  Skipped the demo money history: driver1 or driver2 has a batch in progress.")
        return
    nashville = [s["number"] for s in ZONES[0]["stores"]]
    now = timezone.now()
    plans = _plans(ZONES[0]["stores"], now)
    seed_orders(counter, stores, [o for _, orders in plans for o in orders])
    orders = {o.external_id: o for o in Order.objects.filter(external_id__in=ids)}
    photo_no = 0
    tz = ZoneInfo(ZONES[0]["timezone"])
    try:
        batches: dict[int, Batch] = {}
        for i, (step, order_plans) in enumerate(plans):
            if step.kind == "batch":
                store = stores[nashville[step.store_index]]
                batch = batch_create(store=store, orders=[orders[o.external_id] for o in order_plans], actor=staff.ops)
                batch_publish(batch=batch, actor=staff.ops)
                batches[i] = batch
        _to_board(list(batches.values()))
        for i, (step, _) in enumerate(plans):
            driver = drivers.get(step.driver)
            if step.kind == "batch" and driver is not None:
                photo_no = _deliver_batch(batches[i], driver, photo_no)
                counter.add("delivered batches")
            elif step.kind == "weekly":
                summary = payouts.weekly_payouts_run(now=latest_run_due(now, tz))
                for payout in payouts.Payout.objects.filter(kind=payouts.Kind.WEEKLY, status=payouts.Status.PENDING):
                    payouts.payout_send(payout_id=payout.pk)
                counter.add("weekly payouts", summary["payouts"])
            elif step.kind == "cashout" and driver is not None:
                payout = payouts.cashout_request(driver, CASHOUT_KEY)
                payouts.payout_send(payout_id=payout.pk)
                counter.add("cash-outs")
        tips.tips_settle_due()  # as the beat does: stamps the tips' windows; credits those closed
    except DomainError as exc:
        warn(f"  The demo money history stopped early: {exc.message}")
        logger.warning("demo history stopped: %s", exc.message)
