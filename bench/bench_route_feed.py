"""Route feed benchmark: 10,000 open batches in one zone, a driver's ranked feed.

Builds its own world in a dedicated PostgreSQL database (created if missing, migrated,
emptied): one zone, a few stores, N published batches with 1-5 stops each (plus closed
batches from earlier days, as a real table has), and drivers with trip and online routes.
Then it times dispatch.feed.route_feed (server time: the selector with its queries,
without HTTP) for many calls with varied routes and prints p50/p95/max against the target
(p95 under 30 ms). If the partial index the feed wants is missing, it measures once
without it and once with it created for the run, so both figures are on record.

    .venv/bin/python bench/bench_route_feed.py [--batches 10000] [--calls 200] [--closed 20000]

DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/spark_bench; the script refuses
a database whose name does not end in "bench" (it empties it). Exit status is non-zero only
on errors, not on a missed target.
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spark.settings.test")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/spark_bench")

TARGET_P95_MS = 30.0
CENTER = (36.1627, -86.7816)  # Nashville
# The index the feed's bounding box wants (see the report of issue 4): published batches by
# their last stop. Created here only when the schema does not have an equivalent yet.
BENCH_INDEX = "bench_batch_published_last_stop"
BENCH_INDEX_SQL = (
    f'CREATE INDEX IF NOT EXISTS "{BENCH_INDEX}" ON "orders_batch" ("last_stop_lat", "last_stop_lng") '
    "WHERE \"status\" = 'published'"
)


def ensure_database(url: str) -> None:
    import psycopg2
    from psycopg2 import sql

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    if not name.endswith("bench"):
        raise SystemExit(f"refusing to use database {name!r}: this script empties it; use a *bench database")
    conn = psycopg2.connect(
        dbname="postgres",
        user=parts.username or "postgres",
        password=parts.password,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")
    conn.close()


def jitter(rng: random.Random, lat: float, lng: float, km: float) -> tuple[Decimal, Decimal]:
    dlat = km / 111.2
    dlng = km / (111.2 * 0.807)
    return (Decimal(f"{lat + rng.uniform(-dlat, dlat):.6f}"), Decimal(f"{lng + rng.uniform(-dlng, dlng):.6f}"))


def build_world(args, rng: random.Random):
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from accounts.models import User
    from drivers.models import Driver, Location, Route
    from orders.models import Batch, Order, Stop
    from payments.models import PayPolicy
    from spark import geo
    from stores.models import Store, Zone

    now = timezone.now()
    zone = Zone.objects.create(
        name="Bench Nashville",
        slug="bench-nashville",
        center_lat=Decimal(str(CENTER[0])),
        center_lng=Decimal(str(CENTER[1])),
        radius_km=40,
    )
    PayPolicy.objects.create(zone=zone)
    stores = []
    for i in range(args.stores):
        lat, lng = jitter(rng, *CENTER, km=12)
        stores.append(
            Store(
                zone=zone,
                number=f"B{i:03d}",
                name=f"Bench Store {i}",
                address_line1=f"{i} Bench Rd",
                city="Nashville",
                state="TN",
                postal_code="37203",
                lat=lat,
                lng=lng,
            )
        )
    stores = Store.objects.bulk_create(stores)

    password = make_password("bench-only-password")
    users = User.objects.bulk_create(
        [User(email=f"bench-driver-{i}@example.test", password=password) for i in range(args.drivers)]
    )
    expiry = date.today() + timedelta(days=365)
    drivers = Driver.objects.bulk_create(
        [
            Driver(
                user=u,
                home_zone=zone,
                status=Driver.Status.ACTIVE,
                license_expires_on=expiry,
                insurance_expires_on=expiry,
                is_online=True,
                online_since=now - timedelta(minutes=rng.randint(0, 120)),
            )
            for u in users
        ]
    )

    def make_batches(n: int, *, status: str, closed: bool) -> None:
        made = 0
        while made < n:
            chunk = min(2000, n - made)
            batches, stop_orders = [], []
            for _ in range(chunk):
                store = rng.choice(stores)
                here = geo.Point.of(store.lat, store.lng)
                points = []
                for _ in range(rng.randint(1, 5)):
                    points.append(jitter(rng, float(store.lat), float(store.lng), km=rng.choice([4, 8, 15])))
                path = [here] + [geo.Point.of(*p) for p in points] + [here]
                meters = geo.route_m(path)
                seconds = geo.route_s(path) + geo.STOP_SERVICE_SECONDS * len(points)
                window = now + timedelta(minutes=rng.randint(30, 240))
                batch = Batch(
                    store=store,
                    status=status,
                    route_meters=meters,
                    route_seconds=seconds,
                    last_stop_lat=points[-1][0],
                    last_stop_lng=points[-1][1],
                    stops_count=len(points),
                    published_at=now - timedelta(minutes=rng.randint(0, 60)),
                    pickup_by=window - timedelta(seconds=seconds) if not closed else None,
                    dispatch_stage=rng.choice(["", "slot", "route", "board", "board"]) if not closed else "board",
                    incentive_cents=rng.choice([0, 0, 100, 200]),
                    driver=rng.choice(drivers) if closed else None,
                    assigned_at=now - timedelta(days=rng.randint(1, 90)) if closed else None,
                )
                batches.append(batch)
                stop_orders.append(
                    [
                        Order(
                            store=store,
                            external_id=f"bench-{status}-{made}-{i}-{rng.random():.12f}",
                            status="delivered" if closed else "ready",
                            customer_name="Bench Customer",
                            address_line1=f"{rng.randint(1, 9999)} Bench St",
                            city="Nashville",
                            state="TN",
                            postal_code=f"372{rng.randint(0, 99):02d}",
                            lat=lat,
                            lng=lng,
                            window_start=window,
                            window_end=window + timedelta(hours=1),
                            totes=rng.randint(1, 4),
                            is_heavy=rng.random() < 0.1,
                            tip_cents=rng.choice([0, 300, 500, 800]),
                        )
                        for i, (lat, lng) in enumerate(points)
                    ]
                )
            for batch, group in zip(batches, stop_orders, strict=True):  # as batch_refresh_route keeps them
                batch.stops_tip_cents = sum(o.tip_cents for o in group)
                batch.stops_heavy = sum(1 for o in group if o.is_heavy)
            Batch.objects.bulk_create(batches)
            orders = Order.objects.bulk_create([o for group in stop_orders for o in group])
            it = iter(orders)
            stops = []
            for batch, group in zip(batches, stop_orders, strict=True):
                for seq in range(1, len(group) + 1):
                    stops.append(
                        Stop(batch=batch, order=next(it), sequence=seq, status="delivered" if closed else "pending")
                    )
            Stop.objects.bulk_create(stops)
            made += chunk

    t0 = time.perf_counter()
    make_batches(args.batches, status=Batch.Status.PUBLISHED, closed=False)
    if args.closed:
        make_batches(args.closed, status=Batch.Status.COMPLETED, closed=True)

    routes, locations = [], []
    for d in drivers:
        if rng.random() < 0.7:
            o, dest = jitter(rng, *CENTER, km=20), jitter(rng, *CENTER, km=20)
            arrive = now + timedelta(minutes=rng.randint(45, 180)) if rng.random() < 0.5 else None
            routes.append(
                Route(
                    driver=d,
                    zone=zone,
                    mode=Route.Mode.TRIP,
                    origin_lat=o[0],
                    origin_lng=o[1],
                    dest_lat=dest[0],
                    dest_lng=dest[1],
                    arrive_by=arrive,
                    max_detour_meters=rng.choice([2000, 5000, 8000, 15000, 30000]),
                )
            )
        else:
            p = jitter(rng, *CENTER, km=15)
            routes.append(
                Route(
                    driver=d,
                    zone=zone,
                    mode=Route.Mode.ONLINE,
                    origin_lat=p[0],
                    origin_lng=p[1],
                    max_detour_meters=rng.choice([3000, 8000, 15000]),
                )
            )
            locations.append(Location(driver=d, lat=p[0], lng=p[1]))
    Route.objects.bulk_create(routes)
    Location.objects.bulk_create(locations)
    print(
        f"built {args.batches} published + {args.closed} closed batches, {len(stores)} stores, "
        f"{len(drivers)} drivers in {time.perf_counter() - t0:.1f}s"
    )


def settle() -> None:
    """Let the freshly loaded tables settle before timing: statistics, visibility map, and
    the dirty pages written out now rather than by a checkpoint in the middle of a run."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
        try:
            cur.execute("CHECKPOINT")
        except Exception:  # needs superuser (or pg_checkpoint); only a nicety
            pass
    time.sleep(2)


