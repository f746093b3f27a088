"""The distributed local stack: Airflow on Postgres with the CeleryExecutor, Redis as the broker
and two Celery workers, for ``make airflow-celery`` and ``tests/e2e/test_celery_stack.py``.

What production teams run (and ``docker-compose.yaml`` describes), on one machine without
Docker: Debian's ``postgresql`` and ``redis-server`` (``make celery-packages`` installs them),
each started here on a free loopback port in a throw-away directory, with a generated password
that only lives in a 0600 file and the Airflow processes' environment. Both servers and every
Airflow process are started like the rest of the local stack (:mod:`devstack.processes`): own
session, parent-death signal, recorded in :class:`~devstack.processes.PidFiles` when given, so
nothing outlives the command or the test that started it.

PostgreSQL refuses to run as root (CI runs as root): as root, ``initdb`` and ``postgres`` run
as the ``postgres`` system user that Debian's package creates, on a data directory owned by
it; anyone else runs them as themselves.

The two workers (:data:`WORKERS`) share nothing but Airflow (its database, API and task log
folder, which stands in for remote task logging) and the staging root: each has its own
working, home and temporary directory, and reports its own host name (:func:`worker_hostname`)
into the task instances it runs, which is how a test sees where each task ran. They start
with ``--skip-serve-logs``: Airflow's log server listens on every interface, and the task
logs are in the shared folder anyway.
"""

from __future__ import annotations

import contextlib
import ctypes  # noqa: F401  (see _spawn: loaded before the switch to the postgres user)
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import psutil

from devstack.airflow_stack import COMPONENTS, AirflowStack, StackError, free_port
from devstack.processes import PidFiles, run_recorded, stop_sessions
from devstack.state import PRELOAD_DIR
from emulators.client import die_with_parent

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

#: The two Celery workers: component name (its log is ``<home>/logs/<name>.log``) = host name.
WORKERS = ("celery-worker-a", "celery-worker-b")
#: Task slots per worker (``airflow celery worker --concurrency``).
WORKER_CONCURRENCY = 2
#: The system user Debian's postgresql package creates; PostgreSQL runs as it when we are root.
POSTGRES_USER = "postgres"
DATABASE = "airflow"
INSTALL_HINT = "make celery-packages (Debian's redis-server and postgresql; needs root or sudo)"


class CeleryStackError(StackError):
    """Postgres, Redis or a Celery worker did not come up."""


# -- the servers --------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The directory of ``initdb`` and ``postgres``: Debian keeps them out of ``PATH``, in
    ``/usr/lib/postgresql/<version>/bin`` (the newest wins); else wherever ``PATH`` has them."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def missing_packages() -> list[str]:
    """Debian packages the stack needs that are not installed (empty: ready)."""
    missing = [] if postgres_bin() else ["postgresql"]
    return missing + ([] if shutil.which("redis-server") else ["redis-server"])


