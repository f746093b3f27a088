"""A local Airflow 3 against the emulators: for the DAG tests and for ``make demo``.

The configuration of a throw-away ``AIRFLOW_HOME`` with SQLite and no network beyond
loopback (:func:`airflow_env`, :func:`prepare_home`; ``dag.test()`` in such a home is
:mod:`devstack.dag_test`), and :class:`AirflowStack`, the real thing: ``api-server`` (the
execution API the workers report to, and the REST API this class drives), ``scheduler``
with the LocalExecutor, ``dag-processor`` and ``triggerer`` (the run-order sensors defer),
each in its own session with a parent-death signal and its log in
``<home>/logs/<component>.log`` (see :mod:`devstack.processes`: nothing it starts, down to
the task processes, outlives it). Runs are created through the public REST API
(``/api/v2``): triggers, backfills, unpausing, and read back the same way.

Connections reach the tasks as ``AIRFLOW_CONN_*`` JSON environment variables built by
:func:`connection_env` from the emulators' JSON line; the client secret only ever lives
in the child processes' environment and is never printed.

Usage (tests)::

    home = prepare_home(tmp / "airflow", template=migrated)   # migrate once, copy per test
    env = airflow_env(home, staging_root=tmp / "staging", connections=connection_env(endpoints))
    with AirflowStack(home, env) as stack:
        stack.wait_for_dags(["p2c_accounts"])
        stack.unpause("p2c_accounts")
        run = stack.trigger("p2c_accounts", conf={"full_refresh": True})
        stack.wait_for_run("p2c_accounts", run["dag_run_id"])
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from devstack.processes import PidFiles, stop_sessions
from emulators.client import die_with_parent

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = ROOT / "dags"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
FINISHED = ("success", "failed")
DEFAULT_CONN_IDS = {"dataverse": "dynamics_dataverse_default", "fno": "dynamics_fno_default"}


SQLITE_BUSY_TIMEOUT = 60
"""Seconds a writer waits for the Airflow SQLite database's lock."""
API_TIMEOUT = httpx.Timeout(SQLITE_BUSY_TIMEOUT + 30, connect=10)
"""A REST call may wait inside the api-server for the SQLite lock as long as any writer."""
API_ATTEMPTS = 6


class StackError(RuntimeError):
    """Something in the local Airflow did not come up or did not finish in time.

    The first line of the message says what; later lines carry log tails for a log file.
    """


class ApiError(StackError):
    """The REST API answered a call with an error status."""

    def __init__(self, method: str, path: str, status: int, text: str, *, retried: bool) -> None:
        super().__init__(f"{method} {path} -> {status}: {text}")
        self.status = status
        #: an earlier attempt of the same call got no answer (it may have been applied)
        self.retried = retried


def _transient(response: httpx.Response) -> bool:
    """What SQLite under load answers: 503 "Database is locked", or a 500 naming the lock."""
    if response.status_code == 503:
        return True
    return response.status_code == 500 and "locked" in response.text.casefold()


# -- configuration ------------------------------------------------------------------------------


def _endpoint(endpoints: Any, name: str) -> Any:
    if isinstance(endpoints, dict):
        return endpoints[name]
    return getattr(endpoints, name)


def connection_definition(
    endpoints: Any, service: str, *, default_company: str | None = "usmf"
) -> dict[str, Any]:
    """One Airflow connection (the ``AIRFLOW_CONN_*`` JSON form) for ``dataverse`` or ``fno``
    from the emulators' JSON line (an ``EmulatorEndpoints`` or the parsed dict): host =
    environment URL, login/password = client id/secret, extras ``tenant_id``,
    ``authority_host``, ``ca_bundle`` and, for F&O, ``default_company``."""
    extra: dict[str, Any] = {
        "tenant_id": _endpoint(endpoints, "tenant_id"),
        "authority_host": str(_endpoint(endpoints, "authority")).rsplit("/", 1)[0],
        "ca_bundle": _endpoint(endpoints, "ca_bundle"),
    }
    if service == "fno" and default_company:
        extra["default_company"] = default_company
    return {
        "conn_type": "dynamics_dataverse" if service == "dataverse" else "dynamics_fno",
        "host": _endpoint(endpoints, f"{service}_url"),
        "login": _endpoint(endpoints, "client_id"),
        "password": _endpoint(endpoints, "client_secret"),
        "extra": extra,
    }


