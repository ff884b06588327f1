"""Helpers shared by the benchmarks that build a world in PostgreSQL and start processes.

Import after putting the repository root on sys.path; Django is set up by `setup_django`.
Every started process lives in its own process group and is stopped (group-wide, SIGTERM then
SIGKILL) by `Processes.stop_all`, which the scripts call in `finally` (SIGTERM/SIGINT to the
script raise SystemExit/KeyboardInterrupt, so that `finally` runs then too).
"""

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/spark_bench2"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
CENTER = (Decimal("36.162700"), Decimal("-86.781600"))  # Nashville


# --- Environment and database -----------------------------------------------------------


def bench_env(database_url: str | None = None, redis_url: str | None = None) -> dict[str, str]:
    """os.environ for this process and its children: test settings, the bench database and Redis db."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "spark.settings.test"
    os.environ["DATABASE_URL"] = database_url or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
    os.environ["REDIS_URL"] = redis_url or os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL
    os.environ.setdefault("PYTHONPATH", str(REPO))
    return dict(os.environ)


def ensure_database(url: str) -> None:
    """Create the bench database if missing. Refuses names without "bench": the scripts empty it."""
    import psycopg2
    from psycopg2 import sql

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to use database {name!r}: the benchmarks empty it; use a *bench* database")
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


def setup_django(*, flush: bool = True) -> None:
    """Set Django up on the bench database, migrate it and (by default) empty it."""
    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if flush:
        call_command("flush", interactive=False, verbosity=0)


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def vacuum_analyze() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")


# --- Processes --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raise_system_exit(signum, frame):  # signal handler signature
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """SIGTERM (e.g. from a CI timeout) unwinds like Ctrl-C, so `finally` stops the children."""
    signal.signal(signal.SIGTERM, _raise_system_exit)


class Processes:
    """Subprocesses, each in its own session/process group, logging to files."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, object] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # closed in stop()
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs[name] = proc
        self._logs[name] = log
        return proc

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_text(self, name: str) -> str:
        try:
            return self.log_path(name).read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, name: str, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        proc = self.procs[name]
        while time.monotonic() < deadline:
            if needle in self.log_text(name):
                return
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail(self.log_text(name))}")
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready within {timeout:.0f} s:\n{tail(self.log_text(name))}")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker's children too) and reap it."""
        proc = self.procs[name]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop(self, name: str, grace: float = 8.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=grace)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                pass
        try:  # leftovers of the group (children that outlived their parent), whatever happened
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            print(f"warning: {name} (pid {proc.pid}) did not exit", file=sys.stderr)
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def children(pid: int) -> list[int]:
    """Direct children of `pid` (e.g. gunicorn's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds used so far by each of `pids` (those still alive)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    return used


def database_backends() -> list[int]:
    """PostgreSQL backend pids connected to this database, except this process's own."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return [row[0] for row in cur.fetchall()]


