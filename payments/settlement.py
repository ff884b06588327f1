"""Settlement of a batch's pay: what a completed or returned batch paid its driver, worked out
once and posted to the ledger in the same transaction as its BatchPay row (payments.models).

final = max(snapshot, recomputed) + wait pay, where
- snapshot is the accepted offer's OfferPaySnapshot total without its tips (incentive included);
- recomputed is payments.services.pay_breakdown over what happened: routed metres from the store
  to every stop driven to (delivered, failed, returned; removed stops were never driven to) in
  sequence and back to the store, those stops, the heavy orders among them, plus the incentive
  the offer promised (the batch's own, capped, when it was assigned without an offer);
- wait pay is the zone's wait_cents_per_minute for each whole minute at the store past its
  wait_grace_minutes, from check-in (Batch.arrived_at_store_at) to handoff (picked_up_at).
Returned and failed stops are paid as driven. Tips are paid on their own (Tip).

Posted once: ledger key "batch-pay:<batch id>" (DRIVER_PAYABLE +final, PLATFORM_EXPENSE -final)
and the one-to-one BatchPay.batch. Only COMPLETED and RETURNED batches with a driver settle: a
batch taken back before pickup was paid its trip (services.trip_pay_for_released_batch) and,
once back on offer, belongs to whoever completes it.

Many batches settle in one go (`settle_batches`: a handful of queries per chunk, whatever its
size), which is how both the per-batch task and the beat sweep run it (payments.tasks).

Later changes are PayAdjustments (`pay_adjust`), each with a reason the driver is told by email
(payments.pay_notices), none taking the total below the snapshot.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, QuerySet, Sum
from django.utils import timezone

from orders.models import Batch, Stop
from spark import geo
from spark.errors import DomainError
from spark.money import format_cents
from stores.models import Store

from . import pay_notices
from .models import Account, BatchPay, Entry, LedgerTransaction, OfferPaySnapshot, PayAdjustment, PayPolicy
from .services import account_for_driver, ledger_post, pay_breakdown, system_account

logger = logging.getLogger(__name__)

BATCH_PAY_KIND = "batch_pay"
PAY_ADJUSTMENT_KIND = "pay_adjustment"
SETTLED_BATCH_STATUSES = (Batch.Status.COMPLETED, Batch.Status.RETURNED)
# Stops the driver drove to, and is paid for: delivered, or undeliverable and brought back.
PAID_STOP_STATUSES = (Stop.Status.DELIVERED, Stop.Status.FAILED, Stop.Status.RETURNED)
SETTLE_CHUNK = 1000


def batch_pay_key(batch_id: int) -> str:
    return f"batch-pay:{batch_id}"


def pay_adjustment_key(adjustment_id: int) -> str:
    return f"pay-adjustment:{adjustment_id}"


# --- The formula --------------------------------------------------------------------------


@dataclass(frozen=True)
class StopDriven:
    lat: float
    lng: float
    heavy: bool


@dataclass(frozen=True)
class FinalPay:
    """A batch's pay as BatchPay stores it (all cents)."""

    snapshot_cents: int
    base_cents: int
    stops_cents: int
    miles_cents: int
    heavy_cents: int
    routed_meters: int
    stops_paid: int
    heavy_paid: int
    incentive_cents: int
    wait_minutes: int
    wait_cents: int
    final_cents: int

    @property
    def recomputed_cents(self) -> int:
        """What happened, priced: base, stops, miles, heavy orders and the incentive."""
        return self.base_cents + self.stops_cents + self.miles_cents + self.heavy_cents + self.incentive_cents


