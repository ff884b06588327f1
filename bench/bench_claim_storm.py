"""Claim storm: 500 concurrent drivers race for 100 published batches through gunicorn + PostgreSQL.

Targets (DESIGN "Performance targets", issue 4): 0 double assignments, 0 lost winners; claim
throughput at least 0.7 of a bare JSON endpoint served by the same server setup.

World (its own database, created if missing, migrated, emptied): one zone with
claim_pool_seconds=0 (first come; the fair window is not what is measured here) and a claim
rate far above what a driver sends, one store, 100 published batches on the open board
(board_at in the past, 2 stops each), 500 active drivers with valid documents and API tokens.

Server: gunicorn serving bench.benchping:application (Django's WSGI handler, spark.urls plus
the two baselines, see bench/benchping.py) with the test settings, DEBUG off, the bench
database and Redis db 10, which is also the Django cache as in production (claim throttle
attempt counters and "taken" markers of orders/claim_gate.py shared by every worker; --cache locmem
gives each worker its own, as the test settings do). Default: 4 sync workers (2 cores),
persistent database connections (CONN_MAX_AGE 60, as in production; the test settings pin 0 -
pass --conn-max-age 0 to measure that).

Load: one asyncio + aiohttp client in this process (on the same 2-core machine as gunicorn and
PostgreSQL, so the figures are a lower bound). Each of the 500 drivers starts at the same
instant and claims random batches it does not know to be taken (a 409 "batch_taken" seen by
any driver marks a batch taken for all, as a board refresh would) until it gets one or none is
left: about 1,000 requests. The baseline is the same load pattern - 500 concurrent clients,
each sending as many requests as it sent in the storm - against POST /bench/ping/ (token auth
+ IsActiveDriver, returns {"ok": true}), right before and right after the storm (the ratio uses
their mean: the load of a shared machine drifts); /bench/ping-bare/ (plain JsonResponse, no
auth, no database) is printed for information. After a warm-up, this is repeated --runs times
(default 5; fresh batches each run, the previous ones closed) and the median ratio is judged.
Also printed: server CPU per request (gunicorn workers + their PostgreSQL backends, from
/proc), whose ping:claims ratio is what the throughput ratio would be with the server alone
on the machine - far steadier than wall-clock figures while other work runs. With
--server-times, gunicorn's access log gives each request's server time per endpoint/status.

Checked in the database afterwards: every batch assigned, each to a distinct driver, with
exactly one accepted offer held by that driver; no driver holds two active batches; every
"assigned" answer matches the holder (lost winners) and every holder got one (silent winners).

    .venv/bin/python bench/bench_claim_storm.py [--drivers 500] [--batches 100] [--workers 4]
        [--worker-class sync|gthread] [--threads 1] [--conn-max-age 60] [--cache redis|locmem]
        [--runs 5] [--server-times]

DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/spark_bench2 (BENCH_DATABASE_URL
overrides), Redis to redis://127.0.0.1:6379/10 (BENCH_REDIS_URL). Exit status 1 on a
correctness failure (double, lost or silent winners, server errors) or an error; a missed
throughput target (machine-dependent) prints FAIL but exits 0, so `make bench` runs on.
"""

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

TARGET_RATIO = 0.7
ACCESS_FORMAT = "@@ %(m)s %(U)s %(s)s %(D)s"  # method, path, status, server time in microseconds


# --- Load generation ----------------------------------------------------------------------


class Sample:
    __slots__ = ("driver", "batch", "status", "code", "latency")

    def __init__(self, driver: int, batch: int | None, status: int, code: str, latency: float):
        self.driver, self.batch, self.status, self.code, self.latency = driver, batch, status, code, latency


def _code(status: int, body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return "" if status < 500 else "server_error"
    if isinstance(data, dict):
        return str(data.get("code") or data.get("status") or "")
    return ""


async def _post(session, url: str, headers: dict) -> tuple[int, bytes, dict]:
    try:
        async with session.post(url, headers=headers) as resp:
            return resp.status, await resp.read(), dict(resp.headers)
    except Exception as exc:  # a failed request is a figure, not a crash
        return 0, repr(exc).encode(), {}


def _session(concurrency: int):
    import aiohttp

    # gunicorn's sync workers close the connection after each response: one connection per request.
    connector = aiohttp.TCPConnector(limit=concurrency + 10, force_close=True)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120))


