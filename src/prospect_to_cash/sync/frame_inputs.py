"""A task's plan inputs held in memory: frames instead of staged files.

Tests, the reconciliation and small callers plan from frames; :class:`FrameInputs` gives
the planner (:mod:`prospect_to_cash.sync.planner`) the same text values staging would
have written, so a plan of frames and a plan of staged files are the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prospect_to_cash.sync.columns import REF
from prospect_to_cash.sync.staging import text_table

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import pandas as pd
    import pyarrow as pa


@dataclass
class TransformInputs:
    """What one task's transform needs, all already staged.

    :param source: raw source rows (text columns).
    :param snapshot: raw current target rows (text columns).
    :param references: raw reference tables by reference name.
    :param legal_entity: the company pair's F&O ``dataAreaId``.
    :param upstream: outcome frames of earlier tasks of the same run, by task name.
    """

    source: pd.DataFrame
    snapshot: pd.DataFrame
    references: dict[str, pd.DataFrame] = field(default_factory=dict)
    legal_entity: str = ""
    upstream: dict[str, pd.DataFrame] = field(default_factory=dict)


def _slices(table: pa.Table, rows: int) -> Iterator[pa.Table]:
    if table.num_rows == 0:
        yield table
        return
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)


class FrameInputs:
    """:class:`PlanInputs` over frames already in memory (:class:`TransformInputs`).

    Values are taken as staging would have written them (text), so a plan of frames and
    a plan of staged files are the same plan.
    """

    def __init__(self, inputs: TransformInputs) -> None:
        self.inputs = inputs
        self.legal_entity = inputs.legal_entity
        self._source = text_table(inputs.source.reset_index(drop=True))
        self._snapshot = text_table(inputs.snapshot.reset_index(drop=True))

    def source_rows(self) -> int:
        return self._source.num_rows

    def source_batches(self, rows: int) -> Iterator[pa.Table]:
        return _slices(self._source, rows)

    def snapshot_rows(self) -> int:
        return self._snapshot.num_rows

    def snapshot_batches(self, rows: int) -> Iterator[pa.Table]:
        return _slices(self._snapshot, rows)

    def reference(self, name: str, columns: Sequence[str] | None) -> pa.Table | None:
        frame = self.inputs.references.get(name)
        if frame is None:
            return None
        if columns is not None:
            frame = frame[[c for c in dict.fromkeys(columns) if c in frame.columns]]
        return text_table(frame.reset_index(drop=True))

    def upstream(self, task: str, rows: int) -> Iterator[dict[str, list[Any]]] | None:
        frame = self.inputs.upstream.get(task)
        if frame is None:
            return None
        return _frame_batches(frame, rows)


def _frame_batches(frame: pd.DataFrame, rows: int) -> Iterator[dict[str, list[Any]]]:
    for start in range(0, len(frame), rows):
        piece = frame.iloc[start : start + rows]
        yield {
            name: piece[name].tolist() if name in piece.columns else [None] * len(piece)
            for name in (REF, "status", "reason")
        }
