"""How the local stack's processes start, stop and are found again, with real processes and
no Airflow: pid records, session sweeps, the watchdog of a killed command, the free-port
check, the signal handling and the one-line failures of ``python -m devstack``. Seconds."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from devstack.__main__ import failure_line, stop_on_signals
from devstack.airflow_stack import ApiError, StackError, port_free
from devstack.processes import PidFiles, ProcessRecord, stop_sessions
from devstack.state import STALE_RUN_NOTE, DemoError, DemoPaths, finish_stale_runs, state_lock

ROOT = Path(__file__).resolve().parents[2]

#: A session leader that starts a child in its own process group (as Airflow's task
#: supervisor does) and prints both pids.
FAMILY = textwrap.dedent(
    """
    import os, subprocess, sys, time
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], process_group=0
    )
    print(os.getpid(), child.pid, flush=True)
    time.sleep(600)
    """
)


def _start_family() -> tuple[subprocess.Popen[str], int]:
    """A leader in its own session with one grandchild-to-be; returns (leader, child pid)."""
    leader = subprocess.Popen(
        [sys.executable, "-c", FAMILY], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert leader.stdout is not None
    pids = leader.stdout.readline().split()
    assert int(pids[0]) == leader.pid
    return leader, int(pids[1])


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _kill(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


# -- pid records ------------------------------------------------------------------------------------


def test_the_next_start_stops_a_recorded_leader_and_the_orphans_in_its_session(tmp_path: Path) -> None:
    pids = PidFiles(tmp_path / "pids")
    leader, child = _start_family()
    try:
        record = pids.record("scheduler", leader.pid)
        assert record is not None
        assert record.cmdline == (sys.executable, "-c", FAMILY)
        assert record.exe == os.path.realpath(sys.executable)
        saved = json.loads((tmp_path / "pids" / "scheduler.json").read_text())
        assert (saved["name"], saved["pid"]) == ("scheduler", leader.pid)
        assert {p.pid for p in record.alive()} == {leader.pid, child}

        # the leader dies first (SIGKILL, no cleanup): its child is an orphan, still in the session
        leader.kill()
        leader.wait()
        assert psutil.Process(child).ppid() != leader.pid
        assert {p.pid for p in record.alive()} == {child}

        assert pids.stop_all(grace=5) == ["scheduler"]
        assert _gone(child, timeout=10)
        assert list((tmp_path / "pids").iterdir()) == []
        assert pids.stop_all() == []  # nothing left, nothing recorded
    finally:
        _kill(leader.pid, child)
        leader.wait()


def test_a_record_whose_pid_now_belongs_to_another_program_stops_nothing(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        real = ProcessRecord.of("emulators", bystander.pid)
        pids = PidFiles(tmp_path / "pids")
        pids.directory.mkdir()
        for record in (
            dataclasses.replace(real, name="started-earlier", create_time=real.create_time - 3600),
            dataclasses.replace(real, name="other-program", exe="/usr/bin/other-program"),
        ):
            (pids.directory / f"{record.name}.json").write_text(json.dumps(dataclasses.asdict(record)))
            assert not record.is_same(psutil.Process(bystander.pid))
        assert pids.stop_all(grace=1) == []
        assert bystander.poll() is None
        assert list(pids.directory.iterdir()) == []  # the stale records are dropped
    finally:
        bystander.kill()
        bystander.wait()


#: A server that retitles itself once recorded, as Airflow's components do.
RETITLED = (
    "import setproctitle, sys, time; sys.stdin.readline(); "
    "setproctitle.setproctitle('airflow api_server -- host:127.0.0.1'); print('retitled', flush=True); "
    "time.sleep(600)"
)


def test_a_recorded_leader_that_retitled_itself_is_still_stopped(tmp_path: Path) -> None:
    pids = PidFiles(tmp_path / "pids")
    leader = subprocess.Popen(
        [sys.executable, "-c", RETITLED],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert leader.stdin is not None
    assert leader.stdout is not None
    try:
        pids.record("api-server", leader.pid)
        leader.stdin.write("\n")
        leader.stdin.flush()
        assert leader.stdout.readline() == "retitled\n"
        assert psutil.Process(leader.pid).cmdline()[0] == "airflow api_server -- host:127.0.0.1"
        assert pids.stop_all(grace=5) == ["api-server"]
        assert _gone(leader.pid, timeout=10)
    finally:
        _kill(leader.pid)
        leader.wait()


def test_stop_sessions_ends_every_member_and_spares_other_sessions(tmp_path: Path) -> None:
    leader, child = _start_family()
    other, other_child = _start_family()
    try:
        assert stop_sessions([leader.pid], grace=5) == []
        assert _gone(leader.pid, timeout=10)
        assert _gone(child, timeout=10)
        assert other.poll() is None
        assert psutil.Process(other_child).is_running()
    finally:
        _kill(leader.pid, child, other.pid, other_child)
        leader.wait()
        other.wait()


# -- the watchdog -----------------------------------------------------------------------------------

OWNER = textwrap.dedent(
    """
    import subprocess, sys, time
    from pathlib import Path
    from devstack.processes import PidFiles, watchdog

    pids = PidFiles(Path(sys.argv[1]))
    with watchdog(pids) as dog:
        server = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
        )
        pids.record("server", server.pid)
        print(dog.pid, server.pid, flush=True)
        time.sleep(600)
    """
)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_the_watchdog_stops_what_a_killed_command_recorded(tmp_path: Path, how: str) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path / "pids")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    assert owner.stdout is not None
    dog, server = (int(pid) for pid in owner.stdout.readline().split())
    try:
        assert psutil.Process(dog).is_running()
        os.killpg(owner.pid, getattr(signal, how))  # the command's process group, as a terminal would
        owner.wait(10)
        assert _gone(server, timeout=30), "the recorded server outlived its command"
        assert _gone(dog, timeout=30), "the watchdog did not exit after its sweep"
        assert list((tmp_path / "pids").iterdir()) == []
    finally:
        _kill(owner.pid, server, dog)
        owner.wait()


# -- the free-port check ----------------------------------------------------------------------------


def test_a_port_in_time_wait_counts_as_free_and_a_listening_one_does_not() -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert not port_free(port)
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end of the connection waits in TIME_WAIT
        time.sleep(0.2)
        client.close()
    time_wait = [
        c
        for c in psutil.net_connections("tcp4")
        if c.laddr and c.laddr.port == port and c.status == "TIME_WAIT"
    ]
    assert time_wait, "the test needs a TIME_WAIT connection on the port"
    with socket.socket() as plain, pytest.raises(OSError, match="Address already in use"):
        plain.bind(("127.0.0.1", port))  # what the check without SO_REUSEADDR saw: "taken"
    assert port_free(port)


# -- signals and failures of the command line -------------------------------------------------------


def _interrupted_stop(stopped: list[str]) -> None:
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal interrupts the sleep
        stopped.append("not interrupted")
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM and a Ctrl-C during the stop
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        stopped.append("stop ran to its end")


def test_the_first_signal_interrupts_and_later_ones_do_not_cut_the_stop_short() -> None:
    stopped: list[str] = []
    with pytest.raises(KeyboardInterrupt), stop_on_signals():
        _interrupted_stop(stopped)
    assert stopped == ["stop ran to its end"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_failure_is_one_line_naming_what_to_do_and_the_log(tmp_path: Path) -> None:
    paths = DemoPaths(tmp_path / "state")
    error = StackError(
        "airflow scheduler exited with 1 (after 3 restarts)\n--- scheduler.log ---\nTraceback ..."
    )
    line = failure_line("demo", error, paths)
    assert "\n" not in line
    assert line.startswith(
        "make demo failed: airflow scheduler exited with 1 (after 3 restarts). To do: run it again"
    )
    assert line.endswith(f"Details: {paths.command_log}")
    assert "Traceback" not in line
    hinted = failure_line("airflow", DemoError("port 8080 is taken", hint="choose another"), paths)
    assert (
        hinted
        == f"make airflow failed: port 8080 is taken. To do: choose another. Details: {paths.command_log}"
    )
    assert failure_line("demo", KeyError("x"), paths).startswith("make demo failed: KeyError: 'x'. To do:")


def _devstack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_make_demo_on_a_state_in_use_ends_in_one_line_and_logs_the_traceback(tmp_path: Path) -> None:
    paths = DemoPaths(tmp_path / "state")
    with state_lock(paths):
        result = _devstack("demo", "--state-dir", str(paths.root))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"make demo failed: {paths.root} is in use by pid {os.getpid()} (make demo or make airflow). "
        f"To do: stop that one first, or use another DEMO_STATE. Details: {paths.command_log}"
    ]
    log = paths.command_log.read_text()
    assert "make demo failed" in log
    assert "Traceback (most recent call last)" in log
    assert "DemoError" in log


def test_make_airflow_on_a_taken_port_ends_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _devstack("airflow", "--state-dir", str(tmp_path / "state"), "--port", str(port))
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(
        f"make airflow failed: port {port} is taken. To do: choose another with AIRFLOW_PORT"
    )
    assert "Traceback" not in result.stdout + result.stderr


# -- runs an interrupted start left behind ----------------------------------------------------------


class _RunsApi:
    """The two REST calls :func:`finish_stale_runs` makes, over a list of runs, as Airflow
    answers them: ``GET /dags/~/dagRuns`` filters by state and pages by offset/limit in id
    order; ``PATCH`` of a run whose DAG is no longer parsed answers 404."""

    def __init__(self, runs: list[dict[str, str]], gone: set[str]) -> None:
        self.runs = runs
        self.gone = gone
        self.calls: list[tuple[str, str]] = []

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls.append((method, path))
        if method == "GET":
            params = kwargs["params"]
            matching = [run for run in self.runs if run["state"] in params["state"]]
            page = matching[params["offset"] : params["offset"] + params["limit"]]
            return {"dag_runs": [dict(run) for run in page], "total_entries": len(matching)}
        dag_id, run_id = path.split("/")[2], path.split("/")[4]
        if dag_id in self.gone:
            raise ApiError(method, path, 404, '{"detail": "Dag not found"}', retried=False)
        assert kwargs["json"] == {"state": "failed", "note": STALE_RUN_NOTE}
        run = next(run for run in self.runs if (run["dag_id"], run["dag_run_id"]) == (dag_id, run_id))
        run["state"] = "failed"
        return run


def test_stale_runs_are_marked_failed_in_one_line_and_a_refused_one_does_not_loop() -> None:
    runs = [
        {"dag_id": f"p2c_{name}", "dag_run_id": f"r{i}", "state": state}
        for i, (name, state) in enumerate(
            [("accounts", "running"), ("products", "queued"), ("gone", "running"), ("accounts", "success")]
            + [("contacts", "queued")] * 150
        )
    ]
    fake = _RunsApi(runs, gone={"p2c_gone"})
    lines: list[str] = []
    assert finish_stale_runs(fake, lines.append) == 152  # type: ignore[arg-type]
    assert lines == [
        "  Marked 152 run(s) of 3 DAG(s) failed that an interrupted earlier start left running or queued "
        "(nothing was working on them any more); 1 could not be changed (see the UI)."
    ]
    assert [run["state"] for run in runs[:4]] == ["failed", "failed", "running", "success"]
    assert all(run["state"] == "failed" for run in runs[4:])
    assert [call for call in fake.calls if call[0] == "GET"] == [("GET", "/dags/~/dagRuns")] * 3
    quiet: list[str] = []
    assert finish_stale_runs(_RunsApi([runs[3]], gone=set()), quiet.append) == 0  # type: ignore[arg-type]
    assert quiet == []
