"""The state directory of ``make demo`` / ``make airflow`` and starting from it safely.

Everything the local stack keeps lives under one directory (:class:`DemoPaths`,
``state/`` by default). Before a command starts anything, :func:`owned_state` makes the
directory its own: a lock (one command per state), what a killed earlier start left
running stopped (``<state>/pids``, :mod:`devstack.processes`), and a watchdog that stops
this command's processes if it is killed. :func:`prepare_airflow_home` rebuilds a
database an interrupted start left half-migrated; :func:`finish_stale_runs` marks failed
the runs such a start left running or queued, before the scheduler could resume them.
The emulators' data is a directory of its own and is never touched by either.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.airflow_stack import ApiError, airflow_env, connection_env, port_free
from devstack.connections import TEST_CONNECTION_ENV, fernet_key
from devstack.processes import PidFiles, run_recorded, watchdog
from emulators.client import EmulatorEndpoints, EmulatorStartError, RunningEmulators, start_emulators

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from devstack.airflow_stack import AirflowStack

#: The run-order sensors check every 5 s instead of every minute (P2C_RUN_ORDER_POKE_SECONDS).
POKE_SECONDS = 5
PRELOAD_DIR = Path(__file__).resolve().parent / "preload"
#: The note a run marked failed by :func:`finish_stale_runs` carries in the UI.
STALE_RUN_NOTE = "left unfinished by an interrupted local stack (devstack)"


class DemoError(RuntimeError):
    """The demo could not run (an emulator or Airflow component failed to start, a timeout).

    The first line of the message says what happened; ``hint`` what to do about it.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


# -- where things live ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoPaths:
    """Everything the demo keeps, under one state directory (``state/`` by default)."""

    root: Path

    @property
    def emulators(self) -> Path:
        return self.root / "emulators"

    @property
    def airflow(self) -> Path:
        return self.root / "airflow"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def reports(self) -> Path:
        return self.root / "reports" / "reconciliation"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pycache(self) -> Path:
        return self.root / "pycache"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def command_log(self) -> Path:
        """Where ``python -m devstack`` writes the traceback of a failure."""
        return self.logs / "devstack.log"


def shown(path: Path | str) -> str:
    """A path as the user should type it: relative to the checkout when inside it."""
    path = Path(path)
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    return str(path)


# -- the emulators ----------------------------------------------------------------------------------


def seeded_before(state_dir: Path) -> bool:
    """True when both services' databases exist (``--seed demo`` only fills empty stores)."""
    return (state_dir / "dataverse.sqlite").exists() and (state_dir / "fno.sqlite").exists()


@contextlib.contextmanager
def demo_emulators(paths: DemoPaths, pids: PidFiles) -> Iterator[RunningEmulators]:
    """``python -m emulators serve --seed demo`` on free ports, stderr appended to
    ``<state>/logs/emulators.log``, recorded in ``pids`` while it runs.

    The seed only fills empty stores, so the demo world is written on the first start and
    everything the sync wrote before is still there on the next one. The emulators get
    their own session (a Ctrl-C reaches the demo, which stops Airflow before them) and a
    parent-death signal (the demo killed: they stop too).
    """
    log_path = paths.logs / "emulators.log"
    try:
        running = start_emulators(
            paths.emulators,
            "--seed",
            "demo",
            timeout=180,
            log_path=log_path,
            append_log=True,
            new_session=True,
            parent_death_signal=True,
        )
    except EmulatorStartError as exc:
        raise DemoError(
            f"the emulators did not start ({exc.reason}); see {shown(log_path)}\n{exc.log_tail}",
            hint=f"see {shown(log_path)}, then run the command again",
        ) from exc
    try:
        pids.record("emulators", running.process.pid)
        yield running
    finally:
        running.stop()
        pids.forget("emulators")


def emulator_writes(emulators: RunningEmulators) -> dict[str, int]:
    """Create/update/upsert/delete operations each service applied since the last reset."""
    return {
        service: int(counters["operations_written_total"])
        for service, counters in emulators.counters().items()
    }


