"""Plain helpers shared by the test suites (not fixtures: those live in conftest.py). Never
imported by the application; the production image carries no tests/ folder."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from django.db import connection


def run_in_threads(n: int, target) -> list:
    """Run target(i) in n threads released together by a barrier; return what each returned or
    raised. Every thread closes its own database connection. For races on PostgreSQL: the tests
    using it need `django_db(transaction=True)` so the threads see each other's commits."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = target(i)
        except BaseException as exc:  # the test inspects what each thread got
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results


REPO_ROOT = Path(__file__).resolve().parent.parent


STARTUP_TIMEOUT = 120  # install check + migrate a fresh SQLite file + seed + start three processes


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
        self._log = open(self.log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            ["make", "run", f"SPARK_PORT={self.port}"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
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
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
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
