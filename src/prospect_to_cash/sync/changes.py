"""Sales sources read by Dataverse change tracking: what changed since the last load, not
every row of a ``modifiedon`` window.

powerapps-docs, "Use change tracking to synchronize data with external systems": a read
with ``Prefer: odata.track-changes`` returns the whole table and a ``$deltatoken``; the
token later returns the rows created or changed since, then the deleted ones. The engine
uses it for a Dataverse source with a change field whose table has
``ChangeTrackingEnabled``, when the run is a scheduled one (``since_watermark``) or a full
refresh; an explicit window (backfill, ``--since/--until``) reads exactly its window by
``modifiedon``, and the token stays as it was.

- **Tokens** live beside the watermarks, one small JSON per template, company pair and
  task: ``<root>/_delta_tokens/<template>/<company>/<task>.json`` (`StoredToken`), replaced
  atomically. The extract writes the new token into the run's ``source/delta.json``; only a
  finished load (not a dry run) moves it into place, so a run that fails before its load is
  read again by the next one.
- **No usable token** (none yet, or the mapping's filter, business unit or columns
  changed since it was taken): a tracked read of the whole table, logged once. An
  **expired** token (``0x80044352``) or one the service does not know: the same, logged
  once. A full refresh always starts over (its token replaces the old one).
- **Filters**: the service refuses ``$filter`` on tracked reads, so the mapping's source
  filter and the company pair's business unit are applied to each page as it arrives
  (`prospect_to_cash.sync.row_filter`), before anything is staged.
- **Company pairs**: a table's delta is not per company. Each pair keeps its own token and
  reads the table's delta itself, keeping its business unit's rows: no pair depends on
  another pair's run (mapped task groups run and fail independently, and a failed pair
  moves no token), at the price of each pair transferring every business unit's changes.
- **Pending rows** (`prospect_to_cash.sync.pending`) are read by key besides the delta,
  except those the delta already brought. **Deleted rows** (``$deletedEntity``), and
  changed rows that no longer pass the filter or business unit (an account made
  inactive), go to ``source/deleted.parquet`` (``id``, ``reason``) for the task's
  ``on_source_delete`` policy.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

import pyarrow as pa

from prospect_to_cash.hooks.errors import DeltaTokenInvalidError
from prospect_to_cash.sync.row_filter import RowFilter, UnsupportedFilter
from prospect_to_cash.sync.staging import TaskStateFile, atomic_write, text_array
from prospect_to_cash.sync.watermarks import now_utc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import pandas as pd

    from prospect_to_cash.sync.context import SyncContext
    from prospect_to_cash.sync.contracts import Window
    from prospect_to_cash.sync.key_rules import KeySharers

log = logging.getLogger(__name__)

FOLDER = "_delta_tokens"
#: The run's record of a tracked read (``source/delta.json``) and its deleted ids.
DELTA_FILE = "delta"
DELETED_FILE = "deleted"
#: Why a row id is in ``source/deleted.parquet``: a ``$deletedEntity``, or a changed row
#: that no longer passes the mapping's filter or the pair's business unit (deactivated,
#: moved): either way the task's target row lost its source.
DELETED, LEFT_SCOPE = "deleted in the source", "no longer passes the source filter or business unit"
#: Largest ``odata.maxpagesize`` Dataverse accepts.
MAX_PAGE_SIZE = 5000


class StoredToken(TypedDict):
    """A task's token and what it was taken for (a token is reused only for the same)."""

    token: str
    entity_set: str
    scope: str
    select: list[str]
    run_id: str
    updated_at: str


class DeltaState(TypedDict):
    """What one extract read by change tracking (``source/delta.json``)."""

    token: str
    entity_set: str
    scope: str
    select: list[str]
    initial: bool
    whole: bool  # the rows staged are the whole table (as scoped): absent rows are gone
    fallback: str | None  # why a full read was made instead of a delta, if one was
    returned: int  # new and changed rows the service returned (every business unit)
    staged: int  # rows kept (filter and business unit) and staged, pending re-reads included
    deleted: int
    read_at: str


@dataclass(frozen=True)
class DeltaTokens(TaskStateFile):
    """The change-tracking token of one task of one template for one company pair."""

    folder = FOLDER

    def read(self) -> StoredToken | None:
        if not self.path.exists():
            return None
        with self.path.open("r") as handle:
            return json.load(handle)  # type: ignore[no-any-return]

    def commit(self, state: DeltaState, run_id: str) -> None:
        """Keep the token of a run whose load finished (atomically: old or new, never half)."""
        stored: StoredToken = {
            "token": state["token"],
            "entity_set": state["entity_set"],
            "scope": state["scope"],
            "select": state["select"],
            "run_id": run_id,
            "updated_at": now_utc(),
        }
        with atomic_write(self.path, "w") as handle:
            json.dump(stored, handle, sort_keys=True)


