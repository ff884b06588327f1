"""`make run`'s runner (spark/runstack.py) on small Procfiles of `sleep`s: who died and how,
the others stopped, Ctrl-C stops everyone cleanly. No Django: the runner runs before it."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


class Runner:
    def __init__(self, tmp_path: Path, procfile: str):
        (tmp_path / "Procfile").write_text(procfile)
        self.log_path = tmp_path / "runner.log"
        self._log = open(self.log_path, "wb")  # closed in finish()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spark.runstack", str(tmp_path / "Procfile")],
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text()

    def pids(self, *names: str) -> dict[str, int]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = dict(re.findall(r"runner \| started (\w+) \(pid (\d+)\)", self.output()))
            if all(name in found for name in names):
                return {name: int(found[name]) for name in names}
            time.sleep(0.05)
        pytest.fail(f"not all of {names} started:\n{self.output()}")

    def finish(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self._log.close()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


@pytest.fixture
def runners():
    started: list[Runner] = []
    yield started
    for runner in started:
        if runner.proc.poll() is None:
            os.killpg(runner.proc.pid, signal.SIGKILL)
            runner.proc.wait()


def test_a_killed_process_is_named_with_its_signal_and_the_others_are_stopped(tmp_path, runners):
    runner = Runner(tmp_path, "web: sleep 60\nworker: sleep 60\nbeat: sleep 60\n")
    runners.append(runner)
    pids = runner.pids("web", "worker", "beat")
    os.kill(pids["worker"], signal.SIGKILL)
    assert runner.finish() == 1
    out = runner.output()
    assert f"runner | worker (pid {pids['worker']}) was killed by SIGKILL; stopping web, beat" in out
    assert (
        out.rstrip()
        .splitlines()[-1]
        .endswith(f"runner | stopped because worker (pid {pids['worker']}) was killed by SIGKILL")
    )
    assert _gone(pids["web"]) and _gone(pids["beat"])


def test_a_process_that_exits_is_named_with_its_exit_code(tmp_path, runners):
    runner = Runner(tmp_path, "web: sleep 60\nbeat: sh -c 'sleep 0.5; exit 3'\n")
    runners.append(runner)
    pids = runner.pids("web", "beat")
    assert runner.finish() == 1
    assert f"runner | beat (pid {pids['beat']}) exited with code 3; stopping web" in runner.output()
    assert _gone(pids["web"])


def test_ctrl_c_stops_every_process_and_exits_cleanly(tmp_path, runners):
    runner = Runner(tmp_path, "# comment\n\nweb: sleep 60\nworker: sh -c 'echo ready; sleep 60'\n")
    runners.append(runner)
    pids = runner.pids("web", "worker")
    deadline = time.monotonic() + 10
    while "worker | ready" not in runner.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "worker | ready" in runner.output()  # each line prefixed with its process name
    os.killpg(runner.proc.pid, signal.SIGINT)  # what a terminal does
    assert runner.finish() == 0
    out = runner.output()
    assert "runner | SIGINT received: stopping web, worker" in out and "runner | all stopped" in out
    assert "SIGKILL" not in out
    assert _gone(pids["web"]) and _gone(pids["worker"])


def test_processes_do_not_outlive_a_killed_runner(tmp_path, runners):
    runner = Runner(tmp_path, "web: sleep 60\nworker: sleep 60\n")
    runners.append(runner)
    pids = runner.pids("web", "worker")
    runner.proc.kill()  # SIGKILL to the runner only
    runner.finish()
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in pids.values())


def test_a_bad_procfile_line_is_refused(tmp_path, runners):
    runner = Runner(tmp_path, "web sleep 60\n")
    runners.append(runner)
    assert runner.finish() != 0
    assert "not a `name: command` line" in runner.output()
