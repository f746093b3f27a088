"""Closed target rows: documents Sales keeps read-only are reported, not written.

Sales refuses any change to a closed document and to its lines (the ``statecode``
descriptions of the entity reference pages: salesorder "Only active orders can be edited",
invoice "Paid and canceled invoices are read-only and can't be edited unless they are
reactivated"). An F&O -> Sales template keeps reading its orders after the invoices template
set them to Invoiced, so a later F&O change to such an order would be sent, refused and
retried every run. A task's ``target.read_only_when`` names the target states that make a row
read-only; the planner then turns a write to such a row (or, for lines, a write under such a
header) into a rejection whose reason starts with :data:`CLOSED_PREFIX`:

.. code-block:: yaml

    target:
      read_only_when:                 # a header: the state of the target row itself
        column: statecode
        states: {1: Submitted, 2: Canceled, 3: Fulfilled, 4: Invoiced}
    target:
      read_only_when:                 # lines: the state of their header's row, found in the
        column: statecode             # reference the header lookup field reads
        states: {1: Submitted, 2: Canceled, 3: Fulfilled, 4: Invoiced}
        header: {reference: tgt_orders, field: salesorderid}

Such a rejection is final while the document stays closed, so the pending ledger parks it
(`pending.self_rejected`): the row is not re-read until its source changes or the mapping
does. Unchanged rows of a closed document stay ``unchanged``; a closed header does not hold its
lines back (each line is checked on its own, so a line that needs no write is not reported).
A document reopened in Sales gets the F&O values with the next change of its F&O row, or with
the next full refresh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prospect_to_cash.sync.values import is_blank, py

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    import pyarrow as pa

    from prospect_to_cash.sync.mapping import Task

#: The start of every closed-target reason (the pending ledger parks such rows).
CLOSED_PREFIX = "closed in Sales: "
CLOSED_REASON = re.compile(rf"^{CLOSED_PREFIX}.+$")
#: The snapshot column that carries a header's own state (`target_rows.snapshot_table`).
STATE_COLUMN = "__read_only_state"


@dataclass(frozen=True)
class HeaderState:
    """Where a line finds its header's state: the row of ``reference`` whose id is the
    value of the line's ``field`` (a lookup into that reference)."""

    reference: str
    field: str


@dataclass(frozen=True)
class ReadOnlyWhen:
    """``target.read_only_when``: the target ``column``'s values (with their labels) in which
    a row, or for lines their header's row, is read-only."""

    column: str
    states: tuple[tuple[int, str], ...]
    header: HeaderState | None = None

    def label(self, value: Any) -> str | None:
        """The state's label when ``value`` (as read: text or number) is a read-only state."""
        state = state_value(value)
        return next((label for known, label in self.states if known == state), None)


def state_value(value: Any) -> int | None:
    """A state as read from a staged target row (text such as ``"4"`` or a number)."""
    value = py(value)
    if is_blank(value):
        return None
    try:
        return int(float(str(value)))
    except ValueError:
        return None


def read_only_when(raw: dict[str, Any] | None) -> ReadOnlyWhen | None:
    """The option as the mapping file gives it (already checked against the JSON schema)."""
    if raw is None:
        return None
    header = raw.get("header")
    return ReadOnlyWhen(
        column=raw["column"],
        states=tuple((int(value), str(label)) for value, label in raw["states"].items()),
        header=HeaderState(header["reference"], header["field"]) if header else None,
    )


def is_closed_reason(reason: Any) -> bool:
    """Whether a rejection (or one part of it) is a closed target's."""
    return not is_blank(reason) and CLOSED_REASON.match(str(reason)) is not None


