"""OData reading: the extract and snapshot steps, page by page into staging.

``extract`` reads the source rows of the change window (and the source-side reference
tables), ``snapshot`` the target's current rows (and the target-side ones); each step's
reads run side by side. The load reads through :func:`read_pages` too, when it must look
at a row it found already there.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pandas as pd

from prospect_to_cash.hooks.odata import and_filters, format_literal, is_guid
from prospect_to_cash.sync import exports, source_digests
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
from prospect_to_cash.sync.company_scope import business_unit_filter as _business_unit_filter
from prospect_to_cash.sync.company_scope import needs_business_unit, reference_filter, target_filter
from prospect_to_cash.sync.context import SyncContext, base_result, make_context
from prospect_to_cash.sync.contracts import CompanyPair, SyncArgs, SyncOptions, Window, resolve
from prospect_to_cash.sync.key_rules import KeySharers, key_filters
from prospect_to_cash.sync.limits import stage_target_facets
from prospect_to_cash.sync.pending import fingerprint, ledger_of
from prospect_to_cash.sync.staging import text_table
from prospect_to_cash.sync.target_scope import (
    KeyScope,
    RowScope,
    implied_references,
    reference_scope,
    row_scope,
    target_scope,
    windowed,
)
from prospect_to_cash.sync.values import is_blank, py
from prospect_to_cash.sync.watermarks import ReadWindow, now_utc, watermark_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from typing_extensions import Unpack

    from prospect_to_cash.sync.contracts import ExtractResult, SnapshotResult
    from prospect_to_cash.sync.mapping import Reference, Template

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


def _bare_guids(system: str, values: Sequence[Any]) -> list[Any]:
    """Dataverse lookup and id columns compare with bare GUIDs, not quoted text."""
    if system == "dataverse" and values and all(is_guid(v) for v in values):
        return [uuid.UUID(v) for v in values]
    return list(values)


def read_keyed_pages(
    ctx: SyncContext,
    system: str,
    entity_set: str,
    select: Sequence[str],
    filter: str | None,
    keys: KeyScope | RowScope,
) -> Iterator[pd.DataFrame]:
    """The rows of ``filter`` whose ``keys.column`` is one of its values, or whose
    ``keys.columns`` equal one of its rows (chunked by the hook)."""
    hook = ctx.hooks.for_system(system)
    page_size = ctx.options.page_size
    kwargs: dict[str, Any] = {"select": list(select), "filter": filter}
    if page_size:
        kwargs["page_size"] = page_size
    if system == "fno":
        kwargs["companies"] = [ctx.pair.legal_entity]
    if isinstance(keys, RowScope):
        parts = [_bare_guids(system, [row[i] for row in keys.rows]) for i in range(len(keys.columns))]
        rows = list(zip(*parts, strict=True)) if keys.rows else []
        return hook.iter_pages_by_key_rows(entity_set, columns=list(keys.columns), rows=rows, **kwargs)
    return hook.iter_pages_by_keys(
        entity_set, column=keys.column, values=_bare_guids(system, keys.values), **kwargs
    )


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
    keys: KeyScope | RowScope | None = None,
) -> tuple[str, int]:
    """Stage the rows of ``filter``, then those of each of ``more`` (each disjoint from
    ``filter``; a row two of ``more`` bring, a pending line of a released header, is
    staged once), then the rows outside the window that share a key with a row of
    ``filter`` (:mod:`~prospect_to_cash.sync.key_rules`); with ``keys``, only the rows of
    those keys (`target_scope`)."""
    key = list(ctx.task.source.key)
    seen: set[tuple[str, ...]] = set()
    with ctx.staging.page_writer(area, name, select) as writer:
        if keys is not None:
            for page in read_keyed_pages(ctx, system, entity_set, select, filter, keys):
                writer.write(page)
            return str(writer.path), writer.rows
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
    # a windowed read sees no deletes: parked duplicate keys are re-read all the same
    keys = ledger_of(ctx).key_values(len(task.source.key), fingerprint(task), deltas=False)
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
    business_unit: str | None = None,
    *,
    scope_references: bool = False,
) -> tuple[tuple[str, int], dict[str, Any]]:
    """Stage a step's rows and its ``side``'s reference tables, reading them side by side.

    The reads are independent, and each mostly waits: on the service's latency, or for a
    free slot while another company pair's writes hold them. Read one after another they
    add those waits up; side by side the step waits about as long as its longest read.
    ``read_rows`` stages the rows another way (a tracked read) instead of ``rows``.
    Returns the rows' (path, count) and ``{reference: {"path", "rows"}}``. References that
    say ``company_scope: business_unit`` are read within ``business_unit`` (a filter).
    With ``scope_references`` (a windowed extract) the rows come first, and each reference
    then reads only the keys its lookups can ask for (`target_scope.reference_scope`).
    """
    area = "source" if side == "source" else "target"
    system = rows[0]
    references = [reference for reference in ctx.task.references if reference.side == side]
    main: Any = None
    scopes: dict[str, KeyScope | None] = {}
    if scope_references:
        main = read_rows() if read_rows is not None else _stream(ctx, area, "rows", *rows, more, sharers)
        frame = ctx.staging.read_frame(area, "rows")
        scopes = {reference.name: reference_scope(ctx, reference, frame) for reference in references}
    with ThreadPoolExecutor(
        max_workers=min(READ_PARALLELISM, len(references) + 1), thread_name_prefix=f"p2c-{area}"
    ) as pool:
        if main is None and read_rows is not None:
            main = pool.submit(read_rows)
        elif main is None:
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
                reference_filter(reference, business_unit),
                keys=scopes.get(reference.name),
            )
            for reference in references
        }
        staged = {name: dict(zip(("path", "rows"), f.result(), strict=True)) for name, f in futures.items()}
        return (main if isinstance(main, tuple) else main.result()), staged


def _keep_changed(ctx: SyncContext, full_refresh: bool, *, partial: bool = False) -> int:
    """A whole read (or an export's changed rows: ``partial``) keeps only its new and
    changed rows (`source_digests`); returns them."""
    read = ctx.staging.read_frame("source", "rows")
    kept = source_digests.keep_changed(ctx, read, full_refresh=full_refresh, partial=partial)
    if len(kept) != len(read):
        ctx.staging.write_table("source", "rows", text_table(kept))
        log.info(
            "%s/%s [%s]: %d of %d rows read unchanged since the last load, not transformed",
            ctx.template.name,
            ctx.task.name,
            ctx.pair.legal_entity,
            len(read) - len(kept),
            len(read),
        )
    return len(kept)


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
        ledger, current = ledger_of(ctx), fingerprint(task)
        keys = ledger.key_values(len(task.source.key), current)
        parked = ledger.parked_keys(len(task.source.key), current)
        scope = (task.source.filter, company)
        lines = [and_filters(*scope, f) for f in released_parent_filters(ctx)]
        pending = [*key_filters(task.source.key, keys, *scope), *lines]
        sharers = (
            KeySharers.of(task.source.key, scope, keys, primary_id=task.source.primary_id)
            if window.since_watermark
            else None
        )

        def by_filter(query: str) -> Iterator[pd.DataFrame]:
            return read_pages(ctx, "dataverse", task.source.entity_set, task.source_columns, query)

        def read_rows() -> tuple[str, int]:
            return read_tracked(ctx, window, company, pending, by_filter, sharers, parked)

        query = None
    else:
        query, pending, sharers = _source_filter(ctx, window)
    exported = exports.applies(ctx, window)
    if exported:  # F&O's incremental export instead of the whole entity (sync/exports.py)
        read_rows, pending = (lambda: exports.stage(ctx)), []
    (path, rows), references = _read_step(
        ctx,
        "source",
        (task.source_system, task.source.entity_set, task.source_columns, query),
        pending,
        sharers,
        read_rows,
        # a change window or an export: the references only for the keys its rows carry
        scope_references=(bool(task.source.change_field) or exported) and not window.full_refresh,
    )
    if source_digests.applies(ctx):
        rows = _keep_changed(ctx, window.full_refresh, partial=exported)
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


def _scoped_snapshot(ctx: SyncContext, business_unit: str | None) -> tuple[tuple[str, int], dict[str, Any]]:
    """A windowed run's snapshot: the target-side references first (those its lookups can
    scope by the staged source rows: only their keys), then the target rows of the run's
    keys (`target_scope`), each read whole where no key scope applies. Where the rows can
    be read by their whole key without them, the references that only check a parent
    exists (`implied_references`) come after the rows, for the parents no row names."""
    task = ctx.task
    source = ctx.staging.read_frame("source", "rows")
    system = task.target_system
    references = [reference for reference in task.references if reference.side == "target"]
    scopes = {reference.name: reference_scope(ctx, reference, source) for reference in references}
    deferred = implied_references(ctx) if row_scope(ctx, source, {}) is not None else {}
    staged = _read_references(ctx, [r for r in references if r.name not in deferred], scopes, business_unit)
    found = {
        name: ctx.staging.read_frame("target", f"ref-{name}")
        for name, scope in scopes.items()
        if scope is not None and name not in deferred
    }
    keys = target_scope(ctx, source, found)
    rows = _stream(
        ctx,
        "target",
        "rows",
        system,
        task.target.entity_set,
        task.snapshot_columns,
        target_filter(task, business_unit),
        keys=keys,
    )
    for name, key in deferred.items():
        staged[name] = _read_implied(ctx, name, key, scopes[name], business_unit)
    log.info(
        "%s/%s [%s]: snapshot by keys: rows %s, references %s",
        ctx.template.name,
        task.name,
        ctx.pair.legal_entity,
        _scope_text(keys),
        {name: len(scope.values) if scope else "whole" for name, scope in scopes.items()},
    )
    return rows, staged


def _scope_text(keys: KeyScope | RowScope | None) -> str:
    if isinstance(keys, RowScope):
        return f"{len(keys.rows)} key(s) of {', '.join(keys.columns)}"
    return f"{len(keys.values)} key(s) of {keys.column}" if keys else "whole"


def _read_references(
    ctx: SyncContext,
    references: Sequence[Reference],
    scopes: dict[str, KeyScope | None],
    business_unit: str | None,
) -> dict[str, Any]:
    """Stage target-side references side by side, each by its key scope (or whole)."""
    if not references:
        return {}
    with ThreadPoolExecutor(max_workers=READ_PARALLELISM, thread_name_prefix="p2c-target") as pool:
        futures = {
            reference.name: pool.submit(
                _stream,
                ctx,
                "target",
                f"ref-{reference.name}",
                ctx.task.target_system,
                reference.entity_set,
                _reference_columns(ctx, reference.name),
                reference_filter(reference, business_unit),
                keys=scopes[reference.name],
            )
            for reference in references
        }
        return {name: dict(zip(("path", "rows"), f.result(), strict=True)) for name, f in futures.items()}


def _read_implied(
    ctx: SyncContext, name: str, key: str, scope: KeyScope | None, business_unit: str | None
) -> dict[str, Any]:
    """Stage a reference that only checks a parent exists (`implied_references`): the
    parents the staged target rows name are there (a line lives in its header), so only
    the others are read; the named ones are staged as found, from the rows."""
    task = ctx.task
    reference = task.reference(name)
    (column,) = _reference_columns(ctx, name)
    mapping = task.field(key)
    assert mapping is not None
    named = ctx.staging.read_frame("target", "rows")[mapping.snapshot_column].tolist()
    proven = {str(py(v)).casefold(): str(py(v)) for v in named if not is_blank(py(v))}
    if scope is not None:
        scope = KeyScope(scope.column, tuple(v for v in scope.values if v.casefold() not in proven))
    _stream(
        ctx,
        "target",
        f"ref-{name}",
        task.target_system,
        reference.entity_set,
        [column],
        reference_filter(reference, business_unit),
        keys=scope,
    )
    read = ctx.staging.read_frame("target", f"ref-{name}")
    have = {str(py(v)).casefold() for v in read[column].tolist()}
    extra = [value for folded, value in proven.items() if folded not in have]
    if extra:
        both = pd.concat([read, pd.DataFrame({column: extra})], ignore_index=True)
        ctx.staging.write_table("target", f"ref-{name}", text_table(both))
    log.info(
        "%s/%s [%s]: %s: %d named by the target rows (not read), %d read",
        ctx.template.name,
        task.name,
        ctx.pair.legal_entity,
        name,
        len(extra),
        len(read),
    )
    return {"path": str(ctx.staging.path("target", f"ref-{name}")), "rows": len(read) + len(extra)}


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
    business_unit = _business_unit_filter(ctx) if needs_business_unit(ctx.task, "target") else None
    if windowed(ctx):
        (path, rows), references = _scoped_snapshot(ctx, business_unit)
    else:
        (path, rows), references = _read_step(
            ctx,
            "target",
            (
                ctx.task.target_system,
                ctx.task.target.entity_set,
                ctx.task.snapshot_columns,
                target_filter(ctx.task, business_unit),
            ),
            business_unit=business_unit,
        )
    stage_target_facets(ctx)  # what the transform checks values against
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
