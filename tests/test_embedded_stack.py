"""`make run` end to end: the embedded default (SQLite + filesystem broker) in a fresh state dir.

Starts the real stack (migrate, seed_demo, then web + Celery worker + beat under spark/runstack.py),
logs a demo driver in over HTTP, has the worker expire an offer through its countdown task,
and stops everything with Ctrl-C (SIGINT to the process group), checking nothing is left.
No test database: everything happens in the started processes and their SQLite file.
"""

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.helpers import CREATE_OFFER, Stack, _descendants, _free_port

pytestmark = pytest.mark.slow

EXPIRY_TIMEOUT = 40


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
