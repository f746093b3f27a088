"""DAG integrity: the seven P2C DAGs parse fast, offline, and have the shape the issue asks for.

Parsing happens with every socket connection refused and no connection defined, so any
network or emulator access at import time fails the parse. The expected run book (steps,
entity sets) is read from the mapping files here, independently of the DAG files.
"""

from __future__ import annotations

import ast
import itertools
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import Asset, CronDataIntervalTimetable

from prospect_to_cash.dags import RunOrderSensor
from prospect_to_cash.dags.assets import entity_uri
from prospect_to_cash.dags.params import sync_params
from prospect_to_cash.sync.mapping import TEMPLATES, load_template

if TYPE_CHECKING:
    from airflow.sdk import DAG

ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = ROOT / "dags"
SUPPORT = ROOT / "src" / "prospect_to_cash" / "dags"
DAG_IDS = {f"p2c_{name}": name for name in TEMPLATES}

#: The prerequisites of p2c-templates.md ("accounts and products before contacts, quotations
#: and orders; orders before invoices"), written out independently of the DAG files.
PREREQUISITES = {
    "p2c_accounts": set(),
    "p2c_products": set(),
    "p2c_contacts": {"p2c_accounts", "p2c_products"},
    "p2c_sales_quotations": {"p2c_accounts", "p2c_products", "p2c_contacts"},
    "p2c_sales_orders_fno_to_sales": {"p2c_accounts", "p2c_products", "p2c_contacts"},
    "p2c_sales_orders_sales_to_fno": {"p2c_accounts", "p2c_products", "p2c_contacts"},
    "p2c_sales_invoices": {
        "p2c_accounts",
        "p2c_products",
        "p2c_contacts",
        "p2c_sales_orders_fno_to_sales",
        "p2c_sales_orders_sales_to_fno",
    },
}


@pytest.fixture(scope="module")
def dag_bag() -> Any:
    """Parse dags/ with the network unreachable and no Airflow connection configured."""
    from airflow.dag_processing.dagbag import DagBag

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access while parsing a DAG file")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        patch.setattr(socket, "create_connection", refuse)
        for name in [n for n in __import__("os").environ if n.startswith("AIRFLOW_CONN_")]:
            patch.delenv(name)
        return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.fixture(scope="module")
def dags(dag_bag: Any) -> dict[str, DAG]:
    return dict(dag_bag.dags)


def test_all_seven_dags_load_without_import_errors(dag_bag: Any) -> None:
    assert dag_bag.import_errors == {}
    assert set(DAG_IDS) <= set(dag_bag.dags)


def test_each_dag_file_parses_well_under_a_second(dag_bag: Any) -> None:
    stats = {stat.file: stat.duration.total_seconds() for stat in dag_bag.dagbag_stats}
    assert {f"{dag_id}.py" for dag_id in DAG_IDS} <= set(stats)
    slow = {name: seconds for name, seconds in stats.items() if seconds >= 1.0}
    assert not slow, f"DAG files parsing in a second or more: {slow}"


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_operational_settings(dags: dict[str, DAG], dag_id: str) -> None:
    dag = dags[dag_id]
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert {"prospect-to-cash", DAG_IDS[dag_id].replace("_", "-")} <= set(dag.tags)
    for task in dag.tasks:
        assert task.retries >= 2, f"{task.task_id} has {task.retries} retries"
        assert task.owner == "prospect-to-cash", f"{task.task_id} owner {task.owner!r}"
    loads = [task for task in dag.tasks if task.task_id.endswith(".load")]
    assert loads, "no load task"
    for task in loads:  # pairs take turns writing; their reads and transforms overlap
        assert task.max_active_tis_per_dagrun == 1, task.task_id


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_doc_md_tells_an_operator_what_where_prerequisites_and_results(
    dags: dict[str, DAG], dag_id: str
) -> None:
    doc = dags[dag_id].doc_md or ""
    for heading in ("**Syncs**", "**Needs first**", "**Reading the result**", "Run book"):
        assert heading in doc, f"{dag_id} doc_md lacks {heading}"
    assert "rejected.parquet" in doc
    assert "failed.parquet" in doc
    assert "summary.json" in doc
    template = load_template(DAG_IDS[dag_id])
    for task in template.tasks:
        assert f"`{task.source.entity_set}`" in doc
        assert f"`{task.target.entity_set}`" in doc
    for upstream in PREREQUISITES[dag_id]:
        assert f"`{upstream}`" in doc


