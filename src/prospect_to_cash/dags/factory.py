"""Builds one P2C DAG from its run book, so the seven DAG files stay a page of prose each.

Shape of every DAG (``<step>`` = one task of the mapping file, in file order)::

    wait_for_<upstream DAG> ... ─┐
                                 ├─> check_mapping ─┐
                                 └─> company_pairs ─┴─> sync[pair] (mapped, one per pair):
                                        <step 1>.extract -> .transform -> .load
                                     -> <step 2>.extract -> .transform -> .load ... -> report

``extract``, ``transform`` and ``load`` are the provider's `MappingExtractOperator`,
`MappingTransformOperator` and `MappingLoadOperator`. ``sync`` is a mapped task group
over the company pairs: pair *i*'s load waits only for pair *i*'s transform, and one
company's failure does not stop another's. Steps run one after the other inside a pair,
so lines are read, planned and loaded after their headers are in the target. Each task
learns its company from the XCom of the task before it (only the first extract and the
report read the pair), so the graph has one edge per hand-over and no fan of edges from
``company_pairs``.

Parsing does no I/O: the steps and entity sets are declared in the DAG file (a test
checks them against the mapping files), the schedule comes from constants or the
``P2C_SCHEDULE`` environment variable.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, CronDataIntervalTimetable, TaskGroup, get_current_context, task, task_group

from prospect_to_cash.dags.assets import entity_asset
from prospect_to_cash.dags.params import (
    COMPANIES,
    DRY_RUN,
    FULL_REFRESH,
    MAX_FAILED,
    MAX_REJECTED,
    MAX_SOURCE_DELETES,
    WINDOW_END,
    WINDOW_START,
    param_value,
    sync_params,
)
from prospect_to_cash.dags.steps import (
    SYSTEM_LABELS,
    SyncStep,
    TemplateSpec,
    check_mapping,
    report_label,
    report_step,
    select_company_pairs,
)
from prospect_to_cash.notifications import failure_callbacks, warning_callbacks
from prospect_to_cash.operators.common import run_folder
from prospect_to_cash.operators.mapping import (
    MappingExtractOperator,
    MappingLoadOperator,
    MappingTransformOperator,
)
from prospect_to_cash.sensors.run_order import RunOrderSensor
from prospect_to_cash.sync.contracts import DEFAULT_MAX_FAILED, DEFAULT_MAX_REJECTED

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Asset

    from prospect_to_cash.sync.contracts import CompanyPairDict, LoadedXCom, ReportedXCom

#: Cron expression (UTC) shared by all seven DAGs; the run order needs one schedule for all.
SCHEDULE_VARIABLE = "P2C_SCHEDULE"
DEFAULT_SCHEDULE = "0 0 * * *"
#: The earliest data interval a backfill can ask for.
START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)
OWNER = "prospect-to-cash"
GROUP_ID = "sync"
COMMON_TAGS = ("prospect-to-cash", "dynamics-365")
_SHORT_NAMES = {"dataverse": "sales", "fno": "fno"}

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "execution_timeout": timedelta(hours=3),
}


def tag(name: str) -> str:
    """Tags in one style, kebab-case, as the UI's tag filter lists them side by side."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def schedule_expression() -> str:
    """The cron expression of every P2C DAG: ``P2C_SCHEDULE``, else daily at 00:00 UTC."""
    return os.environ.get(SCHEDULE_VARIABLE) or DEFAULT_SCHEDULE


def shared_schedule() -> CronDataIntervalTimetable:
    """The one timetable of every P2C DAG: data intervals (so a run knows which changes it
    owns and backfills mean something), on :func:`schedule_expression`."""
    return CronDataIntervalTimetable(schedule_expression(), timezone="UTC")


