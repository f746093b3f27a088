"""The transform's staged files: what it reads from staging and the plan files it writes.

:class:`StagedInputs` gives the planner a task's staged rows a chunk at a time (only the
columns a lookup uses from a reference table); :class:`StagedPlanSink` writes the plan
files and the rejected rows' dead letter as the planner hands them over.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prospect_to_cash.sync import deadletter
from prospect_to_cash.sync.columns import (
    CHANGED,
    ID,
    OUTCOME,
    OUTCOME_SCHEMA,
    PLANNED,
    REASON,
    REF,
    ROW,
    SOURCE_KEY,
)
from prospect_to_cash.sync.deadletter import source_record_id
from prospect_to_cash.sync.staging import buffered

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from airflow.sdk import ObjectStoragePath

    from prospect_to_cash.sync.context import SyncContext
    from prospect_to_cash.sync.mapping import Task

SAMPLE_SIZE = 3


class StagedInputs:
    """The task's staged files as the transform reads them: a chunk at a time, and only
    the columns a lookup uses from a reference table."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self.staging = ctx.staging
        self.legal_entity = ctx.pair.legal_entity
        for reference in ctx.task.references:  # a step that never ran fails here, not mid-way
            path = self.staging.path(self._area(reference.side), f"ref-{reference.name}")
            if not path.exists():
                raise FileNotFoundError(f"reference {reference.name!r} was not staged: {path}")

    @staticmethod
    def _area(side: str) -> str:
        return "source" if side == "source" else "target"

    def _rows(self, area: str, name: str) -> int:
        with self.staging.path(area, name).open("rb") as handle:
            return pq.ParquetFile(handle).metadata.num_rows

    def _batches(
        self, path: ObjectStoragePath, rows: int, columns: Sequence[str] | None = None
    ) -> Iterator[pa.Table]:
        with path.open("rb") as handle:
            parquet = pq.ParquetFile(handle)
            if columns is not None:
                columns = [c for c in columns if c in parquet.schema_arrow.names]
            empty = True
            for batch in parquet.iter_batches(batch_size=rows, columns=columns):
                empty = False
                yield pa.Table.from_batches([batch])
            if empty:
                schema = parquet.schema_arrow
                yield schema.empty_table() if columns is None else schema.empty_table().select(columns)

    def source_rows(self) -> int:
        return self._rows("source", "rows")

    def source_batches(self, rows: int) -> Iterator[pa.Table]:
        return self._batches(self.staging.path("source", "rows"), rows)

    def snapshot_rows(self) -> int:
        return self._rows("target", "rows")

    def snapshot_batches(self, rows: int) -> Iterator[pa.Table]:
        return self._batches(self.staging.path("target", "rows"), rows)

    def reference(self, name: str, columns: Sequence[str] | None) -> pa.Table | None:
        try:
            side = self.ctx.task.reference(name).side
        except KeyError:
            return None
        path = self.staging.path(self._area(side), f"ref-{name}")
        if not path.exists():
            return None
        with path.open("rb") as handle:
            parquet = pq.ParquetFile(handle)
            present = None if columns is None else [c for c in columns if c in parquet.schema_arrow.names]
            return parquet.read(columns=present)

    def upstream(self, task: str, rows: int) -> Iterator[dict[str, list[Any]]] | None:
        """The load outcome of an earlier task of this run, else its plan's outcome."""
        sibling = self.staging.sibling(task)
        for kind in (OUTCOME, PLANNED):
            if sibling.exists("plan", kind):
                return self._outcome_batches(sibling.path("plan", kind), rows)
        return None

    def _outcome_batches(self, path: ObjectStoragePath, rows: int) -> Iterator[dict[str, list[Any]]]:
        for table in self._batches(path, rows, [REF, "status", "reason"]):
            yield {
                name: table.column(name).to_pylist()
                if name in table.column_names
                else [None] * table.num_rows
                for name in (REF, "status", "reason")
            }


class StagedPlanSink:
    """Writes the plan files as the transform hands them over, a bounded table at a time:
    ``plan/{creates,updates,unchanged,second_pass,planned}.parquet`` and the rejected rows'
    dead letter ``deadletter/rejected.parquet``."""

    def __init__(self, ctx: SyncContext, schemas: dict[str, pa.Schema]) -> None:
        self.ctx = ctx
        self.paths: dict[str, str] = {}
        self._open: list[tuple[pq.ParquetWriter, Any]] = []
        self._writers: dict[str, pq.ParquetWriter] = {}
        files = {
            name: ("plan", name, schemas[name]) for name in ("creates", "updates", "unchanged", "second_pass")
        }
        files["planned"] = ("plan", PLANNED, OUTCOME_SCHEMA)
        files["rejects"] = ("deadletter", deadletter.REJECTED, deadletter.SCHEMA)
        for category, (area, name, schema) in files.items():
            target = ctx.staging.path(area, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            handle = buffered(target.open("wb"))
            writer = pq.ParquetWriter(handle, schema)
            self._open.append((writer, handle))
            self._writers[category] = writer
            self.paths["rejected" if category == "rejects" else category] = str(target)

    def write(self, category: str, table: pa.Table) -> None:
        if category == "rejects":
            primary = self.ctx.task.source.primary_id
            records = [
                {
                    "ref": r[REF],
                    "source_key": r[SOURCE_KEY],
                    "record_id": source_record_id(r[ROW], primary) or r[SOURCE_KEY] or None,
                    "reason": r[REASON],
                    "row": r[ROW],
                }
                for r in table.select([REF, SOURCE_KEY, REASON, ROW]).to_pylist()
            ]
            table = deadletter.records_table(self.ctx.staging, "transform", records)
        self._writers[category].write_table(table)

    def close(self) -> None:
        for writer, handle in self._open:
            writer.close()
            handle.close()
        self._open = []


def samples(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    head = frame.head(SAMPLE_SIZE)
    if columns is not None:
        head = head[[c for c in columns if c in head.columns]]
    return json.loads(head.to_json(orient="records", date_format="iso", default_handler=str))


class LazySink:
    """Opens the real sink on the first table (or when asked), so a transform that fails
    before the merge leaves the previous plan files as they were."""

    def __init__(self, make: Callable[[], StagedPlanSink]) -> None:
        self._make = make
        self._sink: StagedPlanSink | None = None

    def open(self) -> StagedPlanSink:
        if self._sink is None:
            self._sink = self._make()
        return self._sink

    def write(self, category: str, table: pa.Table) -> None:
        self.open().write(category, table)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()


def plan_samples(task: Task, heads: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    columns = [REF, ID, *[f.target for f in task.fields if f.write]]

    def frame(category: str) -> pd.DataFrame:
        return pd.DataFrame(heads[category][:SAMPLE_SIZE], dtype=object)

    return {
        "create": samples(frame("creates"), columns),
        "update": samples(frame("updates"), [*columns, CHANGED]),
        "unchanged": samples(frame("unchanged"), [REF, ID]),
        "rejected": samples(frame("rejects"), [REF, SOURCE_KEY, REASON]),
    }
