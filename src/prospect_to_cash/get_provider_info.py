"""Provider metadata read by Airflow's ProvidersManager through the entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Describe this package to Airflow so its connection types reach the UI."""
    return {
        "package-name": "airflow-provider-prospect-to-cash",
        "name": "Dynamics 365 Prospect to cash",
        "description": "Hooks, operators and DAGs that synchronize Dynamics 365 Sales (Dataverse) "
        "and Dynamics 365 Finance and Operations.",
        "versions": ["0.1.0"],
        "connection-types": [],
    }