def test_one_time_based_schedule_with_data_intervals_for_all(dags: dict[str, DAG]) -> None:
    timetables = {dag_id: dags[dag_id].timetable for dag_id in DAG_IDS}
    assert all(isinstance(t, CronDataIntervalTimetable) for t in timetables.values())
    schedules = {(t.expression, str(t.timezone)) for t in timetables.values()}
    assert schedules == {("0 0 * * *", "UTC")}, "the run order needs one shared schedule"


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_params_are_typed_and_documented(dags: dict[str, DAG], dag_id: str) -> None:
    params = dags[dag_id].params
    expected = set(sync_params(waits=bool(PREREQUISITES[dag_id])))
    assert expected == set(params.keys())
    for name in expected:
        param = params.get_param(name)
        assert param.schema.get("type"), name
        assert param.schema.get("title"), name
        assert param.description, name
    assert params["full_refresh"] is False
    assert params["dry_run"] is False
    if PREREQUISITES[dag_id]:
        assert params["wait_for_upstream"] is True
    assert params["companies"] == []


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_steps_follow_the_mapping_file_headers_before_lines(dags: dict[str, DAG], dag_id: str) -> None:
    dag = dags[dag_id]
    template = load_template(DAG_IDS[dag_id])
    names = [task.name for task in template.tasks]
    group = dag.task_group_dict["sync"]
    assert [child for child in group.children if child != "sync.report"] == [f"sync.{n}" for n in names]
    for name in names:
        extract, transform, load = (
            dag.get_task(f"sync.{name}.{step}") for step in ("extract", "transform", "load")
        )
        assert transform.task_id in extract.downstream_task_ids
        assert load.task_id in transform.downstream_task_ids
    for earlier, later in itertools.pairwise(names):
        assert f"sync.{later}.extract" in dag.get_task(f"sync.{earlier}.load").downstream_task_ids
    # the parent task (headers) is always loaded before its lines are read
    for task in template.tasks:
        if task.parent is not None:
            assert names.index(task.parent.task) < names.index(task.name)
    assert dag.get_task("sync.report").upstream_task_ids >= {f"sync.{n}.load" for n in names}


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_company_pairs_fan_out_as_a_mapped_task_group(dags: dict[str, DAG], dag_id: str) -> None:
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup

    dag = dags[dag_id]
    group = dag.task_group_dict["sync"]
    assert isinstance(group, MappedTaskGroup)
    assert "company_pairs" in {
        t.task_id for t in dag.get_task("sync.report").get_flat_relatives(upstream=True)
    }
    assert "check_mapping" in dag.get_task(
        f"sync.{load_template(DAG_IDS[dag_id]).tasks[0].name}.extract"
    ).get_flat_relative_ids(upstream=True)


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_assets_per_entity_set(dags: dict[str, DAG], dag_id: str) -> None:
    dag = dags[dag_id]
    template = load_template(DAG_IDS[dag_id])
    for task in template.tasks:
        load = dag.get_task(f"sync.{task.name}.load")
        extract = dag.get_task(f"sync.{task.name}.extract")
        assert [a.uri for a in load.outlets] == [entity_uri(template.target_system, task.target.entity_set)]
        assert [a.uri for a in extract.inlets] == [entity_uri(template.source_system, task.source.entity_set)]
        assert all(isinstance(a, Asset) for a in [*load.outlets, *extract.inlets])


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_run_order_sensors(dags: dict[str, DAG], dag_id: str) -> None:
    dag = dags[dag_id]
    sensors = [task for task in dag.tasks if isinstance(task, ExternalTaskSensor)]
    assert {s.external_dag_id for s in sensors} == PREREQUISITES[dag_id]
    for sensor in sensors:
        assert isinstance(sensor, RunOrderSensor)
        assert sensor.task_id == f"wait_for_{sensor.external_dag_id}"
        assert sensor.deferrable is True
        assert sensor.failed_states == ["failed"]
        assert sensor.allowed_states == ["success"]
        assert sensor.external_task_ids is None, "waits for the whole upstream DAG run"
        assert {"check_mapping", "company_pairs"} <= sensor.downstream_task_ids
        assert sensor.timeout > 0


def test_run_order_follows_the_template_order_and_has_no_cycle() -> None:
    position = {f"p2c_{name}": index for index, name in enumerate(TEMPLATES)}
    for dag_id, upstream in PREREQUISITES.items():
        assert all(position[u] < position[dag_id] for u in upstream), dag_id


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize(
    "path", sorted([*DAGS_FOLDER.glob("*.py"), *SUPPORT.glob("*.py")]), ids=lambda p: p.name
)
def test_airflow3_idioms_only(path: Path) -> None:
    modules = _imported_modules(path)
    assert not {m for m in modules if m == "airflow.models" or m.startswith("airflow.models.")}
    assert not {
        m for m in modules if m.startswith(("airflow.operators", "airflow.sensors", "airflow.decorators"))
    }
    assert not {m for m in modules if m.startswith(("airflow.utils.session", "airflow.settings"))}
    if path.parent == DAGS_FOLDER and path.stem in DAG_IDS:
        assert path.read_text().lstrip().startswith('"""'), "DAG files open with their doc_md"
        assert modules <= {"__future__", "prospect_to_cash.dags"}, "DAG files stay thin"
