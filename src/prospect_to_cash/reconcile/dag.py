"""The ``p2c_reconciliation`` DAG: source against target, as a report, daily or on demand.

Shape::

    reconcile (writes report.html + report.json, publishes the report asset) -> verdict
              +-> purge_staging (run folders older than P2C_STAGING_RETENTION_DAYS)

``reconcile`` succeeds whenever the report could be written, so the asset event (whose
``extra`` carries the report's paths and totals) is published even when some template
could not be reconciled; ``verdict`` then fails the run if any could not, so an
unreachable service is never mistaken for a clean report. Differences themselves are
not failures: they are what the report is for. ``purge_staging`` runs once the report is
written or has failed (staging retention, :mod:`prospect_to_cash.sync.retention`); it never
touches the pending ledger or the watermarks.

Parsing does no I/O; the engine is imported inside the tasks.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Asset, CronTriggerTimetable, Param, TriggerRule, task
from airflow.sdk.exceptions import AirflowFailException

from prospect_to_cash.dags.assets import ASSET_GROUP, entity_asset
from prospect_to_cash.dags.factory import COMMON_TAGS, START_DATE, tag
from prospect_to_cash.dags.params import COMPANIES, companies_param
from prospect_to_cash.dags.run_books import RUN_BOOKS
from prospect_to_cash.sync.mapping import TEMPLATES

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)

DAG_ID = "p2c_reconciliation"
SCHEDULE_VARIABLE = "P2C_RECONCILIATION_SCHEDULE"
#: After the nightly syncs (00:00 UTC) have had time to finish.
DEFAULT_SCHEDULE = "0 6 * * *"
TEMPLATES_PARAM, COMPANIES_PARAM, OUTPUT_PARAM = "templates", COMPANIES, "output_dir"
#: Consumers (the UI plugin, a notification DAG) schedule on this asset.
REPORT_ASSET = Asset(name="p2c_reconciliation_report", uri="p2c://reconciliation/report", group=ASSET_GROUP)


def reconciliation_params() -> dict[str, Param]:
    """Run-time choices of the trigger form (checked when the run is created)."""
    return {
        TEMPLATES_PARAM: Param(
            [],
            type=["array", "null"],  # null admitted: the form marks a Param without it required
            items={"type": "string", "enum": list(TEMPLATES)},
            uniqueItems=True,
            title="Templates",
            description="Templates to reconcile, in any order (they run in run order). Empty: all seven.",
        ),
        COMPANIES_PARAM: companies_param(),
        OUTPUT_PARAM: Param(
            None,
            type=["null", "string"],
            title="Local output folder",
            description=(
                "Also write report.html and report.json to this folder on the worker. The report is "
                "always written under the staging root (<root>/reconciliation/<run_id>/)."
            ),
        ),
    }


def _list(value: Any) -> list[str]:
    if not value:
        return []
    return [str(v) for v in ([value] if isinstance(value, str) else value)]


def reconcile_step(
    params: dict[str, Any] | None,
    *,
    run_id: str,
    dataverse_conn_id: str,
    fno_conn_id: str,
    **options: Any,
) -> dict[str, Any]:
    """Reconcile and write the report; returns paths and totals only (XCom-safe)."""
    from prospect_to_cash.reconcile import run_reconciliation
    from prospect_to_cash.sync.errors import MappingError

    params = params or {}
    try:
        result = run_reconciliation(
            _list(params.get(TEMPLATES_PARAM)) or None,
            _list(params.get(COMPANIES_PARAM)) or None,
            output_dir=params.get(OUTPUT_PARAM) or None,
            run_id=f"reconcile__{run_id}",
            dataverse_conn_id=dataverse_conn_id,
            fno_conn_id=fno_conn_id,
            **options,
        )
    except MappingError as exc:
        raise AirflowFailException(str(exc)) from exc
    log.info(
        "Reconciliation report: %s (data: %s); %s",
        result["paths"]["html"],
        result["paths"]["json"],
        ", ".join(f"{k}={v}" for k, v in result["totals"].items()),
    )
    return result


def asset_event_extra(result: dict[str, Any]) -> dict[str, Any]:
    """The report asset event's ``extra``: where the report is and what it says."""
    return {
        "run_id": result["run_id"],
        "generated_at": result["generated_at"],
        "html": result["paths"]["html"],
        "json": result["paths"]["json"],
        "totals": result["totals"],
        "errors": result["errors"],
    }


