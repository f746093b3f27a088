"""Entry points the DAG layer calls: extract, snapshot, transform, load, run_task, run_template.

Each takes one template, one task (except ``run_template``) and one company pair (the F&O
legal entity; its business unit comes from the environment), so the DAG can fan out per
pair. Each returns a small JSON-serializable dict: staging paths as strings and integer
counts, never data. Steps find each other's output by the staging layout, so they can
run as separate Airflow tasks or in one call.


Loading, journaling and idempotence live in :mod:`prospect_to_cash.sync.load`.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prospect_to_cash.hooks.odata import and_filters
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
    plan_schemas,
)
from prospect_to_cash.sync.context import (
    SyncContext,
    SyncHooks,
    base_result,
    company_pairs,
    make_context,
    odata_literal,
    read_pages,
    resolve_template,
    select_pairs,
)
from prospect_to_cash.sync.contracts import CompanyPair, SyncArgs, SyncOptions, Window, resolve
from prospect_to_cash.sync.errors import SyncError
from prospect_to_cash.sync.load import load
from prospect_to_cash.sync.staging import StagingSpill, as_path, buffered, chunk_rows
from prospect_to_cash.sync.summary import summarize, total_counts, write_summary
from prospect_to_cash.sync.transform import plan_task

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from airflow.sdk import ObjectStoragePath
    from typing_extensions import Unpack

    from prospect_to_cash.sync.contracts import (
        ExtractResult,
        LoadResult,
        PairsResult,
        SnapshotResult,
        TaskReport,
        TemplateRunResult,
        TransformResult,
    )
    from prospect_to_cash.sync.mapping import Task, Template

__all__ = [
    "SyncHooks",
    "company_pairs",
    "extract",
    "extract_and_snapshot",
    "load",
    "odata_literal",
    "run_company_pairs",
    "run_task",
    "run_template",
    "snapshot",
    "transform",
]

log = logging.getLogger(__name__)

SAMPLE_SIZE = 3


# -- reading -----------------------------------------------------------------------------------


def _stream(
    ctx: SyncContext,
    area: str,
    name: str,
    system: str,
    entity_set: str,
    select: Sequence[str],
    filter: str | None,
) -> tuple[str, int]:
    with ctx.staging.page_writer(area, name, select) as writer:
        for page in read_pages(ctx, system, entity_set, select, filter):
            writer.write(page)
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


def _source_filter(ctx: SyncContext, window: Window) -> str | None:
    task = ctx.task
    span = None
    if task.source.change_field and window.bounded:
        bounds = []
        if window.start:
            bounds.append(f"{task.source.change_field} ge {window.start}")
        if window.end:
            bounds.append(f"{task.source.change_field} lt {window.end}")
        span = " and ".join(bounds)
    company = None
    if task.source_system == "dataverse" and task.source.company_scope == "business_unit":
        company = _business_unit_filter(ctx)
    return and_filters(task.source.filter, span, company)


def _reference_columns(ctx: SyncContext, name: str) -> list[str]:
    return list(ctx.task.reference_columns(name))


#: Reads of one step (its rows and each reference table) in flight at once.
READ_PARALLELISM = 4


def _read_step(
    ctx: SyncContext, side: str, rows: tuple[str, str, Sequence[str], str | None]
) -> tuple[tuple[str, int], dict[str, Any]]:
    """Stage a step's rows and its ``side``'s reference tables, reading them side by side.

    The reads are independent, and each mostly waits: on the service's latency, or for a
    free slot while another company pair's writes hold them. Read one after another they
    add those waits up; side by side the step waits about as long as its longest read.
    Returns the rows' (path, count) and ``{reference: {"path", "rows"}}``.
    """
    area = "source" if side == "source" else "target"
    system = rows[0]
    references = [reference for reference in ctx.task.references if reference.side == side]
    with ThreadPoolExecutor(
        max_workers=min(READ_PARALLELISM, len(references) + 1), thread_name_prefix=f"p2c-{area}"
    ) as pool:
        main = pool.submit(_stream, ctx, area, "rows", *rows)
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
    query = _source_filter(ctx, window)
    (path, rows), references = _read_step(
        ctx, "source", (ctx.task.source_system, ctx.task.source.entity_set, ctx.task.source_columns, query)
    )
    log.info(
        "%s/%s [%s]: extracted %d rows from %s",
        ctx.template.name,
        ctx.task.name,
        ctx.pair.legal_entity,
        rows,
        ctx.task.source.entity_set,
    )
    return {
        **base_result(ctx, "extract"),
        "path": path,
        "read": rows,
        "references": {name: item["path"] for name, item in references.items()},
        "full_refresh": window.full_refresh,
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


# -- transform ---------------------------------------------------------------------------------


class _StagedInputs:
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


class _StagedPlanSink:
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
            records = [
                {"ref": r[REF], "source_key": r[SOURCE_KEY], "reason": r[REASON], "row": r[ROW]}
                for r in table.select([REF, SOURCE_KEY, REASON, ROW]).to_pylist()
            ]
            table = deadletter.records_table(self.ctx.staging, "transform", records)
        self._writers[category].write_table(table)

    def close(self) -> None:
        for writer, handle in self._open:
            writer.close()
            handle.close()
        self._open = []


def _samples(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    head = frame.head(SAMPLE_SIZE)
    if columns is not None:
        head = head[[c for c in columns if c in head.columns]]
    return json.loads(head.to_json(orient="records", date_format="iso", default_handler=str))


def transform(
    template: str | Template,
    task: str,
    *,
    legal_entity: str | CompanyPair,
    options: SyncOptions | None = None,
    **given: Unpack[SyncArgs],
) -> TransformResult:
    """Map, look up, validate and diff; write the plan and the rejected rows to staging.

    Works a chunk at a time (:mod:`prospect_to_cash.sync.transform`): the ``chunk_rows``
    option, else ``P2C_TRANSFORM_CHUNK_ROWS``, else 50,000 rows; its buckets live in the
    task's staging ``work`` area until the plan is written.
    """
    options, _ = resolve(options, None, given)
    ctx = make_context(template, task, legal_entity, options)
    staging = ctx.staging
    inputs = _StagedInputs(ctx)
    rows = chunk_rows(options.chunk_rows)
    with StagingSpill(staging) as spill:
        spill.clear()  # whatever an interrupted attempt left behind
        # nothing reaches the plan files before every row is decided (a failing lookup
        # raises first), so the sink opens only when the merge starts
        sink = _LazySink(lambda: _StagedPlanSink(ctx, plan_schemas(ctx.task)))
        try:
            result = plan_task(ctx.task, inputs, spill=spill, sink=sink, rows=rows)
            paths = sink.open().paths  # every plan file exists, empty or not
        finally:
            sink.close()
    # a new plan makes any earlier load outcome and journal of this run stale
    for stale in [*staging.list("plan", "journal-"), *staging.list("plan", OUTCOME)]:
        stale.unlink()
    counts = result.counts
    summary = {"counts": counts, "samples": _plan_samples(ctx.task, result.heads)}
    paths["summary"] = staging.write_json("plan", "summary", summary)
    log.info(
        "%s/%s [%s]: plan %s (%d chunks of at most %d rows, %d buckets)",
        ctx.template.name,
        ctx.task.name,
        ctx.pair.legal_entity,
        ", ".join(f"{k}={v}" for k, v in counts.items()),
        result.stats["chunks"],
        result.stats["chunk_rows"],
        result.stats["buckets"],
    )
    for reject in result.heads["rejects"][:20]:
        log.warning(
            "%s/%s rejected %s: %s",
            ctx.template.name,
            ctx.task.name,
            reject[REF] or reject[SOURCE_KEY],
            reject[REASON],
        )
    return {**base_result(ctx, "transform"), "paths": paths, "counts": counts, "chunking": result.stats}


class _LazySink:
    """Opens the real sink on the first table (or when asked), so a transform that fails
    before the merge leaves the previous plan files as they were."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self._sink: _StagedPlanSink | None = None

    def open(self) -> _StagedPlanSink:
        if self._sink is None:
            self._sink = self._make()
        return self._sink

    def write(self, category: str, table: pa.Table) -> None:
        self.open().write(category, table)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()


