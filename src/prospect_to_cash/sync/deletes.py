"""Source deletes: what happens to a target row whose source row is gone.

Each mapping task says it with ``on_source_delete`` (`sides.DeletePolicy`): ``ignore``,
``report`` (the default: counted in the run's summary and listed in
``plan/deletes.parquet``), ``deactivate`` (the task's ``deactivate`` values are written to
the target row: an F&O customer goes on hold for all transactions, ``OnHoldStatus: All``;
a Dataverse row goes inactive, ``statecode``/``statuscode``) or ``delete``.

Where deletes come from:

- a **Sales source read by change tracking** (`prospect_to_cash.sync.changes`): its
  ``$deletedEntity`` ids (``source/deleted.parquet``);
- a **source read whole** (the F&O entities, or any full refresh): the rows the task put
  in the target earlier whose source key the read no longer holds (deleted, or no longer
  passing the mapping's filter).

Both need to know which target row a source row became. The **source index** remembers it:
one Parquet file per template, company pair and task beside the watermarks,
``<root>/_source_index/<template>/<company>/<task>.parquet`` (:data:`INDEX_SCHEMA`),
folded in by every load from the rows that landed and replaced atomically. A delete of a
row the index does not know (it landed before the index existed) is reported with its
record id only and never applied.

**Safety cap** (`SyncOptions.max_source_deletes`, CLI ``--max-source-deletes``, default
5%): one run applies at most that many deactivations or deletes, a count or a share of the
task's indexed rows. Above it none is applied: all are held (``deletes_held``), logged,
and kept in the index, so a later run with a higher limit applies them. An empty read
after an outage therefore never empties a target.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prospect_to_cash.hooks.operations import WriteKind, WriteOperation
from prospect_to_cash.sync import source_digests
from prospect_to_cash.sync.changes import DELETED
from prospect_to_cash.sync.columns import OK_STATUSES, REF, SOURCE_KEY
from prospect_to_cash.sync.mapping import COMPANY_FIELD
from prospect_to_cash.sync.staging import TaskStateFile, atomic_write
from prospect_to_cash.sync.thresholds import Limit
from prospect_to_cash.sync.values import is_blank, natural_key

if TYPE_CHECKING:
    from prospect_to_cash.sync.context import SyncContext

log = logging.getLogger(__name__)

FOLDER = "_source_index"
INDEX_SCHEMA = pa.schema(
    [
        ("source_key", pa.string()),  # the natural key of the source row (`values.natural_key`)
        ("record_id", pa.string()),  # the source record's GUID (Dataverse sources), else null
        ("ref", pa.string()),  # the target row's key, as the plan names it
        ("target_id", pa.string()),  # the target row's GUID (Dataverse targets), else null
    ]
)
#: ``plan/deletes.parquet``: every source delete this run saw, and what became of it.
DELETES_FILE = "deletes"
DELETES_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("source_key", pa.string()),
        ("ref", pa.string()),
        ("action", pa.string()),  # reported | deactivated | deleted | held | failed | unknown
        ("reason", pa.string()),
    ]
)
UNKNOWN = "not in the source index (landed before it existed): not applied"
ABSENT = "absent from a whole read of the source (deleted, or no longer passes its filter)"
#: Counts a load adds for source deletes (`summary.COUNT_ORDER`).
DELETE_COUNTS = ("source_deleted", "deactivated", "deleted", "deletes_held")


class DeleteCounts(TypedDict):
    source_deleted: int
    deactivated: int
    deleted: int
    deletes_held: int


@dataclass(frozen=True)
class SourceIndex(TaskStateFile):
    """Which target row each landed source row of one task became."""

    folder = FOLDER
    suffix = ".parquet"

    def read(self) -> pd.DataFrame:
        if not self.path.exists():
            return INDEX_SCHEMA.empty_table().to_pandas()
        with self.path.open("rb") as handle:
            return pq.read_table(handle, schema=INDEX_SCHEMA).to_pandas()

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, schema=INDEX_SCHEMA, preserve_index=False)
        with atomic_write(self.path) as handle:
            pq.write_table(table, handle)


def index_of(ctx: SyncContext) -> SourceIndex:
    return SourceIndex.of(ctx)


def _staged_keys(ctx: SyncContext) -> pd.DataFrame:
    """``source_key`` (and ``record_id``) of every row the extract staged."""
    task = ctx.task
    columns = [*task.source.key, *([task.source.primary_id] if task.source.primary_id else [])]
    with ctx.staging.path("source", "rows").open("rb") as handle:
        rows = pq.read_table(handle, columns=list(dict.fromkeys(columns))).to_pandas()
    keys = [natural_key(list(values)) for values in rows[list(task.source.key)].itertuples(index=False)]
    ids = rows[task.source.primary_id].str.lower().tolist() if task.source.primary_id else [None] * len(keys)
    return pd.DataFrame(
        {"source_key": pd.Series(keys, dtype=object), "record_id": pd.Series(ids, dtype=object)}
    )


def _read_whole(ctx: SyncContext) -> bool:
    """Whether this run's extract read the source whole (its absence means a delete)."""
    if ctx.staging.exists("source", "delta", ".json"):
        return bool(ctx.staging.read_json("source", "delta")["whole"])
    if not ctx.staging.exists("source", "window", ".json") or source_digests.read_partially(ctx):
        return False  # an F&O incremental export carries no deletes (sync/exports.py)
    window = ctx.staging.read_json("source", "window")
    return bool(window["full_refresh"] or not ctx.task.source.change_field)


