"""Sales sources read by Dataverse change tracking: what changed since the last load, not
every row of a ``modifiedon`` window.

powerapps-docs, "Use change tracking to synchronize data with external systems": a read
with ``Prefer: odata.track-changes`` returns the whole table and a ``$deltatoken``; the
token later returns the rows created or changed since, then the deleted ones. The engine
uses it for a Dataverse source with a change field whose table has
``ChangeTrackingEnabled``, when the run is a scheduled one (``since_watermark``) or a full
refresh; an explicit window (backfill, ``--since/--until``) reads exactly its window by
``modifiedon``, and the token stays as it was.

- **One delta, shared** (`prospect_to_cash.sync.delta_chain`): the table's delta is read
  once per template, task and run into a segment every company pair consumes; each pair
  keeps a cursor (the last segment it consumed, `StoredToken`) beside the watermarks:
  ``<root>/_delta_tokens/<template>/<company>/<task>.json``, replaced atomically. The
  extract writes what it consumed into the run's ``source/delta.json``; only a finished
  load (not a dry run) moves the cursor, so a run that fails before its load consumes the
  same segments again.
- **No usable cursor** (none yet, one from before shared deltas, or the mapping's filter,
  business unit or columns changed since): a tracked read of the whole table, logged
  once, and the cursor starts at the chain's head. An **expired** token (``0x80044352``)
  or one the service does not know: the next segment is a whole read, logged once.
- **Filters**: the service refuses ``$filter`` on tracked reads, so the mapping's source
  filter and the company pair's business unit are applied to each page as it arrives
  (`prospect_to_cash.sync.row_filter`), before anything is staged.
- **Company pairs**: each keeps its business unit's rows of the segments; a delete is
  reported once (`delta_chain.own_deletes`).
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
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import pandas as pd
import pyarrow as pa

from prospect_to_cash.hooks.errors import DeltaTokenInvalidError
from prospect_to_cash.sync.delta_chain import DeltaChain, SegmentInfo, forget, new_info, own_deletes, segment
from prospect_to_cash.sync.row_filter import RowFilter, UnsupportedFilter
from prospect_to_cash.sync.staging import TaskStateFile, atomic_write, text_array
from prospect_to_cash.sync.watermarks import now_utc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from prospect_to_cash.hooks.delta import DeltaRead
    from prospect_to_cash.sync.context import SyncContext
    from prospect_to_cash.sync.contracts import Window
    from prospect_to_cash.sync.key_rules import KeySharers
    from prospect_to_cash.sync.staging import TextPageWriter

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
    chain: NotRequired[str]  # the shared delta (`delta_chain`) the cursor belongs to
    segment: NotRequired[int]  # the last segment of it this pair consumed


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
    chain: str
    segment: int | None  # the last shared segment consumed (None: no cursor to keep)


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
            "chain": state["chain"],
        }
        if state["segment"] is not None:
            stored["segment"] = state["segment"]
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


def _fallback(
    stored: StoredToken | None, chain: DeltaChain, scope_text: str, select: list[str]
) -> str | None:
    """Why this pair cannot go on from its cursor (None: it can)."""
    if stored is None:
        return "no delta token yet"
    if "segment" not in stored:
        return "the token predates the shared delta (one per template and task)"
    if stored.get("chain") != chain.name or list(stored["select"]) != select:
        return "the mapping's source filter, business unit or columns changed"
    if stored["scope"] != scope_text:
        return "the mapping's source filter, business unit or columns changed"
    if stored["segment"] not in chain.segments():
        return "the shared delta no longer holds this pair's last segment"
    return None


def read_tracked(
    ctx: SyncContext,
    window: Window,
    company_filter: str | None,
    pending_filters: Sequence[str],
    read_filtered: Callable[[str], Iterator[pd.DataFrame]],
    sharers: KeySharers | None = None,
    parked: Sequence[tuple[list[str], list[str]]] = (),
) -> tuple[str, int]:
    """Stage the task's source rows from the shared delta (`delta_chain`: the segments
    after this pair's cursor, reading a new one unless this run has one) or a whole
    tracked read, plus pending rows by key; write ``source/delta.json`` and
    ``source/deleted.parquet``. Returns (path, rows staged).

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
    select = list(dict.fromkeys([*task.source_columns, *scope.columns]))
    chain = DeltaChain.of(ctx, select)
    reader = _Reader(ctx, scope, scope_text, select, chain)
    stored = tokens_of(ctx).read()
    fallback = None if window.full_refresh else _fallback(stored, chain, scope_text, select)
    if window.full_refresh or fallback is not None:
        state, path, staged = reader.whole(pending_filters, read_filtered)
    else:
        assert stored is not None
        assert "segment" in stored
        state, path, staged = reader.delta(stored["segment"], pending_filters, read_filtered, sharers, parked)
        fallback = state["fallback"]
    if fallback:
        state["fallback"] = fallback
        log.warning(
            "%s/%s [%s]: %s: read %s whole through change tracking (%d rows staged)",
            ctx.template.name,
            task.name,
            ctx.pair.legal_entity,
            fallback,
            task.source.entity_set,
            staged,
        )
    ctx.staging.write_json("source", DELTA_FILE, state)
    return path, staged