class CpuMeter:
    """CPU seconds spent by a server (its worker processes and their PostgreSQL backends) and by
    this process between `start` and `stop`: far less sensitive than wall-clock throughput to
    whatever else runs on a shared machine."""

    def __init__(self, master_pid: int):
        self.master_pid = master_pid
        self._start: dict[int, float] = {}
        self._client = 0.0

    def start(self) -> None:
        self._start = cpu_seconds(children(self.master_pid) + database_backends())
        self._client = time.process_time()

    def stop(self) -> tuple[float, float, float]:
        """(server CPU seconds, of which PostgreSQL backends, this process's CPU seconds) since start."""
        workers = children(self.master_pid)
        backends = database_backends()
        now = cpu_seconds(workers + backends)
        used = {pid: v - self._start.get(pid, 0.0) for pid, v in now.items()}
        return sum(used.values()), sum(used.get(pid, 0.0) for pid in backends), time.process_time() - self._client


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- Figures ----------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (0-100), linear between closest ranks; 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[min(998, max(0, round(p * 10) - 1))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- World --------------------------------------------------------------------------------


def make_zone_and_store(**zone_fields):
    """One zone (with its pay policy) and one store at its centre."""
    from payments.models import PayPolicy
    from stores.models import Store, Zone

    zone = Zone.objects.create(
        name="Bench Nashville",
        slug="bench-nashville",
        center_lat=CENTER[0],
        center_lng=CENTER[1],
        radius_km=40,
        **zone_fields,
    )
    PayPolicy.objects.create(zone=zone)
    store = Store.objects.create(
        zone=zone,
        number="B001",
        name="Bench Store",
        address_line1="1 Bench Rd",
        city="Nashville",
        state="TN",
        postal_code="37203",
        lat=CENTER[0],
        lng=CENTER[1],
    )
    return zone, store


def make_drivers(n: int, zone, *, tokens: bool = False, prefix: str = "bench-driver", online: bool = False) -> list:
    """`n` active drivers with valid documents; with `tokens`, each driver's `token` attribute
    holds an API token key (rest_framework.authtoken); `online`: on duty in the zone (board
    claims need it)."""
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from accounts.models import User
    from drivers.models import Driver

    password = make_password("bench-only-password")
    users = User.objects.bulk_create(
        [User(email=f"{prefix}-{i}@example.test", password=password) for i in range(n)], batch_size=1000
    )
    valid = date.today() + timedelta(days=365)
    drivers = Driver.objects.bulk_create(
        [
            Driver(
                user=u,
                home_zone=zone,
                status=Driver.Status.ACTIVE,
                license_expires_on=valid,
                insurance_expires_on=valid,
                is_online=online,
                online_since=timezone.now() if online else None,
            )
            for u in users
        ],
        batch_size=1000,
    )
    if tokens:
        from rest_framework.authtoken.models import Token

        keys = Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users], batch_size=1000)
        for driver, token in zip(drivers, keys, strict=True):
            driver.token = token.key  # type: ignore[attr-defined]
    return drivers


def make_published_batches(n: int, store, *, stage: str, stops: int = 2, board_at=None, tag: str = "b") -> list:
    """`n` published batches of `store` in dispatch stage `stage`, each with `stops` ready orders."""
    import random

    from django.utils import timezone

    from orders.models import Batch, Order, Stop

    rng = random.Random(n)
    now = timezone.now()
    window = now + timedelta(hours=2)
    batches = Batch.objects.bulk_create(
        [
            Batch(
                store=store,
                status=Batch.Status.PUBLISHED,
                published_at=now - timedelta(minutes=5),
                dispatch_stage=stage,
                board_at=board_at,
                offer_round=1,
                route_meters=12000,
                route_seconds=1800,
                pickup_by=window - timedelta(minutes=45),
                stops_count=stops,
                last_stop_lat=CENTER[0] + Decimal("0.010000"),
                last_stop_lng=CENTER[1],
            )
            for _ in range(n)
        ],
        batch_size=1000,
    )
    orders = Order.objects.bulk_create(
        [
            Order(
                store=store,
                external_id=f"bench-{tag}-{b.pk}-{s}",
                status=Order.Status.READY,
                customer_name="Bench Customer",
                address_line1=f"{rng.randint(1, 9999)} Bench St",
                city="Nashville",
                state="TN",
                postal_code="37203",
                lat=CENTER[0] + Decimal(f"{rng.uniform(-0.05, 0.05):.6f}"),
                lng=CENTER[1] + Decimal(f"{rng.uniform(-0.05, 0.05):.6f}"),
                window_start=window,
                window_end=window + timedelta(hours=1),
                totes=2,
                tip_cents=500,
            )
            for b in batches
            for s in range(stops)
        ],
        batch_size=2000,
    )
    it = iter(orders)
    Stop.objects.bulk_create(
        [Stop(batch=b, order=next(it), sequence=s + 1) for b in batches for s in range(stops)], batch_size=2000
    )
    return batches