def tokens_of(ctx: SyncContext) -> DeltaTokens:
    """The token store of a step's template, company pair and task."""
    return DeltaTokens.of(ctx)


def tracked_read_wanted(ctx: SyncContext, window: Window) -> bool:
    """Whether this extract reads by change tracking: a Dataverse source with a change field
    (a Sales source), a scheduled run or a full refresh, and a table that allows it."""
    task = ctx.task
    if task.source_system != "dataverse" or not task.source.change_field:
        return False
    if not (window.full_refresh or window.since_watermark):
        return False  # an explicit window is read exactly, by its change field
    try:
        RowFilter(task.source.filter)
    except UnsupportedFilter as exc:
        log.warning(
            "%s/%s: the source filter cannot be applied to a delta (%s): reading by %s window",
            ctx.template.name,
            task.name,
            exc,
            task.source.change_field,
        )
        return False
    return bool(ctx.hooks.for_system("dataverse").change_tracking_enabled(task.source.entity_set))


def _same_scope(stored: StoredToken, entity_set: str, scope: str, select: list[str]) -> bool:
    return (stored["entity_set"], stored["scope"], list(stored["select"])) == (entity_set, scope, select)


def row_keys(page: pd.DataFrame, key_columns: Sequence[str]) -> list[tuple[str, ...]]:
    """Each row's source key, folded (keys match case-insensitively), to stage a row once."""
    return [
        tuple("" if v is None else str(v).casefold() for v in row)
        for row in page[list(key_columns)].itertuples(index=False)
    ]


def read_tracked(
    ctx: SyncContext,
    window: Window,
    company_filter: str | None,
    pending_filters: Sequence[str],
    read_filtered: Callable[[str], Iterator[pd.DataFrame]],
    sharers: KeySharers | None = None,
    parked: Sequence[tuple[list[str], list[str]]] = (),
) -> tuple[str, int]:
    """Stage the task's source rows from a tracked read (plus pending rows by key); write
    ``source/delta.json`` and ``source/deleted.parquet``. Returns (path, rows staged).

    :param company_filter: the pair's business-unit clause, applied client-side.
    :param pending_filters: filters reading the pending ledger's keys (no window clause).
    :param read_filtered: an ordinary read of the source entity set with a filter.
    :param sharers: on a delta, the other rows of the keys it brought are read too
        (`prospect_to_cash.sync.key_rules`), each row once (by its ``primary_id``).
    :param parked: the pending ledger's parked keys with their rows' ids: a key one of
        whose rows the delta deletes (or drops from the scope) is read again by ``sharers``.
    """
    task = ctx.task
    scope = RowFilter(task.source.filter, company_filter)
    scope_text = " and ".join(f"({t})" for t in (task.source.filter, company_filter) if t)
    columns = list(task.source_columns)
    select = list(dict.fromkeys([*columns, *scope.columns]))
    stored = None if window.full_refresh else tokens_of(ctx).read()
    fallback: str | None = None
    if window.full_refresh:
        token = None
    elif stored is None:
        token, fallback = None, "no delta token yet"
    elif not _same_scope(stored, task.source.entity_set, scope_text, select):
        token, fallback = None, "the mapping's source filter, business unit or columns changed"
    else:
        token = stored["token"]
    try:
        state, path, staged = _read(
            ctx, scope, scope_text, select, token, pending_filters, read_filtered, sharers, parked
        )
    except DeltaTokenInvalidError as exc:
        fallback = "the delta token expired" if exc.expired else "the service refused the delta token"
        state, path, staged = _read(
            ctx, scope, scope_text, select, None, pending_filters, read_filtered, None, ()
        )
    if fallback:
        log.warning(
            "%s/%s [%s]: %s: read %s whole through change tracking (%d rows staged)",
            ctx.template.name,
            task.name,
            ctx.pair.legal_entity,
            fallback,
            task.source.entity_set,
            staged,
        )
    state["fallback"] = fallback
    ctx.staging.write_json("source", DELTA_FILE, state)
    return path, staged


