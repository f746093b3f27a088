"""The command line and the process: JSON line, restarts keep state, reset, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from emulators.server import load_catalog
from emulators.store import Store
from tests.support.emulators import ROOT, acquire_token, serve_command

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.emulators import RunningEmulators

pytestmark = pytest.mark.integration


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "emulators", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_json_line(fresh_emulators: RunningEmulators) -> None:
    e = fresh_emulators.endpoints
    assert e.pid == fresh_emulators.process.pid
    assert e.dataverse_url.startswith("https://localhost:")
    assert e.fno_url.startswith("https://localhost:")
    assert e.authority == f"{e.entra_url}/{e.tenant_id}"
    assert e.dataverse_service_root == f"{e.dataverse_url}/api/data/v9.2/"
    assert e.fno_service_root == f"{e.fno_url}/data/"
    assert e.admin == {"dataverse": f"{e.dataverse_url}/_admin", "fno": f"{e.fno_url}/_admin"}
    assert Path(e.ca_bundle) == Path(e.state_dir) / "tls" / "ca.pem"
    assert len({e.ports["entra"], e.ports["dataverse"], e.ports["fno"]}) == 3
    uuid.UUID(e.tenant_id)
    uuid.UUID(e.client_id)
    assert len(e.client_secret) >= 32


def test_stdout_carries_only_the_json_line(fresh_emulators: RunningEmulators) -> None:
    assert fresh_emulators.stop() == 0  # SIGTERM is a clean shutdown
    assert fresh_emulators.process.stdout is None or fresh_emulators.process.stdout.closed
    assert "emulators stopped" in fresh_emulators.stderr_tail()


def first_guid_keyed_table(service: str) -> str:
    catalog = load_catalog(service)
    return next(
        name for name, table in catalog.tables.items() if len(table.key) == 1 and table.field(table.key[0])
    )


def test_state_survives_a_restart(
    start_emulators_factory: Callable[..., RunningEmulators], tmp_path: Path
) -> None:
    state_dir = tmp_path / "persistent"
    first = start_emulators_factory(state_dir=state_dir)
    ca_before = Path(first.endpoints.ca_bundle).read_bytes()
    with first.admin("fno") as admin:
        admin.patch_config({"limits": {"max_requests": 4321}})
    table = first_guid_keyed_table("dataverse")
    with first.admin("dataverse") as admin:
        rows_before = admin.tables().get(table, 0)  # a table may hold rows the service made itself
    assert first.stop() == 0

    # Data written while the service is down is there after the restart.
    store = Store(state_dir / "dataverse.sqlite", load_catalog("dataverse"))
    store.insert(table, {})
    store.close()

    second = start_emulators_factory(state_dir=state_dir)
    e1, e2 = first.endpoints, second.endpoints
    assert (e2.tenant_id, e2.client_id, e2.client_secret) == (e1.tenant_id, e1.client_id, e1.client_secret)
    assert Path(e2.ca_bundle).read_bytes() == ca_before
    with second.admin("fno") as admin:
        assert admin.get_config()["limits"]["max_requests"] == 4321
    with second.admin("dataverse") as admin:
        tables = admin.tables()
    assert tables[table] == rows_before + 1
    # The restarted process serves requests with the kept credentials and CA.
    with httpx.Client(verify=e2.ssl_context()) as client:
        token = acquire_token(e2, "dataverse")
        ok = client.get(e2.dataverse_service_root, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200


def test_pinned_credentials_and_config_file(
    start_emulators_factory: Callable[..., RunningEmulators], tmp_path: Path
) -> None:
    tenant, client = str(uuid.uuid4()), str(uuid.uuid4())
    running = start_emulators_factory(
        "--tenant-id",
        tenant,
        "--client-id",
        client,
        "--client-secret",
        "pinned-secret-for-tests",
        config={"dataverse": {"dop_hint": 7}, "entra": {"token_lifetime_seconds": 600}},
    )
    e = running.endpoints
    assert (e.tenant_id, e.client_id, e.client_secret) == (tenant, client, "pinned-secret-for-tests")
    with running.admin("dataverse") as admin:
        config = admin.get_config()
    assert config["dop_hint"] == 7
    assert config["entra"]["token_lifetime_seconds"] == 600
    assert "pinned-secret-for-tests" not in running.stderr_tail(200)


def test_reset_keeps_tls_and_credentials_unless_all(fresh_emulators: RunningEmulators) -> None:
    state_dir = Path(fresh_emulators.endpoints.state_dir)
    fresh_emulators.stop()
    assert (state_dir / "dataverse.sqlite").exists()
    result = run_cli("reset", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    assert not (state_dir / "dataverse.sqlite").exists()
    assert not (state_dir / "fno.sqlite").exists()
    assert (state_dir / "credentials.json").exists()
    assert (state_dir / "tls" / "ca.pem").exists()
    result = run_cli("reset", "--state-dir", str(state_dir), "--all")
    assert result.returncode == 0, result.stderr
    assert not (state_dir / "credentials.json").exists()
    assert not (state_dir / "tls").exists()
    assert not (state_dir / "config.json").exists()


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("serve", "--state-dir", str(tmp_path / "s"), "--port-base", "0", "--config", "nope.json")
    assert result.returncode == 2
    assert "nope.json" in result.stderr
    assert result.stdout == ""


def test_invalid_config_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"dataverse": {"limits": {"max_requests": -1}}}))
    result = run_cli("serve", "--state-dir", str(tmp_path / "s"), "--port-base", "0", "--config", str(bad))
    assert result.returncode == 2
    assert "limits.max_requests" in result.stderr


def test_bad_scale_is_refused(tmp_path: Path) -> None:
    result = run_cli("seed", "--state-dir", str(tmp_path), "--scale", "lots")
    assert result.returncode == 2
    assert "scale must be 'demo' or a row count" in result.stderr


def test_show_prints_what_each_service_holds(tmp_path: Path) -> None:
    result = run_cli("show", "--state-dir", str(tmp_path / "demo"), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "dataverse at https://localhost:" in result.stdout
    assert "fno at https://localhost:" in result.stdout


def test_serve_command_uses_free_ports(tmp_path: Path) -> None:
    command = serve_command(tmp_path)
    assert command[command.index("--port-base") + 1] == "0"
