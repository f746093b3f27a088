"""OData reading: the extract and snapshot steps, page by page into staging.

``extract`` reads the source rows of the change window (and the source-side reference
tables), ``snapshot`` the target's current rows (and the target-side ones); each step's
reads run side by side. The load reads through :func:`read_pages` too, when it must look
at a row it found already there.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from prospect_to_cash.hooks.odata import and_filters, format_literal
from prospect_to_cash.sync.changes import (
    DELETED_FILE,
    DELTA_FILE,
    read_tracked,
    row_keys,
    start_tracking,
    tokens_of,
    tracked_read_wanted,
)
from prospect_to_cash.sync.children import released_parent_filters
from prospect_to_cash.sync.context import SyncContext, base_result, make_context
from prospect_to_cash.sync.contracts import CompanyPair, SyncArgs, SyncOptions, Window, resolve
from prospect_to_cash.sync.errors import SyncError
from prospect_to_cash.sync.key_rules import KeySharers, key_filters
from prospect_to_cash.sync.pending import ledger_of
from prospect_to_cash.sync.values import py
from prospect_to_cash.sync.watermarks import ReadWindow, now_utc, watermark_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import pandas as pd
    from typing_extensions import Unpack

    from prospect_to_cash.sync.contracts import ExtractResult, SnapshotResult
    from prospect_to_cash.sync.mapping import Template

log = logging.getLogger(__name__)


def odata_literal(value: Any) -> str:
    """An OData literal for a value read from staging (numpy and pandas scalars included)."""
    return format_literal(py(value))


def read_pages(
    ctx: SyncContext, system: str, entity_set: str, select: Sequence[str], filter: str | None
) -> Iterator[pd.DataFrame]:
    hook = ctx.hooks.for_system(system)
    page_size = ctx.options.page_size
    kwargs: dict[str, Any] = {"select": list(select), "filter": filter}
    if page_size:
        kwargs["page_size"] = page_size
    if system == "fno":
        kwargs["companies"] = [ctx.pair.legal_entity]
    return hook.iter_pages(entity_set, **kwargs)


def _stream(
    ctx: SyncContext,
    area: str,
    name: str,
    system: str,
    entity_set: str,
    select: Sequence[str],
    filter: str | None,
    more: Sequence[str] = (),
    sharers: KeySharers | None = None,
) -> tuple[str, int]:
    """Stage the rows of ``filter``, then those of each of ``more`` (each disjoint from
    ``filter``; a row two of ``more`` bring, a pending line of a released header, is
    staged once), then the rows outside the window that share a key with a row of
    ``filter`` (:mod:`~prospect_to_cash.sync.key_rules`)."""
    key = list(ctx.task.source.key)
    seen: set[tuple[str, ...]] = set()
    with ctx.staging.page_writer(area, name, select) as writer:
        for number, query in enumerate((filter, *more)):
            for page in read_pages(ctx, system, entity_set, select, query):
                if number:
                    keys = row_keys(page, key)
                    fresh = [k not in seen for k in keys]
                    seen.update(keys)
                    page = page[fresh]
                writer.write(page)
                if sharers is not None and not number:
                    sharers.observe(page)
        if sharers is not None:
            before = writer.rows
            for query in sharers.filters():
                for page in read_pages(ctx, system, entity_set, select, query):
                    writer.write(page)
            if writer.rows > before:
                log.info(
                    "%s/%s [%s]: %d row(s) outside the window share a source key with rows of it "
                    "(read so that every row of those keys is decided together)",
                    ctx.template.name,
                    ctx.task.name,
                    ctx.pair.legal_entity,
                    writer.rows - before,
                )
    return str(writer.path), writer.rows


def _business_unit_filter(ctx: SyncContext) -> str | None:
    pair = ctx.pair
    if pair.business_unit_id:
        return f"_owningbusinessunit_value eq {pair.business_unit_id}"
    if not pair.business_unit:
        return None
    hook = ctx.hooks.for_system("dataverse")
    found: list[str] = []
    for page in hook.iter_pages(
        "businessunits",
        select=["businessunitid", "name"],
        filter=f"name eq {odata_literal(pair.business_unit)}",
    ):
        found.extend(str(v) for v in page["businessunitid"].tolist())
    if len(found) != 1:
        raise SyncError(
            f"business unit {pair.business_unit!r} of legal entity {pair.legal_entity!r}: "
            f"found {len(found)} rows, expected 1"
        )
    return f"_owningbusinessunit_value eq {found[0]}"


def _company_filter(ctx: SyncContext) -> str | None:
    """The clause that keeps the company pair's rows of a Dataverse source (or None)."""
    if ctx.task.source_system == "dataverse" and ctx.task.source.company_scope == "business_unit":
        return _business_unit_filter(ctx)
    return None


