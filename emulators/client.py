"""Start ``python -m emulators serve`` as a child process and talk to its admin routes.

The one launcher for everything that runs the emulators from Python (the test suite, the
benchmark harness, ``make demo``): :func:`start_emulators` starts ``serve`` on free ports,
reads the JSON line it prints first into :class:`EmulatorEndpoints`, waits until every
service answers its health route and returns a :class:`RunningEmulators`, which stops the
process (SIGTERM, then kill) and hands out :class:`AdminClient` objects for the
``/_admin/`` routes. The child's stderr goes to a log file; a failed start raises
:class:`EmulatorStartError` with the log's tail, so it explains itself.

Only the standard library and httpx (a runtime dependency of the project) are imported:
this module is imported by code that must not pull in the servers, and it never imports
the product (``prospect_to_cash``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import selectors
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

#: The checkout that holds the ``emulators`` package (the child's working directory and
#: ``PYTHONPATH`` entry, so ``python -m emulators`` resolves to this copy).
ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("dataverse", "fno")
START_TIMEOUT = 60.0
HEALTH_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class EmulatorStartError(RuntimeError):
    """``serve`` did not print its JSON line or its services did not answer in time.

    :param reason: what went wrong (exit code, timeout, unhealthy service).
    :param log_tail: the last lines of the child's stderr log (also in the message).
    """

    def __init__(self, reason: str, log_path: Path, log_tail: str) -> None:
        super().__init__(f"the emulators did not start: {reason}\n--- {log_path} ---\n{log_tail}")
        self.reason = reason
        self.log_path = log_path
        self.log_tail = log_tail


class AdminError(RuntimeError):
    """An ``/_admin/`` call answered with an error status."""

    def __init__(self, method: str, url: str, status: int, text: str) -> None:
        super().__init__(f"admin {method} {url} -> {status}: {text[:500]}")
        self.status = status


@dataclass(frozen=True)
class EmulatorEndpoints:
    """The JSON line ``serve`` prints first: where everything is and how to authenticate.

    The client secret stays out of ``repr`` so an endpoints object in a log or a failed
    assertion never shows it.
    """

    dataverse_url: str
    fno_url: str
    authority: str
    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    ca_bundle: str
    state_dir: str
    admin: dict[str, str]
    pid: int
    entra_url: str = ""
    dataverse_service_root: str = ""
    fno_service_root: str = ""
    ports: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, line: str) -> EmulatorEndpoints:
        """Parse the JSON line; keys this version does not know are ignored (newer servers)."""
        data = json.loads(line)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form (what a child process spec can carry); includes the secret."""
        return dataclasses.asdict(self)

    def resource(self, service: str) -> str:
        """The resource URL of a service (environment URL, token audience)."""
        return self.dataverse_url if service == "dataverse" else self.fno_url

    def scope(self, service: str) -> str:
        return f"{self.resource(service)}/.default"

    def service_root(self, service: str) -> str:
        return self.dataverse_service_root if service == "dataverse" else self.fno_service_root

    def ssl_context(self) -> ssl.SSLContext:
        """Verification against the emulators' CA (what ``verify=`` should get)."""
        return ssl.create_default_context(cafile=self.ca_bundle)


