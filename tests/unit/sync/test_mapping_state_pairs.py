"""The shipped mappings only write state/status reason pairs Dataverse accepts.

Dataverse refuses a ``statuscode`` that is not one of the ``statecode``'s status reasons
(0x80048408, see ``emulators.dataverse.states``). The pairs come from the entity reference
pages, declared once in the emulators' catalogue; this holds every pair a mapping writes
(constants, an ``env:`` choice through its two value maps, ``on_source_delete``'s
``deactivate`` values) to them, so a wrong pair fails here before any run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.schema.dataverse import CATALOG
from prospect_to_cash.sync.mapping import load_all

if TYPE_CHECKING:
    from prospect_to_cash.sync.mapping import FieldMapping, Task

#: (template, task, when, (statecode, statuscode)) of every pair the shipped mappings write.
SHIPPED_PAIRS = {
    ("products", "products", "create as active", (0, 1)),  # Active / Active
    ("products", "products", "create as draft", (2, 0)),  # Draft / Draft
    ("products", "products", "deactivate", (1, 2)),  # Retired / Retired
    ("sales_orders_fno_to_sales", "order_headers", "create", (0, 1)),  # Active / New
    ("sales_invoices", "invoice_headers", "create", (0, 4)),  # Active / Billed
    ("sales_invoices", "orders_invoiced", "always", (4, 100003)),  # Invoiced / Invoiced
}


def written_pairs(task: Task) -> set[tuple[str, tuple[int, int]]]:
    """(when, pair) for each way ``task`` writes both columns together."""
    found: set[tuple[str, tuple[int, int]]] = set()
    state: FieldMapping | None = task.field("statecode")
    status: FieldMapping | None = task.field("statuscode")
    if state is not None and status is not None:
        if state.kind == "constant" and status.kind == "constant":
            found.add((state.write_on, (state.constant, status.constant)))
        else:  # one env: choice picks both values through their value maps
            assert state.env_path == status.env_path, task.name
            assert state.value_map is not None, task.name
            assert status.value_map is not None, task.name
            assert set(state.value_map.entries) == set(status.value_map.entries), task.name
            for choice, value in state.value_map.entries.items():
                found.add((f"{state.write_on} as {choice}", (value, status.value_map.entries[choice])))
    deactivate = dict(task.on_source_delete.deactivate)
    if "statecode" in deactivate or "statuscode" in deactivate:
        found.add(("deactivate", (deactivate["statecode"], deactivate["statuscode"])))
    return found


def test_every_shipped_pair_is_a_documented_one() -> None:
    seen = set()
    for name, template in load_all().items():
        for task in template.tasks:
            if task.target_system != "dataverse":
                continue
            table = CATALOG.tables[task.target.entity_set]
            status_column = table.field("statuscode")
            states = (status_column.option_states if status_column is not None else None) or {}
            for when, (state, status) in written_pairs(task):
                assert states.get(status) == state, (name, task.name, when)
                seen.add((name, task.name, when, (state, status)))
    assert seen == SHIPPED_PAIRS


def test_a_lone_state_or_status_reason_is_not_written() -> None:
    """A statecode alone would reset the status reason to the default; a statuscode alone
    must stay within the row's current state: no shipped mapping relies on either."""
    for template in load_all().values():
        for task in template.tasks:
            if task.target_system != "dataverse":
                continue
            written = {f.target for f in task.fields if f.write} & {"statecode", "statuscode"}
            assert written in (set(), {"statecode", "statuscode"}), (template.name, task.name)
            deactivate = {column for column, _ in task.on_source_delete.deactivate}
            assert deactivate & {"statecode", "statuscode"} in (set(), {"statecode", "statuscode"})