def _source_filter(ctx: SyncContext, window: Window) -> tuple[str | None, list[str], KeySharers | None]:
    """The window's filter, the filters that re-read the pending ledger's rows (and the
    lines of headers that landed after waiting, :mod:`~prospect_to_cash.sync.children`)
    the window leaves out (outside the window, so no row is read twice), and what reads
    the other rows of the window's keys (None: the source is read whole)."""
    task = ctx.task
    span = outside = None
    if task.source.change_field and window.bounded:
        field = task.source.change_field
        bounds, beyond = [], []
        if window.start:
            bounds.append(f"{field} ge {window.start}")
            beyond.append(f"{field} lt {window.start}")
        if window.end:
            bounds.append(f"{field} lt {window.end}")
            beyond.append(f"{field} ge {window.end}")
        span = " and ".join(bounds)
        outside = " or ".join(beyond)
    company = _company_filter(ctx)
    query = and_filters(task.source.filter, span, company)
    if outside is None:
        return query, [], None  # the source is read whole: pending rows and lines come with it
    keys = ledger_of(ctx).key_values(len(task.source.key))
    scope = (task.source.filter, outside, company)
    lines = [and_filters(*scope, f) for f in released_parent_filters(ctx)]
    sharers = KeySharers.of(task.source.key, scope, keys)
    return query, [*key_filters(task.source.key, keys, *scope), *lines], sharers


def _reference_columns(ctx: SyncContext, name: str) -> list[str]:
    return list(ctx.task.reference_columns(name))


#: Reads of one step (its rows and each reference table) in flight at once.
READ_PARALLELISM = 4


def _read_step(
    ctx: SyncContext,
    side: str,
    rows: tuple[str, str, Sequence[str], str | None],
    more: Sequence[str] = (),
    sharers: KeySharers | None = None,
    read_rows: Callable[[], tuple[str, int]] | None = None,
) -> tuple[tuple[str, int], dict[str, Any]]:
    """Stage a step's rows and its ``side``'s reference tables, reading them side by side.

    The reads are independent, and each mostly waits: on the service's latency, or for a
    free slot while another company pair's writes hold them. Read one after another they
    add those waits up; side by side the step waits about as long as its longest read.
    ``read_rows`` stages the rows another way (a tracked read) instead of ``rows``.
    Returns the rows' (path, count) and ``{reference: {"path", "rows"}}``.
    """
    area = "source" if side == "source" else "target"
    system = rows[0]
    references = [reference for reference in ctx.task.references if reference.side == side]
    with ThreadPoolExecutor(
        max_workers=min(READ_PARALLELISM, len(references) + 1), thread_name_prefix=f"p2c-{area}"
    ) as pool:
        if read_rows is not None:
            main = pool.submit(read_rows)
        else:
            main = pool.submit(_stream, ctx, area, "rows", *rows, more, sharers)
        futures = {
            reference.name: pool.submit(
                _stream,
                ctx,
                area,
                f"ref-{reference.name}",
                system,
                reference.entity_set,
                _reference_columns(ctx, reference.name),
                reference.filter,
            )
            for reference in references
        }
        staged = {name: dict(zip(("path", "rows"), f.result(), strict=True)) for name, f in futures.items()}
        return main.result(), staged


