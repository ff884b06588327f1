"""`make run` on PostgreSQL + Redis (DATABASE_URL / REDIS_URL set), end to end.

The same started stack as tests/test_embedded_stack.py, on its own PostgreSQL database
(`<DATABASE_URL's name>_runstack`, created and dropped here) and its own Redis database (the
number after REDIS_URL's, flushed before and after), with a state dir that does not exist yet.
It serves, a demo driver logs in, the worker expires an offer through its countdown task, 100
concurrent clients get no 500 and leave no connections behind, and a `kill -9` of the worker
makes the runner say which process died and stop the other two.
"""

import os
import signal
import threading
import time
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import redis
import requests

from spark import vapidkeys
from tests.helpers import CREATE_OFFER, Stack, _alive, _descendants, _free_port

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT = 180  # migrate a fresh PostgreSQL database + seed + start three processes
EXPIRY_TIMEOUT = 40
CLIENTS = 100
IDLE_CONNECTIONS = 10  # the worker's and beat's, at most, once the clients are answered


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=path))


@pytest.fixture
def services(tmp_path):
    """A PostgreSQL database and a Redis database of the stack's own; both removed afterwards."""
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/spark")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    name = f"{urlsplit(database_url).path.lstrip('/')}_runstack"
    parts = urlsplit(database_url)
    admin = psycopg2.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username, password=parts.password, dbname="postgres"
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    redis_db = (int(urlsplit(redis_url).path.lstrip("/") or 0) + 1) % 16
    run_redis_url = _with_path(redis_url, f"/{redis_db}")
    redis.Redis.from_url(run_redis_url).flushdb()
    try:
        yield {"DATABASE_URL": _with_path(database_url, f"/{name}"), "REDIS_URL": run_redis_url, "name": name}
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        redis.Redis.from_url(run_redis_url).flushdb()


class PostgresStack(Stack):
    database_name = ""
    database_url = ""


@pytest.fixture
def stack(tmp_path, services):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=services["DATABASE_URL"],
        REDIS_URL=services["REDIS_URL"],
        SPARK_VAR_DIR=str(tmp_path / "state" / "var"),  # not there yet: settings make it
        PYTHONUNBUFFERED="1",
    )
    stack = PostgresStack(tmp_path, _free_port(), env=env)
    stack.database_name = services["name"]
    stack.database_url = services["DATABASE_URL"]
    stack.start()
    try:
        yield stack
    finally:
        problems = stack.stop()
        if problems:
            print("\n".join(problems))


