"""Dead letters: every row that did not reach the target, with the reason, as Parquet.

Two files per task and run: ``deadletter/rejected.parquet`` (the transform refused the row:
missing key, value-map miss, dangling lookup, held back behind its header, ...) and
``deadletter/failed.parquet`` (the service refused the write). ``record_id`` names the
record: for a reject the source record's id (the mapping's ``source.primary_id``, a Sales
GUID) or else its source key; for a failure the target record the write went to (its
Dataverse GUID, or its F&O key). These files are one run's
record; what comes back in later runs is the pending ledger (`prospect_to_cash.sync.pending`).
A third, ``deadletter/parked.parquet`` (stage ``parked``), lists the ledger's parked rows
the run did not read: rejected earlier for their own content, still not landed.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from prospect_to_cash.sync.values import py

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from prospect_to_cash.sync.contracts import DeadLetters
    from prospect_to_cash.sync.pending import PendingEntry
    from prospect_to_cash.sync.staging import TaskStaging

REJECTED, FAILED, PARKED = "rejected", "failed", "parked"

SCHEMA = pa.schema(
    [
        ("template", pa.string()),
        ("task", pa.string()),
        ("legal_entity", pa.string()),
        ("run_id", pa.string()),
        ("stage", pa.string()),
        ("ref", pa.string()),
        ("source_key", pa.string()),
        ("record_id", pa.string()),
        ("reason", pa.string()),
        ("status", pa.int64()),
        ("error_code", pa.string()),
        ("row", pa.string()),
        ("recorded_at", pa.string()),
    ]
)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def source_record_id(row: str | None, primary_id: str | None) -> str | None:
    """The source record's id in a rejected row's JSON (None when the row or column is absent)."""
    if not row or not primary_id:
        return None
    value = json.loads(row).get(primary_id)
    return None if value is None or value == "" else str(value)


def records_table(staging: TaskStaging, stage: str, records: Iterable[dict[str, Any]]) -> pa.Table:
    """Records in the dead-letter layout (``SCHEMA``), for a whole file or one batch of a
    file written a batch at a time."""
    stamp = _now()
    rows = []
    for record in records:
        row = record.get("row")
        rows.append(
            {
                "template": staging.template,
                "task": staging.task,
                "legal_entity": staging.company,
                "run_id": staging.run_id,
                "stage": record.get("stage", stage),
                "ref": py(record.get("ref")),
                "source_key": py(record.get("source_key")),
                "record_id": py(record.get("record_id")),
                "reason": py(record.get("reason")),
                "status": py(record.get("status")),
                "error_code": py(record.get("error_code")),
                "row": row
                if isinstance(row, str) or row is None
                else json.dumps(row, default=str, sort_keys=True),
                "recorded_at": stamp,
            }
        )
    return pa.Table.from_pandas(pd.DataFrame(rows, columns=SCHEMA.names), schema=SCHEMA, preserve_index=False)


def write_rejected(staging: TaskStaging, records: Iterable[dict[str, Any]]) -> str:
    """Rows the transform refused (stage ``transform``). Always writes the file, empty or
    not, so a rerun replaces the previous attempt's list."""
    return staging.write_table("deadletter", REJECTED, records_table(staging, "transform", records))


def write_failed(staging: TaskStaging, records: Iterable[dict[str, Any]]) -> str:
    """Rows the service refused (stage ``load`` or ``second_pass``, per record)."""
    return staging.write_table("deadletter", FAILED, records_table(staging, "load", records))


def write_parked(staging: TaskStaging, entries: Iterable[PendingEntry]) -> str:
    """The pending ledger's parked rows this run did not read (stage ``parked``)."""
    records = [
        {
            "ref": entry["target_key"],
            "source_key": entry["source_key"],
            "record_id": entry["record_id"],
            "reason": f"parked since {entry['first_seen']}: {entry['reason']}",
        }
        for entry in entries
    ]
    return staging.write_table("deadletter", PARKED, records_table(staging, "parked", records))


def read(staging: TaskStaging) -> pd.DataFrame:
    """Both dead-letter files of a task, for reports and tests."""
    frames = [
        staging.read_frame("deadletter", name)
        for name in (REJECTED, FAILED, PARKED)
        if staging.exists("deadletter", name)
    ]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCHEMA.names)


def dead_letters(rejected: str | None, load_paths: Mapping[str, Any]) -> DeadLetters:
    """A task's dead-letter files, as its report and XCom name them: the transform's
    ``rejected`` file and the load's ``failed`` and ``parked`` files."""
    return {"rejected": rejected, "failed": load_paths.get(FAILED), "parked": load_paths.get(PARKED)}