def _plan_samples(task: Task, heads: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    columns = [REF, ID, *[f.target for f in task.fields if f.write]]

    def frame(category: str) -> pd.DataFrame:
        return pd.DataFrame(heads[category][:SAMPLE_SIZE], dtype=object)

    return {
        "create": _samples(frame("creates"), columns),
        "update": _samples(frame("updates"), [*columns, CHANGED]),
        "unchanged": _samples(frame("unchanged"), [REF, ID]),
        "rejected": _samples(frame("rejects"), [REF, SOURCE_KEY, REASON]),
    }


# -- whole task / whole template ------------------------------------------------------------------


def extract_and_snapshot(
    template: str | Template,
    task: str,
    *,
    legal_entity: str | CompanyPair,
    options: SyncOptions | None = None,
    window: Window | None = None,
    **given: Unpack[SyncArgs],
) -> tuple[ExtractResult, SnapshotResult]:
    """``extract`` and ``snapshot`` side by side: they read different services (or the same
    one through separate connections) and neither needs the other, so the task waits for the
    slower of the two reads instead of their sum."""
    options, window = resolve(options, window, given)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="p2c-read") as pool:
        snapped = pool.submit(snapshot, template, task, legal_entity=legal_entity, options=options)
        extracted = extract(template, task, legal_entity=legal_entity, options=options, window=window)
        return extracted, snapped.result()


def run_task(
    template: str | Template,
    task: str,
    *,
    legal_entity: str | CompanyPair,
    options: SyncOptions | None = None,
    window: Window | None = None,
    **given: Unpack[SyncArgs],
) -> LoadResult:
    """Extract, snapshot, transform and load one task; returns the load's result plus
    the staging paths of every step."""
    options, window = resolve(options, window, given)
    pair = CompanyPair.of(legal_entity)
    loaded = resolve_template(template, pair.legal_entity, options)
    extracted, snapped = extract_and_snapshot(loaded, task, legal_entity=pair, options=options, window=window)
    planned = transform(loaded, task, legal_entity=pair, options=options)
    loaded_result = load(loaded, task, legal_entity=pair, options=options)
    loaded_result["paths"] = {
        **loaded_result.get("paths", {}),
        "source": extracted["path"],
        "target": snapped["path"],
        **{f"plan_{k}": v for k, v in planned["paths"].items()},
    }
    return loaded_result


