"""Settlement benchmark: N completed batches settled on PostgreSQL (issue 10).

Builds its own world in a dedicated database (created if missing, migrated, emptied): one zone
with its pay policy, one store, D drivers, N completed batches (a tenth of them returned, with a
failed stop) of 1-4 stops each, every one with its accepted offer and pay snapshot, all
bulk-created. Then it times payments.settlement.settle_unsettled (what the beat sweep
payments.tasks.sweep_unsettled_batches runs; the per-batch task runs the same code for one id)
and checks: one BatchPay and one "batch-pay:<id>" transaction per batch, every transaction and
the whole ledger balanced to the cent, each driver's balance equal to their batches' final pay,
no final pay below its snapshot; then a second run, which must post nothing. Then the weekly
payout run over them (payments.payouts.weekly_payouts_run, at the zone's payout hour; the sandbox
backend, so the transfers themselves are queued, not timed): one payout per driver with a
balance, every balance paid down to zero, the ledger still balanced, and a second run paying
nothing.

    .venv/bin/python bench/bench_settlement.py [--batches 100000] [--drivers 2000] [--chunk 1000]

BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/spark_bench_settle; the name must
contain "bench": the script empties it). Exit status non-zero on a correctness failure; a missed
time target prints MISSED and exits 0.
"""

import argparse
import os
import random
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common

TARGET_SECONDS = 60.0
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/spark_bench_settle"


def build_world(n_batches: int, n_drivers: int, seed: int = 7) -> None:
    from django.utils import timezone

    from dispatch.models import Offer
    from orders.models import Batch, Order, Stop
    from payments.models import OfferPaySnapshot
    from payments.services import pay_breakdown, zone_pay_policy
    from spark import geo

    rng = random.Random(seed)
    zone, store = _common.make_zone_and_store()
    policy = zone_pay_policy(zone=zone)
    drivers = _common.make_drivers(n_drivers, zone)
    now = timezone.now()
    home = geo.Point.of(store.lat, store.lng)
    step = 5000
    for start in range(0, n_batches, step):
        size = min(step, n_batches - start)
        specs = []
        for i in range(start, start + size):
            stops = rng.randint(1, 4)
            points = [
                (
                    _common.CENTER[0] + Decimal(f"{rng.uniform(-0.06, 0.06):.6f}"),
                    _common.CENTER[1] + Decimal(f"{rng.uniform(-0.06, 0.06):.6f}"),
                )
                for _ in range(stops)
            ]
            returned = i % 10 == 9
            heavy = [rng.random() < 0.15 for _ in range(stops)]
            path = [home, *(geo.Point.of(lat, lng) for lat, lng in points), home]
            # a tenth of the routes were priced short (the recomputed pay wins for those)
            meters = geo.route_m(path) * (6 if i % 10 == 3 else 10) // 10
            picked = now - timedelta(hours=3, minutes=rng.randint(0, 600))
            wait = rng.randint(0, 30)
            specs.append((i, points, returned, heavy, meters, picked, wait))
        batches = Batch.objects.bulk_create(
            [
                Batch(
                    store=store,
                    status=Batch.Status.RETURNED if returned else Batch.Status.COMPLETED,
                    driver=drivers[i % n_drivers],
                    assigned_at=picked - timedelta(minutes=wait + 20),
                    arrived_at_store_at=picked - timedelta(minutes=wait),
                    picked_up_at=picked,
                    closed_at=picked + timedelta(minutes=40),
                    route_meters=meters,
                    route_seconds=1800,
                    stops_count=len(points),
                    incentive_cents=100 * (i % 4),
                )
                for i, points, returned, heavy, meters, picked, wait in specs
            ],
            batch_size=2000,
        )
        orders = Order.objects.bulk_create(
            [
                Order(
                    store=store,
                    external_id=f"settle-{b.pk}-{s}",
                    status=Order.Status.RETURNED if returned and s == 0 else Order.Status.DELIVERED,
                    customer_name="Bench Customer",
                    address_line1=f"{b.pk} Bench St",
                    city="Nashville",
                    state="TN",
                    postal_code="37203",
                    lat=lat,
                    lng=lng,
                    window_start=picked,
                    window_end=picked + timedelta(hours=2),
                    is_heavy=heavy[s],
                    tip_cents=300,
                )
                for b, (_, points, returned, heavy, _, picked, _) in zip(batches, specs, strict=True)
                for s, (lat, lng) in enumerate(points)
            ],
            batch_size=4000,
        )
        it = iter(orders)
        Stop.objects.bulk_create(
            [
                Stop(
                    batch=b,
                    order=next(it),
                    sequence=s + 1,
                    status=Stop.Status.RETURNED if returned and s == 0 else Stop.Status.DELIVERED,
                )
                for b, (_, points, returned, _, _, _, _) in zip(batches, specs, strict=True)
                for s in range(len(points))
            ],
            batch_size=4000,
        )
        offers = Offer.objects.bulk_create(
            [
                Offer(
                    batch=b,
                    driver_id=b.driver_id,
                    status=Offer.Status.ACCEPTED,
                    created_at=b.assigned_at,
                    expires_at=b.assigned_at + timedelta(seconds=60),
                )
                for b in batches
            ],
            batch_size=4000,
        )
        snapshots = []
        for offer, b, (_, points, _, heavy, meters, _, _) in zip(offers, batches, specs, strict=True):
            quote = pay_breakdown(
                policy,
                route_meters=meters,
                stops=len(points),
                heavy=sum(heavy),
                tip_cents=300 * len(points),
                incentive_cents=b.incentive_cents,
            )
            snapshots.append(
                OfferPaySnapshot(
                    offer=offer,
                    **{k: quote[k] for k in quote if k.endswith("_cents")},
                    routed_meters=meters,
                )
            )
        OfferPaySnapshot.objects.bulk_create(snapshots, batch_size=4000)
        print(f"  built {start + size:,} batches", flush=True)