def _gone(ctx: SyncContext, index: pd.DataFrame, staged: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Index rows whose source is gone (with a ``reason``), and deleted record ids the
    index does not know (rows that left the filter and were never indexed are not news)."""
    if ctx.staging.exists("source", "deleted"):
        frame = ctx.staging.read_frame("source", "deleted")
        reasons = dict(zip(frame["id"].str.lower(), frame["reason"], strict=True))
        ids = index["record_id"].str.lower()
        gone = index[ids.isin(reasons)].assign(reason=ids[ids.isin(reasons)].map(reasons))
        known = set(ids.dropna())
        return gone, sorted(i for i, why in reasons.items() if why == DELETED and i not in known)
    if not _read_whole(ctx):
        return index.iloc[0:0].assign(reason=None), []
    # the whole read's keys: rows left out as unchanged (source_digests) are present too
    present = source_digests.keys_read(ctx)
    if present is None:
        present = {key.casefold() for key in staged["source_key"]}
    return index[~index["source_key"].str.casefold().isin(present)].assign(reason=ABSENT), []


def _target_key(ctx: SyncContext, row: dict[str, Any]) -> dict[str, Any]:
    task = ctx.task
    if task.target_system == "dataverse":
        assert task.target.primary_id
        return {task.target.primary_id: row["target_id"]}
    values: dict[str, Any] = dict(zip(task.natural_key, str(row["ref"]).split("|"), strict=True))
    for name, value in values.items():
        mapping = task.field(name)
        if mapping is not None and mapping.type == "int":
            values[name] = int(value)
    if COMPANY_FIELD in task.target.key:  # refs name a row within its company
        values[COMPANY_FIELD] = ctx.pair.legal_entity
    return {name: values[name] for name in task.target.key}


def apply_source_deletes(
    ctx: SyncContext, outcome: pd.DataFrame, *, limit: str
) -> tuple[DeleteCounts, str | None]:
    """After a load: find the task's source deletes, act on them per its policy within the
    cap, fold the run's landed rows into the source index. Returns the counts and the path
    of ``plan/deletes.parquet`` (None when there was nothing to say)."""
    policy = ctx.task.on_source_delete.policy
    counts: DeleteCounts = {"source_deleted": 0, "deactivated": 0, "deleted": 0, "deletes_held": 0}
    index_store = index_of(ctx)
    index = index_store.read()
    staged = _staged_keys(ctx)
    gone, unknown = _gone(ctx, index, staged)
    report: list[dict[str, Any]] = [
        {"record_id": i, "source_key": None, "ref": None, "action": "unknown", "reason": UNKNOWN}
        for i in unknown
    ]
    applied: set[str] = set()  # source keys whose target row was acted on (or only reported)
    rows = gone.to_dict("records")
    counts["source_deleted"] = len(rows) + len(unknown)
    if policy in ("deactivate", "delete") and rows:
        allowed = Limit.parse(limit).allowed(len(index))
        if len(rows) > allowed:
            counts["deletes_held"] = len(rows)
            log.warning(
                "%s/%s [%s]: %d source delete(s) held: above max_source_deletes %s of %d indexed rows; "
                "run with a higher limit to apply them",
                ctx.template.name,
                ctx.task.name,
                ctx.pair.legal_entity,
                len(rows),
                limit,
                len(index),
            )
            held = f"held: above max_source_deletes {limit}"
            report += [{**_named(row), "action": "held", "reason": _why(row, held)} for row in rows]
        else:
            report += _write(ctx, policy, rows, counts, applied)
    elif rows:
        action = "ignored" if policy == "ignore" else "reported"
        report += [{**_named(row), "action": action, "reason": _why(row)} for row in rows]
        applied |= {row["source_key"] for row in rows}
    # the index: without what is gone for good (applied or only reported), with what landed
    keep = index[~index["source_key"].isin(applied)]  # without the ``reason`` column
    landed = outcome[outcome["status"].isin(OK_STATUSES) & outcome[SOURCE_KEY].notna()]
    fresh = landed[[SOURCE_KEY, REF, "id"]].copy()
    fresh.columns = ["source_key", "ref", "target_id"]
    fresh = fresh.merge(staged.drop_duplicates("source_key"), on="source_key", how="left")
    merged = pd.concat([keep[~keep["source_key"].isin(set(fresh["source_key"]))], fresh], ignore_index=True)
    merged = merged[[name for name in INDEX_SCHEMA.names]]
    index_store.write(merged.astype(object).where(merged.notna(), None))
    path = None
    if report:
        frame = pd.DataFrame(report, columns=DELETES_SCHEMA.names)
        path = ctx.staging.write_frame("plan", DELETES_FILE, frame, DELETES_SCHEMA)
        log.warning(
            "%s/%s [%s]: %d source delete(s) (policy %s): %s",
            ctx.template.name,
            ctx.task.name,
            ctx.pair.legal_entity,
            counts["source_deleted"],
            policy,
            path,
        )
    return counts, path


def _named(row: dict[str, Any]) -> dict[str, Any]:
    return {"record_id": row["record_id"], "source_key": row["source_key"], "ref": row["ref"]}


def _why(row: dict[str, Any], outcome: str | None = None) -> str:
    """The report's reason: why the source is gone, and what refused the write if one did."""
    return f"{row['reason']}; {outcome}" if outcome else str(row["reason"])


def _write(
    ctx: SyncContext, policy: str, rows: list[dict[str, Any]], counts: DeleteCounts, applied: set[str]
) -> list[dict[str, Any]]:
    """Deactivate or delete the target rows of ``rows``; a row already gone counts as deleted."""
    task = ctx.task
    kind = WriteKind.DELETE if policy == "delete" else WriteKind.UPDATE
    body = dict(task.on_source_delete.deactivate) if policy == "deactivate" else {}
    by_ref = {str(row["ref"]): row for row in rows}
    entity_set = task.target.entity_set
    report = []
    if task.target_system == "dataverse":  # a Dataverse row is written by its GUID only
        for row in [r for r in rows if is_blank(r["target_id"])]:
            report.append({**_named(row), "action": "failed", "reason": _why(row, "target id unknown")})
        rows = [r for r in rows if not is_blank(r["target_id"])]
    operations = [WriteOperation(kind, entity_set, _target_key(ctx, r), body, str(r["ref"])) for r in rows]
    for outcome in ctx.hooks.for_system(task.target_system).write(operations):
        row = by_ref[outcome.ref]
        done = outcome.ok or (kind == WriteKind.DELETE and outcome.status == 404)
        action = ("deleted" if kind == WriteKind.DELETE else "deactivated") if done else "failed"
        if done:
            counts["deleted" if kind == WriteKind.DELETE else "deactivated"] += 1
            applied.add(row["source_key"])
        refused = None if done else f"refused: {outcome.status} {outcome.error_code or ''}".strip()
        report.append({**_named(row), "action": action, "reason": _why(row, refused)})
    return report
