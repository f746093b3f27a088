"""The shared launcher and admin client (`emulators.client`): failed starts explain
themselves and leave nothing running, the admin calls reach both services, and the
module stays importable without the servers or the product."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import psutil
import pytest

from emulators.client import (
    ROOT,
    AdminError,
    EmulatorEndpoints,
    EmulatorStartError,
    start_emulators,
    stop_process,
)

if TYPE_CHECKING:
    from pathlib import Path

    from emulators.client import RunningEmulators

pytestmark = pytest.mark.integration


def _serve_children(state_dir: Path) -> list[psutil.Process]:
    """This test process's children that serve ``state_dir`` (other instances may be up)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if str(state_dir) in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_a_process_that_exits_early_raises_with_the_log_tail_and_the_exit_code(tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    log_path.write_text("an earlier run's line\n")
    with pytest.raises(EmulatorStartError) as caught:
        start_emulators(tmp_path / "state", "--seed", "not-a-scale", log_path=log_path, append_log=True)
    error = caught.value
    assert "exited with 2" in error.reason
    assert "--seed" in error.log_tail  # argparse's complaint, from the child's stderr
    assert error.log_tail in str(error)
    assert error.log_path == log_path
    assert log_path.read_text().startswith("an earlier run's line\n"), "append_log kept the earlier lines"
    assert not _serve_children(tmp_path / "state")


def test_no_json_line_in_time_stops_the_process(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with pytest.raises(EmulatorStartError) as caught:
        start_emulators(state_dir, timeout=0.01)
    assert "no JSON line within" in caught.value.reason
    assert caught.value.log_path == tmp_path / "state-stderr.log"
    assert not _serve_children(state_dir)


def test_config_is_merged_and_every_service_answers(tmp_path: Path) -> None:
    config = {"fno": {"page_size": 7}}
    with start_emulators(tmp_path / "state", config=config) as running:
        assert json.loads((tmp_path / "state-config.json").read_text()) == config
        with running.admin("fno") as admin:
            assert admin.get_config()["page_size"] == 7
            with admin.overrides({"page_size": 3}) as applied:
                assert applied["page_size"] == 3
            assert admin.get_config()["page_size"] == 7
            with pytest.raises(AdminError) as caught:
                admin.patch_config({"page_size": "many"})
            assert caught.value.status == 400
        tables = running.tables()
        assert set(tables) == {"dataverse", "fno"}
        assert tables["fno"]
        assert all(count == 0 for count in tables["fno"].values())
        running.reset_counters()
        counters = running.counters()
        assert {service: c["operations_written_total"] for service, c in counters.items()} == {
            "dataverse": 0,
            "fno": 0,
        }
    assert running.process.returncode == 0, running.stderr_tail()
    assert stop_process(running.process) == 0, "stopping twice is harmless"


def test_endpoints_parse_the_json_line_and_keep_the_secret_out_of_repr(
    emulators: RunningEmulators,
) -> None:
    data = {**emulators.endpoints.to_dict(), "added_by_a_newer_server": True}
    parsed = EmulatorEndpoints.from_json(json.dumps(data))
    assert parsed == emulators.endpoints
    assert json.loads(json.dumps(parsed.to_dict()))["client_secret"] == parsed.client_secret
    assert parsed.client_secret not in repr(parsed)


def test_the_client_imports_neither_the_servers_nor_the_product() -> None:
    probe = (
        "import sys, emulators.client\n"
        "heavy = ('prospect_to_cash', 'starlette', 'uvicorn', 'trustme', 'airflow', 'emulators.server')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
