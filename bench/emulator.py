"""Start the emulators for one contender and talk to their admin routes.

Each contender gets its own emulator process on a private copy of the seeded data, so
no run sees another's writes, counters or service-protection windows. The process is a
child of the harness; its stderr goes to a log file next to its state directory.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("dataverse", "fno")
START_TIMEOUT = 120.0


@dataclass
class Emulators:
    """A running emulator process and what its first stdout line said."""

    endpoints: dict[str, Any]
    process: subprocess.Popen[str]
    log_path: Path

    @property
    def ca_bundle(self) -> str:
        return str(self.endpoints["ca_bundle"])

    def admin(self, service: str) -> Admin:
        return Admin(self.endpoints["admin"][service], self.ca_bundle)

    def connection_env(self, conn_ids: dict[str, str]) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` variables the way production defines the two connections."""
        variables = {}
        for service, conn_id in conn_ids.items():
            extra: dict[str, Any] = {
                "tenant_id": self.endpoints["tenant_id"],
                "authority_host": self.endpoints["authority"].rsplit("/", 1)[0],
                "ca_bundle": self.ca_bundle,
            }
            if service == "fno":
                extra["default_company"] = "usmf"
            variables[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                {
                    "conn_type": "dynamics_dataverse" if service == "dataverse" else "dynamics_fno",
                    "host": self.endpoints[f"{service}_url"],
                    "login": self.endpoints["client_id"],
                    "password": self.endpoints["client_secret"],
                    "extra": extra,
                }
            )
        return variables

    def stop(self) -> None:
        """SIGTERM, then kill after 15 s; only this process, by its own handle."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class Admin:
    """The ``/_admin`` routes of one service (TLS verified against the emulators' CA)."""

    def __init__(self, base: str, ca_bundle: str) -> None:
        self.base = base
        self._client = httpx.Client(verify=ssl.create_default_context(cafile=ca_bundle), timeout=60)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._client.request(method, f"{self.base}{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/config")

    def patch_config(self, patch: dict[str, Any]) -> dict[str, Any]:
        return self._call("PATCH", "/config", json=patch)

    def counters(self) -> dict[str, Any]:
        return self._call("GET", "/counters")

    def reset_counters(self) -> None:
        self._call("POST", "/counters/reset")

    def reset_limits(self) -> None:
        self._call("POST", "/limits/reset")

    def tables(self) -> dict[str, int]:
        return self._call("GET", "/tables")


def start(state_dir: Path, config: dict[str, Any]) -> Emulators:
    """Run ``python -m emulators serve`` on free ports with ``config`` merged over the defaults."""
    state_dir.mkdir(parents=True, exist_ok=True)
    config_path = state_dir.parent / f"{state_dir.name}-config.json"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = state_dir.parent / f"{state_dir.name}-emulators.log"
    command = [sys.executable, "-m", "emulators", "serve", "--state-dir", str(state_dir)]
    command += ["--port-base", "0", "--config", str(config_path)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            preexec_fn=die_with_parent,  # a killed harness (CI timeout) leaves no emulator behind
        )
    try:
        line = _first_line(process, START_TIMEOUT)
        running = Emulators(json.loads(line), process, log_path)
        _wait_healthy(running)
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"emulators did not start; log tail:\n{tail}") from None
    return running


def die_with_parent() -> None:
    """Linux: deliver SIGTERM to the child when the harness process dies (``PR_SET_PDEATHSIG``)."""
    if not sys.platform.startswith("linux"):
        return
    import contextlib
    import ctypes

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                line = process.stdout.readline()
                if line:
                    return line
                raise RuntimeError("emulators exited before announcing their endpoints")
            if process.poll() is not None:
                raise RuntimeError(f"emulators exited with {process.returncode}")
    raise TimeoutError(f"no endpoints line within {timeout} s")


def _wait_healthy(running: Emulators) -> None:
    deadline = time.monotonic() + 30
    context = ssl.create_default_context(cafile=running.ca_bundle)
    with httpx.Client(verify=context, timeout=5) as client:
        for service in SERVICES:
            url = f"{running.endpoints['admin'][service]}/health"
            while True:
                try:
                    if client.get(url).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} not healthy")
                time.sleep(0.05)