def connection_env(
    endpoints: Any,
    *,
    conn_ids: Mapping[str, str] | None = None,
    default_company: str = "usmf",
) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` JSON variables for both services (see `connection_definition`)."""
    ids = {**DEFAULT_CONN_IDS, **(conn_ids or {})}
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(
            connection_definition(endpoints, service, default_company=default_company)
        )
        for service, conn_id in ids.items()
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_free(port: int) -> bool:
    """True when a server could listen on ``port`` now. Bound with ``SO_REUSEADDR`` as
    uvicorn binds, so a port whose last connections sit in TIME_WAIT (a server stopped a
    moment ago) counts as free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen(1)
        except OSError:
            return False
    return True


def airflow_env(
    home: Path,
    *,
    dags_folder: Path = DAGS_FOLDER,
    staging_root: Path | str | None = None,
    connections: Mapping[str, str] | None = None,
    api_port: int | None = None,
    parallelism: int = 4,
    use_job_schedule: bool = True,
    extra: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every Airflow process of one local installation.

    Inherited ``AIRFLOW_*`` and ``P2C_*`` variables are dropped so nothing of the caller's
    own Airflow leaks in. ``use_job_schedule=False`` keeps the scheduler from creating
    runs by itself (tests create them through backfills and triggers; the DAGs keep their
    time-based schedule either way).
    """
    home = Path(home).resolve()
    port = api_port or free_port()
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith(("AIRFLOW_", "AIRFLOW__", "P2C_", "_AIRFLOW"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(Path(dags_folder).resolve()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # Four processes write one SQLite file; sqlite3's default 5 s busy timeout is too
            # short on a loaded two-core machine (the scheduler exits and the API answers 500
            # on "database is locked"), so wait up to a minute instead.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
                f"sqlite:///{home / 'airflow.db'}?timeout={SQLITE_BUSY_TIMEOUT}"
            ),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(use_job_schedule),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        }
    )
    if staging_root is not None:
        text = str(staging_root)
        env["P2C_STAGING_ROOT"] = text if "://" in text else f"file://{Path(text).resolve()}"
    env.update(connections or {})
    env.update(extra or {})
    return env


def migrate(home: Path, timeout: float = 300) -> Path:
    """``airflow db migrate`` into ``home`` (SQLite); returns the home."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    env = airflow_env(home)
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"airflow db migrate failed ({result.returncode}):\n{_tail(result.stderr)}")
    return home


def prepare_home(home: Path, *, template: Path | None = None) -> Path:
    """A fresh AIRFLOW_HOME; with ``template`` (an already migrated home) its database is
    copied, which takes milliseconds instead of a migration."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    if template is None:
        return migrate(home)
    shutil.copy2(Path(template) / "airflow.db", home / "airflow.db")
    return home


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _file_tail(path: Path, lines: int = 60) -> str:
    try:
        return _tail(path.read_text(errors="replace"), lines)
    except OSError:
        return f"({path} missing)"


# -- the real stack -----------------------------------------------------------------------------


class AirflowStack:
    """api-server + scheduler + dag-processor + triggerer of one AIRFLOW_HOME.

    A context manager: ``__exit__`` stops every process it started (SIGTERM to each
    process group, SIGKILL after ``stop_timeout``, then whatever is left in each
    component's session: LocalExecutor workers, task processes).

    :param pids: where each component's pid is recorded while it runs (the next start
        stops leftovers of a killed one); None: not recorded (tests on throw-away homes).
    :param before_scheduler: called once the api-server answers and before the scheduler
        starts, e.g. to finish runs an earlier, killed stack left behind before anything
        resumes them.
    """

    def __init__(
        self,
        home: Path,
        env: Mapping[str, str],
        *,
        components: Iterable[str] = COMPONENTS,
        start_timeout: float = 180,
        stop_timeout: float = 20,
        max_restarts: int = 3,
        pids: PidFiles | None = None,
        before_scheduler: Callable[[AirflowStack], None] | None = None,
    ) -> None:
        self.home = Path(home)
        self.env = dict(env)
        self.components = tuple(components)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.max_restarts = max_restarts
        self.restarts: list[str] = []
        self.base_url = self.env["AIRFLOW__API__BASE_URL"]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.log_dir = self.home / "logs"
        self.pids = pids
        self.before_scheduler = before_scheduler
        self._http = httpx.Client(base_url=f"{self.base_url}/api/v2", timeout=API_TIMEOUT)

    # lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> AirflowStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        held = {"scheduler"} if self.before_scheduler is not None else set()
        try:
            for component in self.components:
                if component not in held:
                    self._launch(component, mode="wb")
            if held:
                self.wait_api()
                assert self.before_scheduler is not None
                self.before_scheduler(self)
                for component in self.components:
                    if component in held:
                        self._launch(component, mode="wb")
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise

    def command(self, component: str) -> tuple[list[str], Mapping[str, str], Path]:
        """Command line, environment and working directory of one component (a subclass
        adds components of its own, e.g. Celery workers in :mod:`devstack.celery_stack`)."""
        args = [sys.executable, "-m", "airflow", component]
        if component == "api-server":
            args += ["--host", "127.0.0.1", "--port", self.env["AIRFLOW__API__PORT"], "--workers", "1"]
        return args, self.env, self.home

    def _launch(self, component: str, *, mode: str) -> None:
        args, env, cwd = self.command(component)
        with (self.log_dir / f"{component}.log").open(mode) as log_file:
            process = subprocess.Popen(
                args,
                env=env,
                cwd=cwd,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches the caller, which stops us in order
                preexec_fn=die_with_parent,  # the caller killed: SIGTERM (devstack.processes)
            )
        self.processes[component] = process
        if self.pids is not None:
            self.pids.record(component, process.pid)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # the scheduler's LocalExecutor workers and their task processes (own process groups)
        stop_sessions([process.pid for process in self.processes.values()], grace=5)
        if self.pids is not None:
            for component in self.processes:
                self.pids.forget(component)
        self._http.close()

    def check_alive(self) -> None:
        """Restart a component that exited, as a process supervisor would (docker-compose's
        ``restart: always``). On SQLite the scheduler can die of a lost race with the API
        server (``StaleDataError`` on ``dag_run`` when a backfill's runs are rolled back after
        "database is locked"); Airflow expects its supervisor to start it again. A component
        that keeps dying is an error, with its log tail."""
        for component, process in list(self.processes.items()):
            if process.poll() is None:
                continue
            tail = self.diagnostics(components=[component])
            message = f"airflow {component} exited with {process.returncode}"
            if len(self.restarts) >= self.max_restarts:
                raise StackError(f"{message} (after {len(self.restarts)} restarts)\n{tail}")
            self.restarts.append(f"{message}\n{tail}")
            print(f"{message}; restarting it ({len(self.restarts)}/{self.max_restarts})", file=sys.stderr)
            stop_sessions([process.pid], grace=5)  # its orphaned workers hold no slot of the new one
            self._launch(component, mode="ab")

    def wait_api(self) -> None:
        """Until the api-server answers (before the other components report heartbeats)."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if self._http.get("/monitor/health").status_code == 200:
                    return
            time.sleep(1)
        raise StackError(
            f"the Airflow api-server did not answer within {self.start_timeout:g}s\n"
            f"{self.diagnostics(components=['api-server'])}"
        )

    def wait_healthy(self) -> dict[str, Any]:
        """Until the API answers and every started component reports a fresh heartbeat."""
        wanted = {"scheduler", "triggerer", "dag_processor"} & {c.replace("-", "_") for c in self.components}
        deadline = time.monotonic() + self.start_timeout
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                response = self._http.get("/monitor/health")
                if response.status_code == 200:
                    health = response.json()
                    if all(health.get(name, {}).get("status") == "healthy" for name in wanted):
                        return health
            except httpx.HTTPError:
                pass
            time.sleep(1)
        unhealthy = sorted(name for name in wanted if health.get(name, {}).get("status") != "healthy")
        raise StackError(
            f"Airflow not healthy within {self.start_timeout:g}s (no heartbeat from {', '.join(unhealthy)})\n"
            f"{health}\n{self.diagnostics()}"
        )

    # REST API --------------------------------------------------------------------------------

    def api(self, method: str, path: str, *, attempts: int = API_ATTEMPTS, **kwargs: Any) -> Any:
        """One REST call. What SQLite under load causes is retried with backoff: a 503
        "Database is locked", a 500 naming the lock, no answer within :data:`API_TIMEOUT`
        (a writer held the lock), a refused connection (the api-server is restarting).

        :raises ApiError: an error status (``retried``: an earlier attempt got no answer).
        :raises StackError: no answer after ``attempts`` tries.
        """
        failure = "no attempt"
        retried = False
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(0.5 * 2**attempt, 10))
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                failure, retried = f"{type(exc).__name__}: {exc}".rstrip(": "), True
                continue
            if _transient(response) and attempt < attempts - 1:
                failure = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                raise ApiError(method, path, response.status_code, response.text, retried=retried)
            return response.json() if response.content else None
        raise StackError(
            f"the local Airflow API did not answer {method} {path} in {attempts} attempts ({failure}); "
            f"see {self.log_dir / 'api-server.log'}"
        )

    def _get(self, path: str, **kwargs: Any) -> httpx.Response | None:
        """A GET for polling loops: None when the API did not answer this time."""
        try:
            return self._http.get(path, **kwargs)
        except httpx.TransportError:
            return None

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 120) -> None:
        """Until the dag-processor has parsed and serialized each DAG."""
        pending = set(dag_ids)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            self.check_alive()
            for dag_id in sorted(pending):
                response = self._get(f"/dags/{dag_id}/details")
                if response is not None and response.status_code == 200:
                    pending.discard(dag_id)
            if pending:
                time.sleep(1)
        if pending:
            errors = self._get("/importErrors")
            raise StackError(
                f"DAGs not parsed within {timeout:g}s: {sorted(pending)} "
                f"(see {self.log_dir / 'dag-processor.log'})\n"
                f"import errors: {errors.text if errors is not None else '(no answer)'}"
            )

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(
        self, dag_id: str, *, conf: dict[str, Any] | None = None, logical_date: str | None = None
    ) -> Any:
        return self.api(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf or {}}
        )

    def backfill(
        self,
        dag_id: str,
        from_date: str,
        to_date: str,
        *,
        conf: dict[str, Any] | None = None,
        reprocess_behavior: str = "none",
    ) -> Any:
        """What ``airflow backfill create`` and the UI's backfill dialog do."""
        return self.api(
            "POST",
            "/backfills",
            json={
                "dag_id": dag_id,
                "from_date": from_date,
                "to_date": to_date,
                "run_backwards": False,
                "dag_run_conf": conf or {},
                "reprocess_behavior": reprocess_behavior,
                "max_active_runs": 1,
            },
        )

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"})[
            "dag_runs"
        ]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})[
            "task_instances"
        ]

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        item = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"map_index": map_index, "deserialize": True, "stringify": False},
        )
        return item["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        response = self._get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True},
            headers={"Accept": "application/json"},  # Airflow 3.3 serves JSON or NDJSON only
        )
        if response is None:
            return "(the log could not be read: no answer)"
        if response.status_code != 200:
            return f"(the log could not be read: HTTP {response.status_code} {response.text[:200]})"
        content = response.json().get("content") or []
        lines = (
            str(item.get("event", json.dumps(item))) if isinstance(item, dict) else str(item)
            for item in content
        )
        return "\n".join(lines)

    def wait_for_runs(
        self, dag_id: str, count: int, *, timeout: float = 600, poll: float = 2
    ) -> list[dict[str, Any]]:
        """Until ``dag_id`` has at least ``count`` runs and all are finished."""
        deadline = time.monotonic() + timeout
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            self.check_alive()
            runs = self.dag_runs(dag_id)
            if len(runs) >= count and all(r["state"] in FINISHED for r in runs):
                return runs
            time.sleep(poll)
        raise StackError(
            f"{dag_id}: runs not finished within {timeout}s: "
            f"{[(r['dag_run_id'], r['state']) for r in runs]}\n{self.diagnostics()}"
        )

    def wait_for_run(
        self, dag_id: str, run_id: str, *, timeout: float = 600, poll: float = 2
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self.check_alive()
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in FINISHED:
                return run
            time.sleep(poll)
        raise StackError(
            f"{dag_id} {run_id} not finished within {timeout}s: {run.get('state')}\n{self.diagnostics()}"
        )

    def failed_task_logs(self, dag_id: str, run_id: str, lines: int = 60) -> str:
        """The log tails of a run's failed task instances (for assertion messages)."""
        parts = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] in ("failed", "upstream_failed") and ti["try_number"]:
                text = self.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"])
                parts.append(f"--- {ti['task_id']}[{ti['map_index']}] ---\n{_tail(text, lines)}")
        return "\n".join(parts) or "(no failed task instances)"

    def diagnostics(self, components: Iterable[str] | None = None, lines: int = 40) -> str:
        """The tails of the component logs, for a failure message."""
        return "\n".join(
            f"--- {component}.log ---\n{_file_tail(self.log_dir / f'{component}.log', lines)}"
            for component in (components or self.components)
        )