def check(n_batches: int) -> list[str]:
    """What is wrong with the ledger and the batch pay, if anything."""
    from django.db import connection

    from payments.models import BatchPay, LedgerTransaction
    from payments.selectors import ledger_total_cents

    problems = []
    pays = BatchPay.objects.count()
    txns = LedgerTransaction.objects.filter(kind="batch_pay").count()
    if pays != n_batches or txns != n_batches:
        problems.append(f"{pays:,} BatchPay rows and {txns:,} batch_pay transactions for {n_batches:,} batches")
    total = ledger_total_cents()
    if total != 0:
        problems.append(f"the ledger sums to {total} cents")
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM (SELECT transaction_id FROM payments_entry GROUP BY transaction_id "
            "HAVING sum(amount_cents) <> 0) t"
        )
        if (unbalanced := cur.fetchone()[0]) != 0:
            problems.append(f"{unbalanced} unbalanced transactions")
        cur.execute(
            "SELECT count(*) FROM payments_batchpay p LEFT JOIN payments_ledgertransaction t "
            "ON t.id = p.ledger_transaction_id WHERE t.idempotency_key IS DISTINCT FROM 'batch-pay:' || p.batch_id"
        )
        if (wrong := cur.fetchone()[0]) != 0:
            problems.append(f"{wrong} batch pays without their batch-pay:<id> transaction")
        cur.execute(
            """
            SELECT count(*) FROM (
              SELECT p.driver_id, sum(p.final_cents) AS paid FROM payments_batchpay p GROUP BY p.driver_id
            ) paid FULL JOIN (
              SELECT a.driver_id, sum(e.amount_cents) AS owed FROM payments_entry e
              JOIN payments_account a ON a.id = e.account_id
              WHERE a.kind = 'driver_payable' GROUP BY a.driver_id
            ) owed ON owed.driver_id = paid.driver_id
            WHERE paid.paid IS DISTINCT FROM owed.owed
            """
        )
        if (off := cur.fetchone()[0]) != 0:
            problems.append(f"{off} drivers whose balance is not their batches' pay")
        cur.execute("SELECT count(*) FROM payments_batchpay WHERE final_cents < snapshot_cents")
        if (below := cur.fetchone()[0]) != 0:
            problems.append(f"{below} final pays below their snapshot")
    return problems