def extract(
    template: str | Template,
    task: str,
    *,
    legal_entity: str | CompanyPair,
    options: SyncOptions | None = None,
    window: Window | None = None,
    **given: Unpack[SyncArgs],
) -> ExtractResult:
    """Read the source rows of the window (Dataverse ``modifiedon`` within it; F&O entities
    without a change timestamp whole) and the source-side reference tables, page by page
    into staging.

    :param options: how to run (`SyncOptions`); ``given`` keywords are laid over it.
    :param window: the change window (else built from ``data_interval_start``,
        ``data_interval_end`` and ``full_refresh`` among ``given``).
    """
    options, window = resolve(options, window, given)
    ctx = make_context(template, task, legal_entity, options)
    mark = watermark_of(ctx)
    window = mark.window(window, options.watermark_overlap)
    read: ReadWindow = {
        "start": window.start,
        "end": window.end,
        "full_refresh": window.full_refresh,
        "read_at": now_utc(),
    }
    task = ctx.task
    for stale in (ctx.staging.path("source", DELTA_FILE, ".json"), ctx.staging.path("source", DELETED_FILE)):
        if stale.exists():  # an earlier attempt's tracked read must not move this run's token
            stale.unlink()
    read_rows = None
    tracked = tracked_read_wanted(ctx, window)
    if tracked and not window.full_refresh and tokens_of(ctx).read() is None and mark.read() is None:
        start_tracking(ctx, _company_filter(ctx))  # never loaded: the window, then deltas
        window, tracked = window.but(end=None), False
        read["end"] = None
    if tracked:
        company = _company_filter(ctx)
        keys = ledger_of(ctx).key_values(len(task.source.key))
        scope = (task.source.filter, company)
        lines = [and_filters(*scope, f) for f in released_parent_filters(ctx)]
        pending = [*key_filters(task.source.key, keys, *scope), *lines]
        sharers = KeySharers.of(task.source.key, scope, keys) if window.since_watermark else None

        def by_filter(query: str) -> Iterator[pd.DataFrame]:
            return read_pages(ctx, "dataverse", task.source.entity_set, task.source_columns, query)

        def read_rows() -> tuple[str, int]:
            return read_tracked(ctx, window, company, pending, by_filter, sharers)

        query = None
    else:
        query, pending, sharers = _source_filter(ctx, window)
    (path, rows), references = _read_step(
        ctx,
        "source",
        (task.source_system, task.source.entity_set, task.source_columns, query),
        pending,
        sharers,
        read_rows,
    )
    log.info(
        "%s/%s [%s]: extracted %d rows from %s (%d read(s) of pending keys besides the changes)",
        ctx.template.name,
        ctx.task.name,
        ctx.pair.legal_entity,
        rows,
        ctx.task.source.entity_set,
        len(pending),
    )
    return {
        **base_result(ctx, "extract"),
        "path": path,
        "read": rows,
        "references": {name: item["path"] for name, item in references.items()},
        "full_refresh": window.full_refresh,
        "window": window.to_dict(),
        "window_file": ctx.staging.write_json("source", "window", read),
    }


def snapshot(
    template: str | Template,
    task: str,
    *,
    legal_entity: str | CompanyPair,
    options: SyncOptions | None = None,
    **given: Unpack[SyncArgs],
) -> SnapshotResult:
    """Read the target's current rows (keys and compared fields) and the target-side
    reference tables into staging."""
    options, _ = resolve(options, None, given)
    ctx = make_context(template, task, legal_entity, options)
    (path, rows), references = _read_step(
        ctx,
        "target",
        (
            ctx.task.target_system,
            ctx.task.target.entity_set,
            ctx.task.snapshot_columns,
            ctx.task.target.filter,
        ),
    )
    log.info(
        "%s/%s [%s]: snapshot of %d %s rows",
        ctx.template.name,
        ctx.task.name,
        ctx.pair.legal_entity,
        rows,
        ctx.task.target.entity_set,
    )
    return {
        **base_result(ctx, "snapshot"),
        "path": path,
        "rows": rows,
        "references": {name: item["path"] for name, item in references.items()},
    }
