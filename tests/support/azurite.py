"""Azurite, Microsoft's Azure Storage emulator, for the staging-on-Azure test.

The npm package is pinned by ``tools/azurite/package-lock.json`` and installed by
``make test`` (``npm ci``). Only the Blob service is started, on a free loopback port, over
HTTPS with a certificate from the emulators' local CA (:mod:`emulators.tls`), so clients
keep TLS verification on and trust that CA. The storage account is not Azurite's
well-known development account: its name and a random key are given through
``AZURITE_ACCOUNTS``, so the key is a secret like a real one (the tests check that it never
reaches a log or a staging file). Telemetry is off: the machines here have no network.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from devstack.airflow_stack import free_port
from emulators.client import ROOT, die_with_parent
from emulators.tls import ensure_tls

if TYPE_CHECKING:
    from pathlib import Path

AZURITE_BLOB = ROOT / "tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "p2cstaging"
START_TIMEOUT = 60.0


class AzuriteMissingError(RuntimeError):
    """The npm package is not installed (``make test`` runs ``npm ci`` in tools/azurite)."""


@dataclass(frozen=True)
class RunningAzurite:
    """One Azurite Blob service: where it listens and how a client reaches it."""

    process: subprocess.Popen[bytes]
    blob_endpoint: str
    account: str
    account_key: str
    ca_bundle: Path
    log_path: Path

    @property
    def connection_string(self) -> str:
        """The storage account's connection string (holds the key: a secret)."""
        return (
            f"DefaultEndpointsProtocol=https;AccountName={self.account};"
            f"AccountKey={self.account_key};BlobEndpoint={self.blob_endpoint};"
        )

    def connection_env(self, conn_id: str) -> dict[str, str]:
        """An ``AIRFLOW_CONN_*`` variable for a ``wasb`` connection to this account (the
        Microsoft Azure provider's Blob Storage connection, which ``abfs://`` paths use)."""
        definition = {"conn_type": "wasb", "extra": {"connection_string": self.connection_string}}
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(definition)}

    def stop(self) -> int | None:
        """SIGTERM to the process group, SIGKILL after 10 s; returns the exit status."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def start_azurite(workdir: Path, *, timeout: float = START_TIMEOUT) -> RunningAzurite:
    """Start Azurite's Blob service in ``workdir`` (data, TLS files, log) on a free port."""
    if not AZURITE_BLOB.exists():
        raise AzuriteMissingError(
            f"{AZURITE_BLOB} is missing: run `make test` (or `npm ci` in tools/azurite) first"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    tls = ensure_tls(workdir / "state")
    port = free_port()
    key = base64.b64encode(secrets.token_bytes(64)).decode()
    log_path = workdir / "azurite.log"
    env = {**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{key}"}
    command = [
        str(AZURITE_BLOB),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--cert",
        str(tls.cert_chain),
        "--key",
        str(tls.private_key),
        "--location",
        str(workdir / "data"),
        "--disableTelemetry",
        # the Python SDK may speak a newer REST version than this Azurite knows
        "--skipApiVersionCheck",
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    running = RunningAzurite(
        process=process,
        blob_endpoint=f"https://127.0.0.1:{port}/{ACCOUNT}",
        account=ACCOUNT,
        account_key=key,
        ca_bundle=tls.ca_bundle,
        log_path=log_path,
    )
    deadline = time.monotonic() + timeout
    with httpx.Client(verify=tls.client_context(), timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"Azurite exited with {process.returncode}:\n{log_path.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                # an anonymous request: Azurite answers (403 or 400) once it listens
                client.get(f"{running.blob_endpoint}?comp=list")
                return running
            time.sleep(0.3)
    running.stop()
    raise RuntimeError(f"Azurite did not answer within {timeout:g}s:\n{log_path.read_text()}")
