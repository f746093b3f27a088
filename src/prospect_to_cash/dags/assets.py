"""One Airflow Asset per Dynamics entity set, so the asset graph shows the P2C data flow.

An asset names the entity set and the Airflow connection it is reached through
(``fno://dynamics_fno_default/CustomersV3``): the connection stands for the environment,
whose URL is a secret-free but deployment-specific value the DAG files must not read
while parsing. Two DAGs that write the same entity set (accounts and contacts both
write ``CustomersV3``) publish to the same asset.
"""

from __future__ import annotations

from airflow.sdk import Asset

#: The systems the mapping files name, with the hook's default connection of each.
DEFAULT_CONN_IDS = {
    "dataverse": "dynamics_dataverse_default",
    "fno": "dynamics_fno_default",
}
#: Shown as the asset group in the UI.
ASSET_GROUP = "prospect_to_cash"


def entity_uri(system: str, entity_set: str, conn_id: str | None = None) -> str:
    """``<system>://<conn_id>/<entity_set>``; the system is ``dataverse`` or ``fno``."""
    if system not in DEFAULT_CONN_IDS:
        raise ValueError(f"unknown system {system!r}; expected one of {sorted(DEFAULT_CONN_IDS)}")
    if not entity_set or "/" in entity_set:
        raise ValueError(f"not an entity set name: {entity_set!r}")
    return f"{system}://{conn_id or DEFAULT_CONN_IDS[system]}/{entity_set}"


def entity_asset(system: str, entity_set: str, conn_id: str | None = None) -> Asset:
    """The asset of one entity set; its name is its URI so both stay unique together."""
    uri = entity_uri(system, entity_set, conn_id)
    return Asset(name=uri, uri=uri, group=ASSET_GROUP)
