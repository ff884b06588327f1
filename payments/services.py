"""Every write to payments goes through here. The ledger is double-entry in integer cents."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import BigIntegerField, ExpressionWrapper, Value
from django.db.models.functions import Cast, Least

from orders.selectors import batch_stops
from spark import geo
from spark.errors import DomainError

from .models import Account, Entry, LedgerTransaction
from .selectors import trip_pay_key


class UnbalancedTransaction(DomainError):
    code = "unbalanced"


def account_for_driver(*, driver) -> Account:
    """The driver's payable account (what we owe them), created on first use."""
    account, _ = Account.objects.get_or_create(
        kind=Account.Kind.DRIVER_PAYABLE, driver=driver, defaults={"name": f"Payable to driver {driver.pk}"}
    )
    return account


def system_account(*, kind: str) -> Account:
    if kind == Account.Kind.DRIVER_PAYABLE:
        raise ValueError("driver payable accounts belong to a driver; use account_for_driver")
    account, _ = Account.objects.get_or_create(kind=kind, driver=None, defaults={"name": Account.Kind(kind).label})
    return account


@dataclass(frozen=True)
class LedgerPosting:
    """What ledger_post came to: the transaction under the key, and whether this call wrote it
    (False: it was posted before, by this or another caller, and nothing new was written)."""

    transaction: LedgerTransaction
    created: bool


def ledger_post(
    *,
    idempotency_key: str,
    kind: str,
    entries: Iterable[tuple[Account, int]],
    memo: str = "",
    batch=None,
    actor=None,
) -> LedgerPosting:
    """Post a balanced transaction once. Returns the transaction and whether it was created now.

    The key is derived from our own rows (e.g. f"batch-pay:{batch.pk}"), so a retry, a
    second worker or a re-run of settlement finds the existing row and posts nothing.
    Refused (and nothing written) unless amounts are non-zero integers summing to zero.
    """
    lines = [(account, amount) for account, amount in entries]
    if len(lines) < 2:
        raise UnbalancedTransaction("A ledger transaction needs at least two entries.")
    for _, amount in lines:
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise UnbalancedTransaction("Ledger amounts are integer cents.")
        if amount == 0:
            raise UnbalancedTransaction("A ledger entry cannot be zero.")
    if sum(amount for _, amount in lines) != 0:
        raise UnbalancedTransaction("Ledger entries must sum to zero.")

    existing = LedgerTransaction.objects.filter(idempotency_key=idempotency_key).first()
    if existing:
        return LedgerPosting(transaction=existing, created=False)
    try:
        with transaction.atomic():
            txn = LedgerTransaction.objects.create(
                idempotency_key=idempotency_key, kind=kind, memo=memo, batch=batch, created_by=actor
            )
            Entry.objects.bulk_create(
                [Entry(transaction=txn, account=account, amount_cents=amount) for account, amount in lines]
            )
    except IntegrityError:
        # A concurrent poster with the same key won the unique index; theirs stands.
        existing = LedgerTransaction.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return LedgerPosting(transaction=existing, created=False)
    return LedgerPosting(transaction=txn, created=True)


# --- Pay ----------------------------------------------------------------------------


# The pay formula, written once (_pay_parts) and evaluated two ways: in Python on plain
# numbers (pay_breakdown: quotes, offer snapshots, the feed's cards) and in SQL on columns
# (pay_total_sql: the feed's ranking, which picks the rows the feed then prices exactly).
# Both use only integer arithmetic, so they agree to the cent (a Hypothesis test checks it);
# a change to the formula is a change to _pay_parts and reaches both.

# Routed miles are paid per mile, rounded half up to the cent: route_meters * per_mile_cents
# / geo.METERS_PER_MILE, in integers as route_meters * per_mile_cents * 1000 / MILLIMETRES_PER_MILE.
MILLIMETRES_PER_MILE = round(geo.METERS_PER_MILE * 1000)