class AdminClient:
    """The ``/_admin/`` routes of one service over HTTPS, verified with the emulators' CA.

    The routes need no token (the emulators listen on loopback only).
    """

    def __init__(
        self, endpoints: EmulatorEndpoints, service: str = "dataverse", timeout: float = 10.0
    ) -> None:
        self.service = service
        self.base = endpoints.admin[service]
        self._http = httpx.Client(verify=endpoints.ssl_context(), timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base}{path}"
        response = self._http.request(method, url, **kwargs)
        if response.status_code >= 400:
            raise AdminError(method, url, response.status_code, response.text)
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def get_config(self) -> dict[str, Any]:
        return self._call("GET", "/config")

    def patch_config(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Partial merge into this service's settings (key ``entra`` patches the token service)."""
        return self._call("PATCH", "/config", json=patch)

    def counters(self) -> dict[str, Any]:
        return self._call("GET", "/counters")

    def reset_counters(self) -> dict[str, Any]:
        return self._call("POST", "/counters/reset")

    def reset_limits(self) -> None:
        self._call("POST", "/limits/reset")

    def revoke_tokens(self) -> None:
        self._call("POST", "/revoke-tokens")

    def tables(self) -> dict[str, int]:
        """Row count per entity set."""
        return self._call("GET", "/tables")

    @contextlib.contextmanager
    def overrides(self, patch: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Apply a config patch for the duration of a block, then restore what it changed.

        For a shared instance: one caller's limits or faults never leak into the next.
        """
        before = self.get_config()
        applied = self.patch_config(patch)
        try:
            yield applied
        finally:
            self.patch_config(_restore_patch(patch, before))
            self.reset_limits()


def _restore_patch(patch: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    restore: dict[str, Any] = {}
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(before.get(key), dict):
            restore[key] = _restore_patch(value, before[key])
        else:
            restore[key] = before[key]
    return restore


@dataclass
class RunningEmulators:
    """A started ``serve`` process; :meth:`stop` (or leaving a ``with`` block) ends it."""

    endpoints: EmulatorEndpoints
    process: subprocess.Popen[str]
    log_path: Path
    state_dir: Path

    def __enter__(self) -> RunningEmulators:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def admin(self, service: str = "dataverse", *, timeout: float = 10.0) -> AdminClient:
        return AdminClient(self.endpoints, service, timeout=timeout)

    def counters(self) -> dict[str, dict[str, Any]]:
        """Each service's counters (requests, operations written, rows read, ...)."""
        return {service: self._each(service, AdminClient.counters) for service in SERVICES}

    def reset_counters(self) -> None:
        for service in SERVICES:
            self._each(service, AdminClient.reset_counters)

    def reset_limits(self) -> None:
        """Empty every service's service-protection windows (a fresh user, as far as limits go)."""
        for service in SERVICES:
            self._each(service, AdminClient.reset_limits)

    def tables(self) -> dict[str, dict[str, int]]:
        """Row count per entity set, per service."""
        return {service: self._each(service, AdminClient.tables) for service in SERVICES}

    def _each(self, service: str, call: Callable[[AdminClient], Any]) -> Any:
        with self.admin(service) as admin:
            return call(admin)

    def stderr_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then kill after ``timeout`` seconds; only this process, by its own handle.

        :returns: the exit code (``-15`` when SIGTERM ended it before its handler ran).
        """
        return stop_process(self.process, timeout)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def serve_command(state_dir: Path, *extra_args: str, module: str = "emulators") -> list[str]:
    """The ``serve`` command line on free ports (``--port-base 0``).

    :param module: what ``python -m`` runs; a test wrapper module may stand in.
    """
    return [
        sys.executable,
        "-m",
        module,
        "serve",
        "--state-dir",
        str(state_dir),
        "--port-base",
        "0",
        *extra_args,
    ]


def die_with_parent() -> None:
    """Linux: SIGTERM the child when its parent dies (``PR_SET_PDEATHSIG``), for ``preexec_fn``.

    A harness killed by a CI timeout then leaves no emulator behind.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def start_emulators(
    state_dir: Path,
    *extra_args: str,
    config: Mapping[str, Any] | None = None,
    timeout: float = START_TIMEOUT,
    log_path: Path | None = None,
    append_log: bool = False,
    new_session: bool = False,
    parent_death_signal: bool = False,
    module: str = "emulators",
) -> RunningEmulators:
    """Start ``serve`` on free ports and wait until all three services answer.

    :param extra_args: more ``serve`` options, e.g. ``"--seed", "demo"``.
    :param config: merged over the state's ``config.json`` (limits, cost, faults); written to
        ``<state_dir>-config.json`` beside the state directory and passed as ``--config``.
    :param timeout: seconds to wait for the JSON line (seeding a large world happens first);
        the services then get up to :data:`HEALTH_TIMEOUT` more to answer.
    :param log_path: the child's stderr (default ``<state_dir>-stderr.log`` beside it).
    :param append_log: keep earlier runs' lines (a state that is started again and again).
    :param new_session: own session, so a Ctrl-C in the terminal does not reach the
        emulators and the caller can stop them after what depends on them.
    :param parent_death_signal: :func:`die_with_parent` in the child (Linux).
    :raises EmulatorStartError: the process exited, printed nothing in time, or a
        service stayed unhealthy; the process is stopped first.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    args = list(extra_args)
    if config is not None:
        config_path = state_dir.parent / f"{state_dir.name}-config.json"
        config_path.write_text(json.dumps(config, indent=2))
        args += ["--config", str(config_path)]
    log_path = Path(log_path) if log_path is not None else state_dir.parent / f"{state_dir.name}-stderr.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with log_path.open("a" if append_log else "w") as log_file:
        process = subprocess.Popen(
            serve_command(state_dir, *args, module=module),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            start_new_session=new_session,
            preexec_fn=die_with_parent if parent_death_signal else None,
        )
    try:
        endpoints = EmulatorEndpoints.from_json(_first_line(process, timeout))
        wait_healthy(endpoints, HEALTH_TIMEOUT)
    except BaseException as exc:
        stop_process(process)
        if isinstance(exc, (RuntimeError, TimeoutError, ValueError, httpx.HTTPError)):
            raise EmulatorStartError(str(exc), log_path, log_tail(log_path)) from exc
        raise
    return RunningEmulators(endpoints, process, log_path, state_dir)


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError(
                        f"the process exited with {process.wait(5)} before printing its JSON line"
                    )
                return line
            if process.poll() is not None:
                raise RuntimeError(
                    f"the process exited with {process.returncode} before printing its JSON line"
                )
    raise TimeoutError(f"no JSON line within {timeout:g} s")


def wait_healthy(endpoints: EmulatorEndpoints, timeout: float = HEALTH_TIMEOUT) -> None:
    """Poll each service's ``/_admin/health`` (Entra ID's too) until it answers 200."""
    deadline = time.monotonic() + timeout
    urls = [f"{endpoints.admin[s]}/health" for s in SERVICES]
    if endpoints.entra_url:
        urls.append(f"{endpoints.entra_url}/_admin/health")
    with httpx.Client(verify=endpoints.ssl_context(), timeout=5) as client:
        for url in urls:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} not healthy within {timeout:g} s")
                time.sleep(0.05)


def stop_process(process: subprocess.Popen[str], timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM, then kill after ``timeout`` seconds; closes the stdout pipe; idempotent."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode
