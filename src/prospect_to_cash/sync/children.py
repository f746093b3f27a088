"""Children come with their parent: when a header that was pending (rejected or failed in
an earlier run) lands, the lines task of the same run re-reads that header's lines by
parent, changed or not, so the header never arrives without them.

A line held back behind its header is in the lines task's own pending ledger and comes
back by key; this covers the other lines: those no run read while the header waited
(unchanged, so outside every change window since). The header task's load writes the
record ids of the pending headers that landed to its ``plan/released.json``; the lines
task's extract reads them and asks for the lines whose link column names one of them.

The link column is found in the mapping, not configured: the lines task's parent match
field is a lookup into the parent's source table by the parent's ``primary_id`` (for
example ``order_number`` looks up ``salesorders`` by ``salesorderid: _salesorderid_value``),
so ``_salesorderid_value`` is the lines' column naming their header.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prospect_to_cash.hooks.odata import format_key_value
from prospect_to_cash.sync.columns import OK_STATUSES, SOURCE_KEY

if TYPE_CHECKING:
    import pandas as pd

    from prospect_to_cash.sync.context import SyncContext
    from prospect_to_cash.sync.mapping import Task
    from prospect_to_cash.sync.pending import PendingEntry

log = logging.getLogger(__name__)

RELEASED_FILE = "released"
#: Parent ids asked for per request (keeps the URL well under the services' limits).
PARENTS_PER_READ = 40


def record_released(ctx: SyncContext, pending_before: list[PendingEntry], outcome: pd.DataFrame) -> None:
    """After a load: note the record ids of rows that were pending and landed now."""
    waiting = {entry["source_key"]: entry["record_id"] for entry in pending_before if entry["record_id"]}
    if not waiting:
        return
    landed = outcome[outcome["status"].isin(OK_STATUSES)][SOURCE_KEY]
    released = sorted({str(waiting[key]) for key in landed if key in waiting})
    if released:
        ctx.staging.write_json("plan", RELEASED_FILE, {"record_ids": released})


def link_column(ctx: SyncContext) -> str | None:
    """The source column of a lines task that holds its header's ``primary_id`` (or None)."""
    task: Task = ctx.task
    if task.parent is None:
        return None
    parent = ctx.template.task(task.parent.task)
    if parent.source_system != task.source_system or not parent.source.primary_id:
        return None
    for name in task.parent.match:
        mapping = task.field(name)
        if mapping is None or mapping.lookup is None:
            continue
        for candidate in mapping.lookup.candidates:
            reference = task.reference(candidate.reference)
            expression = candidate.match.get(parent.source.primary_id)
            if reference.entity_set == parent.source.entity_set and expression is not None:
                names = list(expression.names)
                if len(names) == 1:
                    return names[0]
    return None


def released_parent_filters(ctx: SyncContext) -> list[str]:
    """Filters reading the lines of this run's released headers (none for other tasks)."""
    task = ctx.task
    column = link_column(ctx)
    if task.parent is None or column is None:
        return []
    parent = ctx.staging.sibling(task.parent.task)
    if not parent.exists("plan", RELEASED_FILE, ".json"):
        return []
    ids = list(parent.read_json("plan", RELEASED_FILE)["record_ids"])
    log.info(
        "%s/%s [%s]: %d header(s) landed after waiting: reading their lines by %s",
        ctx.template.name,
        task.name,
        ctx.pair.legal_entity,
        len(ids),
        column,
    )
    chunks = [ids[start : start + PARENTS_PER_READ] for start in range(0, len(ids), PARENTS_PER_READ)]
    return [" or ".join(f"{column} eq {format_key_value(value)}" for value in chunk) for chunk in chunks]
