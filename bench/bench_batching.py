"""Auto-batching benchmark: proposals at the production stopping rule against 60 s runs.

Two sets of orders around one store, both with tote capacity:
- loose: 100 orders whose windows start over a 2-hour span and last 1-2 hours;
- tight: 100 and 300 orders with 1-hour windows spread over a 10-hour day.

For each instance it measures the time to a proposal with the production stopping rule (no
improvement for a while, capped at 10 s), checks that every servable order is placed (only
orders that cannot be served even alone may be left out), and compares the total drive
distance with what the same model finds in 60 s. No database needed: the solver works on
plain order records.

    .venv/bin/python bench/bench_batching.py [--sets loose,tight] [--seeds 2] [--reference 60]

Exits non-zero when a servable order is left out; a missed time or distance target prints
MISSED and exits 0 (timings vary on a shared machine).
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spark.settings.local")

import django

django.setup()

from django.utils import timezone  # noqa: E402

from orders.batching import MAX_SOLVE_SECONDS, batching_problem, propose_batches  # noqa: E402

STORE = SimpleNamespace(lat=36.2196, lng=-86.7555)  # a north Nashville store
MAX_TOTES, MAX_STOPS = 20, 5
GAP_TARGET_PCT = 2.0


def _order(rng: random.Random, pk: int, window_start: datetime, minutes: int) -> SimpleNamespace:
    return SimpleNamespace(
        pk=pk,
        lat=STORE.lat + rng.uniform(-0.09, 0.09),
        lng=STORE.lng + rng.uniform(-0.11, 0.11),
        totes=rng.randint(1, 6),
        window_start=window_start,
        window_end=window_start + timedelta(minutes=minutes),
    )


def loose(n: int, seed: int):
    """Windows start over a 2-hour span; each lasts 1-2 hours."""
    rng = random.Random(seed)
    t0 = timezone.now().replace(microsecond=0)
    return t0, [
        _order(rng, i + 1, t0 + timedelta(minutes=rng.randrange(0, 120, 15)), rng.choice([60, 90, 120]))
        for i in range(n)
    ]


def tight(n: int, seed: int):
    """1-hour windows starting every quarter hour over a 10-hour day (the last ends at 10 h)."""
    rng = random.Random(seed)
    t0 = timezone.now().replace(microsecond=0)
    return t0, [_order(rng, i + 1, t0 + timedelta(minutes=rng.randrange(0, 9 * 60 + 1, 15)), 60) for i in range(n)]


SETS = {"loose": (loose, [100]), "tight": (tight, [100, 300])}


def run_one(make, n: int, seed: int, reference_s: float) -> dict:
    t0, orders = make(n, seed)
    kwargs = {"store": STORE, "orders": orders, "max_totes": MAX_TOTES, "max_stops": MAX_STOPS, "start": t0}
    servable = {o.pk for o in batching_problem(**kwargs).orders}
    started = time.perf_counter()
    fast = propose_batches(**kwargs)
    elapsed = time.perf_counter() - started
    placed = [oid for b in fast.batches for oid in b.order_ids]
    # The reference: the same model and start, stopped only by the clock.
    slow = propose_batches(**kwargs, time_limit_s=reference_s, no_improvement_iterations=10**9)
    return {
        "elapsed": elapsed,
        "all_placed": sorted(placed) == sorted(servable) and set(fast.unassigned).isdisjoint(servable),
        "servable": len(servable),
        "placed": len(set(placed) & servable),
        "batches": len(fast.batches),
        "km": fast.distance_m / 1000,
        "ref_km": slow.distance_m / 1000,
        "ref_batches": len(slow.batches),
        "gap": 100.0 * (fast.distance_m - slow.distance_m) / slow.distance_m,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="loose,tight", help="comma-separated: " + ",".join(SETS))
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--reference", type=float, default=60.0, help="reference run length (s)")
    args = ap.parse_args()

    ok = True
    for name in args.sets.split(","):
        make, sizes = SETS[name]
        for n in sizes:
            rows = []
            for seed in range(1, args.seeds + 1):
                r = run_one(make, n, seed, args.reference)
                rows.append(r)
                print(
                    f"{name} {n} seed {seed}: {r['elapsed']:.2f}s, {r['placed']}/{r['servable']} servable placed, "
                    f"{r['batches']} batches, {r['km']:.1f} km; {args.reference:.0f} s run: {r['ref_km']:.1f} km "
                    f"in {r['ref_batches']} batches; gap {r['gap']:+.2f}%"
                )
            worst_time = max(r["elapsed"] for r in rows)
            worst_gap = max(r["gap"] for r in rows)
            all_placed = all(r["all_placed"] for r in rows)
            ok = ok and all_placed
            verdict = "ok" if worst_time <= MAX_SOLVE_SECONDS and worst_gap <= GAP_TARGET_PCT else "MISSED"
            print(
                f"batching {name} {n}: every servable order placed: {'yes' if all_placed else 'NO'}; "
                f"time max {worst_time:.2f}s (target <= {MAX_SOLVE_SECONDS:.0f} s); distance gap vs "
                f"{args.reference:.0f} s: mean {statistics.mean(r['gap'] for r in rows):+.2f}% "
                f"max {worst_gap:+.2f}% (target <= {GAP_TARGET_PCT:.0f}%) -> {verdict}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
