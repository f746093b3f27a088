"""The run-time knobs every P2C DAG offers in the trigger form, the REST API and backfills.

Each is an :class:`airflow.sdk.Param` with a JSON-schema type, so a wrong value is
refused when the run is created, not halfway through a sync. Backfills pass the same
values through ``--dag-run-conf`` (CLI) or the backfill dialog (UI).
"""

from __future__ import annotations

from airflow.sdk import Param

from prospect_to_cash.operators.common import param_value
from prospect_to_cash.sensors.run_order import WAIT_FOR_UPSTREAM
from prospect_to_cash.sync.contracts import (
    DEFAULT_MAX_FAILED,
    DEFAULT_MAX_REJECTED,
    DEFAULT_MAX_SOURCE_DELETES,
)

FULL_REFRESH = "full_refresh"
DRY_RUN = "dry_run"
COMPANIES = "companies"
WINDOW_START = "window_start"
WINDOW_END = "window_end"
MAX_REJECTED = "max_rejected"
MAX_FAILED = "max_failed"
MAX_SOURCE_DELETES = "max_source_deletes"
#: A row limit: a count or a percentage of the rows read (`prospect_to_cash.sync.thresholds`).
_LIMIT = {"type": ["string", "null"], "pattern": r"^\s*\d+(\.\d+)?\s*%?\s*$"}

_TIMESTAMP = {"type": ["null", "string"], "format": "date-time"}
#: Every Param has a default, so each schema admits null: Airflow 3's trigger form marks a Param
#: whose type lacks "null" as required (red star). A null value means "the default" to the tasks
#: (``param_value`` and ``flag``), so the REST API may send it too.
_BOOLEAN = ["boolean", "null"]


def companies_param() -> Param:
    """The company pairs a run covers; every P2C DAG (the reconciliation too) offers it."""
    return Param(
        [],
        type=["array", "null"],
        items={"type": "string", "minLength": 1},
        uniqueItems=True,
        title="Companies",
        description=(
            "F&O legal entities (dataAreaId, e.g. usmf) to run, a subset of the company pairs "
            "in include/mappings/environment.yaml. Empty: every configured pair."
        ),
    )


def sync_params(*, waits: bool = True) -> dict[str, Param]:
    """A fresh set of Params (each DAG needs its own objects).

    :param waits: whether the DAG has run-order sensors; only then does it offer
        ``wait_for_upstream`` (a switch that does nothing would mislead the form's reader).
    """
    params = {
        FULL_REFRESH: Param(
            False,
            type=_BOOLEAN,
            title="Full refresh",
            description=(
                "Read every source row the template's filter allows instead of only the rows "
                "changed in the run's data interval (Dataverse modifiedon). F&O sources have no "
                "change timestamp and are always read whole. Rows already in the target are "
                "compared, so a full refresh writes only what differs."
            ),
        ),
        DRY_RUN: Param(
            False,
            type=_BOOLEAN,
            title="Dry run",
            description=(
                "Extract, snapshot and plan, but write nothing to the target. The load tasks "
                "report the planned creates/updates/rejects with samples, and their asset events "
                "carry dry_run=true."
            ),
        ),
        COMPANIES: companies_param(),
        WINDOW_START: Param(
            None,
            **_TIMESTAMP,
            title="Window start (UTC)",
            description=(
                "Override the start of the change window (ISO 8601, e.g. 2026-11-01T00:00:00Z). "
                "Empty: the run's data interval start. Ignored with a full refresh."
            ),
        ),
        WINDOW_END: Param(
            None,
            **_TIMESTAMP,
            title="Window end (UTC, exclusive)",
            description=(
                "Override the end of the change window (exclusive). Empty: the run's data "
                "interval end. Ignored with a full refresh."
            ),
        ),
        MAX_REJECTED: Param(
            DEFAULT_MAX_REJECTED,
            **_LIMIT,
            title="Max rejected rows",
            description=(
                "Rejected rows a company's run tolerates: a count (25) or a percentage of the rows "
                f"read (20%). Above it the report task fails after every load wrote what it could, "
                f"so downstream DAGs wait. Default {DEFAULT_MAX_REJECTED}."
            ),
        ),
        MAX_FAILED: Param(
            DEFAULT_MAX_FAILED,
            **_LIMIT,
            title="Max failed rows",
            description=(
                "Rows the target refused for their data that a company's run tolerates (count or "
                f"percentage). Failures the service may heal always fail the load, for Airflow to "
                f"retry. Default {DEFAULT_MAX_FAILED}."
            ),
        ),
        MAX_SOURCE_DELETES: Param(
            DEFAULT_MAX_SOURCE_DELETES,
            **_LIMIT,
            title="Max source deletes applied",
            description=(
                "Target rows one load may deactivate or delete because their source row is gone "
                "(tasks whose mapping says on_source_delete: deactivate or delete): a count or a share "
                "of the rows the task put there. Above it none is applied, all are reported as held. "
                f"Default {DEFAULT_MAX_SOURCE_DELETES}."
            ),
        ),
    }
    if waits:
        params[WAIT_FOR_UPSTREAM] = Param(
            True,
            type=_BOOLEAN,
            title="Wait for upstream DAGs",
            description=(
                "Start only after the prerequisite P2C DAGs (see the DAG docs) succeeded for the same "
                "data interval. Switch off for an ad-hoc run that must not wait; rows whose parents "
                "are missing in the target are then rejected to the dead-letter file, not written "
                "half-done, and a later run picks them up."
            ),
        )
    return params


__all__ = [
    "COMPANIES",
    "DRY_RUN",
    "FULL_REFRESH",
    "MAX_FAILED",
    "MAX_REJECTED",
    "MAX_SOURCE_DELETES",
    "WAIT_FOR_UPSTREAM",
    "WINDOW_END",
    "WINDOW_START",
    "companies_param",
    "param_value",
    "sync_params",
]