@dataclass(frozen=True)
class RunAs:
    """Who the database server runs as: ``postgres`` when we are root, else ourselves."""

    uid: int
    gid: int

    @classmethod
    def for_postgres(cls) -> RunAs:
        if os.geteuid() != 0:
            return cls(os.geteuid(), os.getegid())
        try:
            entry = pwd.getpwnam(POSTGRES_USER)
        except KeyError:
            raise CeleryStackError(
                f"running as root, and there is no '{POSTGRES_USER}' user to run PostgreSQL as "
                f"(PostgreSQL refuses root); {INSTALL_HINT} creates it"
            ) from None
        return cls(entry.pw_uid, entry.pw_gid)

    @property
    def switches(self) -> bool:
        return self.uid != os.geteuid()

    def popen_kwargs(self) -> dict[str, object]:
        """``user``/``group``/``extra_groups`` for :class:`subprocess.Popen` (set before
        ``preexec_fn`` runs, so the parent-death signal survives the switch)."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []} if self.switches else {}


def _private_dir(kind: str, owner: RunAs | None = None) -> Path:
    """A new 0700 directory ``p2c-<kind>-<our pid>-*`` in the system's temporary directory
    (pytest's and the state's parents may be closed to the ``postgres`` user), owned by
    ``owner``. Those a killed process left (its pid gone; its servers died with it, by the
    parent-death signal) are removed first: a stop removes its own."""
    for leftover in Path(tempfile.gettempdir()).glob(f"p2c-{kind}-*-*"):
        creator = leftover.name.split("-")[2]
        if creator.isdigit() and not psutil.pid_exists(int(creator)):
            shutil.rmtree(leftover, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=f"p2c-{kind}-{os.getpid()}-"))
    if owner is not None and owner.switches:
        os.chown(path, owner.uid, owner.gid)
    return path


def _spawn(
    args: Sequence[str], log_path: Path, *, cwd: Path, run_as: RunAs | None = None
) -> subprocess.Popen[bytes]:
    """A server in its own session with a parent-death signal, output to ``log_path``.

    ``die_with_parent`` runs in the child after the switch to ``run_as`` (the signal would be
    cleared by a later switch), when this interpreter's own files (under ``/root``, say) may
    be closed to it: the ``ctypes`` it imports is loaded here, at the top of this module."""
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            list(args),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
            **(run_as.popen_kwargs() if run_as else {}),
        )


def _stop(process: subprocess.Popen[bytes] | None, signum: int, grace: float = 15) -> None:
    """``signum`` to the server, SIGKILL after ``grace``, then whatever its session left."""
    if process is None:
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    stop_sessions([process.pid], grace=5)


def _wait_until(
    ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CeleryStackError(f"{what} exited with {process.returncode}\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.3)
    raise CeleryStackError(f"{what} did not answer within {timeout:g}s\n{_tail(log)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} missing)"


_Server = TypeVar("_Server", bound="_LocalServer")


class _LocalServer:
    """A throw-away server process on ``127.0.0.1:<free port>`` with a generated password,
    stopped (and its folder removed) when the ``with`` block ends, even if it never started."""

    default_start_timeout = 30.0

    def __init__(
        self, log_dir: Path, *, pids: PidFiles | None = None, start_timeout: float | None = None
    ) -> None:
        self.log_dir = Path(log_dir)
        self.pids = pids
        self.start_timeout = self.default_start_timeout if start_timeout is None else start_timeout
        self.port = 0
        self.password = secrets.token_urlsafe(24)
        self.process: subprocess.Popen[bytes] | None = None
        self.root: Path | None = None

    def __enter__(self: _Server) -> _Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class PostgresServer(_LocalServer):
    """A throw-away PostgreSQL cluster on ``127.0.0.1:<free port>`` with one database and one
    password-protected role, both named :data:`DATABASE`; removed on exit.

    :param log_dir: where ``postgres.log`` / ``initdb.log`` go (ours, not the cluster's).
    """

    default_start_timeout = 60.0

    @property
    def url(self) -> str:
        """The SQLAlchemy URL Airflow's ``sql_alchemy_conn`` takes (holds the password)."""
        return f"postgresql+psycopg2://{DATABASE}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise CeleryStackError(f"PostgreSQL is not installed; {INSTALL_HINT}")
        run_as = RunAs.for_postgres()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.root = _private_dir("postgres", run_as)
        data = self.root / "data"
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        if run_as.switches:
            os.chown(password_file, run_as.uid, run_as.gid)
        initdb_log = self.log_dir / "initdb.log"
        with initdb_log.open("wb") as log_file:
            result = subprocess.run(
                [
                    str(binaries / "initdb"),
                    "--pgdata",
                    str(data),
                    "--username",
                    DATABASE,
                    "--auth",
                    "scram-sha-256",
                    "--pwfile",
                    str(password_file),
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",  # a throw-away cluster: nothing to make durable
                ],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
                preexec_fn=die_with_parent,
                **run_as.popen_kwargs(),
            )
        password_file.unlink()
        if result.returncode != 0:
            raise CeleryStackError(f"initdb failed ({result.returncode})\n{_tail(initdb_log)}")
        self.port = free_port()
        log = self.log_dir / "postgres.log"
        self.process = _spawn(
            [
                str(binaries / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.root}",
                "-c",
                "fsync=off",  # throw-away: speed over durability
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            log,
            cwd=self.root,
            run_as=run_as,
        )
        if self.pids is not None:
            self.pids.record("postgres", self.process.pid)
        _wait_until(self._accepts, "postgres", self.process, log, self.start_timeout)
        self._create_database()

    def _connect(self, dbname: str) -> object:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=DATABASE,
            password=self.password,
            dbname=dbname,
            connect_timeout=3,
        )

    def _accepts(self) -> bool:
        import psycopg2

        try:
            self._connect("postgres").close()
        except psycopg2.OperationalError:
            return False
        return True

    def _create_database(self) -> None:
        connection = self._connect("postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            connection.close()

    def stop(self) -> None:
        """Fast shutdown (SIGINT: disconnect clients, then stop), then the data is removed."""
        _stop(self.process, signal.SIGINT)
        if self.pids is not None:
            self.pids.forget("postgres")
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


class RedisServer(_LocalServer):
    """A throw-away Redis on ``127.0.0.1:<free port>``, password required, nothing persisted."""

    default_start_timeout = 30.0

    @property
    def url(self) -> str:
        """The Celery broker URL (holds the password)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise CeleryStackError(f"redis-server is not installed; {INSTALL_HINT}")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.root = _private_dir("redis")
        self.port = free_port()
        config = self.root / "redis.conf"  # the password in a 0600 file, not on a command line
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    f"dir {self.root}",
                    'save ""',
                    "appendonly no",
                    "protected-mode yes",
                    "daemonize no",
                    f"requirepass {self.password}",
                    "",
                ]
            )
        )
        config.chmod(0o600)
        log = self.log_dir / "redis.log"
        self.process = _spawn([server, str(config)], log, cwd=self.root)
        if self.pids is not None:
            self.pids.record("redis", self.process.pid)
        _wait_until(self._answers, "redis-server", self.process, log, self.start_timeout)
        config.unlink()  # read at start-up; the password stays in no file

    def _answers(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        _stop(self.process, signal.SIGTERM)
        if self.pids is not None:
            self.pids.forget("redis")
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


# -- Airflow on them ----------------------------------------------------------------------------


def worker_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` in a worker of this stack: the worker's name, so
    the task instances tell which of two workers on one machine ran them."""
    return os.environ["P2C_WORKER_HOSTNAME"]


def celery_env(env: Mapping[str, str], database: PostgresServer, broker: RedisServer) -> dict[str, str]:
    """The environment of a local installation (:func:`~devstack.airflow_stack.airflow_env`)
    turned to Postgres and the CeleryExecutor with Redis as the broker; the workers preload
    the heavy libraries as the LocalExecutor's scheduler does (``devstack/preload``)."""
    paths = env.get("PYTHONPATH", "").split(os.pathsep)
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(paths if str(PRELOAD_DIR) in paths else [str(PRELOAD_DIR), *paths]),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database.url,
        "AIRFLOW__CELERY__BROKER_URL": broker.url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database.url,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        "AIRFLOW__CORE__PARALLELISM": str(WORKER_CONCURRENCY * len(WORKERS)),
    }


class CeleryAirflowStack(AirflowStack):
    """api-server, scheduler (CeleryExecutor), dag-processor, triggerer and the Celery workers
    :data:`WORKERS`, each worker in a directory of its own under ``<home>/workers/``."""

    def __init__(
        self, home: Path, env: Mapping[str, str], *, workers: Sequence[str] = WORKERS, **kwargs: object
    ) -> None:
        super().__init__(home, env, components=(*COMPONENTS, *workers), **kwargs)
        self.workers = tuple(workers)

    def command(self, component: str) -> tuple[list[str], Mapping[str, str], Path]:
        if component not in self.workers:
            return super().command(component)
        own = self.home / "workers" / component
        (own / "tmp").mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable,
            "-m",
            "airflow",
            "celery",
            "worker",
            "--celery-hostname",
            component,
            "--concurrency",
            str(WORKER_CONCURRENCY),
            "--skip-serve-logs",
        ]
        env = {
            **self.env,
            "HOME": str(own),
            "TMPDIR": str(own / "tmp"),
            "P2C_WORKER_HOSTNAME": component,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
        }
        return args, env, own

    def wait_healthy(self) -> dict[str, object]:
        """The other components' heartbeats, then each worker's ``celery@<name> ready.``"""
        health = super().wait_healthy()
        deadline = time.monotonic() + self.start_timeout
        pending = set(self.workers)
        while pending and time.monotonic() < deadline:
            self.check_alive()
            for name in sorted(pending):
                log = self.log_dir / f"{name}.log"
                with contextlib.suppress(OSError):
                    if f"celery@{name} ready." in log.read_text(errors="replace"):
                        pending.discard(name)
            if pending:
                time.sleep(1)
        if pending:
            raise CeleryStackError(
                f"Celery workers not ready within {self.start_timeout:g}s: {sorted(pending)}\n"
                f"{self.diagnostics(components=sorted(pending))}"
            )
        return health