def has_feed_index() -> bool:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'orders_batch'")
        return any("last_stop_lat" in row[0] for row in cur.fetchall())


def measure(args, label: str) -> list[float]:
    from django.utils import timezone

    from dispatch.feed import route_feed
    from drivers.models import Driver, Route

    drivers = list(Driver.objects.filter(home_zone__slug="bench-nashville").select_related("home_zone"))
    modes = dict(Route.objects.filter(is_active=True).values_list("driver_id", "mode"))
    rng = random.Random(7)
    now = timezone.now()
    for d in drivers[:20]:  # warm up connections, caches and plans
        route_feed(d, now=now)
    times: list[float] = []
    sizes: list[int] = []
    by_mode: dict[str, list[float]] = {"trip": [], "online": []}
    for _ in range(args.calls):
        driver = rng.choice(drivers)
        started = time.perf_counter()
        feed = route_feed(driver, now=now)
        elapsed = (time.perf_counter() - started) * 1000
        times.append(elapsed)
        by_mode[modes[driver.pk]].append(elapsed)
        sizes.append(len(feed))
    q = statistics.quantiles(times, n=100)
    print(
        f"route_feed [{label}]: {args.calls} calls, p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, "
        f"max {max(times):.1f} ms (target p95 < {TARGET_P95_MS:.0f} ms: "
        f"{'met' if q[94] < TARGET_P95_MS else 'MISSED'}); feed length mean {statistics.mean(sizes):.1f}, "
        f"empty {sum(1 for s in sizes if s == 0)}"
    )
    for mode, values in by_mode.items():
        if len(values) >= 2:
            mq = statistics.quantiles(values, n=100)
            print(f"    {mode:6} routes: {len(values)} calls, p50 {mq[49]:.1f} ms, p95 {mq[94]:.1f} ms")
    return times


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=10_000, help="published batches in the zone")
    ap.add_argument("--closed", type=int, default=20_000, help="completed batches from earlier days")
    ap.add_argument("--stores", type=int, default=8)
    ap.add_argument("--drivers", type=int, default=200)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    with connection.cursor() as cur:
        cur.execute(f'DROP INDEX IF EXISTS "{BENCH_INDEX}"')
    build_world(args, random.Random(args.seed))
    settle()

    if has_feed_index():
        measure(args, "schema index")
        return 0
    measure(args, "no last-stop index")
    with connection.cursor() as cur:
        cur.execute(BENCH_INDEX_SQL)
    settle()
    measure(args, "with partial index on published last stops")
    with connection.cursor() as cur:
        cur.execute(f'DROP INDEX IF EXISTS "{BENCH_INDEX}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
