"""`make run`'s process runner: web, Celery worker and beat from a Procfile, stopped together.

    python -m spark.runstack Procfile.embedded

Each Procfile line `name: command` is one command, which /bin/sh expands (`${SPARK_PORT:-8000}`)
and execs, so the process the runner watches is the command itself. Each runs in its own process
group, its output prefixed with the time and its name. The runner stays in charge:

- Ctrl-C (SIGINT) or SIGTERM to the runner is passed on to every process once; they stop
  cleanly (Celery's warm shutdown puts back the tasks it holds).
- When one process ends on its own (crashed, killed, `kill -9`), the runner says which one,
  with its exit code or signal, stops the others the same way and exits with status 1: a
  stack with no worker or no beat would quietly stop expiring offers and dispatching.
- A process still running STOP_TIMEOUT seconds after it was asked to stop gets SIGKILL.
- If the runner itself is killed, the kernel sends SIGTERM to the processes (Linux), so none
  is left behind holding the port or the queue.

honcho did most of this, but said only "stopped (rc=-9)" in the middle of the other processes'
shutdown logs. Standard library only: it runs before Django is set up.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

STOP_TIMEOUT = 10.0  # seconds between asking a process to stop and SIGKILL
POLL_SECONDS = 0.1

_print_lock = threading.Lock()


def _say(name: str, text: str, width: int) -> None:
    with _print_lock:
        sys.stdout.write(f"{time.strftime('%H:%M:%S')} {name:<{width}} | {text}\n")
        sys.stdout.flush()


@dataclass
class Process:
    name: str
    command: str
    popen: subprocess.Popen | None = None
    reader: threading.Thread | None = field(default=None, repr=False)


def read_procfile(path: Path) -> list[Process]:
    processes = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise SystemExit(f"{path}: not a `name: command` line: {raw!r}")
        processes.append(Process(name=name.strip(), command=command.strip()))
    if not processes:
        raise SystemExit(f"{path}: no processes")
    return processes


_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the forked child
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the runner dies (Linux prctl PR_SET_PDEATHSIG)."""
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


class Runner:
    def __init__(self, processes: list[Process]):
        self.processes = processes
        self.width = max(len(p.name) for p in processes + [Process("runner", "")])
        self.stop_requested: signal.Signals | None = None

    def say(self, text: str) -> None:
        _say("runner", text, self.width)

    def _pump(self, process: Process) -> None:
        assert process.popen is not None and process.popen.stdout is not None
        for raw in iter(process.popen.stdout.readline, b""):
            _say(process.name, raw.decode(errors="replace").rstrip("\r\n"), self.width)

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines as they are written, not at exit
        for process in self.processes:
            process.popen = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {process.command}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own group: a terminal's Ctrl-C reaches it through us, once
                preexec_fn=_die_with_parent,
            )
            self.say(f"started {process.name} (pid {process.popen.pid}): {process.command}")
        # The output readers start once every process is forked (preexec_fn and threads do not mix).
        for process in self.processes:
            process.reader = threading.Thread(target=self._pump, args=(process,), daemon=True)
            process.reader.start()

    def _on_signal(self, signum, frame) -> None:
        if self.stop_requested is None:
            self.stop_requested = signal.Signals(signum)

    def _signal_all(self, sig: signal.Signals) -> None:
        for process in self.processes:
            if process.popen is not None and process.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.popen.pid, sig)

    def _running(self) -> list[Process]:
        return [p for p in self.processes if p.popen is not None and p.popen.poll() is None]

    def _stop_all(self, sig: signal.Signals) -> None:
        self._signal_all(sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self._running() and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        for process in self._running():
            self.say(f"{process.name} did not stop within {STOP_TIMEOUT:.0f} s; sending SIGKILL")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.popen.pid, signal.SIGKILL)  # type: ignore[union-attr]
        for process in self.processes:
            if process.popen is not None:
                process.popen.wait()
            if process.reader is not None:
                process.reader.join(timeout=2)  # the rest of its output

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        self.start()
        while True:
            if self.stop_requested is not None:
                self.say(f"{self.stop_requested.name} received: stopping {', '.join(p.name for p in self._running())}")
                self._stop_all(signal.SIGINT if self.stop_requested == signal.SIGINT else signal.SIGTERM)
                self.say("all stopped")
                return 0
            ended = next((p for p in self.processes if p.popen is not None and p.popen.poll() is not None), None)
            if ended is not None:
                assert ended.popen is not None
                what = f"{ended.name} (pid {ended.popen.pid}) {how_it_ended(ended.popen.returncode)}"
                others = [p.name for p in self._running()]
                self.say(f"{what}; stopping {', '.join(others) or 'nothing else'}")
                self._stop_all(signal.SIGTERM)
                # Again at the very end, below the other processes' shutdown logs.
                self.say(f"stopped because {what}")
                return 1
            time.sleep(POLL_SECONDS)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m spark.runstack <Procfile>", file=sys.stderr)
        return 2
    return Runner(read_procfile(Path(argv[1]))).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
