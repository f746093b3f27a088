"""The target's current rows as the diff sees them: written fields normalized like the
desired rows, keyed by the natural key (``__ref``) with the primary id (``__id``).

One normalization for the planner's snapshot buckets and for the reconciliation, so a
report shows the very values the diff compared.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from prospect_to_cash.sync.columns import (
    ARROW_TYPES,
    ID,
    RAW_PREFIX,
    REF,
    REF_FOLD,
    written_fields,
)
from prospect_to_cash.sync.errors import MappingError
from prospect_to_cash.sync.mapping import COMPANY_FIELD, Task
from prospect_to_cash.sync.read_only import STATE_COLUMN, state_value
from prospect_to_cash.sync.read_only import snapshot_columns as read_only_snapshot_columns
from prospect_to_cash.sync.staging import text_table
from prospect_to_cash.sync.values import (
    is_blank,
    natural_key,
    normalize_column,
    py,
)


def _normalize_snapshot(
    task: Task, raw: pa.Table, legal_entity: str
) -> tuple[dict[str, list[Any]], dict[str, dict[int, str]]]:
    """Raw target rows under target field names, normalized like the desired rows, plus
    ``__ref`` and ``__id``; and per field the rows whose value could not be converted
    (kept as read, so that they differ from any wanted value)."""
    if task.target_system == "fno" and COMPANY_FIELD in raw.column_names and legal_entity:
        company = legal_entity.casefold()
        mask = [str(v).casefold() == company for v in raw.column(COMPANY_FIELD).to_pylist()]
        raw = raw.filter(pa.array(mask, type=pa.bool_()))
    data: dict[str, list[Any]] = {}
    unconverted: dict[str, dict[int, str]] = {}
    for mapping in written_fields(task):
        column = mapping.snapshot_column
        if column not in raw.column_names:
            continue
        data[mapping.target], unconverted[mapping.target] = normalize_column(
            raw.column(column).to_pylist(),
            mapping.type,
            scale=mapping.scale,
            system=task.target_system,
            keep_unconvertible=True,
        )
    length = raw.num_rows
    missing = [k for k in task.natural_key if k not in data]
    if missing:
        raise MappingError(f"task {task.name!r}: snapshot lacks key columns {missing}")
    keys = [data[k] for k in task.natural_key]
    data[REF] = [
        None if any(is_blank(column[r]) for column in keys) else natural_key([column[r] for column in keys])
        for r in range(length)
    ]
    primary = task.target.primary_id
    data[ID] = (
        [py(v) for v in raw.column(primary).to_pylist()]
        if primary and primary in raw.column_names
        else [None] * length
    )
    return data, unconverted


def snapshot_table(task: Task, raw: pa.Table, legal_entity: str) -> pa.Table:
    """One chunk of the snapshot as the buckets hold it: rows with a key only, each field
    typed, plus its unconvertible raw text beside it (``__raw__<field>``)."""
    data, unconverted = _normalize_snapshot(task, raw, legal_entity)
    rows = [r for r, ref in enumerate(data[REF]) if ref is not None]
    arrays: dict[str, pa.Array] = {
        REF: pa.array([data[REF][r] for r in rows], type=pa.string()),
        REF_FOLD: pa.array([data[REF][r].casefold() for r in rows], type=pa.string()),
        ID: pa.array([data[ID][r] for r in rows], type=pa.string()),
    }
    for mapping in written_fields(task):
        if mapping.target not in data:
            continue
        values, bad = data[mapping.target], unconverted[mapping.target]
        arrays[mapping.target] = pa.array(
            [None if r in bad else values[r] for r in rows], type=ARROW_TYPES[mapping.type]
        )
        arrays[RAW_PREFIX + mapping.target] = pa.array(
            [None if r not in bad else str(values[r]) for r in rows], type=pa.string()
        )
    for column in read_only_snapshot_columns(task):  # a header's own state, as read
        states = raw.column(column).to_pylist() if column in raw.column_names else [None] * raw.num_rows
        arrays[STATE_COLUMN] = pa.array([state_value(states[r]) for r in rows], type=pa.int64())
    return pa.table(arrays)


def snapshot_values(table: pa.Table, name: str) -> list[Any]:
    """A field of a snapshot bucket: the typed value, or the raw text it could not be
    converted from (None for every row when the target does not have the field)."""
    if name not in table.column_names:
        return [None] * table.num_rows
    values = table.column(name).to_pylist()
    raw = table.column(RAW_PREFIX + name).to_pylist()
    return [r if r is not None else v for v, r in zip(values, raw, strict=True)]


def snapshot_frame(task: Task, snapshot: pd.DataFrame, legal_entity: str = "") -> pd.DataFrame:
    """Raw target rows as the diff sees them: normalized written fields under their target
    names, plus the natural key (``__ref``) and the primary id (``__id``).

    Public so that a report comparing the plan with the target (reconciliation) shows the
    very values the diff compared, instead of normalizing a second way. F&O rows of other
    companies are dropped when ``legal_entity`` is given.
    """
    data, _ = _normalize_snapshot(task, text_table(snapshot.reset_index(drop=True)), legal_entity)
    return pd.DataFrame(data, dtype=object)
