"""`make run` end to end: the embedded default (SQLite + filesystem broker) in a fresh state dir.

Starts the real stack (migrate, seed_demo, then web + Celery worker + beat under spark/runstack.py),
logs a demo driver in over HTTP, has the worker expire an offer through its countdown task,
and stops everything with Ctrl-C (SIGINT to the process group), checking nothing is left.
No test database: everything happens in the started processes and their SQLite file.
"""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 120  # install check + migrate a fresh SQLite file + seed + start three processes
EXPIRY_TIMEOUT = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _embedded_env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL")}
    env.update(SPARK_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1", **extra)
    return env


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid` with its command line (the runner puts its children in new sessions,
    so the process group alone does not find them)."""
    tree, found, todo = _children(), {}, [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            try:
                found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Stack:
    """`make run` in a process group of its own. `env` is the environment of every process it
    starts (tests/test_run_stack.py passes one with DATABASE_URL / REDIS_URL)."""

    def __init__(self, var_dir: Path, port: int, env: dict[str, str] | None = None):
        self.var_dir = var_dir
        self.port = port
        self.env = env if env is not None else _embedded_env(var_dir)
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = var_dir / "stack.log"
        self.proc: subprocess.Popen | None = None
        self.processes: dict[int, str] = {}

    def start(self) -> None:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["make", "run", f"SPARK_PORT={self.port}"],
            cwd=REPO_ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"`make run` exited with {self.proc.returncode} before serving /healthz")
            try:
                if requests.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        pytest.fail(f"/healthz did not answer within {timeout} s")

    def wait_for_log(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log():
                return True
            time.sleep(0.2)
        return False

    def manage(self, *args: str, timeout: float = 60) -> str:
        """manage.py against the stack's state dir, as a separate process (like an ops shell)."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
            env={**self.env, "DJANGO_SETTINGS_MODULE": "spark.settings.local"},
        )
        assert result.returncode == 0, f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def stop(self) -> list[str]:
        """Ctrl-C, as a terminal sends it: SIGINT to the process group of make and the runner.
        Then SIGTERM / SIGKILL if it hangs. Returns what had to be forced, empty when clean."""
        problems: list[str] = []
        if self.proc is None:
            return problems
        self.processes.update(_descendants(self.proc.pid))
        for sig, wait in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                break
            if sig != signal.SIGINT:
                problems.append(f"`make run` ignored the previous signal; sent {sig.name}")
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        # The runner's children run in their own sessions: check each one by pid.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in self.processes):
            time.sleep(0.2)
        for pid, cmd in self.processes.items():
            if _alive(pid):
                problems.append(f"still running after Ctrl-C: {pid} {cmd}")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._log.close()
        self.proc = None
        return problems


@pytest.fixture
def stack(tmp_path):
    stack = Stack(tmp_path, _free_port())
    stack.start()
    try:
        yield stack
    finally:
        problems = stack.stop()  # idempotent: a test that already stopped it leaves nothing to do
        if problems:
            print("\n".join(problems))


CREATE_OFFER = """
from datetime import timedelta
from django.db import transaction
from django.utils import timezone
from drivers.models import Driver
from orders.models import Batch
from dispatch.models import Offer
from dispatch.services import offer_schedule_expiry

driver = Driver.objects.get(user__email="driver1@spark.test")
batch = (
    Batch.objects.filter(status=Batch.Status.PUBLISHED)
    .exclude(offers__driver=driver, offers__status=Offer.Status.PENDING)
    .order_by("pk").first()
)
with transaction.atomic():
    offer = Offer.objects.create(batch=batch, driver=driver, expires_at=timezone.now() + timedelta(seconds=3))
    offer_schedule_expiry(offer=offer)
print("OFFER", offer.pk, offer.expires_at.timestamp())
"""


def _offer_row(db_path: Path, offer_id: int) -> tuple[str, str]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT status, status_changed_at FROM orders_offer WHERE id = ?", (offer_id,)).fetchone()
    finally:
        conn.close()


def test_make_run_serves_logs_in_expires_offers_and_stops_on_ctrl_c(stack):
    try:
        stack.wait_healthy()
        started = _descendants(stack.proc.pid)
        commands = " | ".join(started.values())
        for part in ("runserver", "celery -A spark worker", "celery -A spark beat"):
            assert part in commands, f"{part!r} not running: {commands}"
        assert stack.wait_for_log("embedded@", 30) and stack.wait_for_log(" ready.", 30), "worker never got ready"

        # A demo driver logs in through allauth and lands on the driver home.
        http = requests.Session()
        login_url = f"{stack.base}/accounts/login/"
        assert http.get(login_url, timeout=10).status_code == 200
        response = http.post(
            login_url,
            data={
                "login": "driver1@spark.test",
                "password": "spark-demo",
                "csrfmiddlewaretoken": http.cookies["csrftoken"],
            },
            headers={"Referer": login_url},
            timeout=10,
        )
        assert response.status_code == 200 and response.url == f"{stack.base}/", response.url
        assert 'id="role-driver"' in response.text

        # An offer expiring in 3 s; its countdown task goes through the filesystem broker.
        out = stack.manage("shell", "-c", CREATE_OFFER)
        _, offer_id, expires_ts = next(line for line in out.splitlines() if line.startswith("OFFER")).split()
        offer_id, expires_at = int(offer_id), float(expires_ts)
        db_path = stack.var_dir / "spark.sqlite3"
        deadline = time.monotonic() + EXPIRY_TIMEOUT
        status, changed_at = _offer_row(db_path, offer_id)
        while status != "expired" and time.monotonic() < deadline:
            time.sleep(0.25)
            status, changed_at = _offer_row(db_path, offer_id)
        assert status == "expired", f"offer {offer_id} still {status} {EXPIRY_TIMEOUT} s later"
        # Django keeps naive UTC datetimes in SQLite.
        expired_at = datetime.fromisoformat(changed_at).replace(tzinfo=UTC).timestamp()
        # The worker ran the countdown task for this offer. (The beat sweeper, every 15 s, may
        # occasionally get there first; the offer is expired either way, which is what counts.)
        assert stack.wait_for_log("Task dispatch.tasks.expire_offer[", 10), "the countdown task never reached a worker"
        assert expires_at - 0.5 <= expired_at <= expires_at + 10, (expires_at, expired_at)

        # Ctrl-C stops web, worker and beat, without the runner having to SIGKILL anyone.
        problems = stack.stop()
        assert not problems, problems
        log = stack.log()
        assert "worker: Warm shutdown" in log
        assert "sending SIGKILL" not in log, "a process did not stop within the runner's 10 s"
        assert "SIGINT received: stopping" in log and "runner | all stopped" in log
        # the broker's fanout tables live in the state dir, not in the working directory
        assert (stack.var_dir / "broker" / "control" / "celery.pidbox.exchange").exists()
    except BaseException:
        print(f"---- last lines of the `make run` output ({stack.log_path}) ----\n{stack.log_tail()}")
        raise
