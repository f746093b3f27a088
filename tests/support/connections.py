"""Airflow connections to the emulators, defined the way production defines them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from devstack.airflow_stack import connection_definition

if TYPE_CHECKING:
    import pytest


def connect(
    monkeypatch: pytest.MonkeyPatch,
    endpoints: Any,
    service: str,
    conn_id: str | None = None,
    *,
    default_company: str | None = "usmf",
    **fields: Any,
) -> str:
    """Define one connection as an ``AIRFLOW_CONN_*`` JSON variable; ``fields`` replace the
    generated ones (a wrong password, other extras)."""
    conn_id = conn_id or f"{service}_it"
    definition = {**connection_definition(endpoints, service, default_company=default_company), **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(definition))
    return conn_id