async def storm(base: str, drivers: list, batch_ids: list[int], seed: int) -> tuple[list[Sample], float]:
    """Every driver claims random open batches until it has one or none is left."""
    taken: set[int] = set()
    samples: list[Sample] = []
    go = asyncio.Event()

    async with _session(len(drivers)) as session:

        async def driver_loop(i: int, driver) -> None:
            rng = random.Random(seed * 1_000_003 + i)
            headers = {"Authorization": f"Token {driver.token}"}
            tried: set[int] = set()
            await go.wait()
            while True:
                candidates = [b for b in batch_ids if b not in taken and b not in tried]
                if not candidates:
                    return
                batch_id = rng.choice(candidates)
                tried.add(batch_id)
                started = time.perf_counter()
                status, body, headers_in = await _post(
                    session, f"{base}/api/v1/driver/batches/{batch_id}/claim/", headers
                )
                code = _code(status, body)
                samples.append(Sample(driver.pk, batch_id, status, code, time.perf_counter() - started))
                if status == 200:
                    taken.add(batch_id)
                    return
                if status == 409 and code == "batch_taken":
                    taken.add(batch_id)
                elif status == 409 and code == "driver_busy":
                    return  # holds a batch already (never expected: it would be a silent winner)
                elif status == 429:
                    tried.discard(batch_id)
                    await asyncio.sleep(float(headers_in.get("Retry-After", "1")))
                elif status == 202:
                    return  # pooled: not expected with claim_pool_seconds=0
                # 5xx / connection errors: recorded; the driver moves on to another batch

        tasks = [asyncio.create_task(driver_loop(i, d)) for i, d in enumerate(drivers)]
        await asyncio.sleep(0.2)  # every task is waiting on `go`
        started = time.perf_counter()
        go.set()
        await asyncio.gather(*tasks)
        return samples, time.perf_counter() - started


async def replay(base: str, path: str, drivers: list, counts: dict[int, int]) -> tuple[list[Sample], float]:
    """The storm's load pattern against another URL: the same clients, each sending as many
    requests as it sent in the storm, one after the other, all starting at once."""
    samples: list[Sample] = []
    go = asyncio.Event()
    active = [d for d in drivers if counts.get(d.pk)]

    async with _session(len(active)) as session:

        async def client(driver) -> None:
            headers = {"Authorization": f"Token {driver.token}"}
            await go.wait()
            for _ in range(counts[driver.pk]):
                started = time.perf_counter()
                status, body, _ = await _post(session, base + path, headers)
                samples.append(Sample(driver.pk, None, status, _code(status, body), time.perf_counter() - started))

        tasks = [asyncio.create_task(client(d)) for d in active]
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        go.set()
        await asyncio.gather(*tasks)
        return samples, time.perf_counter() - started


def server_times(log_path: Path, since: int) -> tuple[int, str]:
    """Server-side time per endpoint and status from the access log lines after byte `since`."""
    import re

    if not log_path.exists():
        return since, ""
    data = log_path.read_bytes()
    groups: dict[tuple[str, str], list[float]] = {}
    for line in data[since:].decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 5 or parts[0] != "@@":
            continue
        endpoint = re.sub(r"/\d+/", "/{id}/", parts[2])
        groups.setdefault((endpoint, parts[3]), []).append(int(parts[4]) / 1000)
    text = "\n".join(
        f"    server time {endpoint} {status}: {len(ms)} req, mean {sum(ms) / len(ms):.1f} ms, "
        f"p50 {_common.pct(ms, 50):.1f} ms, p99 {_common.pct(ms, 99):.1f} ms"
        for (endpoint, status), ms in sorted(groups.items())
    )
    return len(data), text