def wait_minutes_paid(*, policy: PayPolicy, arrived_at: datetime | None, picked_up_at: datetime | None) -> int:
    """Whole minutes from check-in to handoff past the zone's grace period (0 without both)."""
    if arrived_at is None or picked_up_at is None:
        return 0
    minutes = int((picked_up_at - arrived_at).total_seconds() // 60)
    return max(0, minutes - policy.wait_grace_minutes)


def final_pay(
    *,
    policy: PayPolicy,
    store: geo.Point,
    stops: list[StopDriven],
    snapshot_cents: int,
    incentive_cents: int,
    arrived_at: datetime | None,
    picked_up_at: datetime | None,
) -> FinalPay:
    """The greater of the snapshot and the pay recomputed from the stops driven to (in
    sequence, from the store and back), plus wait pay past the grace. Pure: no database."""
    points = [store, *(geo.Point(s.lat, s.lng) for s in stops), store] if stops else []
    meters = geo.route_m(points)
    heavy = sum(1 for s in stops if s.heavy)
    parts = pay_breakdown(policy, route_meters=meters, stops=len(stops), heavy=heavy, tip_cents=0, incentive_cents=0)
    recomputed = parts["total_cents"] + incentive_cents
    wait_minutes = wait_minutes_paid(policy=policy, arrived_at=arrived_at, picked_up_at=picked_up_at)
    wait_cents = wait_minutes * policy.wait_cents_per_minute
    return FinalPay(
        snapshot_cents=snapshot_cents,
        base_cents=parts["base_cents"],
        stops_cents=parts["stops_cents"],
        miles_cents=parts["miles_cents"],
        heavy_cents=parts["heavy_cents"],
        routed_meters=meters,
        stops_paid=len(stops),
        heavy_paid=heavy,
        incentive_cents=incentive_cents,
        wait_minutes=wait_minutes,
        wait_cents=wait_cents,
        final_cents=max(snapshot_cents, recomputed) + wait_cents,
    )


# --- Settling -----------------------------------------------------------------------------


def unsettled_batches() -> QuerySet[Batch]:
    """Completed or returned batches with a driver and no BatchPay yet (oldest first)."""
    return (
        Batch.objects.filter(status__in=SETTLED_BATCH_STATUSES, driver__isnull=False)
        .filter(~Exists(BatchPay.objects.filter(batch=OuterRef("pk"))))
        .order_by("closed_at", "pk")
    )


def pause_for_tests(point: str) -> None:
    """Test-only (spark.settings.test, SPARK_SETTLEMENT_TEST_PAUSE="<point>:<seconds>"): hold
    the settlement at `point` so a test can SIGKILL the worker there. Unset in production."""
    wanted = getattr(settings, "SPARK_SETTLEMENT_TEST_PAUSE", "")
    if wanted and wanted.split(":")[0] == point:
        logger.warning("settlement paused at %s", point)
        time.sleep(float(wanted.split(":")[1]))


def _policies(zone_ids: set[int]) -> dict[int, PayPolicy]:
    found = {p.zone_id: p for p in PayPolicy.objects.filter(zone_id__in=zone_ids)}
    return {zone_id: found.get(zone_id) or PayPolicy(zone_id=zone_id) for zone_id in zone_ids}


def _driver_payables(driver_ids: set[int]) -> dict[int, Account]:
    kind = Account.Kind.DRIVER_PAYABLE
    accounts: dict[int, Account] = {}
    for account in Account.objects.filter(kind=kind, driver_id__in=driver_ids):
        accounts[account.driver_id or 0] = account
    missing = driver_ids - set(accounts)
    if missing:
        Account.objects.bulk_create(
            [Account(kind=kind, driver_id=d, name=f"Payable to driver {d}") for d in sorted(missing)],
            ignore_conflicts=True,
        )
        for account in Account.objects.filter(kind=kind, driver_id__in=missing):
            accounts[account.driver_id or 0] = account
    return accounts


@dataclass(frozen=True)
class _Due:
    """A locked batch row, as much of it as settlement reads."""

    pk: int
    store_id: int
    driver_id: int
    arrived_at: datetime | None
    picked_up_at: datetime | None
    incentive_cents: int


_DUE_COLUMNS = ("pk", "store_id", "driver_id", "arrived_at_store_at", "picked_up_at", "incentive_cents")


def _insert(model, fields: tuple[str, ...], rows: list[tuple], *, returning: bool = False) -> list[int]:
    """INSERT `rows` into `model`'s table (ids in row order with `returning`). On PostgreSQL one
    plain statement: settling 100,000 batches spends most of its time building model instances
    otherwise (bench/bench_settlement.py). Elsewhere (the embedded SQLite default) bulk_create.
    Only for tables without history or signals."""
    if not rows:
        return []
    if connection.vendor != "postgresql":
        names = [model._meta.get_field(f).attname for f in fields]
        created = model.objects.bulk_create([model(**dict(zip(names, row, strict=True))) for row in rows])
        return [obj.pk for obj in created]
    from psycopg2.extras import execute_values

    quote = connection.ops.quote_name
    columns = ", ".join(quote(model._meta.get_field(f).column) for f in fields)
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES %s"
    with connection.cursor() as cursor:
        found = execute_values(
            cursor.cursor, sql + (" RETURNING id" if returning else ""), rows, page_size=len(rows), fetch=returning
        )
    return [row[0] for row in found] if returning else []


_PAY_FIELDS = tuple(FinalPay.__dataclass_fields__)


def _settle_locked(batches: list[_Due]) -> list[int]:
    """Settle `batches` (rows locked by the caller, settleable, not settled): a few queries for
    the lot, in the caller's transaction. Returns the ids of the batches settled."""
    if not batches:
        return []
    ids = [b.pk for b in batches]
    stops: dict[int, list[StopDriven]] = {pk: [] for pk in ids}
    rows = (
        Stop.objects.filter(batch_id__in=ids, status__in=PAID_STOP_STATUSES)
        .order_by("batch_id", "sequence")
        .values_list("batch_id", "order__lat", "order__lng", "order__is_heavy")
    )
    for batch_id, lat, lng, heavy in rows:
        stops[batch_id].append(StopDriven(float(lat), float(lng), heavy))
    snapshots = {
        batch_id: (pk, driver_id, total - tip, incentive)
        for pk, batch_id, driver_id, total, tip, incentive in OfferPaySnapshot.objects.filter(
            offer__batch_id__in=ids, offer__status="accepted"
        ).values_list("pk", "offer__batch_id", "offer__driver_id", "total_cents", "tip_cents", "incentive_cents")
    }
    stores = {
        pk: (geo.Point.of(lat, lng), zone_id)
        for pk, lat, lng, zone_id in Store.objects.filter(pk__in={b.store_id for b in batches}).values_list(
            "pk", "lat", "lng", "zone_id"
        )
    }
    policies = _policies({zone_id for _, zone_id in stores.values()})
    payables = _driver_payables({b.driver_id for b in batches})
    expense = system_account(kind=Account.Kind.PLATFORM_EXPENSE).pk

    now = timezone.now()
    pays: list[tuple[_Due, int | None, FinalPay]] = []
    for batch in batches:
        point, zone_id = stores[batch.store_id]
        policy = policies[zone_id]
        snapshot = snapshots.get(batch.pk)
        snapshot_id: int | None
        if snapshot is not None and snapshot[1] == batch.driver_id:
            snapshot_id, _, snapshot_cents, incentive = snapshot
        else:  # assigned without an offer (never by dispatch): the policy as it stands
            snapshot_id, snapshot_cents = None, 0
            incentive = min(batch.incentive_cents, policy.incentive_cap_cents)
        figures = final_pay(
            policy=policy,
            store=point,
            stops=stops[batch.pk],
            snapshot_cents=snapshot_cents,
            incentive_cents=incentive,
            arrived_at=batch.arrived_at,
            picked_up_at=batch.picked_up_at,
        )
        pays.append((batch, snapshot_id, figures))
    pause_for_tests("computed")

    txn_ids = _insert(
        LedgerTransaction,
        ("idempotency_key", "kind", "memo", "batch", "created_at"),
        [(batch_pay_key(b.pk), BATCH_PAY_KIND, _memo(b.pk, f), b.pk, now) for b, _, f in pays],
        returning=True,
    )
    entries = []
    for (batch, _, figures), txn_id in zip(pays, txn_ids, strict=True):
        if figures.final_cents:
            entries.append((txn_id, payables[batch.driver_id].pk, figures.final_cents))
            entries.append((txn_id, expense, -figures.final_cents))
    _insert(Entry, ("transaction", "account", "amount_cents"), entries)
    _insert(
        BatchPay,
        ("batch", "driver", "snapshot", "ledger_transaction", "created_at", *_PAY_FIELDS),
        [
            (b.pk, b.driver_id, snapshot_id, txn_id, now, *(getattr(f, name) for name in _PAY_FIELDS))
            for (b, snapshot_id, f), txn_id in zip(pays, txn_ids, strict=True)
        ],
    )
    return ids


def _memo(batch_id: int, pay: FinalPay) -> str:
    return (
        f"Batch {batch_id}: snapshot {pay.snapshot_cents}c, as driven {pay.recomputed_cents}c "
        f"({pay.stops_paid} stops, {pay.routed_meters} m), wait {pay.wait_cents}c"
    )[:255]


def _lock_unsettled(due: QuerySet[Batch], limit: int) -> tuple[list[_Due], int | None]:
    """Lock up to `limit` rows of `due` in id order (SKIP LOCKED: another settler has those) and
    keep those still unsettled: a BatchPay committed after this statement's snapshot began is
    seen by the re-check, a fresh statement. Returns them and the last id locked (None: none)."""
    rows = due.select_for_update(skip_locked=True, of=("self",)).order_by("pk").values_list(*_DUE_COLUMNS)[:limit]
    batches = [_Due(*row) for row in rows]
    done = set(BatchPay.objects.filter(batch_id__in=[b.pk for b in batches]).values_list("batch_id", flat=True))
    return [b for b in batches if b.pk not in done], (batches[-1].pk if batches else None)


def settle_batch(*, batch_id: int) -> BatchPay | None:
    """Settle one batch once (the task queued when it completed or returned). Returns its
    BatchPay (the existing one on a repeat), or None when the batch does not settle (not
    completed or returned, no driver) or another settler holds it right now (it settles it)."""
    existing = BatchPay.objects.filter(batch_id=batch_id).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        locked, _ = _lock_unsettled(unsettled_batches().filter(pk=batch_id), 1)
        settled = _settle_locked(locked)
    pay = BatchPay.objects.filter(batch_id=batch_id).first()
    if settled and pay is not None:
        logger.info("settled batch %s: %s", batch_id, format_cents(pay.final_cents))
    return pay


def settle_unsettled(*, limit: int = 10_000, chunk: int = SETTLE_CHUNK) -> int:
    """Settle up to `limit` completed or returned batches without a BatchPay, `chunk` per
    transaction, in id order (the beat sweep; the benchmark). Batches another settler holds are
    skipped, and settled by it. Returns how many this call settled."""
    done, after = 0, 0
    while done < limit:
        with transaction.atomic():
            locked, last = _lock_unsettled(unsettled_batches().filter(pk__gt=after), min(chunk, limit - done))
            if last is None:
                break
            after = last  # keyset: each chunk starts past the last one, not past every settled row
            done += len(_settle_locked(locked))
    return done


# --- Adjustments ----------------------------------------------------------------------------


def adjusted_total_cents(*, batch_pay: BatchPay) -> int:
    """What the batch paid with every adjustment."""
    total = batch_pay.adjustments.aggregate(s=Sum("amount_cents"))["s"] or 0
    return batch_pay.final_cents + int(total)


def pay_adjust(*, batch_pay: BatchPay, amount_cents: int, reason: str, note: str = "", actor) -> PayAdjustment:
    """Ops change what a batch paid, with a reason the driver is told (an email after commit).
    Refused, nothing written, when the amount is zero or not integer cents, the reason is not
    one of PayAdjustment.Reason, or the total would fall below the offer's snapshot."""
    if not isinstance(amount_cents, int) or isinstance(amount_cents, bool) or amount_cents == 0:
        raise DomainError(
            "An adjustment is a non-zero amount in cents.", code="bad_amount", fields={"amount_cents": ["Not zero."]}
        )
    if reason not in PayAdjustment.Reason.values:
        raise DomainError(
            "Pick a reason from the list.",
            code="bad_reason",
            fields={"reason": [f"One of: {', '.join(PayAdjustment.Reason.values)}"]},
        )
    note = (note or "").strip()
    if len(note) > 255:
        raise DomainError("Keep the note under 255 characters.", code="bad_note", fields={"note": ["Too long."]})
    with transaction.atomic():
        locked = BatchPay.objects.select_for_update().get(pk=batch_pay.pk)  # adjustments one at a time
        total = adjusted_total_cents(batch_pay=locked)
        if total + amount_cents < locked.snapshot_cents:
            raise DomainError(
                f"That would take the batch's pay to {format_cents(total + amount_cents)}, below the "
                f"{format_cents(locked.snapshot_cents)} the offer promised.",
                code="below_snapshot",
                fields={"amount_cents": [f"At least {format_cents(locked.snapshot_cents - total)}."]},
            )
        adjustment = PayAdjustment.objects.create(
            batch_pay=locked, amount_cents=amount_cents, reason=reason, note=note, created_by=actor
        )
        txn = ledger_post(
            idempotency_key=pay_adjustment_key(adjustment.pk),
            kind=PAY_ADJUSTMENT_KIND,
            entries=[
                (account_for_driver(driver=locked.driver), amount_cents),
                (system_account(kind=Account.Kind.PLATFORM_EXPENSE), -amount_cents),
            ],
            memo=f"Adjustment of batch {locked.batch_id}: {PayAdjustment.Reason(reason).label}"[:255],
            batch=locked.batch,
            actor=actor,
        ).transaction
        PayAdjustment.objects.filter(pk=adjustment.pk).update(ledger_transaction=txn)
        adjustment.ledger_transaction = txn
        pay_notices.adjustment_notice_enqueue(adjustment=adjustment)
    return adjustment
