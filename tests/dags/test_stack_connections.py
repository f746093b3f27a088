"""The local stack's connections in the Airflow database, tested through the REST API as the
Connections page does: both listed, and *Test* (enabled by the stack's environment) reaches
the emulators over HTTPS, or says why not."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest

from devstack.airflow_stack import AirflowStack
from devstack.connections import connection_body, store_connections
from devstack.state import DemoPaths, stack_env

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration]

IDS = ["dynamics_dataverse_default", "dynamics_fno_default"]


def test_connections_are_listed_and_tested_against_the_emulators(
    airflow_template_home: Path, emulators: RunningEmulators, tmp_path: Path
) -> None:
    paths = DemoPaths(tmp_path / "state")
    paths.airflow.mkdir(parents=True)
    shutil.copy2(airflow_template_home / "airflow.db", paths.airflow / "airflow.db")
    env = stack_env(paths, emulators.endpoints)
    assert env["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
    with AirflowStack(paths.airflow, env, components=["api-server"]) as stack:
        assert stack.api("GET", "/connections")["connections"] == []  # env variables are not listed
        assert store_connections(stack, emulators.endpoints) == IDS
        assert store_connections(stack, emulators.endpoints) == IDS  # a restart updates them
        listed = stack.api("GET", "/connections")["connections"]
        assert sorted((c["connection_id"], c["conn_type"], c["host"]) for c in listed) == [
            ("dynamics_dataverse_default", "dynamics_dataverse", emulators.endpoints.dataverse_url),
            ("dynamics_fno_default", "dynamics_fno", emulators.endpoints.fno_url),
        ]

        for conn_id, service in zip(IDS, ("dataverse", "fno"), strict=True):
            body = connection_body(conn_id, emulators.endpoints, service)
            tested = stack.api("POST", "/connections/test", json=body)
            assert tested["status"] is True, tested
            assert tested["message"].startswith("Connected to "), tested
            # a wrong secret: Entra ID (the emulator) refuses the token, and the form says so
            refused = stack.api("POST", "/connections/test", json={**body, "password": "not-the-secret"})
            assert refused["status"] is False
            assert "failed: Entra ID refused a token" in refused["message"]
            assert "not-the-secret" not in refused["message"]
    # the database holds the client secret encrypted (the stack's Fernet key), never as text
    secret = emulators.endpoints.client_secret.encode()
    assert secret not in (paths.airflow / "airflow.db").read_bytes()
    assert (paths.airflow / "fernet.key").stat().st_mode & 0o777 == 0o600