def summary(label: str, samples: list[Sample], elapsed: float, cpu: tuple[float, float, float]) -> dict:
    latencies = [s.latency * 1000 for s in samples]
    n = len(samples)
    statuses_count = Counter(s.status for s in samples)
    figures: dict = {
        "n": n,
        "elapsed": elapsed,
        "rps": n / elapsed if elapsed else 0.0,
        "p50": _common.pct(latencies, 50),
        "p99": _common.pct(latencies, 99),
        "max": max(latencies, default=0.0),
        "statuses": statuses_count,
        "server_cpu_ms": cpu[0] * 1000 / n if n else 0.0,
        "db_cpu_ms": cpu[1] * 1000 / n if n else 0.0,
        "client_cpu_ms": cpu[2] * 1000 / n if n else 0.0,
    }
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(statuses_count.items()))
    print(
        f"  {label:<30} {n:5d} req in {elapsed:5.2f} s = {figures['rps']:6.1f} req/s; p50 {figures['p50']:6.0f} ms, "
        f"p99 {figures['p99']:6.0f} ms; CPU/req server {figures['server_cpu_ms']:5.2f} ms "
        f"({figures['db_cpu_ms']:4.2f} in PostgreSQL), client "
        f"{figures['client_cpu_ms']:4.2f} ms  [{statuses}]"
    )
    return figures


def measure(meter: "_common.CpuMeter", label: str, coro) -> tuple[dict, list[Sample], float]:
    meter.start()
    samples, elapsed = asyncio.run(coro)
    figures = summary(label, samples, elapsed, meter.stop())
    return figures, samples, elapsed


# --- World and checks ---------------------------------------------------------------------


def build_world(args):
    from django.utils import timezone

    zone, store = _common.make_zone_and_store(claim_pool_seconds=0, claim_rate_per_minute=10_000)
    drivers = _common.make_drivers(args.drivers, zone, tokens=True, online=True)
    warm_drivers = _common.make_drivers(60, zone, tokens=True, prefix="bench-warmup", online=True)
    past = timezone.now() - timedelta(minutes=1)
    batches = _common.make_published_batches(args.batches, store, stage="board", board_at=past, tag="storm")
    warm_batches = _common.make_published_batches(20, store, stage="board", board_at=past, tag="warm")
    _common.vacuum_analyze()
    return store, drivers, [b.pk for b in batches], warm_drivers, [b.pk for b in warm_batches]


def next_batches(store, previous: list[int], n: int, run: int) -> list[int]:
    """Between runs: the previous run's batches are closed (as if delivered, so every driver is
    free again) and a fresh set goes on the board; each run starts from the same state."""
    from django.utils import timezone

    from orders.models import Batch

    Batch.objects.filter(pk__in=previous).update(status=Batch.Status.COMPLETED, closed_at=timezone.now())
    batches = _common.make_published_batches(
        n, store, stage="board", board_at=timezone.now() - timedelta(minutes=1), tag=f"storm{run}"
    )
    _common.vacuum_analyze()
    return [b.pk for b in batches]


