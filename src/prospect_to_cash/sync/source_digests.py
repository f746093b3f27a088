"""Unchanged rows of a whole source read do no work: compare before transforming.

F&O's standard entities have no change timestamp, so a daily run reads them whole. What it
need not do is transform, snapshot and diff every row again: each row read is reduced to a
digest of the columns the task reads, and a windowed run keeps only the rows whose digest
differs from the last successful load's (plus the rows the pending ledger waits for: not its
parked ones, which wait for a change of their own row or of the mapping). The
target then sees only changed rows, so its snapshot and lookups are scoped to them
(`target_scope`).

Layout: ``<root>/_digests/<template>/<company>/<task>.parquet`` (``key``, ``digest``) beside
the watermarks; each extract stages the digests of everything it read in
``source/digests.parquet`` (so the keys of the whole read stay known), and a finished load
promotes them. A full refresh compares nothing and resets them. A row changed in the target
by hand while its source stayed the same is put right by the next full refresh.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from prospect_to_cash.sync.pending import fingerprint, ledger_of
from prospect_to_cash.sync.staging import TaskStateFile, atomic_write
from prospect_to_cash.sync.values import is_blank, natural_key, py

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import ObjectStoragePath

    from prospect_to_cash.sync.context import SyncContext

FOLDER = "_digests"
STAGED = "digests"
#: ``source/digests-changed.parquet``: the digests of the rows an incremental export brought.
STAGED_PARTIAL = "digests-changed"
#: ``source/unseen.json``: ``{"rows": n}``, the rows read but left out as unchanged.
UNSEEN = "unseen"


def applies(ctx: SyncContext) -> bool:
    """Whole reads only: a source with a change field reads its window already."""
    return not ctx.task.source.change_field


@dataclass(frozen=True)
class SourceDigests(TaskStateFile):
    """The digests of the last successful load's whole read, by source key."""

    folder = FOLDER
    suffix = ".parquet"


def _store(ctx: SyncContext) -> ObjectStoragePath:
    return SourceDigests.of(ctx).path


def _digests(frame: pd.DataFrame, columns: list[str], key: tuple[str, ...]) -> tuple[list[str], list[str]]:
    keys = [natural_key(parts) for parts in zip(*(frame[c].tolist() for c in key), strict=True)]
    texts = zip(*(frame[c].tolist() for c in columns), strict=True)
    digests = [
        hashlib.sha1(
            "\x1f".join("" if is_blank(v) else str(py(v)) for v in row).encode(), usedforsecurity=False
        ).hexdigest()
        for row in texts
    ]
    return keys, digests


def keep_changed(
    ctx: SyncContext, frame: pd.DataFrame, *, full_refresh: bool, partial: bool = False
) -> pd.DataFrame:
    """Stage the digests of ``frame`` (a whole read) and return the rows a run must
    transform: all of them on a full refresh or without earlier digests, else the rows
    new or changed since the last load, and those the pending ledger waits for.

    :param partial: ``frame`` holds only some rows (an incremental export, `sync.exports`):
        its digests are staged apart (`STAGED_PARTIAL`) and merged into the stored ones by
        `promote`; absence from it says nothing, so no delete is measured against it.
    """
    columns = [c for c in ctx.task.source_columns if c in frame.columns]
    keys, digests = _digests(frame, columns, ctx.task.source.key)
    staged, other = (STAGED_PARTIAL, STAGED) if partial else (STAGED, STAGED_PARTIAL)
    if ctx.staging.exists("source", other):  # an earlier attempt of this run read the other way
        ctx.staging.path("source", other).unlink()
    ctx.staging.write_table("source", staged, pa.table({"key": keys, "digest": digests}))
    ctx.staging.write_json("source", UNSEEN, {"rows": 0})
    store = _store(ctx)
    if full_refresh or not store.exists():
        return frame
    with store.open("rb") as handle:
        earlier = pq.read_table(handle)
    known = dict(zip(earlier.column("key").to_pylist(), earlier.column("digest").to_pylist(), strict=True))
    # Parked entries (rejected for the row's own content, or a closed target) wait for a change
    # of their row or of the mapping, like the key re-reads of a Sales source; duplicate keys
    # are transformed whole, every row of the key (deltas=False).
    ledger, width, current = ledger_of(ctx), len(ctx.task.source.key), fingerprint(ctx.task)
    waiting = {natural_key(list(k)) for k in ledger.key_values(width, current, deltas=False)}
    parked = {natural_key(values) for values, _ in ledger.parked_keys(width, current)} - waiting
    keep = [known.get(k) != d or k in waiting for k, d in zip(keys, digests, strict=True)]
    # left out: unchanged rows, counted as such; parked rows are counted as parked by the load
    unseen = sum(1 for k, kept in zip(keys, keep, strict=True) if not kept and k not in parked)
    ctx.staging.write_json("source", UNSEEN, {"rows": unseen})
    return frame.loc[keep].reset_index(drop=True)


def unseen_rows(ctx: SyncContext) -> int:
    """Rows this run read but left out as unchanged: the plan counts them as read and
    unchanged, as it would have had it compared them."""
    if not ctx.staging.exists("source", UNSEEN, ".json"):
        return 0
    return int(ctx.staging.read_json("source", UNSEEN)["rows"])


def read_partially(ctx: SyncContext) -> bool:
    """Whether this run's extract staged only some rows' digests (an incremental export)."""
    return ctx.staging.exists("source", STAGED_PARTIAL)


def keys_read(ctx: SyncContext) -> set[str] | None:
    """The (case-folded) source keys of every row this run's whole read returned, also
    those left out as unchanged: what absence from the source is measured against. None
    when the extract staged no digests (a windowed read)."""
    if not applies(ctx) or not ctx.staging.exists("source", STAGED):
        return None
    with ctx.staging.path("source", STAGED).open("rb") as handle:
        keys = pq.read_table(handle, columns=["key"]).column("key").to_pylist()
    return {str(key).casefold() for key in keys}


def promote(ctx: SyncContext) -> None:
    """After a finished load: the digests this run staged become the ones to compare with
    (an export's replace those of its keys only)."""
    if not applies(ctx):
        return
    if ctx.staging.exists("source", STAGED):
        with ctx.staging.path("source", STAGED).open("rb") as handle:
            table = pq.read_table(handle)
    elif ctx.staging.exists("source", STAGED_PARTIAL):
        with ctx.staging.path("source", STAGED_PARTIAL).open("rb") as handle:
            changed = pq.read_table(handle)
        merged: dict[str, str] = {}
        if _store(ctx).exists():
            with _store(ctx).open("rb") as handle:
                earlier = pq.read_table(handle)
            merged.update(
                zip(earlier.column("key").to_pylist(), earlier.column("digest").to_pylist(), strict=True)
            )
        merged.update(
            zip(changed.column("key").to_pylist(), changed.column("digest").to_pylist(), strict=True)
        )
        table = pa.table({"key": list(merged), "digest": list(merged.values())})
    else:
        return
    with atomic_write(_store(ctx)) as handle:
        pq.write_table(table, handle)