def _pay_parts(policy, *, route_meters, stops, heavy, tip_cents, incentive_cents, least, divide_half_up) -> dict:
    """The parts of a batch's pay. The inputs are ints (Python) or expressions (SQL); `least`
    and `divide_half_up` are the two operations that are spelled differently in each."""
    return {
        "base_cents": policy.base_cents,
        "stops_cents": policy.per_stop_cents * stops,
        "miles_cents": divide_half_up(route_meters * (policy.per_mile_cents * 1000), MILLIMETRES_PER_MILE),
        "heavy_cents": policy.heavy_order_cents * heavy,
        "incentive_cents": least(incentive_cents, policy.incentive_cap_cents),
        "tip_cents": tip_cents,
    }


def _divide_half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)  # numerator >= 0


def pay_breakdown(policy, *, route_meters: int, stops: int, heavy: int, tip_cents: int, incentive_cents: int) -> dict:
    """The pay formula, from plain numbers (pay_quote and the drivers' feed use it).
    Routed miles include the drive back to the store; tips go to the driver in full."""
    quote = _pay_parts(
        policy,
        route_meters=route_meters,
        stops=stops,
        heavy=heavy,
        tip_cents=tip_cents,
        incentive_cents=incentive_cents,
        least=min,
        divide_half_up=_divide_half_up,
    )
    quote["routed_meters"] = route_meters
    quote["total_cents"] = sum(v for k, v in quote.items() if k.endswith("_cents"))
    return quote


def _sql_divide_half_up(numerator, denominator: int):
    # bigint / bigint in PostgreSQL truncates, which for a numerator >= 0 is the floor.
    return ExpressionWrapper(
        (Value(2) * numerator + Value(denominator)) / Value(2 * denominator), output_field=BigIntegerField()
    )


def pay_total_sql(policy, *, route_meters, stops, heavy, tip_cents, incentive_cents):
    """pay_breakdown(...)["total_cents"] as one SQL expression over the given expressions (e.g.
    F("route_meters") and a subquery of the tips), for ranking many batches in the database.
    The same parts as pay_breakdown (_pay_parts), so the two cannot drift apart."""

    def bigint(value):
        return Cast(value, output_field=BigIntegerField())

    parts = _pay_parts(
        policy,
        route_meters=bigint(route_meters),
        stops=bigint(stops),
        heavy=bigint(heavy),
        tip_cents=bigint(tip_cents),
        incentive_cents=bigint(incentive_cents),
        least=lambda a, b: Least(a, Value(b)),
        divide_half_up=_sql_divide_half_up,
    )
    total: Any = Value(0)
    for value in parts.values():
        total = total + (value if hasattr(value, "resolve_expression") else Value(value))
    return ExpressionWrapper(total, output_field=BigIntegerField())


def zone_pay_policy(*, zone):
    """The zone's pay policy (the defaults when it has none yet). Uses the row loaded by
    select_related("...zone__pay_policy") when the caller did so."""
    from .models import PayPolicy

    try:
        return zone.pay_policy
    except PayPolicy.DoesNotExist:
        return PayPolicy(zone=zone)


def pay_quote(*, batch, incentive_cents: int = 0) -> dict:
    """What a driver is offered for `batch` under its zone's pay policy, in cents. Offers
    freeze this as their pay snapshot."""
    policy = zone_pay_policy(zone=batch.store.zone)
    stops = batch_stops(batch=batch)
    return pay_breakdown(
        policy,
        route_meters=batch.route_meters,
        stops=len(stops),
        heavy=sum(1 for s in stops if s.order.is_heavy),
        tip_cents=sum(s.order.tip_cents for s in stops),
        incentive_cents=incentive_cents,
    )


