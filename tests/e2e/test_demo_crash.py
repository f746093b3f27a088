"""``make demo`` killed, then run again: nothing of the killed stack survives, the next demo
starts from a state it can trust and ends with the right summary.

One state directory, real processes, the command as ``make demo`` runs it
(``python -m devstack demo``), in its own process group as a terminal would start it:

1. SIGKILL to the whole process group while ``airflow db migrate`` runs (first start);
2. a half-migrated database put where an older checkout's cut-off migration left it, then
   SIGTERM (what ``make`` forwards from a process manager) while the rebuild runs;
3. SIGKILL to the process group while the DAG runs sync (LocalExecutor workers and task
   processes alive);
4. SIGTERM while the DAG runs are under way;
5. a whole demo, which must succeed: STORY.md's accounts, a reconciliation that finds every
   row the summary counts in sync and nothing missing, different or orphaned, and each
   target grown by exactly the rows STORY.md announces (nothing written twice by a rerun);

then ``make airflow`` on the same state, stopped with SIGTERM and started again at once on
the same port, twice.

After each kill no process of the killed stack may be left, checked by pid (everything the
command had started, down to the task processes, snapshotted just before the kill) and by
command line / environment (anything naming this state directory).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil
import pytest

from devstack.airflow_stack import free_port
from tests.e2e.test_demo_e2e import STORY_NEW_ROWS
from tests.support.emulators import start_emulators

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
STACK_RECORDS = {"emulators", "api-server", "scheduler", "dag-processor", "triggerer"}


@dataclass
class Command:
    """One ``python -m devstack <command>`` in its own process group, its output read as it comes."""

    state: Path
    args: tuple[str, ...] = ("demo",)
    process: subprocess.Popen[str] = field(init=False)
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack", *self.args, "--state-dir", str(self.state)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, wanted: Callable[[str], bool], timeout: float = 600) -> str:
        """Until a line of output satisfies ``wanted``; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if wanted(line):
                return line
        raise AssertionError(f"no such line within {timeout:g}s; output:\n" + "\n".join(self.lines[-60:]))

    def finish(self, timeout: float = 1500) -> int:
        code = self.process.wait(timeout)
        with contextlib.suppress(AssertionError):
            self.wait_for(lambda line: False, timeout=10)  # drain what is left
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def _started_by(demo: Command) -> list[tuple[int, float, str]]:
    """Every process the demo has started, down to the task processes: (pid, start, command)."""
    found = []
    for child in psutil.Process(demo.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            found.append((child.pid, child.create_time(), " ".join(child.cmdline())))
    return found


def _belongs_to(process: psutil.Process, state: Path) -> bool:
    """By command line or environment: a process of the stack on ``state``."""
    with contextlib.suppress(psutil.Error):
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        if str(state) in " ".join(process.cmdline()):
            return True
        return process.environ().get("AIRFLOW_HOME", "").startswith(str(state))
    return False


def _survivors(state: Path, started: list[tuple[int, float, str]]) -> list[str]:
    left = []
    for pid, created, command in started:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if abs(process.create_time() - created) < 0.05 and process.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{pid} {command}")
    for process in psutil.process_iter():
        if process.pid != os.getpid() and _belongs_to(process, state):
            with contextlib.suppress(psutil.Error):
                left.append(f"{process.pid} {' '.join(process.cmdline())}")
    return sorted(set(left))


def _assert_nothing_left(state: Path, started: list[tuple[int, float, str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    left = _survivors(state, started)
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = _survivors(state, started)
    assert not left, f"processes of the killed stack still running after {timeout:g}s: {left}"


def _recorded(state: Path) -> set[str]:
    return {path.stem for path in (state / "pids").glob("*.json")}


def _kill_group(demo: Command) -> list[tuple[int, float, str]]:
    """SIGKILL to the command's process group, as a crash, an OOM kill or a closed session."""
    started = _started_by(demo)
    os.killpg(demo.process.pid, signal.SIGKILL)
    assert demo.finish(30) == -signal.SIGKILL
    return started


def _terminate(
    demo: Command, code: int = 130, last_line: str = "Interrupted; everything make demo started has stopped."
) -> list[tuple[int, float, str]]:
    """SIGTERM to the command, as ``make`` forwards it from a process manager."""
    started = _started_by(demo)
    demo.process.send_signal(signal.SIGTERM)
    assert demo.finish(120) == code, demo.output
    assert demo.lines[-1] == last_line, demo.output
    assert "Traceback" not in demo.output
    return started


SUMMARY_TOTAL = re.compile(r"^\s+all templates\s+" + r"\s+".join([r"(\d+)"] * 7) + r"$")


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state directory for the whole module, as one checkout's ``state/``."""
    return tmp_path_factory.mktemp("crash") / "state"


def test_killed_demos_leave_no_process_and_the_next_demo_succeeds(state: Path) -> None:
    with start_emulators(state / "emulators", "--seed", "demo") as seeded:
        seed_tables = seeded.tables()

    # 1. killed hard while the first start migrates the database
    demo = Command(state)
    demo.wait_for(lambda line: line.startswith("Preparing the Airflow"))
    _wait_until(lambda: "airflow-db-migrate" in _recorded(state))
    time.sleep(1)  # airflow db migrate is still importing Airflow: seconds from its end
    started = _kill_group(demo)
    assert any("airflow db migrate" in command for _, _, command in started)
    _assert_nothing_left(state, started, timeout=45)
    # stopped, not left to finish on its own behind the killed command
    assert "Database migration done!" not in (state / "airflow" / "logs" / "db-migrate.log").read_text()
    assert not (state / "airflow" / "airflow.db").exists()  # a half-migrated copy never replaces it

    # 2. a database whose first migration was cut off in place (tables begun, no .migrated stamp,
    #    as an older checkout leaves it); SIGTERM during the rebuild
    with contextlib.closing(sqlite3.connect(state / "airflow" / "airflow.db")) as half:
        half.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        half.commit()
    demo = Command(state)
    demo.wait_for(lambda line: "left half-prepared by an interrupted start; rebuilding it" in line)
    _wait_until(lambda: "airflow-db-migrate" in _recorded(state))
    time.sleep(1)
    started = _terminate(demo)
    _assert_nothing_left(state, started, timeout=0)
    assert not (state / "airflow" / ".migrated").exists()

    # 3. killed hard while the DAG runs sync
    demo = Command(state)
    demo.wait_for(lambda line: "left half-prepared by an interrupted start; rebuilding it" in line)
    demo.wait_for(lambda line: " syncing " in line)
    assert _recorded(state) == STACK_RECORDS
    started = _kill_group(demo)
    assert len(started) > len(STACK_RECORDS) + 1, f"no worker or task process to orphan: {started}"
    _assert_nothing_left(state, started, timeout=45)

    # 4. SIGTERM while the runs are under way (queued behind their run-order sensors)
    demo = Command(state)
    stale = demo.wait_for(lambda line: line.startswith("  Marked "))
    assert stale == (
        "  Marked 7 run(s) of 7 DAG(s) failed that an interrupted earlier start left running or queued "
        "(nothing was working on them any more)."
    )
    demo.wait_for(
        lambda line: re.search(r"\] p2c_\w+\s+(queued|waiting for|checking|syncing)", line) is not None
    )
    started = _terminate(demo)
    _assert_nothing_left(state, started, timeout=0)
    assert "Stopped what an interrupted earlier start left running" not in demo.output  # the watchdog did

    # 5. a whole demo on what the four left
    demo = Command(state)
    assert demo.finish() == 0, demo.output
    output = demo.output
    assert "Traceback" not in output
    assert "Marked 7 run(s) of 7 DAG(s) failed" in output
    assert "Stopped what an interrupted earlier start left running" not in output  # steps 1-4 cleaned up
    total = next(m for line in demo.lines if (m := SUMMARY_TOTAL.match(line)))
    _, _, created, updated, unchanged, rejected, failed = (int(n) for n in total.groups())
    assert failed == 0
    in_target = created + updated + unchanged
    reconciliation = f"in sync {in_target}, missing 0, different 0, orphaned 0, rejected {rejected}"
    assert f"Reconciliation: {reconciliation}." in demo.lines
    # STORY.md's accounts: 72 synced, 8 rejected (no number 2, shared number 4, Atlantis 2)
    accounts = next(line for line in demo.lines if re.match(r"^\s+\[.*\] p2c_accounts\s+done in ", line))
    assert re.search(r": 72 in target \(\d+ created, \d+ updated, \d+ unchanged\), 8 rejected$", accounts), (
        accounts
    )
    assert _recorded(state) == set()
    _assert_nothing_left(state, [], timeout=0)
    with start_emulators(state / "emulators") as after:
        final_tables = after.tables()
    for (service, entity_set), new_rows in STORY_NEW_ROWS.items():  # no row written twice by a rerun
        grown = final_tables[service][entity_set] - seed_tables[service][entity_set]
        assert grown == new_rows, (service, entity_set)


def test_make_airflow_stops_everything_on_sigterm_and_starts_again_on_the_same_port(state: Path) -> None:
    port = free_port()
    for attempt in range(2):
        stack = Command(state, ("airflow", "--port", str(port)))
        stack.wait_for(lambda line: line.startswith("Airflow UI:"), timeout=600)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as browser:
            assert browser.get("/api/v2/dags/p2c_accounts").json()["is_paused"] is True
            # the keep-alive connection is closed by the server as it stops: TIME_WAIT on its port
            started = _terminate(stack, code=0, last_line="Everything make airflow started has stopped.")
        _assert_nothing_left(state, started, timeout=0)
        assert _recorded(state) == set(), attempt
        assert "Traceback" not in stack.output
        assert "is taken" not in stack.output


def _wait_until(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