def problems(task: Task) -> list[str]:
    """What is wrong with a task's ``read_only_when`` (the mapping loader reports them)."""
    rule = task.target.read_only_when
    if rule is None:
        return []
    found: list[str] = []
    if task.target_system != "dataverse":
        found.append("read_only_when is for Dataverse targets (Sales documents)")
    if not rule.states:
        found.append("read_only_when needs at least one state")
    if rule.header is None:
        return found
    mapping = task.field(rule.header.field)
    if mapping is None or mapping.lookup is None or not mapping.write:
        field = rule.header.field
        return [*found, f"read_only_when.header.field {field!r} is not a written lookup field of this task"]
    if not any(c.reference == rule.header.reference for c in mapping.lookup.candidates):
        found.append(
            f"read_only_when.header: field {rule.header.field!r} does not look up reference "
            f"{rule.header.reference!r}"
        )
    if task.parent is None:
        found.append("read_only_when.header is for lines: the task needs a parent")
    return found


def reference_columns(task: Task, name: str) -> tuple[str, ...]:
    """The header state column a reference must carry besides what its lookups use."""
    rule = task.target.read_only_when
    if rule is not None and rule.header is not None and rule.header.reference == name:
        return (rule.column,)
    return ()


def snapshot_columns(task: Task) -> tuple[str, ...]:
    """The state column a header's snapshot must carry."""
    rule = task.target.read_only_when
    return (rule.column,) if rule is not None and rule.header is None else ()


class ClosedTargets:
    """Which planned writes of one task would go to a closed row (one per plan).

    :param reference: reads a staged reference table with the given columns (the plan inputs').
    """

    def __init__(self, task: Task, reference: Callable[[str, Sequence[str]], pa.Table | None]) -> None:
        rule = task.target.read_only_when
        if rule is None:
            raise ValueError(f"task {task.name!r} has no target.read_only_when")
        self.rule = rule
        #: header id (folded) -> (its state, how the reason names it, e.g. "order SO-1")
        self.headers: dict[str, tuple[int | None, str]] = {}
        mapping = task.field(rule.header.field) if rule.header is not None else None
        if rule.header is None or mapping is None or mapping.lookup is None:
            return
        candidate = next(c for c in mapping.lookup.candidates if c.reference == rule.header.reference)
        names = list(candidate.match)
        table = reference(rule.header.reference, [candidate.returns, rule.column, *names])
        if table is None or candidate.returns not in table.column_names:
            return
        label = task.parent.label if task.parent is not None else "header"
        ids = table.column(candidate.returns).to_pylist()
        states = table.column(rule.column).to_pylist() if rule.column in table.column_names else []
        numbers = [table.column(n).to_pylist() for n in names if n in table.column_names]
        for row, header_id in enumerate(ids):
            if is_blank(header_id):
                continue
            shown = " ".join(str(py(column[row])) for column in numbers) or str(header_id)
            state = state_value(states[row]) if states else None
            self.headers[str(header_id).casefold()] = (state, f"{label} {shown}")

    def refused(
        self, writes: Iterable[tuple[int, int | None]], mapped: pa.Table, snapshot: pa.Table | None
    ) -> dict[int, str]:
        """The closed-target reason of each planned write (row, its snapshot row or None for a
        create) that goes to a read-only row: the row itself (headers, updates only) or its header."""
        rule = self.rule
        refused: dict[int, str] = {}
        if rule.header is None:
            states = (
                snapshot.column(STATE_COLUMN).to_pylist()
                if snapshot is not None and STATE_COLUMN in snapshot.column_names
                else []
            )
            for row, snapshot_row in writes:
                if snapshot_row is not None and (label := rule.label(states[snapshot_row])) is not None:
                    refused[row] = f"{CLOSED_PREFIX}{label}"
            return refused
        header_ids = mapped.column(rule.header.field).to_pylist()
        for row, _ in writes:
            header_id = header_ids[row]
            found = self.headers.get(str(header_id).casefold()) if not is_blank(header_id) else None
            if found is not None and (label := rule.label(found[0])) is not None:
                refused[row] = f"{CLOSED_PREFIX}{found[1]} is {label}"
        return refused
