"""The processes of the local stack: started so they cannot outlive it, recorded so the next
start can stop what a killed one left behind.

Every long-running process of ``make demo`` / ``make airflow`` (the emulators, ``airflow db
migrate``, api-server, scheduler, dag-processor, triggerer) is started in its own session
(a Ctrl-C in the terminal reaches the command, which stops them in order) and with a
parent-death signal (``PR_SET_PDEATHSIG``). Their own children -- LocalExecutor workers, task
processes, DAG parsers -- stay in that session (Airflow's task supervisor only makes a new
process *group*), so "the session of the leader" is the whole tree, orphans included.

Three lines of defence, each enough on its own for the case it covers:

* a normal stop or a Ctrl-C / SIGTERM: the command stops each component, then
  :func:`stop_sessions` ends whatever is left in their sessions;
* the command killed (SIGKILL, OOM, closed session): a :func:`watchdog` process, in a session
  of its own and holding the read end of a pipe whose write end only the command has,
  sees the pipe close and stops every recorded session;
* the watchdog killed too: the records (:class:`PidFiles`, ``<state>/pids/<name>.json``) stay,
  and the next start stops every recorded process that is still the same program (same
  pid, start time and command line) and everything in its session, before it starts anything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from emulators.client import die_with_parent

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

#: Seconds a process gets between SIGTERM and SIGKILL when a session is swept.
SWEEP_GRACE = 10.0
#: psutil's start times are rounded to the clock tick; two readings of one process agree to this.
START_TIME_TOLERANCE = 0.05


@dataclass(frozen=True)
class ProcessRecord:
    """One started process as ``<state>/pids/<name>.json`` keeps it."""

    name: str
    pid: int
    create_time: float
    exe: str
    cmdline: tuple[str, ...]  # as started; for people reading the record

    @classmethod
    def of(cls, name: str, pid: int) -> ProcessRecord:
        process = psutil.Process(pid)
        with process.oneshot():
            return cls(name, pid, process.create_time(), process.exe(), tuple(process.cmdline()))

    def is_same(self, process: psutil.Process) -> bool:
        """True when ``process`` is the recorded program, not a later one with a reused pid:
        same start time and executable. (Not the command line: Airflow retitles its
        processes, ``airflow api_server -- host:...``.)"""
        with contextlib.suppress(psutil.Error), process.oneshot():
            return (
                abs(process.create_time() - self.create_time) < START_TIME_TOLERANCE
                and process.exe() == self.exe
            )
        return False

    def alive(self) -> list[psutil.Process]:
        """The recorded process if it still runs, and every process left in its session.

        A session id stays taken while any process is in the session, so members found
        after the leader died are still its descendants; they must also be younger than it.
        """
        found: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            leader = psutil.Process(self.pid)
            if self.is_same(leader):
                found.append(leader)
        for member in session_members(self.pid, born_after=self.create_time):
            if member.pid != self.pid:
                found.append(member)
        return found


def session_members(sid: int, *, born_after: float | None = None) -> list[psutil.Process]:
    """Every process in session ``sid`` (started at or after ``born_after``), but this one."""
    members = []
    for pid in psutil.pids():
        if pid == os.getpid():
            continue
        try:
            if os.getsid(pid) != sid:
                continue
            process = psutil.Process(pid)
            if born_after is not None and process.create_time() < born_after - START_TIME_TOLERANCE:
                continue
        except (OSError, psutil.Error):
            continue
        members.append(process)
    return members


def stop_processes(processes: Sequence[psutil.Process], grace: float = SWEEP_GRACE) -> list[psutil.Process]:
    """SIGTERM each, SIGKILL what is left after ``grace`` seconds; returns the survivors
    (none unless a process is stuck in the kernel)."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    _, alive = psutil.wait_procs(alive, timeout=5)
    return alive


def run_recorded(
    pids: PidFiles | None,
    name: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    timeout: float,
) -> int:
    """Run a command of the stack to its end (``airflow db migrate``), output to ``log_path``,
    recorded in ``pids`` while it runs; returns its exit code.

    Started like the servers (own session, parent-death signal); stopped with its session
    when it overruns ``timeout`` or the caller is interrupted.
    """
    with Path(log_path).open("w") as log_file:
        process = subprocess.Popen(
            list(args),
            env=dict(env),
            cwd=cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    if pids is not None:
        pids.record(name, process.pid)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        return -1
    finally:
        if process.poll() is None:
            stop_sessions([process.pid], grace=5)
            process.wait()
        if pids is not None:
            pids.forget(name)


def stop_sessions(sids: Iterable[int], grace: float = SWEEP_GRACE) -> list[psutil.Process]:
    """Stop every process left in the sessions ``sids`` (see :func:`stop_processes`)."""
    members = [member for sid in set(sids) for member in session_members(sid)]
    return stop_processes(members, grace) if members else []


class PidFiles:
    """``<state>/pids/<name>.json``: what the running stack started, for the next start."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def record(self, name: str, pid: int) -> ProcessRecord | None:
        """Write the record of a just-started process (None: it has already exited)."""
        try:
            record = ProcessRecord.of(name, pid)
        except psutil.Error:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(record)))
        temporary.replace(path)  # a reader never sees half a record
        return record

    def forget(self, name: str) -> None:
        (self.directory / f"{name}.json").unlink(missing_ok=True)

    def records(self) -> list[ProcessRecord]:
        found = []
        for path in sorted(self.directory.glob("*.json")):
            with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                data = json.loads(path.read_text())
                name, pid, started = str(data["name"]), int(data["pid"]), float(data["create_time"])
                found.append(ProcessRecord(name, pid, started, str(data["exe"]), tuple(data["cmdline"])))
        return found

    def alive(self) -> dict[str, list[psutil.Process]]:
        """Recorded name -> its processes still running (leader and session)."""
        return {record.name: procs for record in self.records() if (procs := record.alive())}

    def stop_all(self, grace: float = SWEEP_GRACE) -> list[str]:
        """Stop every recorded process that still runs, with its session, and drop the
        records; returns the names that had something running."""
        running = self.alive()
        stop_processes([p for procs in running.values() for p in procs], grace)
        for path in [*self.directory.glob("*.json"), *self.directory.glob("*.tmp")]:
            path.unlink(missing_ok=True)
        return sorted(running)


# -- the watchdog ----------------------------------------------------------------------------------


@contextlib.contextmanager
def watchdog(pids: PidFiles) -> Iterator[subprocess.Popen[bytes]]:
    """A process that stops everything ``pids`` records once this process is gone.

    It waits for EOF on a pipe only this process can write to; the kernel closes that pipe
    however this process ends, SIGKILL included. On a normal exit the records have been
    removed by then and it has nothing to do.
    """
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack.processes", "watch", str(pids.directory)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # out of reach of a signal to the command's process group
            cwd=Path(__file__).resolve().parents[1],
        )
    finally:
        os.close(read_end)
    try:
        yield process
    finally:
        os.close(write_end)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=SWEEP_GRACE + 10)


def _watch(directory: Path) -> int:
    for signum in (signal.SIGINT, signal.SIGHUP):  # the terminal's signals are for the command
        signal.signal(signum, signal.SIG_IGN)
    while os.read(0, 4096):
        pass
    PidFiles(directory).stop_all()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.processes", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    watch = commands.add_parser("watch", help="stop the recorded processes once stdin closes")
    watch.add_argument("directory", type=Path)
    arguments = parser.parse_args(argv)
    return _watch(arguments.directory)


if __name__ == "__main__":
    sys.exit(main())
