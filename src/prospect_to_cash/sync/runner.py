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
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from prospect_to_cash.sync import deadletter
from prospect_to_cash.sync.context import (
    OUTCOME,
    OUTCOME_SCHEMA,
    PLANNED,
    SyncContext,
    SyncHooks,
    base_result,
    combine_filters,
    company_pairs,
    make_context,
    odata_literal,
    read_pages,
    resolve_template,
)
from prospect_to_cash.sync.errors import SyncError
from prospect_to_cash.sync.load import load
from prospect_to_cash.sync.staging import as_path, write_run_summary
from prospect_to_cash.sync.transform import (
    CHANGED,
    ID,
    REASON,
    REF,
    ROW,
    SOURCE_KEY,
    Plan,
    TransformInputs,
    build_plan,
    field_schema,
)
from prospect_to_cash.sync.values import normalize

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from prospect_to_cash.sync.mapping import Task, Template

__all__ = [
    "SyncHooks",
    "combine_filters",
    "company_pairs",
    "extract",
    "extract_and_snapshot",
    "load",
    "odata_literal",
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


def _source_filter(
    ctx: SyncContext, start: datetime | str | None, end: datetime | str | None, full_refresh: bool
) -> str | None:
    task = ctx.task
    window = None
    if task.source.change_field and not full_refresh and (start or end):
        bounds = []
        if start:
            bounds.append(f"{task.source.change_field} ge {_utc(start)}")
        if end:
            bounds.append(f"{task.source.change_field} lt {_utc(end)}")
        window = " and ".join(bounds)
    company = None
    if task.source_system == "dataverse" and task.source.company_scope == "business_unit":
        company = _business_unit_filter(ctx)
    return combine_filters(task.source.filter, window, company)


def _reference_columns(ctx: SyncContext, name: str) -> list[str]:
    return list(ctx.task.reference_columns(name))


def _stage_references(ctx: SyncContext, side: str) -> dict[str, Any]:
    system = ctx.task.source_system if side == "source" else ctx.task.target_system
    area = "source" if side == "source" else "target"
    staged: dict[str, Any] = {}
    for reference in ctx.task.references:
        if reference.side != side:
            continue
        path, rows = _stream(
            ctx,
            area,
            f"ref-{reference.name}",
            system,
            reference.entity_set,
            _reference_columns(ctx, reference.name),
            reference.filter,
        )
        staged[reference.name] = {"path": path, "rows": rows}
    return staged


def extract(
    template: str | Template,
    task: str,
    *,
    legal_entity: str,
    run_id: str,
    data_interval_start: datetime | str | None = None,
    data_interval_end: datetime | str | None = None,
    full_refresh: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Read the source rows of the window (Dataverse ``modifiedon`` within the data
    interval; F&O entities without a change timestamp whole) and the source-side
    reference tables, page by page into staging.

    :param full_refresh: ignore the window and read every row the filter allows.
    :param options: ``staging_root``, ``mappings_dir``, ``environment_file``, ``hooks``,
        ``dataverse_conn_id``, ``fno_conn_id``, ``page_size``.
    """
    ctx = make_context(template, task, legal_entity, run_id, options)
    query = _source_filter(ctx, data_interval_start, data_interval_end, full_refresh)
    path, rows = _stream(
        ctx,
        "source",
        "rows",
        ctx.task.source_system,
        ctx.task.source.entity_set,
        ctx.task.source_columns,
        query,
    )
    references = _stage_references(ctx, "source")
    log.info(
        "%s/%s [%s]: extracted %d rows from %s",
        ctx.template.name,
        ctx.task.name,
        legal_entity,
        rows,
        ctx.task.source.entity_set,
    )
    result = base_result(ctx, "extract")
    result.update(
        path=path,
        read=rows,
        references={name: item["path"] for name, item in references.items()},
        full_refresh=full_refresh,
    )
    return result


def snapshot(
    template: str | Template, task: str, *, legal_entity: str, run_id: str, **options: Any
) -> dict[str, Any]:
    """Read the target's current rows (keys and compared fields) and the target-side
    reference tables into staging."""
    ctx = make_context(template, task, legal_entity, run_id, options)
    path, rows = _stream(
        ctx,
        "target",
        "rows",
        ctx.task.target_system,
        ctx.task.target.entity_set,
        ctx.task.snapshot_columns,
        ctx.task.target.filter,
    )
    references = _stage_references(ctx, "target")
    log.info(
        "%s/%s [%s]: snapshot of %d %s rows",
        ctx.template.name,
        ctx.task.name,
        legal_entity,
        rows,
        ctx.task.target.entity_set,
    )
    result = base_result(ctx, "snapshot")
    result.update(path=path, rows=rows, references={name: item["path"] for name, item in references.items()})
    return result


def _utc(moment: datetime | str) -> str:
    value = normalize(moment, "datetime")
    assert value is not None
    return value


# -- transform ---------------------------------------------------------------------------------


def _upstream_outcomes(ctx: SyncContext) -> dict[str, pd.DataFrame]:
    """Outcomes of the tasks this one depends on, from the same run's staging."""
    names = set()
    if ctx.task.parent is not None:
        names.add(ctx.task.parent.task)
    for mapping in ctx.task.fields:
        if mapping.lookup is not None and mapping.lookup.created_by:
            names.add(mapping.lookup.created_by)
    outcomes = {}
    for name in names:
        sibling = ctx.staging.sibling(name)
        for kind in (OUTCOME, PLANNED):
            frame = sibling.read_frame_if_exists("plan", kind)
            if frame is not None:
                outcomes[name] = frame
                break
    return outcomes


def _samples(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    head = frame.head(SAMPLE_SIZE)
    if columns is not None:
        head = head[[c for c in columns if c in head.columns]]
    return json.loads(head.to_json(orient="records", date_format="iso", default_handler=str))


def transform(
    template: str | Template, task: str, *, legal_entity: str, run_id: str, **options: Any
) -> dict[str, Any]:
    """Map, look up, validate and diff; write the plan and the rejected rows to staging."""
    ctx = make_context(template, task, legal_entity, run_id, options)
    staging = ctx.staging
    references = {}
    for reference in ctx.task.references:
        area = "source" if reference.side == "source" else "target"
        references[reference.name] = staging.read_frame(area, f"ref-{reference.name}")
    inputs = TransformInputs(
        source=staging.read_frame("source", "rows"),
        snapshot=staging.read_frame("target", "rows"),
        references=references,
        legal_entity=ctx.pair.legal_entity,
        upstream=_upstream_outcomes(ctx),
    )
    plan = build_plan(ctx.task, inputs)
    return _write_plan(ctx, plan)


def _write_plan(ctx: SyncContext, plan: Plan) -> dict[str, Any]:
    staging = ctx.staging
    schema = field_schema(ctx.task)
    with_changes = field_schema(ctx.task, extra=[(CHANGED, pa.list_(pa.string()))])
    paths = {
        "creates": staging.write_frame("plan", "creates", plan.creates, schema),
        "updates": staging.write_frame("plan", "updates", plan.updates, with_changes),
        "unchanged": staging.write_frame("plan", "unchanged", plan.unchanged, schema),
        "second_pass": staging.write_frame("plan", "second_pass", plan.second_pass, with_changes),
        "planned": staging.write_frame("plan", PLANNED, plan.outcome(), OUTCOME_SCHEMA),
    }
    # a new plan makes any earlier load outcome and journal of this run stale
    for stale in [*staging.list("plan", "journal-"), *staging.list("plan", OUTCOME)]:
        stale.unlink()
    rejected = [
        {"ref": r[REF], "source_key": r[SOURCE_KEY], "reason": r[REASON], "row": r.get(ROW)}
        for r in plan.rejects.to_dict("records")
    ]
    paths["rejected"] = deadletter.write_rejected(staging, rejected)
    counts = plan.counts()
    summary = {"counts": counts, "samples": _plan_samples(ctx.task, plan)}
    paths["summary"] = staging.write_json("plan", "summary", summary)
    log.info(
        "%s/%s [%s]: plan %s",
        ctx.template.name,
        ctx.task.name,
        ctx.pair.legal_entity,
        ", ".join(f"{k}={v}" for k, v in counts.items()),
    )
    for reject in rejected[:20]:
        log.warning(
            "%s/%s rejected %s: %s",
            ctx.template.name,
            ctx.task.name,
            reject["ref"] or reject["source_key"],
            reject["reason"],
        )
    result = base_result(ctx, "transform")
    result.update(paths=paths, counts=counts)
    return result


def _plan_samples(task: Task, plan: Plan) -> dict[str, list[dict[str, Any]]]:
    columns = [REF, ID, *[f.target for f in task.fields if f.write]]
    return {
        "create": _samples(plan.creates, columns),
        "update": _samples(plan.updates, [*columns, CHANGED]),
        "unchanged": _samples(plan.unchanged, [REF, ID]),
        "rejected": _samples(plan.rejects, [REF, SOURCE_KEY, REASON]),
    }


# -- whole task / whole template ------------------------------------------------------------------


def extract_and_snapshot(
    template: str | Template,
    task: str,
    *,
    legal_entity: str,
    run_id: str,
    data_interval_start: datetime | str | None = None,
    data_interval_end: datetime | str | None = None,
    full_refresh: bool = False,
    **options: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``extract`` and ``snapshot`` side by side: they read different services (or the same
    one through separate connections) and neither needs the other, so the task waits for the
    slower of the two reads instead of their sum."""
    common = {"legal_entity": legal_entity, "run_id": run_id, **options}
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="p2c-read") as pool:
        snapped = pool.submit(snapshot, template, task, **common)
        extracted = extract(
            template,
            task,
            data_interval_start=data_interval_start,
            data_interval_end=data_interval_end,
            full_refresh=full_refresh,
            **common,
        )
        return extracted, snapped.result()


def run_task(
    template: str | Template,
    task: str,
    *,
    legal_entity: str,
    run_id: str,
    data_interval_start: datetime | str | None = None,
    data_interval_end: datetime | str | None = None,
    full_refresh: bool = False,
    dry_run: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Extract, snapshot, transform and load one task; returns the load's result plus
    the staging paths of every step."""
    loaded = resolve_template(template, legal_entity, options)
    common = {"legal_entity": legal_entity, "run_id": run_id, **options}
    extracted, snapped = extract_and_snapshot(
        loaded,
        task,
        data_interval_start=data_interval_start,
        data_interval_end=data_interval_end,
        full_refresh=full_refresh,
        **common,
    )
    planned = transform(loaded, task, **common)
    loaded_result = load(loaded, task, dry_run=dry_run, **common)
    loaded_result["paths"] = {
        **loaded_result.get("paths", {}),
        "source": extracted["path"],
        "target": snapped["path"],
        **{f"plan_{k}": v for k, v in planned["paths"].items()},
    }
    return loaded_result


def run_template(
    template: str | Template,
    *,
    legal_entity: str,
    run_id: str,
    data_interval_start: datetime | str | None = None,
    data_interval_end: datetime | str | None = None,
    full_refresh: bool = False,
    dry_run: bool = False,
    check_metadata: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Every task of a template in file order (headers before lines) for one company pair.

    :param check_metadata: compare the mapping with both services' ``$metadata`` first
        and stop before anything is read or written when they disagree.
    """
    loaded = resolve_template(template, legal_entity, options)
    hooks = options.pop("hooks", None) or SyncHooks(
        dataverse_conn_id=options.get("dataverse_conn_id", "dynamics_dataverse_default"),
        fno_conn_id=options.get("fno_conn_id", "dynamics_fno_default"),
    )
    if check_metadata:
        from prospect_to_cash.sync.metadata_check import check_template

        check_template(loaded, hooks, raise_on_problems=True)
    tasks: dict[str, Any] = {}
    totals: dict[str, int] = {}
    for task in loaded.tasks:
        result = run_task(
            loaded,
            task.name,
            legal_entity=legal_entity,
            run_id=run_id,
            data_interval_start=data_interval_start,
            data_interval_end=data_interval_end,
            full_refresh=full_refresh,
            dry_run=dry_run,
            hooks=hooks,
            **options,
        )
        tasks[task.name] = result
        for name, value in result["counts"].items():
            totals[name] = totals.get(name, 0) + int(value)
    summary = {
        "template": loaded.name,
        "legal_entity": legal_entity,
        "run_id": run_id,
        "dry_run": dry_run,
        "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "counts": totals,
        "tasks": {name: {"counts": r["counts"], "paths": r.get("paths", {})} for name, r in tasks.items()},
    }
    summary["summary_path"] = write_run_summary(
        as_path(options.get("staging_root")), loaded.name, run_id, legal_entity, summary
    )
    if dry_run:
        summary["samples"] = {name: r.get("samples", {}) for name, r in tasks.items()}
    return summary
