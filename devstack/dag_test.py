"""``dag.test()`` of the P2C DAGs in a subprocess, for the DAG tests.

Airflow reads ``AIRFLOW_HOME`` once per process, so each throw-away home (see
:func:`devstack.airflow_stack.airflow_env`) gets its own process: :func:`run_dag_tests`
starts ``python -m devstack.dag_test`` with that environment, which runs ``dag.test()``
for each request in order and writes each run's task states, return values and asset
events as JSON.

Usage (tests)::

    env = airflow_env(prepare_home(tmp / "airflow", template=migrated), connections=...)
    run_dag_tests(env, [DagTestRun("p2c_accounts", "2026-11-04T00:00:00+00:00", {"full_refresh": True})])
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.airflow_stack import DAGS_FOLDER, ROOT, StackError
from emulators.client import log_tail

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


# -- dag.test() in a subprocess -----------------------------------------------------------------


@dataclass
class DagTestRun:
    """One ``dag.test()`` request."""

    dag_id: str
    logical_date: str | None = None
    conf: dict[str, Any] = field(default_factory=dict)


def run_dag_tests(
    env: Mapping[str, str], runs: Sequence[DagTestRun], *, timeout: float = 900, workdir: Path | None = None
) -> list[dict[str, Any]]:
    """Run ``dag.test()`` for each request in order, in one subprocess with ``env``;
    returns one result per run (see :func:`_collect`). The Airflow output goes to
    ``<workdir>/dag-test-<n>.log``; its tail is in the exception when the process fails."""
    home = Path(env["AIRFLOW_HOME"])
    workdir = Path(workdir or home)
    index = len(list(workdir.glob("dag-test-*.log")))
    log_path = workdir / f"dag-test-{index}.log"
    request_path = workdir / f"dag-test-{index}.json"
    result_path = workdir / f"dag-test-{index}.result.json"
    request_path.write_text(json.dumps([run.__dict__ for run in runs]))
    with log_path.open("w") as log_file:
        try:
            completed = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "devstack.dag_test",
                    str(request_path),
                    str(result_path),
                ],
                env=dict(env),
                cwd=ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"dag.test() did not finish in {timeout}s:\n{log_tail(log_path, 60)}") from exc
    if completed.returncode != 0 or not result_path.exists():
        raise StackError(f"dag.test() process failed ({completed.returncode}):\n{log_tail(log_path, 120)}")
    return json.loads(result_path.read_text())


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value else None


def _collect(dag_run: Any) -> dict[str, Any]:
    """State, task instances, return values and asset events of one finished run.
    (Runs inside the dag-test subprocess; reading the metadata database is fine for
    development tooling, never for DAG or task code.)"""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
            )
        ).all()
        xcoms = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.key == "return_value",
            )
        ).all()
        events = session.execute(
            select(AssetEvent, AssetModel.uri)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_dag_id == dag_run.dag_id, AssetEvent.source_run_id == dag_run.run_id)
        ).all()
        return {
            "dag_id": dag_run.dag_id,
            "run_id": dag_run.run_id,
            "state": str(dag_run.state),
            "logical_date": _iso(dag_run.logical_date),
            "data_interval": [_iso(dag_run.data_interval_start), _iso(dag_run.data_interval_end)],
            "tasks": [
                {
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "state": str(ti.state),
                    "start": _iso(ti.start_date),
                    "end": _iso(ti.end_date),
                    "rendered_map_index": ti.rendered_map_index,
                }
                for ti in tis
            ],
            "returns": [
                {"task_id": x.task_id, "map_index": x.map_index, "value": XComModel.deserialize_value(x)}
                for x in xcoms
            ],
            "asset_events": [
                {
                    "uri": uri,
                    "extra": event.extra,
                    "task_id": event.source_task_id,
                    "map_index": event.source_map_index,
                }
                for event, uri in events
            ],
        }


def _dag_test_main(request_path: Path, result_path: Path) -> int:
    from airflow.dag_processing.dagbag import DagBag

    requests = json.loads(Path(request_path).read_text())
    bag = DagBag(dag_folder=os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER)))
    if bag.import_errors:
        print(f"import errors: {bag.import_errors}", file=sys.stderr)
        return 2
    results = []
    for request in requests:
        dag = bag.get_dag(request["dag_id"])
        if dag is None:
            print(f"no DAG {request['dag_id']!r}", file=sys.stderr)
            return 2
        logical_date = (
            datetime.fromisoformat(request["logical_date"]) if request.get("logical_date") else None
        )
        dag_run = dag.test(logical_date=logical_date, run_conf=request.get("conf") or None)
        results.append(_collect(dag_run))
    Path(result_path).write_text(json.dumps(results, default=str))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.dag_test", description=__doc__.splitlines()[0])
    parser.add_argument("request", type=Path, help="JSON list of DagTestRun requests")
    parser.add_argument("result", type=Path, help="where the JSON results go")
    arguments = parser.parse_args(argv)
    return _dag_test_main(arguments.request, arguments.result)


if __name__ == "__main__":
    sys.exit(main())
