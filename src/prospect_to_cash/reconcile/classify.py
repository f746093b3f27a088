"""Every row of a task, classified: in sync, missing, different, orphaned or rejected.

Pure functions over frames the sync engine already produced, so the reconciliation can
never disagree with what a sync would do: the engine's plan says what the target *should*
hold (creates = missing, updates = different, unchanged = in sync, rejects with the
engine's reason), the engine's normalized snapshot says what the target holds now, and the
only thing added here is the opposite direction: target rows in scope that no source row
maps to (orphaned).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prospect_to_cash.sync.columns import CHANGED, ID, REASON, REF, ROW, SOURCE_KEY
from prospect_to_cash.sync.diff import fold
from prospect_to_cash.sync.staging import to_text
from prospect_to_cash.sync.values import is_blank, py

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

    from prospect_to_cash.sync.planner import Plan

IN_SYNC, MISSING, DIFFERENT, ORPHANED, REJECTED = "in_sync", "missing", "different", "orphaned", "rejected"
#: Report order: good first, then what a sync would fix, then what needs a person.
STATUSES = (IN_SYNC, MISSING, DIFFERENT, ORPHANED, REJECTED)
LABELS = {
    IN_SYNC: "In sync",
    MISSING: "Missing in target",
    DIFFERENT: "Different",
    ORPHANED: "Orphaned in target",
    REJECTED: "Rejected",
}


@dataclass
class PlanFrames:
    """One task's transform output, as staged by the engine.

    :param rejects: the dead-letter frame (``ref``, ``source_key``, ``reason``).
    """

    creates: pd.DataFrame
    updates: pd.DataFrame
    unchanged: pd.DataFrame
    second_pass: pd.DataFrame
    rejects: pd.DataFrame

    @classmethod
    def from_plan(cls, plan: Plan) -> PlanFrames:
        """From the engine's in-memory :class:`Plan` (its rejects named as in the dead letter)."""
        rejects = plan.rejects.rename(
            columns={REF: "ref", SOURCE_KEY: "source_key", REASON: "reason", ROW: "row"}
        )
        return cls(plan.creates, plan.updates, plan.unchanged, plan.second_pass, rejects)


def display(value: Any) -> str | None:
    """A value as the report shows it: the staging's canonical text (None stays None)."""
    return to_text(py(value))


def _names(value: Any) -> list[str]:
    """A list column read back from Parquet (array, list, text or None) as names."""
    if value is None or (not isinstance(value, str) and not hasattr(value, "__iter__")):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _text(value: Any) -> str | None:
    value = py(value)
    return None if value is None or is_blank(value) else str(value)


def _row(
    status: str,
    *,
    key: Any = None,
    source_key: Any = None,
    target_id: Any = None,
    differences: list[dict[str, Any]] | None = None,
    reason: Any = None,
    source_row: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "key": _text(key),
        "source_key": _text(source_key),
        "target_id": _text(target_id),
        "differences": differences or [],
        "reason": _text(reason),
        "source_row": source_row,
    }


def _source_row(value: Any) -> dict[str, Any] | None:
    """The dead letter's copy of the source row (JSON text), values as display text, so
    a reject without a key can still be found in the source."""
    value = py(value)
    if not value:
        return None
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return {str(name): display(item) for name, item in data.items()}


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    return [] if frame is None or not len(frame) else frame.to_dict("records")


def _differences(row: dict[str, Any], current: dict[str, Any] | None, names: Iterable[str]) -> list[dict]:
    return [
        {
            "field": name,
            "expected": display(row.get(name)),
            "actual": display(None if current is None else current.get(name)),
        }
        for name in names
    ]


def classify_plan(plan: PlanFrames, current: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per source row that reached a decision.

    :param current: the target as the diff saw it (``transform.snapshot_frame``), so the
        "actual" values of a difference are exactly what was compared.
    :returns: JSON-ready dicts: ``status``, ``key`` (target natural key), ``source_key``,
        ``target_id``, ``differences`` (``field``, ``expected``, ``actual``), ``reason``.
    """
    by_key: dict[str, dict[str, Any]] = {}
    for record in _records(current):
        ref = py(record.get(REF))
        if ref is not None:
            by_key.setdefault(fold(ref), record)
    second: dict[str, dict[str, Any]] = {}
    for record in _records(plan.second_pass):
        ref = py(record.get(REF))
        if ref is not None:
            second[fold(ref)] = record

    def second_pass_differences(ref: Any) -> list[dict[str, Any]]:
        if ref is None or fold(ref) not in second:
            return []
        record = second[fold(ref)]
        return _differences(record, by_key.get(fold(ref)), _names(record.get(CHANGED)))

    rows: list[dict[str, Any]] = []
    for record in _records(plan.creates):
        rows.append(_row(MISSING, key=record.get(REF), source_key=record.get(SOURCE_KEY)))
    for record in _records(plan.updates):
        ref = py(record.get(REF))
        current_row = by_key.get(fold(ref)) if ref is not None else None
        differences = _differences(record, current_row, _names(record.get(CHANGED)))
        differences += second_pass_differences(ref)
        rows.append(
            _row(
                DIFFERENT,
                key=ref,
                source_key=record.get(SOURCE_KEY),
                target_id=record.get(ID),
                differences=differences,
            )
        )
    for record in _records(plan.unchanged):
        ref = py(record.get(REF))
        differences = second_pass_differences(ref)
        rows.append(
            _row(
                DIFFERENT if differences else IN_SYNC,
                key=ref,
                source_key=record.get(SOURCE_KEY),
                target_id=record.get(ID),
                differences=differences,
            )
        )
    for record in _records(plan.rejects):
        rows.append(
            _row(
                REJECTED,
                key=record.get("ref"),
                source_key=record.get("source_key"),
                reason=record.get("reason"),
                source_row=_source_row(record.get("row")),
            )
        )
    return rows


def claimed_keys(plan: PlanFrames) -> set[str]:
    """Folded target keys some source row maps to, whatever became of it: a rejected
    row still explains its target row, so that row is not an orphan."""
    keys: set[str] = set()
    for frame in (plan.creates, plan.updates, plan.unchanged):
        for value in [] if frame is None or REF not in frame else frame[REF].tolist():
            if py(value) is not None and not is_blank(value):
                keys.add(fold(py(value)))
    if plan.rejects is not None and "ref" in plan.rejects:
        for value in plan.rejects["ref"].tolist():
            if py(value) is not None and not is_blank(value):
                keys.add(fold(py(value)))
    return keys


def orphan_rows(scoped: pd.DataFrame, claimed: set[str]) -> list[dict[str, Any]]:
    """Target rows in scope that no source row maps to (``scoped`` has ``__ref``/``__id``).

    A target row without a key can never be matched, so it is an orphan too.
    """
    rows = []
    for record in _records(scoped):
        ref = py(record.get(REF))
        if ref is None or is_blank(ref) or fold(ref) not in claimed:
            rows.append(_row(ORPHANED, key=ref, target_id=record.get(ID)))
    return rows


def count(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Rows per status, every status present (zeros included) in report order."""
    found = Counter(row["status"] for row in rows)
    return {status: int(found.get(status, 0)) for status in STATUSES}


def add_counts(total: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    for name, value in more.items():
        total[name] = total.get(name, 0) + int(value)
    return total