def _read(
    ctx: SyncContext,
    scope: RowFilter,
    scope_text: str,
    select: list[str],
    token: str | None,
    pending_filters: Sequence[str],
    read_filtered: Callable[[str], Iterator[pd.DataFrame]],
    sharers: KeySharers | None,
    parked: Sequence[tuple[list[str], list[str]]],
) -> tuple[DeltaState, str, int]:
    task = ctx.task
    columns = list(task.source_columns)
    key_columns = list(task.source.key)
    seen: set[tuple[str, ...]] = set()
    left: list[str] = []  # rows a delta brought that no longer pass the filter or unit
    written: set[str] = set()  # primary ids staged (a delta's key sharers come once)
    primary_id = task.source.primary_id
    hook = ctx.hooks.for_system("dataverse")
    page_size = min(ctx.options.page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    read_at = now_utc()
    with ctx.staging.page_writer("source", "rows", columns) as writer:

        def keep(page: pd.DataFrame) -> None:
            mask = scope.mask(page)
            kept = page[mask]
            if token is not None and primary_id:
                left.extend(str(v).lower() for v in page.loc[~mask, primary_id] if v is not None)
            if len(kept):
                writer.write(kept[columns])
                if token is not None:  # a delta: pending rows it brought are not read twice
                    seen.update(row_keys(kept, key_columns))
                    if primary_id:
                        written.update(str(v).lower() for v in kept[primary_id])
                    if sharers is not None and primary_id:
                        sharers.observe(kept)

        result = hook.read_changes(
            task.source.entity_set, select=select, delta_token=token, page_size=page_size, on_page=keep
        )
        if token is not None:  # a whole read holds the pending rows already
            for query in pending_filters:
                for page in read_filtered(query):
                    keys = row_keys(page, key_columns)
                    fresh = [k not in seen for k in keys]
                    seen.update(keys)  # a pending line of a released header comes once
                    if any(fresh):
                        writer.write(page[fresh])
                        if primary_id:
                            written.update(str(v).lower() for v in page.loc[fresh, primary_id])
            gone = {*(str(i).lower() for i in result.deleted_ids), *left}
            for values, ids in parked if sharers is not None else ():
                if gone.intersection(ids):  # a twin of a parked duplicate is gone
                    sharers.want(values)
            # the other rows of the delta's keys (a number shared with an older row)
            for query in sharers.filters() if sharers is not None and primary_id else []:
                for page in read_filtered(query):
                    fresh = [str(v).lower() not in written for v in page[primary_id]]
                    if any(fresh):
                        writer.write(page[fresh])
                        written.update(str(v).lower() for v in page.loc[fresh, primary_id])
    deleted = pa.table(
        {
            "id": text_array([*result.deleted_ids, *left]),
            "reason": text_array([DELETED] * len(result.deleted_ids) + [LEFT_SCOPE] * len(left)),
        }
    )
    ctx.staging.write_table("source", DELETED_FILE, deleted)
    state: DeltaState = {
        "token": result.delta_token,
        "entity_set": task.source.entity_set,
        "scope": scope_text,
        "select": select,
        "initial": result.initial,
        "whole": result.initial,
        "fallback": None,
        "returned": result.rows,
        "staged": writer.rows,
        "deleted": len(result.deleted_ids),
        "read_at": read_at,
    }
    return state, str(writer.path), writer.rows


def start_tracking(ctx: SyncContext, company_filter: str | None) -> None:
    """Take a first token without staging anything: a tracked read of the table's keys only.

    For a task that was never loaded (no token, no watermark): its scheduled run reads its
    window as before (a full refresh is the documented start), and the next run reads the
    delta. The token is taken before the window is read, and the caller reads the window
    up to now, so a change lands in this window, the next delta, or both; never in neither.
    """
    task = ctx.task
    scope = RowFilter(task.source.filter, company_filter)
    scope_text = " and ".join(f"({t})" for t in (task.source.filter, company_filter) if t)
    select = list(dict.fromkeys([*task.source_columns, *scope.columns]))
    read_at = now_utc()
    result = ctx.hooks.for_system("dataverse").read_changes(
        task.source.entity_set,
        select=list(dict.fromkeys([task.source.primary_id or task.source.key[0]])),
        page_size=MAX_PAGE_SIZE,
        on_page=lambda page: None,
    )
    log.warning(
        "%s/%s [%s]: no delta token and no high-water mark yet: change tracking started "
        "(%d keys read); this run reads its window, the next one the delta",
        ctx.template.name,
        task.name,
        ctx.pair.legal_entity,
        result.rows,
    )
    state: DeltaState = {
        "token": result.delta_token,
        "entity_set": task.source.entity_set,
        "scope": scope_text,
        "select": select,
        "initial": True,
        "whole": False,  # the rows this run stages come from its window
        "fallback": "no delta token and no high-water mark yet",
        "returned": 0,
        "staged": 0,
        "deleted": 0,
        "read_at": read_at,
    }
    ctx.staging.write_json("source", DELTA_FILE, state)


def commit_token(ctx: SyncContext) -> None:
    """After a finished load: keep the token the extract took (if it read by tracking)."""
    if ctx.staging.exists("source", DELTA_FILE, ".json"):
        tokens_of(ctx).commit(ctx.staging.read_json("source", DELTA_FILE), ctx.run_id)