@contextlib.contextmanager
def owned_state(paths: DemoPaths, out: Callable[[str], None]) -> Iterator[PidFiles]:
    """The state directory for this command alone: locked, cleared of what a killed earlier
    start left running, and watched, so that this command's processes stop with it."""
    with state_lock(paths):
        pids = PidFiles(paths.pids)
        stopped = pids.stop_all()
        if stopped:
            out(f"Stopped what an interrupted earlier start left running on this state: {', '.join(stopped)}")
        with watchdog(pids):
            yield pids


@contextlib.contextmanager
def state_lock(paths: DemoPaths) -> Iterator[None]:
    """One demo or stack per state directory: two would run two emulators and two
    schedulers on the same SQLite files."""

    paths.root.mkdir(parents=True, exist_ok=True)
    with (paths.root / ".lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise DemoError(
                f"{shown(paths.root)} is in use by {holder} (make demo or make airflow)",
                hint="stop that one first, or use another DEMO_STATE",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- the local Airflow ------------------------------------------------------------------------------


def stack_env(
    paths: DemoPaths,
    endpoints: EmulatorEndpoints,
    *,
    api_port: int | None = None,
    use_job_schedule: bool = False,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every Airflow process of the demo stack.

    On top of :func:`airflow_env` (SQLite, LocalExecutor, connections): staging under the
    state directory, quick run-order checks, the scheduler's preload of heavy libraries
    (``devstack/preload``), and -- when the caller's environment forbids bytecode files
    (``PYTHONDONTWRITEBYTECODE``) -- a bytecode cache under the state directory, without
    which every task process would compile Airflow and pandas from source again.
    """
    source = dict(os.environ if base is None else base)
    extra = {
        "P2C_RUN_ORDER_POKE_SECONDS": str(POKE_SECONDS),
        # the DAG files do not change during a demo; re-parse them every 5 minutes, not 30 s
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "300",
        # the Connections page's Test button; connection secrets encrypted (devstack.connections)
        **TEST_CONNECTION_ENV,
        "AIRFLOW__CORE__FERNET_KEY": fernet_key(paths.airflow),
    }
    if source.pop("PYTHONDONTWRITEBYTECODE", None):
        extra["PYTHONPYCACHEPREFIX"] = str(paths.pycache.resolve())
    env = airflow_env(
        paths.airflow,
        staging_root=paths.staging,
        connections=connection_env(endpoints),
        api_port=api_port,
        parallelism=4,
        use_job_schedule=use_job_schedule,
        extra=extra,
        base=source,
    )
    env["PYTHONPATH"] = os.pathsep.join([str(PRELOAD_DIR), env["PYTHONPATH"]])
    return env


def prepare_airflow_home(
    home: Path, env: Mapping[str, str], out: Callable[[str], None], pids: PidFiles | None = None
) -> bool:
    """Create and migrate the SQLite metadata database once per Airflow version; True when it
    had to (first start, a new Airflow version, or a database an interrupted start left).

    ``airflow db migrate`` works on a copy in ``<home>.migrating/`` (empty, or the current
    database when Airflow was upgraded) that replaces ``airflow.db`` only once migrated, and
    the ``.migrated`` stamp is written after that: a start killed at any point leaves either
    the old database or a database without a stamp, which the next start rebuilds.
    """
    home = Path(home)
    stamp = home / ".migrated"
    database = home / "airflow.db"
    wanted = version("apache-airflow")
    stamped = stamp.read_text().strip() if stamp.exists() else None
    if database.exists() and stamped == wanted:
        return False
    home.mkdir(parents=True, exist_ok=True)
    work = home.parent / f"{home.name}.migrating"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if database.exists() and stamped is not None:
        out(f"Upgrading the Airflow database in {shown(home)} from {stamped} to {wanted}")
        shutil.copy2(database, work / "airflow.db")
    else:
        if database.exists():
            out(
                f"  The Airflow database in {shown(home)} was left half-prepared by an interrupted start; "
                "rebuilding it (the emulators' data is kept)"
            )
        out(f"Preparing the Airflow {wanted} database in {shown(home)} (first start only, about 30 s)")
    log_path = home / "logs" / "db-migrate.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    migrate_env = {
        **env,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{(work / 'airflow.db').resolve()}",
    }
    code = run_recorded(
        pids,
        "airflow-db-migrate",
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=migrate_env,
        cwd=work,
        log_path=log_path,
        timeout=600,
    )
    if code != 0:
        raise DemoError(
            f"airflow db migrate failed (exit {code}); see {shown(log_path)}",
            hint=f"see {shown(log_path)}; the next start rebuilds the database",
        )
    for leftover in ("airflow.db-journal", "airflow.db-wal", "airflow.db-shm"):
        (home / leftover).unlink(missing_ok=True)  # SQLite would replay them into the new file
    (work / "airflow.db").replace(database)
    stamp.write_text(wanted + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return True


def finish_stale_runs(stack: AirflowStack, out: Callable[[str], None]) -> int:
    """Mark failed every run left ``running`` or ``queued`` in the database; returns how many.

    Called before the scheduler starts, when no process of an earlier start is left: such
    a run has nothing working on it, and resuming it against SQLite while new runs wait
    behind it (``max_active_runs=1``) is what made a demo time out. A user who wants one
    again triggers or clears it. A run the API refuses to change (its DAG file is gone) is
    left as it is and counted in the same line.
    """
    finished: list[str] = []
    refused = 0
    while True:
        stale = stack.api(
            "GET",
            "/dags/~/dagRuns",
            # finished runs leave the filter; the refused ones stay in front
            params={"state": ["running", "queued"], "limit": 100, "offset": refused, "order_by": "id"},
        )["dag_runs"]
        if not stale:
            break
        for run in stale:
            try:
                stack.api(
                    "PATCH",
                    f"/dags/{run['dag_id']}/dagRuns/{run['dag_run_id']}",
                    json={"state": "failed", "note": STALE_RUN_NOTE},
                )
            except ApiError:
                refused += 1
            else:
                finished.append(run["dag_id"])
    if finished or refused:
        out(
            f"  Marked {len(finished)} run(s) of {len(set(finished))} DAG(s) failed that an interrupted "
            "earlier start left running or queued (nothing was working on them any more)"
            + (f"; {refused} could not be changed (see the UI)." if refused else ".")
        )
    return len(finished)


@dataclass(frozen=True)
class ServedState:
    """What a long-running local stack (``make airflow``, ``make airflow-celery``) stands on."""

    paths: DemoPaths
    pids: PidFiles
    endpoints: EmulatorEndpoints
    env: dict[str, str]


@contextlib.contextmanager
def served_state(
    state_dir: Path | str, port: int, out: Callable[[str], None], *, command: str
) -> Iterator[ServedState]:
    """The state directory made this command's own, its emulators started, and the Airflow
    environment of a stack serving the UI on ``port`` with the scheduler's own schedule on
    (as in production); refused at once when ``port`` is taken (``command`` names how to
    choose another)."""
    paths = DemoPaths(Path(state_dir).resolve())
    paths.logs.mkdir(parents=True, exist_ok=True)
    if not port_free(port):
        raise DemoError(f"port {port} is taken", hint=f"choose another with AIRFLOW_PORT=<port> {command}")
    with owned_state(paths, out) as pids, demo_emulators(paths, pids) as emulators:
        endpoints = emulators.endpoints
        env = stack_env(paths, endpoints, api_port=port, use_job_schedule=True)
        yield ServedState(paths, pids, endpoints, env)


def serve_until_stopped(
    stack: AirflowStack,
    endpoints: EmulatorEndpoints,
    dag_ids: Sequence[str],
    *,
    details: Sequence[str],
    stopping: str,
    out: Callable[[str], None],
    until: Callable[[], bool] | None = None,
) -> None:
    """What ``make airflow`` and ``make airflow-celery`` do once their stack is up: wait for
    the DAGs, say where the UI and the emulators are (then the stack's own ``details``
    lines), and keep it running, checked, until Ctrl-C or SIGTERM (``KeyboardInterrupt``)
    or until ``until()`` is true; ``stopping`` is said on the way out."""
    stack.wait_for_dags(dag_ids, timeout=300)
    out("")
    out(f"Airflow UI:   {stack.base_url}  (no login: local all-admins mode, this machine only)")
    out(f"Emulators:    Dataverse {endpoints.dataverse_url}  F&O {endpoints.fno_url}")
    for line in details:
        out(line)
    try:
        while until is None or not until():
            stack.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        out("")
    out(stopping)