@dataclass
class _Reader:
    """One extract's tracked read: whole, or the shared segments after a cursor."""

    ctx: SyncContext
    scope: RowFilter
    scope_text: str
    select: list[str]
    chain: DeltaChain

    def _state(self, token: str, segment: int | None, **values: Any) -> DeltaState:
        state: DeltaState = {
            "token": token,
            "entity_set": self.ctx.task.source.entity_set,
            "scope": self.scope_text,
            "select": self.select,
            "initial": True,
            "whole": True,
            "fallback": None,
            "returned": 0,
            "staged": 0,
            "deleted": 0,
            "read_at": now_utc(),
            "chain": self.chain.name,
            "segment": segment,
        }
        state.update(values)  # type: ignore[typeddict-item]
        return state

    def _read_changes(self, token: str | None, on_page: Callable[[pd.DataFrame], None]) -> DeltaRead:
        page_size = min(self.ctx.options.page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
        return self.ctx.hooks.for_system("dataverse").read_changes(
            self.ctx.task.source.entity_set,
            select=self.select,
            delta_token=token,
            page_size=page_size,
            on_page=on_page,
        )

    def whole(
        self, pending_filters: Sequence[str], read_filtered: Callable[[str], Iterator[pd.DataFrame]]
    ) -> tuple[DeltaState, str, int]:
        """The whole table (this pair's rows of it); the pair's deltas then start at the
        chain's head, whose token was taken before this read (or by it, for a new chain)."""
        ctx, columns = self.ctx, list(self.ctx.task.source_columns)
        read: dict[str, Any] = {}

        def whole_read(_: TextPageWriter | None) -> SegmentInfo:
            with ctx.staging.page_writer("source", "rows", columns) as writer:
                result = self._read_changes(
                    None, lambda page: writer.write(page[self.scope.mask(page)][columns])
                )
            read.update(path=str(writer.path), rows=writer.rows, returned=result.rows)
            return new_info(ctx, result.delta_token, result.rows, (), base=True)

        present = self.chain.segments()
        head = present[-1] if present else segment(ctx, self.chain, 0, whole_read, columns=None)
        if not read:  # the chain existed (or another pair started it): read after its head
            whole_read(None)
        ctx.staging.write_table("source", DELETED_FILE, _deleted_table([], []))
        state = self._state(
            self.chain.info(head)["token"], head, returned=read["returned"], staged=read["rows"]
        )
        return state, read["path"], read["rows"]

    def delta(
        self,
        cursor: int,
        pending_filters: Sequence[str],
        read_filtered: Callable[[str], Iterator[pd.DataFrame]],
        sharers: KeySharers | None,
        parked: Sequence[tuple[list[str], list[str]]],
    ) -> tuple[DeltaState, str, int]:
        """The segments after ``cursor`` (a new one read unless this run has one)."""
        ctx, chain = self.ctx, self.chain
        after = [seq for seq in chain.segments() if seq > cursor]
        if not any(chain.info(seq)["run_id"] == ctx.run_id for seq in after):
            self._advance()
        infos = [chain.info(seq) for seq in chain.segments() if seq > cursor]
        wholes = [n for n, info in enumerate(infos) if info["whole"]]
        if wholes:  # a whole read supersedes what came before it
            infos = infos[wholes[-1] :]
        return self._stage(infos, bool(wholes), pending_filters, read_filtered, sharers, parked)

    def _advance(self) -> None:
        """Read the next segment from the head's token (a whole one when it expired)."""
        ctx, chain = self.ctx, self.chain
        head = chain.segments()[-1]

        def delta(writer: TextPageWriter | None) -> SegmentInfo:
            assert writer is not None
            token = chain.info(head)["token"]
            result = self._read_changes(token, writer.write)
            return new_info(ctx, result.delta_token, result.rows, result.deleted_ids)

        def expired(why: str) -> Callable[[TextPageWriter | None], SegmentInfo]:
            def read(writer: TextPageWriter | None) -> SegmentInfo:
                assert writer is not None
                result = self._read_changes(None, writer.write)
                return new_info(ctx, result.delta_token, result.rows, (), whole=True, fallback=why)

            return read

        try:
            segment(ctx, chain, head + 1, delta, columns=self.select)
        except DeltaTokenInvalidError as exc:
            why = "the delta token expired" if exc.expired else "the service refused the delta token"
            segment(ctx, chain, head + 1, expired(why), columns=self.select)

    def _stage(
        self,
        infos: list[SegmentInfo],
        whole: bool,
        pending_filters: Sequence[str],
        read_filtered: Callable[[str], Iterator[pd.DataFrame]],
        sharers: KeySharers | None,
        parked: Sequence[tuple[list[str], list[str]]],
    ) -> tuple[DeltaState, str, int]:
        """Stage this pair's rows of ``infos`` (newest version of each row), then the
        pending rows and the key sharers; write ``source/deleted.parquet``."""
        ctx, task = self.ctx, self.ctx.task
        columns, key_columns, primary_id = (
            list(task.source_columns),
            list(task.source.key),
            task.source.primary_id,
        )
        seen: set[tuple[str, ...]] = set()
        done: set[str] = set()  # ids met in a newer segment (each row's latest version wins)
        left: list[str] = []  # rows that no longer pass the filter or business unit
        written: set[str] = set()  # primary ids staged (a delta's key sharers come once)
        deleted: list[tuple[SegmentInfo, list[str]]] = []
        with ctx.staging.page_writer("source", "rows", columns) as writer:
            for info in reversed(infos):
                gone = [i for i in info["deleted_ids"] if i not in done]
                done.update(gone)
                deleted.append((info, gone))
                for page in self.chain.pages(info):
                    ids = _identities(page, primary_id, key_columns)
                    page, ids = page[~ids.isin(done)], ids[~ids.isin(done)]
                    done.update(ids)
                    mask = self.scope.mask(page)
                    if primary_id and not info["whole"]:
                        left.extend(ids[~mask])
                    kept = page[mask]
                    if len(kept):
                        writer.write(kept[columns])
                        seen.update(row_keys(kept, key_columns))
                        written.update(ids[mask])
                        if sharers is not None and primary_id:
                            sharers.observe(kept)
            for query in pending_filters:
                for page in read_filtered(query):
                    # each row once (a pending line of a released header comes twice), by its
                    # id: a pending duplicate key one of whose rows the delta brought still
                    # needs its other rows (dropping them by key would land the key)
                    if primary_id:
                        fresh = [str(v).lower() not in written for v in page[primary_id]]
                    else:
                        keys = row_keys(page, key_columns)
                        fresh = [k not in seen for k in keys]
                        seen.update(keys)
                    if any(fresh):
                        writer.write(page[fresh])
                        if primary_id:
                            written.update(str(v).lower() for v in page.loc[fresh, primary_id])
            gone_ids = {i for _, ids in deleted for i in ids} | set(left)
            if not primary_id:
                sharers = None  # key rules on a delta name the rows by id (as before shared deltas)
            for values, ids in parked if sharers is not None else ():
                if gone_ids.intersection(ids):  # a twin of a parked duplicate is gone
                    sharers.want(values)
            # the other rows of the delta's keys (a number shared with an older row)
            for query in sharers.filters() if sharers is not None else []:
                for page in read_filtered(query):
                    fresh = [str(v).lower() not in written for v in page[primary_id]]
                    if any(fresh):
                        writer.write(page[fresh])
                        written.update(str(v).lower() for v in page.loc[fresh, primary_id])
        reported = own_deletes(ctx, deleted)
        ctx.staging.write_table("source", DELETED_FILE, _deleted_table(reported, left))
        state = self._state(
            infos[-1]["token"],
            infos[-1]["seq"],
            initial=whole,
            whole=whole,
            fallback=infos[-1]["fallback"] if whole else None,
            returned=sum(info["returned"] for info in infos),
            staged=writer.rows,
            deleted=len(reported),
        )
        return state, str(writer.path), writer.rows


def _identities(page: pd.DataFrame, primary_id: str | None, key_columns: Sequence[str]) -> pd.Series:
    """Each row's identity across segments: its id (lower case), else its folded source
    key (a table the mapping names no ``primary_id`` for, e.g. order lines)."""
    if primary_id:
        return page[primary_id].str.lower()
    return pd.Series(["|".join(key) for key in row_keys(page, key_columns)], index=page.index, dtype=object)


def _deleted_table(deleted: Sequence[str], left: Sequence[str]) -> pa.Table:
    return pa.table(
        {
            "id": text_array([*deleted, *left]),
            "reason": text_array([DELETED] * len(deleted) + [LEFT_SCOPE] * len(left)),
        }
    )


def start_tracking(ctx: SyncContext, company_filter: str | None) -> None:
    """Start this pair's cursor without staging anything, for a task never loaded (no
    token, no watermark): its scheduled run reads its window as before (a full refresh is
    the documented start), and the next run reads the delta. The cursor is the chain's
    head, or a new chain's first token (a tracked read of the table's keys only), taken
    before the window is read up to now: a change lands in this window, the next delta,
    or both; never in neither.
    """
    task = ctx.task
    scope = RowFilter(task.source.filter, company_filter)
    scope_text = " and ".join(f"({t})" for t in (task.source.filter, company_filter) if t)
    select = list(dict.fromkeys([*task.source_columns, *scope.columns]))
    chain = DeltaChain.of(ctx, select)

    def keys_only(_: TextPageWriter | None) -> SegmentInfo:
        result = ctx.hooks.for_system("dataverse").read_changes(
            task.source.entity_set,
            select=[task.source.primary_id or task.source.key[0]],
            page_size=MAX_PAGE_SIZE,
            on_page=lambda page: None,
        )
        return new_info(ctx, result.delta_token, result.rows, (), base=True)

    present = chain.segments()
    head = present[-1] if present else segment(ctx, chain, 0, keys_only, columns=None)
    log.warning(
        "%s/%s [%s]: no delta token and no high-water mark yet: change tracking starts at the "
        "shared delta's segment %d; this run reads its window, the next one the delta",
        ctx.template.name,
        task.name,
        ctx.pair.legal_entity,
        head,
    )
    state: DeltaState = {
        "token": chain.info(head)["token"],
        "entity_set": task.source.entity_set,
        "scope": scope_text,
        "select": select,
        "initial": True,
        "whole": False,  # the rows this run stages come from its window
        "fallback": "no delta token and no high-water mark yet",
        "returned": 0,
        "staged": 0,
        "deleted": 0,
        "read_at": now_utc(),
        "chain": chain.name,
        "segment": head,
    }
    ctx.staging.write_json("source", DELTA_FILE, state)


def commit_token(ctx: SyncContext) -> None:
    """After a finished load: move this pair's cursor to what the extract consumed (if it
    read by tracking), then drop the segments every pair has consumed."""
    if not ctx.staging.exists("source", DELTA_FILE, ".json"):
        return
    state: DeltaState = ctx.staging.read_json("source", DELTA_FILE)
    tokens_of(ctx).commit(state, ctx.run_id)
    environment = ctx.template.environment
    pairs = (
        [pair.legal_entity for pair in environment.company_pairs] if environment else [ctx.pair.legal_entity]
    )
    cursors = []
    for company in pairs:
        stored = DeltaTokens(ctx.staging.root, ctx.template.name, company, ctx.task.name).read()
        if stored is not None and stored.get("chain") == state["chain"] and "segment" in stored:
            cursors.append(stored["segment"])
    chain = DeltaChain(ctx.staging.root, ctx.template.name, ctx.task.name, state["chain"])
    forget(chain, cursors)
