"""The emulators' demo world (emulators/seed/STORY.md) in in-memory services.

The seed generator yields rows in the emulator store's representation; this turns them
into what the services show on the wire (Dataverse booleans, ``_<lookup>_value`` columns;
F&O enum member names); the services check reads and writes against the same catalogs.
"""

from __future__ import annotations

from itertools import count
from typing import TYPE_CHECKING, Any

from emulators.fno.integrity import PARTY_NUMBER_DIGITS
from emulators.odata.csdl import build_csdl
from emulators.schema.dataverse import CATALOG as DATAVERSE
from emulators.schema.fno import CATALOG as FNO
from emulators.schema.model import Catalog, EdmType
from emulators.seed import generate
from prospect_to_cash.sync.metadata_check import parse_csdl
from tests.unit.sync.memory_service import MemoryService, MemoryTable

if TYPE_CHECKING:
    from collections.abc import Callable


def _wire_lookups(catalog: Catalog) -> dict[str, set[str]]:
    """Per entity set, the lookup columns read as ``_<column>_value`` (from the CSDL)."""
    metadata = parse_csdl(build_csdl(catalog))
    return {
        entity_set: {
            name[1:-6]
            for name in metadata.entity_sets[entity_set].properties
            if name.startswith("_") and name.endswith("_value")
        }
        for entity_set in catalog.tables
    }


def _wire_row(
    catalog: Catalog, entity_set: str, row: dict[str, Any], wire_lookups: set[str]
) -> dict[str, Any]:
    table = catalog.tables[entity_set]
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name.endswith("__set"):
            continue
        if name in wire_lookups:
            out[f"_{name}_value"] = value
            continue
        column = table.field(name)
        if column is not None and value is not None:
            if column.type == EdmType.BOOLEAN:
                value = bool(value)
            elif column.type == EdmType.ENUM and column.enum_type:
                members = {v: k for k, v in catalog.enums[column.enum_type].members.items()}
                value = members[value]
        out[name] = value
    return out


def _party_number_sequence() -> Callable[[dict[str, Any]], None]:
    """F&O gives a customer created without ``PartyNumber`` the next party number (the
    emulator's rule: tests/emulators/test_fno_writes.py)."""
    numbers = count(1)

    def fill(row: dict[str, Any]) -> None:
        if not row.get("PartyNumber"):
            row["PartyNumber"] = f"{next(numbers):0{PARTY_NUMBER_DIGITS}d}"

    return fill


def seeded_services() -> tuple[MemoryService, MemoryService]:
    """(Sales, F&O) holding the demo seed."""
    catalogs = {"dataverse": DATAVERSE, "fno": FNO}
    lookups = {service: _wire_lookups(catalog) for service, catalog in catalogs.items()}
    tables = {
        service: {name: MemoryTable(key=table.key) for name, table in catalog.tables.items()}
        for service, catalog in catalogs.items()
    }
    for service, entity_set, rows in generate("demo"):
        table = tables[service][entity_set]
        wire_lookups = lookups[service][entity_set]
        table.rows.extend(_wire_row(catalogs[service], entity_set, row, wire_lookups) for row in rows)
    tables["fno"]["CustomersV3"].on_create = _party_number_sequence()
    return (
        MemoryService("dataverse", tables["dataverse"], page_size=500),
        MemoryService("fno", tables["fno"], page_size=500),
    )