def _run_book(spec: TemplateSpec) -> str:
    source, target = SYSTEM_LABELS[spec.source_system], SYSTEM_LABELS[spec.target_system]
    rows = "\n".join(
        f"| {index} | `{step.name}` | {source} `{step.source}` | {target} `{step.target}` |"
        for index, step in enumerate(spec.steps, start=1)
    )
    waits = ", ".join(f"`{dag_id}`" for dag_id in spec.upstream) or "nothing (first in the run order)"
    return f"""

---
#### Run book (generated from the DAG file)
| # | step (mapping task) | reads | writes |
|---|---|---|---|
{rows}

* **Template**: `include/mappings/{spec.template}.yaml` (+ `environment.yaml` for company pairs,
  defaults and value maps).
* **Waits for**: {waits}, for the same data interval (Param `wait_for_upstream`).
* **Schedule**: `{schedule_expression()}` (UTC, shared by all P2C DAGs);
  a scheduled run reads what changed in Sales since its tasks' last successful load: by
  Dataverse change tracking (the changes since the task's token) where the table has it,
  else by `modifiedon` from the earlier of its interval's start and the high-water mark less
  5 minutes to its interval's end; so a skipped or failed day leaves no gap. Without a token
  or mark yet it reads its interval (start with a `full_refresh`, which sets both). A manual
  run or backfill reads its data interval (or the window Params) exactly by `modifiedon` and
  never moves a mark backwards. All runs also read the rows of the pending ledger (F&O entities have no
  change timestamp and are read whole). `max_active_runs=1`, `catchup=False` (backfills:
  docs/dags.md, one DAG at a time in run order).
* **Error threshold**: Params `max_rejected` / `max_failed` (default `{DEFAULT_MAX_REJECTED}` /
  `{DEFAULT_MAX_FAILED}` of the rows read, or a count): above either, task `{GROUP_ID}.report` fails
  without retries once every load wrote what it could, and the downstream DAGs' run-order
  sensors hold; at or below, the run succeeds and the report logs a warning and is named
  `<company>: <n> rejected` in the grid. A load whose writes failed in a way the service may
  heal (5xx, timeout, throttling, ambiguous write) fails itself and is retried.
* **Results**: task `{GROUP_ID}.report` (one per company) logs a count table and writes
  `<staging>/{spec.template}/<run folder>/<company>/summary.json`; the run folder is
  `<interval start>__<run type>` (`2026-11-01T00-00-00Z__scheduled` holds the day 11-01) or,
  for a manual run, `<interval start>__<run id>`. Rows that did not reach the
  target are in `<staging>/{spec.template}/<run folder>/<company>/<step>/deadletter/rejected.parquet`
  (refused by the mapping: missing key, unknown code, parent not synced yet) and
  `failed.parquet` (refused by the service), each with the reason and the record id. Each
  load also keeps them in the pending ledger `<staging>/_pending/{spec.template}/<company>/<step>.parquet`:
  every later run reads them again by key, unchanged or not, until they land or are dismissed
  (`python -m prospect_to_cash.sync pending {spec.template}`, `... dismiss`). Each load publishes
  an asset event on its target entity with the counts and dead-letter paths in `extra`.
* **Notifications**: the notifiers of `P2C_NOTIFIERS` (docs/sync.md) on every failed task,
  and on a report that succeeded with rows rejected or failed.
"""