def verdict_step(result: dict[str, Any]) -> dict[str, Any]:
    """Fail the run (after the report is out) when some template could not be reconciled."""
    if result["errors"]:
        raise AirflowFailException(
            f"{result['errors']} template/company pair(s) could not be reconciled; "
            f"see the report {result['paths']['html']}"
        )
    return result["totals"]


def checked_assets(dataverse_conn_id: str, fno_conn_id: str) -> list[Asset]:
    """Every entity set the reconciliation compares: each template step's source and target.
    As the ``reconcile`` task's inlets they put the report after the syncs in the asset graph."""
    conn_ids = {"dataverse": dataverse_conn_id, "fno": fno_conn_id}
    found: dict[str, Asset] = {}
    for spec in RUN_BOOKS.values():
        for step in spec.steps:
            for system, entity_set in ((spec.source_system, step.source), (spec.target_system, step.target)):
                asset = entity_asset(system, entity_set, conn_ids[system])
                found.setdefault(asset.uri, asset)
    return list(found.values())


def reconciliation_dag(
    *,
    dag_id: str = DAG_ID,
    doc_md: str | None = None,
    tags: Sequence[str] = (),
    dataverse_conn_id: str = "dynamics_dataverse_default",
    fno_conn_id: str = "dynamics_fno_default",
    extra_options: dict[str, Any] | None = None,
) -> DAG:
    """The reconciliation DAG (schedule: ``P2C_RECONCILIATION_SCHEDULE`` or 06:00 UTC daily).

    :param extra_options: passed to the reconciliation (``staging_root``, ``mappings_dir``,
        ``environment_file``, ``scopes_file``; tests pass ``hooks``).
    """
    options = dict(extra_options or {})
    with DAG(
        dag_id=dag_id,
        dag_display_name="P2C: Reconciliation report",
        description="Source against target for every template and company pair (HTML + JSON report)",
        schedule=CronTriggerTimetable(os.environ.get(SCHEDULE_VARIABLE) or DEFAULT_SCHEDULE, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args={
            "owner": "prospect-to-cash",
            "retries": 1,
            "retry_delay": timedelta(minutes=5),
            "execution_timeout": timedelta(hours=3),
        },
        params=reconciliation_params(),
        tags=sorted({*COMMON_TAGS, "reconciliation", *(tag(t) for t in tags)}),
        doc_md=doc_md,
    ) as dag:

        @task(
            task_id="reconcile",
            inlets=checked_assets(dataverse_conn_id, fno_conn_id),
            outlets=[REPORT_ASSET],
        )
        def reconcile(
            params: dict[str, Any] | None = None, run_id: str | None = None, outlet_events: Any = None
        ) -> dict[str, Any]:
            result = reconcile_step(
                params,
                run_id=run_id or "manual",
                dataverse_conn_id=dataverse_conn_id,
                fno_conn_id=fno_conn_id,
                **options,
            )
            if outlet_events is not None:
                outlet_events[REPORT_ASSET].extra = asset_event_extra(result)
            return result

        @task(task_id="verdict", retries=0)
        def verdict(result: dict[str, Any]) -> dict[str, Any]:
            return verdict_step(result)

        @task(task_id="purge_staging", trigger_rule=TriggerRule.ALL_DONE)
        def purge_staging() -> dict[str, Any]:
            from prospect_to_cash.sync.retention import purge_staging as purge

            return dict(purge(options.get("staging_root")))

        report = reconcile()
        verdict(report)
        report >> purge_staging()
    return dag
