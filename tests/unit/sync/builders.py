"""Build staged-looking frames (text columns, as staging writes them) for transform tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from prospect_to_cash.sync.mapping import Task, load_template
from prospect_to_cash.sync.planner import Plan, TransformInputs, build_plan
from prospect_to_cash.sync.staging import to_text
from tests.unit.sync.conftest import SHIPPED

if TYPE_CHECKING:
    from collections.abc import Sequence


def staged(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """Rows as the extract step stages them: exactly the selected columns (others are not
    read, as with ``$select``), as text."""
    return pd.DataFrame(
        {c: [to_text(r.get(c)) for r in rows] for c in columns}, columns=list(columns), dtype=object
    )


def task_of(template: str, task: str, mappings_dir: Any = SHIPPED) -> Task:
    return load_template(template, mappings_dir=mappings_dir).task(task)


def plan_for(
    task: Task,
    source: Sequence[dict[str, Any]],
    *,
    snapshot: Sequence[dict[str, Any]] = (),
    references: dict[str, Sequence[dict[str, Any]]] | None = None,
    upstream: dict[str, pd.DataFrame] | None = None,
    legal_entity: str = "usmf",
) -> Plan:
    references = references or {}
    staged_refs = {
        r.name: staged(references.get(r.name, []), task.reference_columns(r.name)) for r in task.references
    }
    return build_plan(
        task,
        TransformInputs(
            source=staged(source, task.source_columns),
            snapshot=staged(snapshot, task.snapshot_columns),
            references=staged_refs,
            legal_entity=legal_entity,
            upstream=upstream or {},
        ),
    )


def by_ref(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["__ref"]: row for row in frame.to_dict("records")}


def reasons(plan: Plan) -> dict[str, str]:
    return {(r["__ref"] or r["__source_key"]): r["__reason"] for r in plan.rejects.to_dict("records")}
