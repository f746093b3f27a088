"""The local stack's Dynamics connections stored in the Airflow database.

Connections given only as ``AIRFLOW_CONN_*`` variables work for tasks but the UI's
Admin -> Connections page lists the database alone, so it looked empty and had nothing to
test. :func:`store_connections` writes both connections through the REST API (created, or
updated to the emulators' current ports); with :data:`TEST_CONNECTION_ENV` the page's *Test*
button (``POST /api/v2/connections/test``) calls the hooks' ``test_connection``.

The variables stay as well: they are what the tasks of every earlier test stack read, and
Airflow looks them up before the database, so both always say the same thing here.

The database holds the client secret, so the stack encrypts it as production does: a Fernet
key made once per state directory (:func:`fernet_key`, owner-only file) is every process's
``AIRFLOW__CORE__FERNET_KEY``; the secret never lies in ``airflow.db`` as plain text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.airflow_stack import DEFAULT_CONN_IDS, ApiError, connection_definition

if TYPE_CHECKING:
    from collections.abc import Mapping

    from devstack.airflow_stack import AirflowStack

SERVICE_NAMES = {"dataverse": "Dynamics 365 Dataverse", "fno": "Dynamics 365 Finance and Operations"}
#: Airflow 3 disables the connection test by default; the local stack talks to emulators only.
TEST_CONNECTION_ENV = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}


def fernet_key(home: Path) -> str:
    """The stack's Fernet key, ``<home>/fernet.key``, created (mode 0600) on first use."""
    path = Path(home) / "fernet.key"
    if not path.exists():
        from cryptography.fernet import Fernet

        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
        os.replace(temporary, path)
    return path.read_text().strip()


def connection_body(conn_id: str, endpoints: Any, service: str) -> dict[str, Any]:
    """The REST API's connection body for ``service`` (``dataverse`` or ``fno``)."""
    definition = connection_definition(endpoints, service)
    return {
        "connection_id": conn_id,
        "conn_type": definition["conn_type"],
        "host": definition["host"],
        "login": definition["login"],
        "password": definition["password"],
        "extra": json.dumps(definition["extra"]),
        "description": f"{SERVICE_NAMES[service]} emulator (local stack)",
    }


def store_connections(
    stack: AirflowStack, endpoints: Any, conn_ids: Mapping[str, str] | None = None
) -> list[str]:
    """Create or update both Dynamics connections in the Airflow database; returns their ids."""
    ids = {**DEFAULT_CONN_IDS, **(conn_ids or {})}
    stored = []
    for service, conn_id in sorted(ids.items()):
        body = connection_body(conn_id, endpoints, service)
        try:
            stack.api("PATCH", f"/connections/{conn_id}", json=body)
        except ApiError as exc:
            if exc.status != 404:
                raise
            stack.api("POST", "/connections", json=body)
        stored.append(conn_id)
    return stored