def weekly_payouts(n_drivers: int) -> tuple[list[str], float]:
    """Time the weekly payout run over the settled balances; what is wrong with it, if anything."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from django.conf import settings
    from django.db.models import Sum

    from payments.models import DRIVER_ACCOUNT_KINDS, Entry, Payout
    from payments.payouts import weekly_payouts_run
    from payments.selectors import ledger_total_cents
    from stores.models import Zone

    settings.SPARK_PAYMENT_BACKEND = "sandbox"
    zone = Zone.objects.get()
    local = datetime.now(ZoneInfo(zone.timezone))
    # The zone's next payout time (its weekday and hour), so the run is due whenever this runs.
    days = (settings.SPARK_WEEKLY_PAYOUT_WEEKDAY - local.weekday()) % 7
    due = (local + timedelta(days=days)).replace(hour=settings.SPARK_WEEKLY_PAYOUT_HOUR, minute=5)
    owed = Entry.objects.filter(account__kind__in=DRIVER_ACCOUNT_KINDS).aggregate(s=Sum("amount_cents"))["s"] or 0
    started = time.monotonic()
    summary = weekly_payouts_run(now=due)
    seconds = time.monotonic() - started
    print(f"weekly payouts: {summary['payouts']:,} in {seconds:.1f} s, {summary['total_cents'] / 100:,.2f} dollars")
    problems = []
    if summary["payouts"] != n_drivers or Payout.objects.count() != n_drivers:
        problems.append(f"{summary['payouts']:,} weekly payouts for {n_drivers:,} drivers with a balance")
    if summary["total_cents"] != owed:
        problems.append(f"paid {summary['total_cents']} cents of the {owed} owed")
    left = Entry.objects.filter(account__kind__in=DRIVER_ACCOUNT_KINDS).aggregate(s=Sum("amount_cents"))["s"] or 0
    if left != 0:
        problems.append(f"{left} cents left in drivers' balances after the payout run")
    if ledger_total_cents() != 0:
        problems.append("the ledger does not balance after the payout run")
    again = weekly_payouts_run(now=due + timedelta(minutes=1))
    if again["payouts"] or Payout.objects.count() != n_drivers:
        problems.append(f"the second payout run paid {again['payouts']}")
    return problems, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=100_000)
    parser.add_argument("--drivers", type=int, default=2_000)
    parser.add_argument("--chunk", type=int, default=1000, help="batches settled per transaction")
    parser.add_argument("--reuse", action="store_true", help="keep the world of the last run (settlements deleted)")
    args = parser.parse_args()

    _common.install_signal_handlers()
    os.environ.setdefault("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    _common.bench_env(os.environ["BENCH_DATABASE_URL"], os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    _common.setup_django(flush=not args.reuse)

    from django.db import connection

    from payments.models import BatchPay, Entry, LedgerTransaction
    from payments.settlement import settle_unsettled

    if args.reuse:
        with connection.cursor() as cur:
            cur.execute("TRUNCATE payments_batchpay, payments_entry, payments_ledgertransaction CASCADE")
    else:
        print(f"building {args.batches:,} completed batches for {args.drivers:,} drivers ...", flush=True)
        started = time.monotonic()
        build_world(args.batches, args.drivers)
        print(f"built in {time.monotonic() - started:.1f} s", flush=True)
    _common.vacuum_analyze()

    started = time.monotonic()
    settled = settle_unsettled(limit=10**9, chunk=args.chunk)
    elapsed = time.monotonic() - started
    rate = settled / elapsed if elapsed else 0.0
    print(f"settled {settled:,} batches in {elapsed:.1f} s ({rate:,.0f}/s)", flush=True)

    problems = check(args.batches)
    counts = (BatchPay.objects.count(), LedgerTransaction.objects.count(), Entry.objects.count())
    started = time.monotonic()
    again = settle_unsettled(limit=10**9, chunk=args.chunk)
    second = time.monotonic() - started
    if again or (BatchPay.objects.count(), LedgerTransaction.objects.count(), Entry.objects.count()) != counts:
        problems.append(f"the second run posted {again} settlements")
    print(f"second run: {again} settled in {second:.2f} s")
    print(f"ledger: {counts[1]:,} transactions, {counts[2]:,} entries, sum 0: {not problems}")

    payout_problems, payout_seconds = weekly_payouts(args.drivers)
    problems += payout_problems

    ok_time = elapsed + payout_seconds < TARGET_SECONDS * args.batches / 100_000
    print(
        f"time: {'PASS' if ok_time else 'MISSED'} ({elapsed:.1f} s settling + {payout_seconds:.1f} s paying out "
        f"for {args.batches:,}, target 60 s per 100,000)"
    )
    for problem in problems:
        print(f"FAIL: {problem}")
    print(f"correctness: {_common.verdict(not problems)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
