"""Auto-batching benchmark: 100 orders over a 2-hour span around one store.

Measures the time to a proposal at the production time limit and compares its total drive
distance with what the same solver finds given 10x longer. No database needed: the solver
works on plain order records.

    .venv/bin/python bench/bench_batching.py [--orders 100] [--limit 3] [--seeds 3]
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spark.settings.local")

import django

django.setup()

from django.utils import timezone  # noqa: E402

from orders.batching import propose_batches  # noqa: E402

STORE = SimpleNamespace(lat=36.2196, lng=-86.7555)  # a north Nashville store


def instance(n: int, seed: int):
    rng = random.Random(seed)
    t0 = timezone.now().replace(microsecond=0)
    orders = []
    for i in range(n):
        # Windows start over a 2-hour span; each lasts 1-2 hours.
        ws = t0 + timedelta(minutes=rng.randrange(0, 120, 15))
        orders.append(
            SimpleNamespace(
                pk=i + 1,
                lat=STORE.lat + rng.uniform(-0.09, 0.09),
                lng=STORE.lng + rng.uniform(-0.11, 0.11),
                totes=rng.randint(1, 6),
                window_start=ws,
                window_end=ws + timedelta(minutes=rng.choice([60, 90, 120])),
            )
        )
    return t0, orders


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--limit", type=float, default=3.0, help="solver time limit used in production (s)")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()

    times, gaps = [], []
    for seed in range(1, args.seeds + 1):
        t0, orders = instance(args.orders, seed)
        started = time.perf_counter()
        fast = propose_batches(store=STORE, orders=orders, max_totes=20, max_stops=5, time_limit_s=args.limit, start=t0)
        elapsed = time.perf_counter() - started
        slow = propose_batches(
            store=STORE, orders=orders, max_totes=20, max_stops=5, time_limit_s=args.limit * 10, start=t0
        )
        gap = 100.0 * (fast.distance_m - slow.distance_m) / slow.distance_m
        times.append(elapsed)
        gaps.append(gap)
        print(
            f"seed {seed}: proposal in {elapsed:.2f}s, {len(fast.batches)} batches, "
            f"{fast.distance_m / 1000:.1f} km (unassigned {len(fast.unassigned)}); "
            f"10x time: {slow.distance_m / 1000:.1f} km; gap {gap:+.2f}%"
        )
    print(
        f"batching: {args.orders} orders, time to proposal max {max(times):.2f}s (target < 10 s), "
        f"distance gap vs 10x time: mean {statistics.mean(gaps):+.2f}% max {max(gaps):+.2f}%"
    )
    return 0 if max(times) < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
