"""Start the emulators as a subprocess and talk to their admin routes (tests only).

`start_emulators()` runs `python -m emulators serve --port-base 0 …`, parses the first
stdout line into `EmulatorEndpoints` and waits until every service answers. Its stderr
goes to a file whose tail is shown when something fails, so a broken start explains itself.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import selectors
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("dataverse", "fno")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class EmulatorEndpoints:
    """The JSON line `serve` prints first: where everything is and how to authenticate."""

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
        data = json.loads(line)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def resource(self, service: str) -> str:
        """The resource URL of a service (environment URL, token audience)."""
        return self.dataverse_url if service == "dataverse" else self.fno_url

    def scope(self, service: str) -> str:
        return f"{self.resource(service)}/.default"

    def service_root(self, service: str) -> str:
        return self.dataverse_service_root if service == "dataverse" else self.fno_service_root

    def ssl_context(self) -> ssl.SSLContext:
        """Verification against the emulators' CA (what `verify=` should get)."""
        return ssl.create_default_context(cafile=self.ca_bundle)


class AdminClient:
    """The `/_admin/` routes of one service over HTTPS (verified with the emulators' CA)."""

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
        response = self._http.request(method, f"{self.base}{path}", **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"admin {method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def get_config(self) -> dict[str, Any]:
        return self._call("GET", "/config")

    def patch_config(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Partial merge into this service's settings (key `entra` patches the token service)."""
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
        return self._call("GET", "/tables")

    @contextlib.contextmanager
    def overrides(self, patch: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Apply a config patch for the duration of a block, then restore what it changed.

        Use it on the shared session emulators so one test's limits never leak into another.
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
    """A started emulator process; `stop()` ends it (SIGTERM, then kill)."""

    endpoints: EmulatorEndpoints
    process: subprocess.Popen[str]
    stderr_path: Path
    state_dir: Path

    def admin(self, service: str = "dataverse") -> AdminClient:
        return AdminClient(self.endpoints, service)

    def stderr_tail(self, lines: int = 40) -> str:
        return stderr_tail(self.stderr_path, lines)

    def stop(self) -> int:
        return stop_process(self.process)


def stderr_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no stderr captured)"


def catalogs_available() -> bool:
    return all(importlib.util.find_spec(f"emulators.schema.{service}") is not None for service in SERVICES)


def seed_available() -> bool:
    """True once `emulators.seed.seed_store` exists (the seed module is written separately)."""
    if importlib.util.find_spec("emulators.seed") is None:
        return False
    try:
        module = importlib.import_module("emulators.seed")
    except ImportError:
        return False
    return callable(getattr(module, "seed_store", None))


def serve_command(state_dir: Path, *extra: str) -> list[str]:
    """The `serve` command line; falls back to empty catalogs only while they are unwritten."""
    module = "emulators" if catalogs_available() else "tests.support.serve_fallback"
    return [sys.executable, "-m", module, "serve", "--state-dir", str(state_dir), "--port-base", "0", *extra]


def start_emulators(
    state_dir: Path,
    *extra_args: str,
    config: dict[str, Any] | None = None,
    timeout: float = START_TIMEOUT,
) -> RunningEmulators:
    """Start `serve` on free ports and wait until all three services answer."""
    state_dir.mkdir(parents=True, exist_ok=True)
    args = list(extra_args)
    if config is not None:
        config_path = state_dir.parent / f"{state_dir.name}-config.json"
        config_path.write_text(json.dumps(config))
        args += ["--config", str(config_path)]
    stderr_path = state_dir.parent / f"{state_dir.name}-stderr.log"
    stderr_file = stderr_path.open("w")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        serve_command(state_dir, *args),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        text=True,
    )
    stderr_file.close()
    try:
        line = _read_first_line(process, timeout)
        endpoints = EmulatorEndpoints.from_json(line)
        _wait_healthy(endpoints, timeout)
    except BaseException as exc:
        stop_process(process)
        raise RuntimeError(
            f"emulators failed to start: {exc}\n--- stderr ---\n{stderr_tail(stderr_path)}"
        ) from exc
    return RunningEmulators(endpoints, process, stderr_path, state_dir)


def _read_first_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError(f"process exited with {process.wait(5)} before printing its JSON line")
                return line
            if process.poll() is not None:
                raise RuntimeError(f"process exited with {process.returncode} before printing its JSON line")
    raise TimeoutError(f"no JSON line within {timeout}s")


def _wait_healthy(endpoints: EmulatorEndpoints, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    urls = [f"{endpoints.admin[s]}/health" for s in SERVICES] + [f"{endpoints.entra_url}/_admin/health"]
    with httpx.Client(verify=endpoints.ssl_context(), timeout=5) as client:
        for url in urls:
            while True:
                try:
                    if client.get(url).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} not healthy within {timeout}s")
                time.sleep(0.05)


def stop_process(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode


def msal_app(endpoints: EmulatorEndpoints, client_secret: str | None = None) -> Any:
    """A fresh msal confidential client (fresh: msal caches tokens and errors per app).

    It gets its own `requests` session with `trust_env=False`: requests lets the
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE environment variables override a session's `verify`,
    which would silently swap msal's `verify=<ca.pem>` for the system bundle.
    """
    import msal
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = endpoints.ca_bundle
    return msal.ConfidentialClientApplication(
        endpoints.client_id,
        client_credential=client_secret if client_secret is not None else endpoints.client_secret,
        authority=endpoints.authority,
        instance_discovery=False,
        http_client=session,
    )


def acquire_token(endpoints: EmulatorEndpoints, service: str = "dataverse") -> str:
    """A bearer token for a service, obtained the way the product does (msal)."""
    result = msal_app(endpoints).acquire_token_for_client(scopes=[endpoints.scope(service)])
    if "access_token" not in result:
        raise AssertionError(f"no token: {result.get('error')}: {result.get('error_description')}")
    return str(result["access_token"])


class Oracle:
    """Reads with plain httpx, independent of the hook, to check what really landed."""

    def __init__(self, endpoints: EmulatorEndpoints, service: str) -> None:
        self.root = endpoints.service_root(service)
        self.client = httpx.Client(
            verify=endpoints.ssl_context(),
            headers={
                "Authorization": f"Bearer {acquire_token(endpoints, service)}",
                "Accept": "application/json",
            },
            timeout=30,
        )

    def get(self, path: str) -> httpx.Response:
        return self.client.get(self.root + path)

    def rows(self, path: str) -> list[dict[str, Any]]:
        response = self.get(path)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "@odata.nextLink" not in body
        return list(body["value"])

    def close(self) -> None:
        self.client.close()