def migrate_database(env: Mapping[str, str], log_path: Path, pids: PidFiles | None = None) -> None:
    """``airflow db migrate`` into the (empty) Postgres database of ``env``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    code = run_recorded(
        pids,
        "airflow-db-migrate",
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        cwd=log_path.parent,
        log_path=log_path,
        timeout=600,
    )
    if code != 0:
        raise CeleryStackError(f"airflow db migrate on Postgres failed (exit {code})\n{_tail(log_path)}")


@contextlib.contextmanager
def celery_stack(
    home: Path,
    env: Mapping[str, str],
    *,
    workers: Sequence[str] = WORKERS,
    pids: PidFiles | None = None,
) -> Iterator[CeleryAirflowStack]:
    """Postgres and Redis, the Airflow database migrated into Postgres, then the whole
    :class:`CeleryAirflowStack` of ``home``; everything stopped (and the servers' data
    removed) on the way out.

    :param env: an :func:`~devstack.airflow_stack.airflow_env` of ``home`` (connections,
        staging, DAGs); its SQLite and LocalExecutor settings are replaced.
    """
    home = Path(home)
    logs = home / "logs"
    with PostgresServer(logs, pids=pids) as database, RedisServer(logs, pids=pids) as broker:
        stack_env = celery_env(env, database, broker)
        migrate_database(stack_env, logs / "db-migrate.log", pids)
        with CeleryAirflowStack(home, stack_env, workers=workers, pids=pids) as stack:
            yield stack


# -- make airflow-celery --------------------------------------------------------------------------


def serve(
    state_dir: Path | str = "state/celery",
    *,
    port: int = 8080,
    out: Callable[[str], None] = print,
    until: Callable[[], bool] | None = None,
) -> int:
    """``make airflow-celery``: the demo's emulators (their own data, under ``state_dir``) and
    this stack, running until Ctrl-C or SIGTERM (``KeyboardInterrupt``), or until ``until()``
    is true. The Airflow database is a new Postgres on every start; the emulators' data and
    staging stay in ``state_dir``. The scheduler's own schedule is on; the DAGs are paused."""
    from devstack.demo import ALL_DAGS
    from devstack.state import DemoError, serve_until_stopped, served_state, shown

    missing = missing_packages()
    if missing:
        raise DemoError(f"Debian packages missing: {', '.join(missing)}", hint=INSTALL_HINT)
    with served_state(state_dir, port, out, command="make airflow-celery") as served:
        paths, endpoints = served.paths, served.endpoints
        out(
            "Starting PostgreSQL and Redis (throw-away, loopback), then Airflow on the CeleryExecutor: "
            f"api-server, scheduler, dag-processor, triggerer, workers {', '.join(WORKERS)}"
        )
        with celery_stack(paths.airflow, served.env, pids=served.pids) as stack:
            serve_until_stopped(
                stack,
                endpoints,
                ALL_DAGS,
                details=[
                    f"Workers:      {', '.join(WORKERS)} "
                    "(a task instance's Host in the UI says which ran it)",
                    f"State:        {shown(paths.root)} (logs in {shown(paths.airflow / 'logs')})",
                    "Try: Dags -> p2c_accounts -> Trigger. Ctrl-C stops everything.",
                ],
                stopping="Stopping Airflow, the workers, Redis, PostgreSQL and the emulators",
                out=out,
                until=until,
            )
    return 0