def _sql(stack, query: str, *params):
    conn = psycopg2.connect(stack.database_url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchone()
    finally:
        conn.close()


def _connections(stack) -> int:
    # Sessions on the stack's database other than this query's own.
    return _sql(
        stack,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        stack.database_name,
    )[0]


def _login(stack, email: str) -> requests.Session:
    http = requests.Session()
    login_url = f"{stack.base}/accounts/login/"
    assert http.get(login_url, timeout=10).status_code == 200
    response = http.post(
        login_url,
        data={"login": email, "password": "spark-demo", "csrfmiddlewaretoken": http.cookies["csrftoken"]},
        headers={"Referer": login_url},
        timeout=10,
    )
    assert response.status_code == 200 and response.url == f"{stack.base}/", response.url
    return http


def _burst(stack, cookies: dict, path: str) -> tuple[Counter, int]:
    """CLIENTS requests at once; what they got, and the most connections the database saw meanwhile."""
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _connections(stack))
            time.sleep(0.02)

    barrier = threading.Barrier(CLIENTS)
    results: list = [None] * CLIENTS

    def client(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[i] = requests.get(f"{stack.base}{path}", cookies=cookies, timeout=60).status_code
        except requests.RequestException as exc:
            results[i] = type(exc).__name__

    watcher = threading.Thread(target=watch)
    watcher.start()
    clients = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(timeout=90)
    done.set()
    watcher.join()
    assert not any(t.is_alive() for t in clients), "a client hung"
    return Counter(results), peak[0]


def test_make_run_on_postgres_and_redis(stack):
    try:
        stack.wait_healthy(STARTUP_TIMEOUT)
        started = _descendants(stack.proc.pid)
        commands = " | ".join(started.values())
        for part in ("runserver", "celery -A spark worker", "celery -A spark beat"):
            assert part in commands, f"{part!r} not running: {commands}"
        assert stack.wait_for_log(" ready.", 60), "worker never got ready"
        # Beat keeps its schedule in the state dir, which did not exist before `make run`.
        assert stack.wait_for_log("beat: Starting...", 60), "beat never started"
        assert stack.wait_for_log("Sending due task", 30), "beat sent nothing"
        assert list((stack.var_dir / "state" / "var").glob("celerybeat-schedule*"))
        health = requests.get(f"{stack.base}/healthz", timeout=10).json()
        assert health == {"status": "ok", "database": "ok", "broker": "ok"}

        # A demo driver logs in.
        http = _login(stack, "driver1@spark.test")
        # Web push works out of the box: the VAPID pair made under the state dir on the first
        # start is the one the app hands to the driver's browser.
        key_file = stack.var_dir / "state" / "var" / "vapid-private-key.pem"
        public_key = vapidkeys.public_key_of(key_file.read_text())
        assert f'data-vapid-key="{public_key}"' in http.get(f"{stack.base}/driver/", timeout=10).text

        # An offer expiring in 3 s; its countdown task goes through Redis to the worker.
        out = stack.manage("shell", "-c", CREATE_OFFER)
        _, offer_id, _ = next(line for line in out.splitlines() if line.startswith("OFFER")).split()
        deadline = time.monotonic() + EXPIRY_TIMEOUT
        status = None
        while time.monotonic() < deadline:
            (status,) = _sql(stack, "SELECT status FROM orders_offer WHERE id = %s", int(offer_id))
            if status == "expired":
                break
            time.sleep(0.25)
        assert status == "expired", f"offer {offer_id} still {status} {EXPIRY_TIMEOUT} s later"
        assert stack.wait_for_log("Task dispatch.tasks.expire_offer[", 10), "the countdown task never reached a worker"

        # 100 clients at once, twice: every request answered, and the connections each request
        # opened are closed when it ends (runserver serves each request in a new thread).
        for _ in range(2):
            started_at = time.monotonic()
            got, peak = _burst(stack, http.cookies.get_dict(), "/driver/")
            elapsed = time.monotonic() - started_at
            assert got == Counter({200: CLIENTS}), got
            assert elapsed < 90, f"{CLIENTS} requests took {elapsed:.0f} s"
            assert peak < 100, f"{peak} connections at once"
            deadline = time.monotonic() + 10
            while _connections(stack) > IDLE_CONNECTIONS and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _connections(stack) <= IDLE_CONNECTIONS, "connections were kept after their requests"
        assert "too many clients" not in stack.log()

        # kill -9 of the worker: the runner names it and how it ended, stops web and beat, fails.
        worker = next(pid for pid, cmd in _descendants(stack.proc.pid).items() if "celery -A spark worker" in cmd)
        everyone = _descendants(stack.proc.pid)
        os.kill(worker, signal.SIGKILL)
        stack.proc.wait(timeout=30)
        assert stack.proc.returncode != 0
        log = stack.log()
        assert f"runner | worker (pid {worker}) was killed by SIGKILL; stopping web, beat" in log, stack.log_tail()
        # ... and says it again after the others' shutdown output, where it is seen.
        lines = log.splitlines()
        final = max(i for i, line in enumerate(lines) if "runner | stopped because" in line)
        assert lines[final].endswith(f"runner | stopped because worker (pid {worker}) was killed by SIGKILL")
        assert not [line for line in lines[final + 1 :] if " | " in line], lines[final:]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in everyone):
            time.sleep(0.2)
        assert not [cmd for pid, cmd in everyone.items() if _alive(pid)], "left running after the worker died"
    except BaseException:
        print(f"---- last lines of the `make run` output ({stack.log_path}) ----\n{stack.log_tail()}")
        raise
