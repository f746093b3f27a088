"""What the Airflow UI shows a user of the P2C DAGs, checked on the parsed DAGs (offline).

The rules are Airflow 3's own: the trigger form puts a red "required" star on a Param whose
JSON-schema type lacks "null" (and refuses to submit it empty); the tag filter lists tags
side by side, so they keep one style.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from prospect_to_cash.dags.params import sync_params
from prospect_to_cash.dags.steps import report_label
from prospect_to_cash.sensors.run_order import WAIT_FOR_UPSTREAM, RunOrderSensor
from tests.dags.test_dag_integrity import DAG_IDS, PREREQUISITES, dag_bag, dags

if TYPE_CHECKING:
    from airflow.sdk import DAG

__all__ = ["dag_bag", "dags"]  # the module-scoped fixtures, shared with the integrity tests

ALL_DAG_IDS = sorted({*DAG_IDS, "p2c_reconciliation"})
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def _shown_as_required(schema: dict[str, Any]) -> bool:
    """The trigger form's rule (Airflow 3 UI, FlexibleForm): a type without "null" is required."""
    kind = schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


@pytest.mark.parametrize("dag_id", ALL_DAG_IDS)
def test_no_param_with_a_default_is_shown_as_required(dags: dict[str, DAG], dag_id: str) -> None:
    params = dags[dag_id].params
    assert len(params) >= 3
    required = {name for name in params if _shown_as_required(params.get_param(name).schema)}
    assert required == set(), f"{dag_id}: the form would star {sorted(required)}"


@pytest.mark.parametrize("dag_id", ALL_DAG_IDS)
def test_an_emptied_field_means_the_default_and_is_accepted(dags: dict[str, DAG], dag_id: str) -> None:
    """The REST API and a cleared field send null: the Param accepts it (the tasks read it as
    the default, see ``param_value``), while a wrong type is still refused."""
    params = dags[dag_id].params
    for name in params:
        assert params.get_param(name).resolve(None) is None, name
    if dag_id in DAG_IDS:
        with pytest.raises(Exception, match="is not of type"):
            params.get_param("dry_run").resolve("yes")


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_wait_for_upstream_is_offered_exactly_where_a_dag_waits(dags: dict[str, DAG], dag_id: str) -> None:
    dag = dags[dag_id]
    sensors = {task.external_dag_id for task in dag.tasks if isinstance(task, RunOrderSensor)}
    assert sensors == PREREQUISITES[dag_id]
    assert (WAIT_FOR_UPSTREAM in dag.params) is bool(PREREQUISITES[dag_id])
    assert set(dag.params) == set(sync_params(waits=bool(sensors)))


def test_tags_are_kebab_case_everywhere(dags: dict[str, DAG]) -> None:
    tags = {tag for dag_id in ALL_DAG_IDS for tag in dags[dag_id].tags}
    assert {tag for tag in tags if not KEBAB.match(tag)} == set()
    assert {"prospect-to-cash", "dynamics-365", "reconciliation", "sales-to-fno", "fno-to-sales"} <= tags
    assert {name.replace("_", "-") for name in DAG_IDS.values()} <= tags


@pytest.mark.parametrize(
    ("counts", "label"),
    [
        ({"read": 12, "created": 12, "rejected": 0, "failed": 0}, "usmf"),
        ({"read": 12, "created": 9, "rejected": 3, "failed": 0}, "usmf: 3 rejected"),
        ({"read": 12, "created": 8, "rejected": 3, "failed": 1}, "usmf: 3 rejected, 1 failed"),
        ({"read": 12, "created": 11, "failed": 1}, "usmf: 1 failed"),
    ],
)
def test_a_report_with_rows_left_behind_is_named_differently_in_the_grid(
    counts: dict[str, int], label: str
) -> None:
    assert report_label("usmf", counts) == label


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_the_report_task_is_named_by_its_label(dags: dict[str, DAG], dag_id: str) -> None:
    """The report's map index is rendered from ``p2c_company``, which it sets to ``report_label``
    (the run itself is checked in tests/dags/test_dags_emulators.py)."""
    assert dags[dag_id].get_task("sync.report").map_index_template == "{{ p2c_company }}"