def _prepare_run(
    template: str | Template, legal_entity: str, options: SyncOptions
) -> tuple[Template, SyncOptions]:
    """What a whole run starts with: the template resolved for ``legal_entity``, options
    whose hooks every task and pair shares, and the ``$metadata`` check when asked for."""
    loaded = resolve_template(template, legal_entity, options)
    hooks = SyncHooks.from_options(options)
    if options.check_metadata:
        from prospect_to_cash.sync.metadata_check import check_template

        check_template(loaded, hooks, raise_on_problems=True)
    return loaded, options.but(hooks=hooks, check_metadata=False)


def run_template(
    template: str | Template,
    *,
    legal_entity: str | CompanyPair,
    options: SyncOptions | None = None,
    window: Window | None = None,
    **given: Unpack[SyncArgs],
) -> TemplateRunResult:
    """Every task of a template in file order (headers before lines) for one company pair.

    With ``check_metadata`` (the default) the mapping is compared with both services'
    ``$metadata`` first, and nothing is read or written when they disagree.
    """
    options, window = resolve(options, window, given)
    legal_entity = CompanyPair.of(legal_entity).legal_entity
    loaded, options = _prepare_run(template, legal_entity, options)
    assert loaded.environment is not None
    pair = loaded.environment.company_pair(legal_entity)
    tasks = {
        task.name: run_task(loaded, task.name, legal_entity=pair, options=options, window=window)
        for task in loaded.tasks
    }
    reports: dict[str, TaskReport] = {
        name: {
            "counts": result["counts"],
            "deadletter": {
                "rejected": result.get("paths", {}).get("plan_rejected"),
                "failed": result.get("paths", {}).get("failed"),
            },
            "paths": result.get("paths", {}),
        }
        for name, result in tasks.items()
    }
    summary = summarize(
        loaded.name, pair, options.run_id, reports, dry_run=options.dry_run, window=window.to_dict()
    )
    answer: TemplateRunResult = {
        **summary,
        "summary_path": write_summary(as_path(options.staging_root), summary),
    }
    if options.dry_run:
        answer["samples"] = {name: r.get("samples", {}) for name, r in tasks.items()}
    return answer


def run_company_pairs(
    template: str | Template,
    *,
    legal_entities: Sequence[str] | None = None,
    max_parallel: int | None = None,
    options: SyncOptions | None = None,
    window: Window | None = None,
    **given: Unpack[SyncArgs],
) -> PairsResult:
    """``run_template`` for several company pairs at once, the way the DAG's mapped task
    groups run them side by side: while one pair reads or transforms, another keeps the
    write slots busy.

    The pairs share one hook per service, hence one adaptive limiter: the parallelism the
    service recommends (``x-ms-dop-hint``) and its 429s apply to the client as a whole.
    A pair that fails does not stop the others; when any failed, `SyncError` names them
    all after the rest have finished (the first failure is its cause). Returns JSON-safe
    counts (summed, and per company with its ``summary.json`` path), fit for XCom.

    :param legal_entities: the pairs to run (all of the environment's when None).
    :param max_parallel: pairs at once (all when None).
    """
    options, window = resolve(options, window, given)
    pairs = select_pairs(
        legal_entities, mappings_dir=options.mappings_dir, environment_file=options.environment_file
    )
    loaded, shared = _prepare_run(template, pairs[0].legal_entity, options)

    def one(pair: CompanyPair) -> TemplateRunResult:
        return run_template(template, legal_entity=pair, options=shared, window=window)

    workers = max(1, min(max_parallel or len(pairs), len(pairs)))
    companies: dict[str, TemplateRunResult] = {}
    errors: dict[str, BaseException] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="p2c-pair") as pool:
        futures = {pair.legal_entity: pool.submit(one, pair) for pair in pairs}
        for legal_entity, future in futures.items():
            try:
                companies[legal_entity] = future.result()
            except Exception as exc:  # reported below, with every pair's outcome
                log.error("%s [%s] failed: %s", loaded.name, legal_entity, exc)
                errors[legal_entity] = exc
    if errors:
        names = ", ".join(f"{name} ({type(exc).__name__}: {exc})" for name, exc in errors.items())
        raise SyncError(
            f"{loaded.name}: {len(errors)} of {len(pairs)} company pair(s) failed: {names}"
        ) from next(iter(errors.values()))
    return {
        "template": loaded.name,
        "run_id": options.run_id,
        "dry_run": options.dry_run,
        "counts": total_counts(
            (summary["counts"] for summary in companies.values()), dry_run=options.dry_run
        ),
        "companies": {
            company: {"counts": summary["counts"], "summary_path": summary["summary_path"]}
            for company, summary in companies.items()
        },
    }
