"""The column contract of the plan and outcome files, and their Arrow schemas.

The transform writes these files, the load reads and rewrites them, later tasks of a run
read an earlier task's outcome, and the reconciliation reads them all: one definition here,
so a column renamed in one place cannot silently go missing in another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from prospect_to_cash.sync.mapping import COMPANY_FIELD

if TYPE_CHECKING:
    from collections.abc import Sequence

    from prospect_to_cash.sync.mapping import FieldMapping, Task

REF, ID, SOURCE_KEY, CHANGED, REASON, ROW = "__ref", "__id", "__source_key", "__changed", "__reason", "__row"
BIND_PREFIX = "__bind__"

#: Outcome statuses that mean "this row is (or will be) in the target as wanted".
OK_STATUSES = frozenset({"create", "created", "update", "updated", "unchanged"})
#: Outcome statuses that hold back dependent rows (lines of a failed header).
BAD_STATUSES = frozenset({"rejected", "failed"})

#: Columns of an outcome (``planned``/``outcome`` files): what later tasks read.
OUTCOME_COLUMNS = (REF, "status", "reason", "id", SOURCE_KEY)
#: Plan categories in the order their rows make up the outcome.
OUTCOME_CATEGORIES = (
    ("creates", "create"),
    ("updates", "update"),
    ("unchanged", "unchanged"),
    ("rejects", "rejected"),
)
#: Every file the plan is made of, as :class:`PlanSink` receives them.
PLAN_CATEGORIES = ("creates", "updates", "unchanged", "second_pass", "rejects", "planned")

#: The Arrow type of each mapping field type in the plan files.
ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int64(),
    "option": pa.int64(),
    "decimal": pa.float64(),
    "bool": pa.bool_(),
    "datetime": pa.string(),
    "date": pa.string(),
    "guid": pa.string(),
    "enum": pa.string(),
}
#: A list of field names (``__changed``: what an update writes).
TEXTS = pa.list_(pa.string())

#: Bookkeeping columns of the transform's spilled rows (never in a plan file).
POS, ORDER = "__pos", "__order"
SKEY_FOLD, REF_FOLD = "__source_key_fold", "__ref_fold"
PRE, EMPTY_KEYS, HOLD = "__pre_reasons", "__empty_target_keys", "__held_back"
KEY_PREFIX, SRC_PREFIX, RAW_PREFIX = "__key__", "__src__", "__raw__"
#: Order keys: the phase of a row in its category (row rejects before ambiguous keys,
#: creates before updates in the second pass) above its source position.
PHASE = 1 << 40


#: The staged outcome files (``plan/planned.parquet`` after the transform, ``plan/outcome.parquet``
#: after the load): one row per source row that reached a decision.
PLANNED, OUTCOME = "planned", "outcome"
OUTCOME_SCHEMA = pa.schema([(name, pa.string()) for name in OUTCOME_COLUMNS])


def field_schema(task: Task, *, extra: Sequence[tuple[str, pa.DataType]] = ()) -> pa.Schema:
    """Arrow schema of plan frames: bookkeeping columns, then the written fields."""
    columns: list[tuple[str, pa.DataType]] = [
        (REF, pa.string()),
        (ID, pa.string()),
        (SOURCE_KEY, pa.string()),
    ]
    columns.extend(extra)
    for mapping in written_fields(task):
        columns.append((mapping.target, ARROW_TYPES[mapping.type]))
        if has_candidate_binds(mapping):
            columns.append((BIND_PREFIX + mapping.target, pa.string()))
    if task.target_system == "fno" and COMPANY_FIELD in task.target.key and not task.field(COMPANY_FIELD):
        columns.insert(3, (COMPANY_FIELD, pa.string()))
    return pa.schema(columns)


def rejects_schema(task: Task) -> pa.Schema:
    return pa.schema(
        [(REF, pa.string()), (SOURCE_KEY, pa.string()), (REASON, pa.string()), (ROW, pa.string())]
        + [(name, pa.string()) for name in task.source.key]
    )


def plan_schemas(task: Task) -> dict[str, pa.Schema]:
    """The Arrow schema of every plan file, by category (:data:`PLAN_CATEGORIES`)."""
    rows = field_schema(task)
    with_changes = field_schema(task, extra=[(CHANGED, TEXTS)])
    return {
        "creates": rows,
        "updates": with_changes,
        "unchanged": rows,
        "second_pass": with_changes,
        "rejects": rejects_schema(task),
        "planned": OUTCOME_SCHEMA,
    }


def written_fields(task: Task) -> list[FieldMapping]:
    return [f for f in task.fields if f.write]


def compared_fields(task: Task) -> list[str]:
    """Fields that decide an update: written on every run, not keys, not second pass."""
    keys = set(task.target.key)
    return [f.target for f in task.fields if f.compared and not f.second_pass and f.target not in keys]


def has_candidate_binds(mapping: FieldMapping) -> bool:
    return mapping.lookup is not None and any(c.bind is not None for c in mapping.lookup.candidates)
