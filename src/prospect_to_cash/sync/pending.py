"""The pending ledger: rows that were rejected or failed, kept until they land or a person
dismisses them, so a daily run retries them even when their source did not change.

One Parquet file per template, company pair and mapping task, beside the runs' folders
in staging (so it lives wherever ``P2C_STAGING_ROOT`` points, survives restarts and is
shared by every worker): ``<root>/_pending/<template>/<company>/<task>.parquet``, one row
per source key (:data:`SCHEMA`). It is rewritten whole, atomically: the new content goes
to a temporary file next to it, which then replaces the old one (a rename on a local
disk; one object upload on object storage), so a reader sees the old ledger or the new
one, never half of either.

The extract re-reads the ledger's keys besides its change window; the load folds the
run's outcome in (rejected or failed: added, ``attempts`` + 1; landed: removed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TypedDict

import pyarrow as pa
import pyarrow.parquet as pq

from prospect_to_cash.sync.columns import BAD_STATUSES, OK_STATUSES, REF, SOURCE_KEY
from prospect_to_cash.sync.staging import TaskStateFile, atomic_write
from prospect_to_cash.sync.values import is_blank

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import pandas as pd
    from airflow.sdk import ObjectStoragePath

    from prospect_to_cash.sync.context import SyncContext

FOLDER = "_pending"
SCHEMA = pa.schema(
    [
        ("source_key", pa.string()),
        ("key_values", pa.string()),  # JSON list: the source key columns' values, in order
        ("record_id", pa.string()),
        ("target_key", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("first_seen", pa.string()),
        ("last_seen", pa.string()),
        ("attempts", pa.int64()),
        ("last_run_id", pa.string()),
    ]
)


class PendingEntry(TypedDict):
    """One ledger row: a source row that has not landed yet, and why."""

    source_key: str
    key_values: str
    record_id: str | None
    target_key: str | None
    status: str
    reason: str | None
    first_seen: str
    last_seen: str
    attempts: int
    last_run_id: str


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PendingLedger(TaskStateFile):
    """The ledger of one mapping task of one template for one company pair."""

    folder = FOLDER
    suffix = ".parquet"

    def read(self) -> list[PendingEntry]:
        """The entries, in source-key order (none when the ledger does not exist)."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            table = pq.read_table(handle, schema=SCHEMA)
        return sorted(table.to_pylist(), key=lambda entry: entry["source_key"])  # type: ignore[return-value]

    def key_values(self, width: int) -> list[list[str]]:
        """The source key columns' values of every entry (``width`` columns each)."""
        keys = []
        for entry in self.read():
            values = json.loads(entry["key_values"])
            if len(values) == width and not any(is_blank(v) for v in values):
                keys.append([str(v) for v in values])
        return keys

    def write(self, entries: Iterable[PendingEntry]) -> None:
        """Replace the ledger with ``entries`` atomically (an empty ledger removes the file)."""
        rows = sorted(entries, key=lambda entry: entry["source_key"])
        if not rows:
            if self.path.exists():
                self.path.unlink()
            return
        table = pa.Table.from_pylist(list(rows), schema=SCHEMA)
        with atomic_write(self.path) as handle:
            pq.write_table(table, handle)

    def record(
        self,
        outcome: pd.DataFrame,
        *,
        key_columns: Sequence[str],
        run_id: str,
        record_ids: Mapping[str, str] | None = None,
    ) -> int:
        """Fold a load's outcome (``plan/outcome.parquet``) into the ledger: rows rejected
        or failed are added (or their ``attempts`` grow), rows that landed are removed;
        entries this run did not read stay as they were. ``record_ids`` (source key -> the
        dead letter's record id) names each entry's record. Returns the entries left."""
        entries = {entry["source_key"]: entry for entry in self.read()}
        now = _now()
        width = len(key_columns)
        counted: set[str] = set()  # twin rows of one key count as one attempt
        for data in outcome.to_dict("records"):
            source_key = data.get(SOURCE_KEY)
            if is_blank(source_key):
                continue  # a row without a source key cannot be read again by it
            status = data.get("status")
            if status in OK_STATUSES:
                entries.pop(source_key, None)
                continue
            if status not in BAD_STATUSES:
                continue
            values = str(source_key).split("|")
            if len(values) != width:
                continue
            earlier = entries.get(source_key)
            entries[source_key] = {
                "source_key": source_key,
                "key_values": json.dumps(values),
                "record_id": (record_ids or {}).get(source_key)
                or (None if is_blank(data.get("id")) else str(data.get("id"))),
                "target_key": None if is_blank(data.get(REF)) else str(data.get(REF)),
                "status": status,
                "reason": None if is_blank(data.get("reason")) else str(data.get("reason")),
                "first_seen": earlier["first_seen"] if earlier else now,
                "last_seen": now,
                "attempts": (earlier["attempts"] if earlier else 0) + (source_key not in counted),
                "last_run_id": run_id,
            }
            counted.add(source_key)
        self.write(entries.values())
        return len(entries)

    def dismiss(self, source_keys: Iterable[str] | None = None) -> list[str]:
        """Drop entries (all when ``source_keys`` is None); returns the keys dropped."""
        entries = self.read()
        wanted = None if source_keys is None else {k.casefold() for k in source_keys}
        dropped = [e["source_key"] for e in entries if wanted is None or e["source_key"].casefold() in wanted]
        self.write(e for e in entries if e["source_key"] not in dropped)
        return dropped


def ledger_of(ctx: SyncContext) -> PendingLedger:
    """The ledger of a step's template, company pair and task."""
    return PendingLedger.of(ctx)


def ledgers(root: ObjectStoragePath, template: str) -> list[PendingLedger]:
    """Every ledger of ``template`` that exists, by company and task."""
    base = root / FOLDER / template
    if not base.exists():
        return []
    found = []
    for company in sorted(base.iterdir(), key=lambda p: p.name):
        for item in sorted(company.iterdir(), key=lambda p: p.name):
            if item.name.endswith(".parquet") and not item.name.startswith("."):
                found.append(PendingLedger(root, template, company.name, item.name[: -len(".parquet")]))
    return found
