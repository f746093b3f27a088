"""The seven DAGs are made of the provider's operators, their graph reads at a glance, their
assets say what flows, and the provider info lists what the package ships. Offline."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import BaseOperator

from prospect_to_cash.dags.assets import entity_uri
from prospect_to_cash.dags.params import companies_param, sync_params
from prospect_to_cash.get_provider_info import get_provider_info
from prospect_to_cash.operators import (
    DynamicsExtractOperator,
    DynamicsLoadOperator,
    MappingExtractOperator,
    MappingLoadOperator,
    MappingTransformOperator,
    TemplateSyncOperator,
)
from prospect_to_cash.operators.common import change_window, flag, legal_entity_of
from prospect_to_cash.reconcile.dag import reconciliation_params
from prospect_to_cash.sensors import RunOrderSensor
from prospect_to_cash.sync.mapping import TEMPLATES, load_template

if TYPE_CHECKING:
    from airflow.sdk import DAG

SRC = Path(__file__).resolve().parents[2] / "src" / "prospect_to_cash"
DAG_IDS = {f"p2c_{name}": name for name in TEMPLATES}
STEP_OPERATORS = {
    "extract": MappingExtractOperator,
    "transform": MappingTransformOperator,
    "load": MappingLoadOperator,
}


@pytest.fixture(scope="module")
def dags() -> dict[str, DAG]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(SRC.parents[1] / "dags"))
    assert bag.import_errors == {}
    return dict(bag.dags)


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_every_step_is_the_providers_operators(dags: dict[str, DAG], dag_id: str) -> None:
    dag = dags[dag_id]
    template = load_template(DAG_IDS[dag_id])
    for task in template.tasks:
        for step, operator in STEP_OPERATORS.items():
            built = dag.get_task(f"sync.{task.name}.{step}")
            assert type(built) is operator
            assert (built.template, built.mapping_task) == (template.name, task.name)
    # everything else is the DAG's own preflight and report, or the run-order sensors
    others = {t.task_id for t in dag.tasks if t.task_id.rsplit(".", 1)[-1] not in STEP_OPERATORS}
    assert {"check_mapping", "company_pairs", "sync.report"} <= others
    assert all(
        isinstance(dag.get_task(name), RunOrderSensor)
        for name in others - {"check_mapping", "company_pairs", "sync.report"}
    )


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_the_graph_has_one_edge_per_hand_over(dags: dict[str, DAG], dag_id: str) -> None:
    dag = dags[dag_id]
    names = [task.name for task in load_template(DAG_IDS[dag_id]).tasks]
    # company_pairs feeds the first extract (the mapped group's root) and the report only
    assert dag.get_task("company_pairs").downstream_task_ids == {f"sync.{names[0]}.extract", "sync.report"}
    assert dag.get_task("check_mapping").downstream_task_ids == {f"sync.{names[0]}.extract"}
    for index, name in enumerate(names):
        before = {"check_mapping", "company_pairs"} if index == 0 else {f"sync.{names[index - 1]}.load"}
        assert dag.get_task(f"sync.{name}.extract").upstream_task_ids == before
        assert dag.get_task(f"sync.{name}.transform").upstream_task_ids == {f"sync.{name}.extract"}
        assert dag.get_task(f"sync.{name}.load").upstream_task_ids == {f"sync.{name}.transform"}


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_loads_consume_the_source_and_every_table_their_lookups_read(
    dags: dict[str, DAG], dag_id: str
) -> None:
    dag = dags[dag_id]
    template = load_template(DAG_IDS[dag_id])
    systems = {"source": template.source_system, "target": template.target_system}
    for task in template.tasks:
        own = {("source", task.source.entity_set), ("target", task.target.entity_set)}
        lookups = {(r.side, r.entity_set) for r in task.references} - own
        expected = {entity_uri(template.source_system, task.source.entity_set)} | {
            entity_uri(systems[side], name) for side, name in lookups
        }
        inlets = [a.uri for a in dag.get_task(f"sync.{task.name}.load").inlets]
        assert len(inlets) == len(set(inlets))
        assert set(inlets) == expected


def _consumers(dags: dict[str, DAG], uri: str) -> set[str]:
    return {
        dag_id
        for dag_id, dag in dags.items()
        for task in dag.tasks
        if uri in {getattr(a, "uri", None) for a in task.inlets}
    }


def _producers(dags: dict[str, DAG], uri: str) -> set[str]:
    return {
        dag_id
        for dag_id, dag in dags.items()
        for task in dag.tasks
        if uri in {getattr(a, "uri", None) for a in task.outlets}
    }


def test_the_asset_graph_links_customers_and_products_to_orders_and_invoices(dags: dict[str, DAG]) -> None:
    customers = entity_uri("fno", "CustomersV3")
    assert _producers(dags, customers) == {"p2c_accounts", "p2c_contacts"}
    assert _consumers(dags, customers) == {
        "p2c_contacts",  # contact persons look up their customer
        "p2c_sales_quotations",
        "p2c_sales_orders_sales_to_fno",
        "p2c_reconciliation",  # compares what the syncs wrote
    }
    products = entity_uri("dataverse", "products")
    assert _producers(dags, products) == {"p2c_products"}
    assert {
        "p2c_sales_quotations",
        "p2c_sales_orders_sales_to_fno",
        "p2c_sales_orders_fno_to_sales",
        "p2c_sales_invoices",
    } <= _consumers(dags, products)
    orders = entity_uri("dataverse", "salesorders")
    assert "p2c_sales_invoices" in _consumers(dags, orders)


def test_the_companies_param_is_declared_once() -> None:
    assert reconciliation_params()["companies"].schema == companies_param().schema
    assert sync_params()["companies"].schema == companies_param().schema
    declared = [
        path.relative_to(SRC) for path in SRC.rglob("*.py") if 'title="Companies"' in path.read_text()
    ]
    assert declared == [Path("dags/params.py")]


def test_operators_and_sensors_never_import_the_dag_layer() -> None:
    examples = SRC.parents[1] / "examples" / "dags"
    for path in [*(SRC / "operators").glob("*.py"), *(SRC / "sensors").glob("*.py"), *examples.glob("*.py")]:
        tree = ast.parse(path.read_text())
        modules = {
            node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
        } | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not {m for m in modules if m.startswith("prospect_to_cash.dags")}, path.name
        # Airflow 3 idioms: the Task SDK, not the Airflow 2 import paths
        assert not {
            m for m in modules if m.startswith(("airflow.models", "airflow.operators", "airflow.decorators"))
        }, path.name


OPERATORS = [
    DynamicsExtractOperator,
    DynamicsLoadOperator,
    MappingExtractOperator,
    MappingTransformOperator,
    MappingLoadOperator,
    TemplateSyncOperator,
]


def test_provider_info_lists_hooks_operators_and_sensors() -> None:
    import airflow
    import jsonschema

    info = get_provider_info()
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)  # what ProvidersManager checks when it loads the provider
    assert info["versions"] == [version("airflow-provider-prospect-to-cash")]
    integrations = {i["integration-name"] for i in info["integrations"]}
    for kind in ("hooks", "operators", "sensors"):
        assert {entry["integration-name"] for entry in info[kind]} <= integrations

    def classes(kind: str, base: type) -> set[type]:
        found = set()
        for entry in info[kind]:
            for module in entry["python-modules"]:
                found |= {
                    obj
                    for _, obj in inspect.getmembers(importlib.import_module(module), inspect.isclass)
                    if issubclass(obj, base) and obj.__module__ == module and not obj.__name__.startswith("_")
                }
        return found

    assert classes("operators", BaseOperator) == set(OPERATORS)
    assert classes("sensors", BaseOperator) == {RunOrderSensor}
    hooks = {m for entry in info["hooks"] for m in entry["python-modules"]}
    assert {c["hook-class-name"].rsplit(".", 1)[0] for c in info["connection-types"]} == hooks


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_operators_declare_templated_fields_and_a_colour(operator: type[BaseOperator]) -> None:
    assert operator.template_fields
    assert operator.ui_color.startswith("#")
    assert operator.ui_color != BaseOperator.ui_color
    parameters = inspect.signature(operator.__init__).parameters
    for name in operator.template_fields:
        assert name in parameters or any(
            name in inspect.signature(b.__init__).parameters for b in operator.__mro__
        )


def test_a_company_is_a_legal_entity_a_pair_or_a_step_result() -> None:
    assert legal_entity_of("usmf") == "usmf"
    assert legal_entity_of({"legal_entity": "demf", "business_unit": "Contoso Europe"}) == "demf"
    assert legal_entity_of({"legal_entity": "usmf", "counts": {}, "task": "customers"}) == "usmf"
    from airflow.sdk.exceptions import AirflowFailException

    for bad in ("", {"business_unit": "x"}, None):
        with pytest.raises(AirflowFailException):
            legal_entity_of(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "expected"), [(True, True), ("True", True), ("false", False), ("", False), (None, False)]
)
def test_flags_rendered_by_templates(given: Any, expected: bool) -> None:
    assert flag(given, "dry_run") is expected


def test_a_point_interval_reads_everything_but_an_empty_explicit_window_fails() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    point = "2026-11-04T00:00:00+00:00"
    assert change_window(point, point).to_dict() == {"start": None, "end": None}
    assert change_window(point, point, "2026-11-01T00:00:00Z").to_dict() == {
        "start": "2026-11-01T00:00:00Z",
        "end": None,
    }
    with pytest.raises(AirflowFailException):
        change_window(None, None, point, point)


def test_the_reconciliation_follows_every_sync_it_checks(dags: dict[str, DAG]) -> None:
    reconcile = dags["p2c_reconciliation"].get_task("reconcile")
    inlets = {a.uri for a in reconcile.inlets}
    written = {a.uri for dag_id in DAG_IDS for t in dags[dag_id].tasks for a in t.outlets}
    read = {
        a.uri
        for dag_id in DAG_IDS
        for t in dags[dag_id].tasks
        if t.task_id.endswith(".extract")
        for a in t.inlets
    }
    assert inlets == written | read
    for dag_id, template in DAG_IDS.items():
        assert {
            entity_uri(load_template(template).target_system, t.target.entity_set)
            for t in load_template(template).tasks
        } <= inlets, dag_id


def test_the_reconciliation_purges_old_staging_whatever_the_report_did(dags: dict[str, DAG]) -> None:
    dag = dags["p2c_reconciliation"]
    purge = dag.get_task("purge_staging")
    assert purge.upstream_task_ids == {"reconcile"}
    assert purge.trigger_rule == "all_done"
    assert {t.task_id for t in dag.tasks} == {"reconcile", "verdict", "purge_staging"}
