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

**Parked rows.** A row rejected because of the row itself (`self_rejected`: a duplicate
source key, a value-map miss, a required or key field empty, a value too long) cannot land
until its source row or the mapping changes, so re-reading it every run only costs; so does
a write to a document Sales keeps read-only (`read_only`: final while it stays closed). Its
entry is *parked* with the compiled task's `fingerprint` (mapping and environment, value
maps included): the extract re-reads it only when the fingerprint changed. Its own change
comes back anyway (in the delta or the window, by its id); a duplicate key comes back when
a row sharing it is in the delta (`key_rules` reads every row of the key) or when one of
the key's rows (``record_ids``) is deleted or leaves the scope (`changes`); a windowed read
sees no deletes, so there duplicate keys are re-read every run. Rows rejected or failed
because of the target (dangling or ambiguous lookup, held back behind a header, a service
refusal, anything not recognised as the row's own fault) are never parked: every run
retries them. A parked row stays in the ledger, in each run's ``parked`` count and its
``deadletter/parked.parquet``, and in ``python -m prospect_to_cash.sync pending``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TypedDict

import pyarrow as pa
import pyarrow.parquet as pq

from prospect_to_cash.sync.columns import BAD_STATUSES, OK_STATUSES, REF, SOURCE_KEY
from prospect_to_cash.sync.read_only import CLOSED_REASON
from prospect_to_cash.sync.staging import TaskStateFile, atomic_write
from prospect_to_cash.sync.values import is_blank

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import pandas as pd
    from airflow.sdk import ObjectStoragePath

    from prospect_to_cash.sync.context import SyncContext
    from prospect_to_cash.sync.mapping import Task

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
        ("parked", pa.bool_()),  # rejected for the row's own fault: re-read on change only
        ("fingerprint", pa.string()),  # the compiled task it was parked under
        ("record_ids", pa.string()),  # JSON list: every source record of the key (twins too)
    ]
)
#: The parts of a reject reason (``; ``-separated) that only a change of the row itself,
#: or of the mapping and environment, can cure (rules.py and planner.py word them so).
SELF_REASONS = (
    re.compile(r"^duplicate source key .* rows\): rejected, not merged$"),
    re.compile(r"^value .* of \S+ has no entry in value map '[^']*'$"),
    re.compile(r"^required field \S+ is empty$"),
    re.compile(r"^(source|target) key \S+ is empty$"),
    re.compile(r"^\S+ is \d+ characters, at most \d+ allowed$"),
    CLOSED_REASON,  # a closed document in Sales: final while it stays closed (`read_only`)
)
DUPLICATE = "duplicate source key "


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
    parked: bool
    fingerprint: str | None
    record_ids: str | None


def self_rejected(status: str | None, reason: str | None) -> bool:
    """Whether a row was refused for its own content only (every part of its reason), so
    that re-reading it unchanged cannot help; a failure or any other reason: False."""
    if status != "rejected" or is_blank(reason):
        return False
    parts = [part.strip() for part in str(reason).split("; ")]
    return all(any(pattern.match(part) for pattern in SELF_REASONS) for part in parts)


def fingerprint(task: Task) -> str:
    """The compiled task (fields, value maps, defaults, as fixed for the company pair)."""
    return hashlib.sha256(repr(task).encode()).hexdigest()[:16]


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
            table = pq.read_table(handle)
        for column in SCHEMA:  # a ledger written before parking: nothing parked
            if column.name not in table.column_names:
                table = table.append_column(column, pa.nulls(len(table), column.type))
        rows = table.select(SCHEMA.names).cast(SCHEMA).to_pylist()
        for row in rows:
            row["parked"] = bool(row["parked"])
        return sorted(rows, key=lambda entry: entry["source_key"])  # type: ignore[arg-type,return-value]

    def key_values(self, width: int, current: str | None = None, *, deltas: bool = True) -> list[list[str]]:
        """The source key columns' values of the entries to re-read (``width`` columns
        each): all of them without ``current``; else all but those parked under the
        ``current`` fingerprint (and, unless ``deltas``, parked duplicate keys are re-read:
        a windowed read sees no deletes)."""
        return [_values(entry) for entry in self.read() if _wanted(entry, width, current, deltas)]

    def parked_keys(self, width: int, current: str) -> list[tuple[list[str], list[str]]]:
        """The entries `key_values` leaves out: (key values, record ids of the key's rows)."""
        return [
            (
                _values(entry),
                [*json.loads(entry["record_ids"] or "[]"), str(entry["record_id"] or "").lower()],
            )
            for entry in self.read()
            if _complete(entry, width) and not _wanted(entry, width, current, True)
        ]

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
        twins: Mapping[str, Sequence[str]] | None = None,
        current: str | None = None,
    ) -> int:
        """Fold a load's outcome (``plan/outcome.parquet``) into the ledger: rows rejected
        or failed are added (or their ``attempts`` grow), rows that landed are removed;
        entries this run did not read stay as they were. ``record_ids`` (source key -> the
        dead letter's record id) names each entry's record, ``twins`` every record of the
        key. With ``current`` (the task's `fingerprint`), rows rejected for their own
        content are parked under it. Returns the entries left."""
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
                "parked": current is not None
                and self_rejected(status, data.get("reason"))
                and (source_key not in counted or entries[source_key]["parked"]),
                "fingerprint": current,
                "record_ids": json.dumps(sorted({*(twins or {}).get(source_key, ())})),
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


def _complete(entry: PendingEntry, width: int) -> bool:
    values = json.loads(entry["key_values"])
    return len(values) == width and not any(is_blank(v) for v in values)


def _values(entry: PendingEntry) -> list[str]:
    return [str(v) for v in json.loads(entry["key_values"])]


def _wanted(entry: PendingEntry, width: int, current: str | None, deltas: bool) -> bool:
    if not _complete(entry, width):
        return False
    if current is None or not entry["parked"] or entry["fingerprint"] != current:
        return True
    return not deltas and DUPLICATE in (entry["reason"] or "")


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