def template_dag(spec: TemplateSpec, *, doc_md: str | None = None, tags: Sequence[str] = ()) -> DAG:
    """One P2C DAG: run-order sensors, preflight, then the template's steps per company pair.

    :param spec: the template's run book (``RUN_BOOKS[<template>]``): its mapping tasks in
        file order with their entity sets, and the DAGs that must succeed first.
    :param doc_md: the DAG file's prose; the run book's table is appended to it.
    """
    if not spec.steps:
        raise ValueError(f"{spec.dag_id}: a template DAG needs at least one step")
    dag_id, title, template = spec.dag_id, spec.title, spec.template
    source_system, target_system = spec.source_system, spec.target_system
    direction = f"{_SHORT_NAMES[source_system]}-to-{_SHORT_NAMES[target_system]}"
    with DAG(
        dag_id=dag_id,
        dag_display_name=f"P2C: {title}",
        description=f"{title}: {SYSTEM_LABELS[source_system]} -> {SYSTEM_LABELS[target_system]}",
        schedule=shared_schedule(),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        # notifiers from P2C_NOTIFIERS (docs/sync.md, Notifications): no DAG file to edit
        default_args={**DEFAULT_ARGS, "on_failure_callback": failure_callbacks()},
        params=sync_params(waits=bool(spec.upstream)),
        tags=sorted({*COMMON_TAGS, direction, tag(template), *(tag(t) for t in tags)}),
        doc_md=(doc_md or f"### {title}") + _run_book(spec),
    ) as dag:
        waits = [
            RunOrderSensor(
                task_id=f"wait_for_{upstream_id}", upstream_dag_id=upstream_id, execution_timeout=None
            )
            for upstream_id in spec.upstream
        ]

        @task(task_id="check_mapping")
        def check_mapping_task() -> dict[str, Any]:
            return check_mapping(spec)

        @task(task_id="company_pairs")
        def company_pairs_task(params: dict[str, Any] | None = None) -> list[CompanyPairDict]:
            return select_company_pairs(param_value(params, COMPANIES, []))

        @task(
            task_id="report",
            map_index_template="{{ p2c_company }}",
            on_success_callback=warning_callbacks(),  # fire only when rows were rejected or failed
        )
        def report(
            pair: CompanyPairDict,
            loads: list[LoadedXCom],
            params: dict[str, Any] | None = None,
            run_id: str | None = None,
        ) -> ReportedXCom:
            context = get_current_context()
            context["p2c_company"] = pair["legal_entity"]  # type: ignore[typeddict-unknown-key]
            result = report_step(
                spec,
                pair,
                loads,
                run_id=run_id or "",
                dry_run=bool(param_value(params, DRY_RUN, False)),
                max_rejected=str(param_value(params, MAX_REJECTED, DEFAULT_MAX_REJECTED)),
                max_failed=str(param_value(params, MAX_FAILED, DEFAULT_MAX_FAILED)),
                staging_folder=run_folder(context, spec.template, spec.extra_options.get("staging_root")),
            )
            # rendered into the map index after the task: "usmf" or "usmf: 3 rejected"
            context["p2c_company"] = report_label(result["legal_entity"], result["counts"])  # type: ignore[typeddict-unknown-key]
            return result

        @task_group(group_id=GROUP_ID)
        def sync(pair: CompanyPairDict) -> None:
            company: Any = pair
            loads = []
            for step in spec.steps:
                with TaskGroup(group_id=step.name, tooltip=f"{step.source} -> {step.target}"):
                    common = {
                        "template": spec.template,
                        "mapping_task": step.name,
                        "dataverse_conn_id": spec.dataverse_conn_id,
                        "fno_conn_id": spec.fno_conn_id,
                        "map_index_template": "{{ p2c_company }}",
                    }
                    extract = MappingExtractOperator(
                        task_id="extract",
                        company=company,
                        window_start=_param(WINDOW_START),
                        window_end=_param(WINDOW_END),
                        full_refresh=_param(FULL_REFRESH),
                        inlets=[_source_asset(spec, step)],
                        **common,
                    )
                    transform = MappingTransformOperator(
                        task_id="transform", extracted=extract.output, **common
                    )
                    # One company pair's load at a time per step: each load alone keeps the
                    # service's recommended parallelism busy (its own limiter follows
                    # x-ms-dop-hint), and separate task processes cannot share a limiter;
                    # the other pairs read and transform meanwhile.
                    load = MappingLoadOperator(
                        task_id="load",
                        transformed=transform.output,
                        dry_run=_param(DRY_RUN),
                        max_source_deletes=_param(MAX_SOURCE_DELETES),
                        max_active_tis_per_dagrun=1,
                        inlets=_load_inlets(spec, step),
                        outlets=[_target_asset(spec, step)],
                        **common,
                    )
                company = load.output  # the next step follows this one, for the same company
                loads.append(load.output)
            report(pair, loads)

        checked = check_mapping_task()
        pairs = company_pairs_task()
        for wait in waits:
            wait >> [checked, pairs]
        checked >> sync.expand(pair=pairs)
    return dag


def _param(name: str) -> str:
    """A Param as an operator argument, rendered when the task runs ("" when it is null)."""
    return f"{{{{ params.{name} if params.{name} is not none else '' }}}}"


def _source_asset(spec: TemplateSpec, step: SyncStep) -> Asset:
    return entity_asset(spec.source_system, step.source, spec.conn_id(spec.source_system))


def _target_asset(spec: TemplateSpec, step: SyncStep) -> Asset:
    return entity_asset(spec.target_system, step.target, spec.conn_id(spec.target_system))


def _load_inlets(spec: TemplateSpec, step: SyncStep) -> list[Asset]:
    """What the rows a load writes are made of: the step's source rows and every table its
    lookups read (the customers, products or headers other DAGs wrote). In the asset graph
    they link those DAGs' loads to this one."""
    lookups = [
        *(
            entity_asset(spec.source_system, name, spec.conn_id(spec.source_system))
            for name in step.source_lookups
            if name != step.source
        ),
        *(
            entity_asset(spec.target_system, name, spec.conn_id(spec.target_system))
            for name in step.target_lookups
            if name != step.target
        ),
    ]
    return [_source_asset(spec, step), *lookups]
