"""Orchestration: the transform step, and whole tasks, templates and company pairs.

The DAG layer calls the steps one by one (``extract`` and ``snapshot`` from
:mod:`~prospect_to_cash.sync.reading`, ``transform`` here, ``load`` from
:mod:`~prospect_to_cash.sync.loading`, all re-exported here); ``run_task``,
``run_template`` and ``run_company_pairs`` chain them for one call. Each takes one
template, one task and one company pair, with `SyncOptions` and a `Window` (or their
keyword form, `SyncArgs`), and returns a typed dict of staging paths and integer counts,
never data. Steps find each other's output by the staging layout, so they can run as
separate Airflow tasks or in one call.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from prospect_to_cash.sync import source_digests
from prospect_to_cash.sync.columns import (
    OUTCOME,
    REASON,
    REF,
    SOURCE_KEY,
    plan_schemas,
)
from prospect_to_cash.sync.context import (
    base_result,
    company_pairs,
    make_context,
    resolve_template,
    select_pairs,
)
from prospect_to_cash.sync.contracts import CompanyPair, SyncArgs, SyncHooks, SyncOptions, Window, resolve
from prospect_to_cash.sync.deadletter import dead_letters
from prospect_to_cash.sync.errors import RowsRefused, SyncError
from prospect_to_cash.sync.limits import staged_target_limits
from prospect_to_cash.sync.loading import load
from prospect_to_cash.sync.planner import plan_task
from prospect_to_cash.sync.privacy import ROW_VALUES_VARIABLE, log_row_values
from prospect_to_cash.sync.reading import extract, snapshot
from prospect_to_cash.sync.staged_plan import LazySink, StagedInputs, StagedPlanSink, plan_samples
from prospect_to_cash.sync.staging import StagingSpill, as_path, chunk_rows
from prospect_to_cash.sync.summary import summarize, total_counts, write_summary
from prospect_to_cash.sync.thresholds import enforce

if TYPE_CHECKING:
    from collections.abc import Sequence

    from typing_extensions import Unpack

    from prospect_to_cash.sync.context import SyncContext
    from prospect_to_cash.sync.contracts import (
        ExtractResult,
        LoadResult,
        PairsResult,
        SnapshotResult,
        TaskReport,
        TemplateRunResult,
        TransformResult,
    )
    from prospect_to_cash.sync.mapping import Template

__all__ = [
    "SyncHooks",
    "company_pairs",
    "extract",
    "extract_and_snapshot",
    "load",
    "run_company_pairs",
    "run_task",
    "run_template",
    "snapshot",
    "transform",
]

log = logging.getLogger(__name__)


def _places(ctx: SyncContext, name: str) -> str:
    mapping = ctx.task.field(name)
    if mapping is not None and mapping.currency_places is not None:
        return "its record currency's"
    return str(mapping.scale) if mapping is not None and mapping.scale is not None else "default"


def transform(
    template: str | Template,
    task: str,
    *,
    legal_entity: str | CompanyPair,
    options: SyncOptions | None = None,
    **given: Unpack[SyncArgs],
) -> TransformResult:
    """Map, look up, validate and diff; write the plan and the rejected rows to staging.

    Values the target's ``$metadata`` says it cannot store (length, digits, range, dates)
    are rejected (`prospect_to_cash.sync.limits`: the snapshot staged the target's facets,
    so the transform talks to no service).
    Works a chunk at a time (:mod:`prospect_to_cash.sync.planner`): the ``chunk_rows``
    option, else ``P2C_TRANSFORM_CHUNK_ROWS``, else 50,000 rows; its buckets live in the
    task's staging ``work`` area until the plan is written.
    """
    options, _ = resolve(options, None, given)
    ctx = make_context(template, task, legal_entity, options)
    # values the target cannot store are rejected here, not refused by the service
    ctx.task = staged_target_limits(ctx)
    staging = ctx.staging
    inputs = StagedInputs(ctx)
    rows = chunk_rows(options.chunk_rows)
    with StagingSpill(staging) as spill:
        spill.clear()  # whatever an interrupted attempt left behind
        # nothing reaches the plan files before every row is decided (a failing lookup
        # raises first), so the sink opens only when the merge starts
        sink = LazySink(lambda: StagedPlanSink(ctx, plan_schemas(ctx.task)))
        try:
            result = plan_task(ctx.task, inputs, spill=spill, sink=sink, rows=rows)
            paths = sink.open().commit()  # every plan file in place, empty or not
        finally:
            sink.close()
    # a new plan makes any earlier load outcome and journal of this run stale
    for stale in [*staging.list("plan", "journal-"), *staging.list("plan", OUTCOME)]:
        stale.unlink()
    counts = result.counts
    unseen = source_digests.unseen_rows(ctx)  # unchanged since the last load: never transformed
    counts["read"] = counts.get("read", 0) + unseen
    counts["unchanged"] = counts.get("unchanged", 0) + unseen
    summary = {"counts": counts, "samples": plan_samples(ctx.task, result.heads), "rounded": result.rounded}
    if result.rounded:  # documented, not refused: the target would round them the same way
        log.warning(
            "%s/%s [%s]: %d decimal value(s) rounded to the places %s keeps: %s",
            ctx.template.name,
            ctx.task.name,
            ctx.pair.legal_entity,
            counts["rounded"],
            ctx.task.target.entity_set,
            ", ".join(
                f"{name} {count} (to {_places(ctx, name)} places)" for name, count in result.rounded.items()
            ),
        )
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
    if log_row_values():  # the reasons quote row values: in the log only when asked
        for reject in result.heads["rejects"][:20]:
            log.warning(
                "%s/%s rejected %s: %s",
                ctx.template.name,
                ctx.task.name,
                reject[REF] or reject[SOURCE_KEY],
                reject[REASON],
            )
    elif result.heads["rejects"]:
        log.warning(
            "%s/%s [%s]: %d row(s) rejected; keys and reasons in %s (%s=1 logs them)",
            ctx.template.name,
            ctx.task.name,
            ctx.pair.legal_entity,
            counts.get("rejected", len(result.heads["rejects"])),
            paths.get("rejected"),
            ROW_VALUES_VARIABLE,
        )
    return {**base_result(ctx, "transform"), "paths": paths, "counts": counts, "chunking": result.stats}


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
    """``extract`` and ``snapshot`` side by side on a full refresh: they read different
    services (or the same one through separate connections) and neither needs the other,
    so the task waits for the slower of the two reads instead of their sum. A windowed run
    extracts first: its snapshot reads only the keys the extracted rows carry
    (`target_scope`), far less than the whole target it would otherwise wait for."""
    options, window = resolve(options, window, given)
    if not window.full_refresh:
        extracted = extract(template, task, legal_entity=legal_entity, options=options, window=window)
        return extracted, snapshot(template, task, legal_entity=legal_entity, options=options)
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
    ``$metadata`` first, and nothing is read or written when they disagree. Once every
    task has run and the summary is written, the error threshold decides the run
    (`thresholds.enforce`: `ServiceFailures` or `RowsRefused` above it).
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
            "deadletter": dead_letters(result.get("paths", {}).get("plan_rejected"), result.get("paths", {})),
            "paths": result.get("paths", {}),
        }
        for name, result in tasks.items()
    }
    summary = summarize(
        loaded.name, pair, options.run_id, reports, dry_run=options.dry_run, window=window.to_dict()
    )
    answer: TemplateRunResult = {
        **summary,
        "summary_path": write_summary(as_path(options.staging_root), summary, options.staging_folder),
    }
    if options.dry_run:
        answer["samples"] = {name: r.get("samples", {}) for name, r in tasks.items()}
        return answer
    enforce(
        f"{loaded.name} [{legal_entity}]",
        summary["counts"],
        max_rejected=options.max_rejected,
        max_failed=options.max_failed,
    )
    return answer


def run_company_pairs(
    template: str | Template,
    *,
    legal_entities: Sequence[str] | None = None,
    max_parallel: int | None = None,
    options: SyncOptions | None = None,
    window: Window | None = None,
    raise_on_failure: bool = True,
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
    :param raise_on_failure: False returns the result with the failed pairs in ``failed``
        instead of raising (the CLI reports what succeeded and what failed).
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
    if errors and raise_on_failure:
        names = ", ".join(f"{name} ({type(exc).__name__}: {exc})" for name, exc in errors.items())
        # only data refusals everywhere: a retry cannot help, say so by the error's class
        kind = RowsRefused if all(isinstance(e, RowsRefused) for e in errors.values()) else SyncError
        raise kind(f"{loaded.name}: {len(errors)} of {len(pairs)} company pair(s) failed: {names}") from next(
            iter(errors.values())
        )
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
        "failed": {company: f"{type(exc).__name__}: {exc}" for company, exc in errors.items()},
    }
