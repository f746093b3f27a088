"""The p2c_reconciliation DAG: parses offline, its Params, asset and task functions."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, ParamValidationError

from prospect_to_cash.reconcile.dag import (
    DAG_ID,
    REPORT_ASSET,
    asset_event_extra,
    reconcile_step,
    verdict_step,
)
from prospect_to_cash.sync.runner import SyncHooks
from tests.unit.reconcile.test_reconciler import drifted

if TYPE_CHECKING:
    from airflow.sdk import DAG, ObjectStoragePath

DAG_FILE = Path(__file__).resolve().parents[3] / "dags" / "p2c_reconciliation.py"


@pytest.fixture(scope="module")
def dag() -> DAG:
    """Parsed like the scheduler does, with the network unreachable and no connections."""
    from airflow.dag_processing.dagbag import DagBag

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access while parsing a DAG file")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        for name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_")]:
            patch.delenv(name)
        bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def test_shape_schedule_and_asset(dag: DAG) -> None:
    assert sorted(t.task_id for t in dag.tasks) == ["purge_staging", "reconcile", "verdict"]
    assert dag.get_task("verdict").upstream_task_ids == {"reconcile"}
    # retention runs after the report whatever it did, and decides nothing about the run
    purge = dag.get_task("purge_staging")
    assert purge.upstream_task_ids == {"reconcile"}
    assert purge.trigger_rule == "all_done"
    assert purge.downstream_task_ids == set()
    assert REPORT_ASSET in dag.get_task("reconcile").outlets
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.timetable.expression == "0 6 * * *"
    assert "reconciliation" in dag.tags
    assert "orphaned" in (dag.doc_md or "")


def test_params_refuse_unknown_templates(dag: DAG) -> None:
    templates = dag.params.get_param("templates")
    assert templates.resolve(["accounts", "products"]) == ["accounts", "products"]
    assert templates.resolve([]) == []
    with pytest.raises(ParamValidationError):
        templates.resolve(["acounts"])
    assert dag.params.get_param("output_dir").resolve(None) is None


@pytest.mark.usefixtures("unscoped_environment")
def test_reconcile_step_writes_the_report_and_the_event_extra(
    tmp_path: Path, staging_root: ObjectStoragePath
) -> None:
    sales, fno = drifted(staging_root)
    result = reconcile_step(
        {"templates": ["accounts"], "companies": [], "output_dir": str(tmp_path / "out")},
        run_id="manual__2026-11-04T06:00:00+00:00",
        dataverse_conn_id="unused",
        fno_conn_id="unused",
        hooks=SyncHooks(sales, fno),
        check_metadata=False,
        staging_root=staging_root,
    )
    extra = asset_event_extra(result)
    assert extra["html"].endswith("/reconciliation/reconcile__manual__2026-11-04T06_00_00_00_00/report.html")
    assert Path(extra["json"].removeprefix("file://")).is_file()
    assert (tmp_path / "out" / "report.html").is_file()
    assert extra["totals"]["orphaned"] == 1
    assert verdict_step(result) == result["totals"]


def test_verdict_fails_after_the_report_when_something_was_not_reconciled() -> None:
    result: dict[str, Any] = {"errors": 1, "totals": {}, "paths": {"html": "file:///r/report.html"}}
    with pytest.raises(AirflowFailException, match="could not be reconciled"):
        verdict_step(result)