def offer_pay_snapshot_create(*, offer, incentive_cents: int):
    """Freeze what `offer` promises. Called once, in the transaction that creates the offer;
    never updated afterwards (the driver's pay for the batch is at least this)."""
    from .models import OfferPaySnapshot

    quote = pay_quote(batch=offer.batch, incentive_cents=incentive_cents)
    return OfferPaySnapshot.objects.create(
        offer=offer,
        base_cents=quote["base_cents"],
        stops_cents=quote["stops_cents"],
        miles_cents=quote["miles_cents"],
        heavy_cents=quote["heavy_cents"],
        incentive_cents=quote["incentive_cents"],
        tip_cents=quote["tip_cents"],
        total_cents=quote["total_cents"],
        routed_meters=quote["routed_meters"],
    )


def incentive_for_round(*, zone, round_number: int, late: bool = False) -> int:
    """Round 1 pays no incentive; each round that passed without a taker adds the zone's
    step, up to its cap. A batch whose pickup time has passed (orders.models.batch_is_late)
    gets the cap at once: the steps are there to find a taker before it is late, and the cap
    is the most the zone's policy lets dispatch add to a batch."""
    policy = zone_pay_policy(zone=zone)
    if late:
        return policy.incentive_cap_cents
    return min(policy.incentive_step_cents * max(0, round_number - 1), policy.incentive_cap_cents)


# --- Trip pay for a batch taken back --------------------------------------------------------

TRIP_PAY_KIND = "trip_pay"


def trip_pay_for_released_batch(
    *, batch, driver, offer=None, now=None, actor=None, memo: str = ""
) -> LedgerTransaction | None:
    """Pay the driver for the trip when the batch is taken away from them before pickup
    through no fault of the delivery (every order cancelled, or sent back to dispatch because
    they can no longer act on it). Posted once per accepted offer (key "trip-pay:<offer id>"),
    in the caller's transaction, before the batch's status changes (the check-in time is read
    from `batch`).

    Amount: the offer snapshot's base + incentive (what getting the trip was worth; stops,
    miles and tips pay for deliveries that did not happen), plus wait pay if they had checked
    in at the store: the zone's wait_cents_per_minute for each whole minute past
    wait_grace_minutes, from check-in to `now`. Driver payable credited, platform expense
    debited. Returns the ledger transaction, or None when there is nothing to pay."""
    from math import floor

    from django.core.exceptions import ObjectDoesNotExist
    from django.utils import timezone

    now = now or timezone.now()
    policy = zone_pay_policy(zone=batch.store.zone)
    try:
        snapshot = offer.pay if offer is not None else None
    except ObjectDoesNotExist:
        snapshot = None
    if snapshot is not None:
        base, incentive = snapshot.base_cents, snapshot.incentive_cents
    else:  # assigned without an offer (never by dispatch): the policy as it stands
        base, incentive = policy.base_cents, min(batch.incentive_cents, policy.incentive_cap_cents)
    wait = 0
    if batch.arrived_at_store_at is not None:
        minutes = floor((now - batch.arrived_at_store_at).total_seconds() / 60)
        wait = max(0, minutes - policy.wait_grace_minutes) * policy.wait_cents_per_minute
    amount = base + incentive + wait
    if amount <= 0:
        return None
    if offer is not None:
        key = trip_pay_key(offer.pk)
    else:
        assigned = batch.assigned_at.isoformat() if batch.assigned_at else "unassigned"
        key = f"trip-pay:batch-{batch.pk}:driver-{driver.pk}:{assigned}"
    details = f"base {base}c + incentive {incentive}c + wait {wait}c"
    posting = ledger_post(
        idempotency_key=key[:128],
        kind=TRIP_PAY_KIND,
        entries=[
            (account_for_driver(driver=driver), amount),
            (system_account(kind=Account.Kind.PLATFORM_EXPENSE), -amount),
        ],
        memo=f"Trip pay, batch {batch.pk} ({details}){': ' + memo if memo else ''}"[:255],
        batch=batch,
        actor=actor if getattr(actor, "pk", None) else None,
    )
    return posting.transaction