def verify(batch_ids: list[int], samples: list[Sample]) -> dict[str, int]:
    from django.db.models import Count

    from dispatch.models import Offer
    from orders.models import Batch

    holders = dict(Batch.objects.filter(pk__in=batch_ids, status=Batch.Status.ASSIGNED).values_list("pk", "driver_id"))
    accepted = list(
        Offer.objects.filter(batch_id__in=batch_ids, status=Offer.Status.ACCEPTED).values_list("batch_id", "driver_id")
    )
    accepted_per_batch = Counter(b for b, _ in accepted)
    http_wins: dict[int, set[int]] = {}
    for s in samples:
        if s.status == 200 and s.batch is not None:
            http_wins.setdefault(s.batch, set()).add(s.driver)
    busy_drivers = (
        Batch.objects.filter(status__in=Batch.ACTIVE_STATUSES)
        .values("driver")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    checks = {
        "batches assigned": len(holders),
        "distinct holders": len(set(holders.values())),
        "batches without exactly one accepted offer": sum(1 for b in batch_ids if accepted_per_batch[b] != 1),
        "accepted offer not held by the batch's driver": sum(1 for b, d in accepted if holders.get(b) != d),
        "drivers with two active batches": busy_drivers,
        "batches told 'assigned' to two drivers": sum(1 for ds in http_wins.values() if len(ds) > 1),
        "lost winners (told assigned, not the holder)": sum(
            1 for b, ds in http_wins.items() for d in ds if holders.get(b) != d
        ),
        "silent winners (holder never told assigned)": sum(
            1 for b, d in holders.items() if d not in http_wins.get(b, set())
        ),
        "offers left that are not accepted": Offer.objects.filter(batch_id__in=batch_ids)
        .exclude(status=Offer.Status.ACCEPTED)
        .count(),
        "server errors / failed requests": sum(1 for s in samples if s.status >= 500 or s.status == 0),
    }
    return checks


# --- Server -------------------------------------------------------------------------------


def start_gunicorn(procs: "_common.Processes", args, env: dict[str, str]) -> str:
    import requests

    port = _common.free_port()
    env = {**env, "BENCH_CONN_MAX_AGE": str(args.conn_max_age)}
    if args.cache == "redis":
        env["BENCH_CACHE_URL"] = env["REDIS_URL"]
    cmd = [
        str(_common.VENV_BIN / "gunicorn"),
        args.app,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--backlog",
        "2048",
        "--timeout",
        "60",
        "--graceful-timeout",
        "5",
        "--log-level",
        "warning",
    ]
    if args.server_times:
        cmd += ["--access-logfile", str(procs.log_dir / "access.log"), "--access-logformat", ACCESS_FORMAT]
    procs.start("gunicorn", cmd, env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if procs.procs["gunicorn"].poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{_common.tail(procs.log_text('gunicorn'))}")
        try:
            if requests.get(base + "/healthz", timeout=2).status_code == 200:
                return base
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn not ready in 30 s:\n{_common.tail(procs.log_text('gunicorn'))}")


async def warm_up(base: str, warm_drivers: list, warm_batches: list[int], drivers: list) -> None:
    """Load every module, open every worker's database connection: pings, a few real claims by
    drivers outside the storm, and 409s on batches they already took."""
    counts = {d.pk: 6 for d in drivers[:32]}
    await replay(base, "/bench/ping/", drivers[:32], counts)
    await replay(base, "/bench/ping-bare/", drivers[:32], counts)
    await storm(base, warm_drivers, warm_batches, seed=99)
    await storm(base, warm_drivers[:16], warm_batches, seed=98)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--drivers", type=int, default=500)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--conn-max-age", type=int, default=60)
    ap.add_argument(
        "--cache",
        default="redis",
        choices=["redis", "locmem"],
        help="Django cache of the server: Redis as in production (default), or the test "
        "settings' LocMem, one per worker process",
    )
    ap.add_argument("--runs", type=int, default=5, help="storm + baselines this many times on the same server")
    ap.add_argument(
        "--server-times",
        action="store_true",
        help="gunicorn access log with each request's server time; prints them per endpoint and status",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--app",
        default="bench.benchping:application",
        help="WSGI app for gunicorn; it must serve /bench/ping/ (e.g. a variant importing bench.benchping)",
    )
    args = ap.parse_args()

    _common.install_signal_handlers()
    env = _common.bench_env()
    t_setup = time.perf_counter()
    _common.setup_django()
    _common.flush_redis(env["REDIS_URL"])
    store, drivers, batch_ids, warm_drivers, warm_batches = build_world(args)
    print(
        f"world: {len(drivers)} drivers, {len(batch_ids)} batches on the board "
        f"(built in {time.perf_counter() - t_setup:.1f} s)"
    )
    print(
        f"server: gunicorn {args.app}, {args.workers} {args.worker_class} workers"
        f"{f' x {args.threads} threads' if args.worker_class == 'gthread' else ''}, CONN_MAX_AGE "
        f"{args.conn_max_age}, {args.cache} cache; client: asyncio + aiohttp on the same 2-core machine"
    )
    if args.conn_max_age == 0:
        print(
            "note: with CONN_MAX_AGE 0 every request has its own short-lived PostgreSQL backend, which the "
            "server CPU figures miss"
        )

    failed = False
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    log_dir = Path(tempfile.mkdtemp(prefix="bench-claim-storm-"))
    procs = _common.Processes(log_dir)
    try:
        base = start_gunicorn(procs, args, env)
        asyncio.run(warm_up(base, warm_drivers, warm_batches, drivers))
        meter = _common.CpuMeter(procs.procs["gunicorn"].pid)
        log_offset, _ = server_times(log_dir / "access.log", 0)
        counts: dict[int, int] = {d.pk: 2 for d in drivers}  # run 1's "before" baseline: about the storm's size
        for run in range(1, args.runs + 1):
            if run > 1:
                batch_ids = next_batches(store, batch_ids, args.batches, run)
            print(f"run {run}:")
            # The baseline runs right before and right after the storm (the machine is shared;
            # its load drifts): the ratio uses the mean of both.
            before, _, _ = measure(meter, "baseline /bench/ping/ before", replay(base, "/bench/ping/", drivers, counts))
            claims, samples, elapsed = measure(
                meter, "claims POST .../claim/", storm(base, drivers, batch_ids, seed=args.seed + run)
            )
            counts = Counter(s.driver for s in samples)
            after, _, _ = measure(meter, "baseline /bench/ping/ after", replay(base, "/bench/ping/", drivers, counts))
            bare, _, _ = measure(
                meter, "info /bench/ping-bare/ no auth", replay(base, "/bench/ping-bare/", drivers, counts)
            )
            if args.server_times:
                log_offset, text = server_times(log_dir / "access.log", log_offset)
                print(text)
            checks = verify(batch_ids, samples)
            won = sum(1 for s in samples if s.status == 200)
            print(
                f"  outcomes: {won} assigned, "
                + ", ".join(
                    f"{k or '?'}: {v}" for k, v in Counter(s.code for s in samples if s.status != 200).most_common()
                )
                + f"; {len(counts)} drivers sent requests, max "
                f"{max(counts.values())} each; {won / elapsed:.1f} assignments/s"
            )
            for name, value in checks.items():
                print(f"    {name}: {value}")
            correct = checks["batches assigned"] == len(batch_ids) == checks["distinct holders"] and all(
                v == 0 for k, v in checks.items() if k not in ("batches assigned", "distinct holders")
            )
            baseline_rps = (before["rps"] + after["rps"]) / 2
            ratio = claims["rps"] / baseline_rps if baseline_rps else 0.0
            ratios.append(ratio)
            cpu_ratio = (
                (before["server_cpu_ms"] + after["server_cpu_ms"]) / 2 / claims["server_cpu_ms"]
                if claims["server_cpu_ms"]
                else 0.0
            )
            cpu_ratios.append(cpu_ratio)
            p50_ratio = after["p50"] / claims["p50"] if claims["p50"] else 0.0
            print(
                f"  claims/s : ping req/s = {claims['rps']:.1f} : {baseline_rps:.1f} = {ratio:.2f} "
                f"(p50 latency ping/claims {p50_ratio:.2f}; claims/s vs the no-auth ping "
                f"{claims['rps'] / bare['rps'] if bare['rps'] else 0:.2f})"
            )
            print(
                f"  server CPU per request ping : claims = {cpu_ratio:.2f} (what the throughput ratio would be "
                f"with the server alone on the CPUs)"
            )
            print(
                f"  {_common.verdict(correct)}: 0 double assignments, 0 lost winners, all {len(batch_ids)} "
                f"batches assigned once"
            )
            failed = failed or not correct
    except BaseException:
        print(
            f"gunicorn log ({procs.log_path('gunicorn')}):\n{_common.tail(procs.log_text('gunicorn'))}", file=sys.stderr
        )
        raise
    finally:
        procs.stop_all()
        _common.flush_redis(env["REDIS_URL"])
    errors = [
        line
        for line in (log_dir / "gunicorn.log").read_text(errors="replace").splitlines()
        if "Traceback" in line or "Internal Server Error" in line
    ]
    if errors:
        print(f"gunicorn logged {len(errors)} errors; see {log_dir / 'gunicorn.log'}")
    median = statistics.median(ratios) if ratios else 0.0
    print(f"claim storm summary ({len(ratios)} runs, {date.today():%Y-%m-%d}):")
    print(
        f"  {_common.verdict(not failed)}: correctness (0 double assignments, 0 lost or silent winners, "
        f"no server errors) in every run"
    )
    print(
        f"  {_common.verdict(median >= TARGET_RATIO)}: claim throughput {median:.2f} of the bare JSON "
        f"endpoint (median of " + ", ".join(f"{r:.2f}" for r in ratios) + f"; target >= {TARGET_RATIO})"
    )
    if cpu_ratios:
        print(
            f"  server CPU per request, ping : claims = {statistics.median(cpu_ratios):.2f} (median of "
            + ", ".join(f"{r:.2f}" for r in cpu_ratios)
            + "): the ratio on a machine with nothing else running"
        )
    if not failed and not errors:
        shutil.rmtree(log_dir, ignore_errors=True)  # kept (and named above) when something went wrong
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
