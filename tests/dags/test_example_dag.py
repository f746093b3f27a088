"""A user's own DAG built only from the operators (``examples/dags``), run with ``dag.test()``
against a fresh demo emulator over HTTPS.

Before the run, two F&O customers that Sales maintains get a new credit limit (written by
the test's own HTTPS client); the expectations come from the rows the test reads itself.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pytest

from devstack.dag_test import DagTestRun, run_dag_tests
from tests.support.world import start_demo_world

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.world import DemoWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "dags"
DAG_ID = "example_p2c_operators"
#: The organization customers Sales maintains: the accounts the user's mapping reads.
EXTERNAL = (
    "IsExternallyMaintained eq Microsoft.Dynamics.DataEntities.NoYes'Yes' and PartyType eq 'Organization'"
)
CUSTOMER_COLUMNS = ["dataAreaId", "CustomerAccount", "OrganizationName", "CustomerGroupId", "CreditLimit"]
RAISED = (Decimal("123456.5"), Decimal("98765"))


def _limit(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).normalize()


@pytest.fixture(scope="module")
def example_run(
    tmp_path_factory: pytest.TempPathFactory, airflow_template_home: Path
) -> Iterator[tuple[DemoWorld, dict[str, Any], list[dict[str, Any]]]]:
    world = start_demo_world(tmp_path_factory.mktemp("example-dag"), airflow_template_home)
    try:
        customers = world.reader.rows(
            "fno", "CustomersV3", CUSTOMER_COLUMNS, f"dataAreaId eq 'usmf' and {EXTERNAL}"
        )
        changed = sorted(customers, key=lambda c: c["CustomerAccount"])[: len(RAISED)]
        for customer, limit in zip(changed, RAISED, strict=True):
            world.reader.patch(
                "fno",
                "CustomersV3",
                f"dataAreaId='usmf',CustomerAccount='{customer['CustomerAccount']}'",
                {"CreditLimit": float(limit)},
            )
            customer["CreditLimit"] = float(limit)
        env = {**world.env, "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES)}
        (run,) = run_dag_tests(env, [DagTestRun(DAG_ID, "2026-11-04T00:00:00+00:00")])
        yield world, run, changed
    finally:
        world.reader.close()
        world.running.stop()


def _returns(run: dict[str, Any]) -> dict[str, Any]:
    return {r["task_id"]: r["value"] for r in run["returns"]}


def test_the_example_dag_runs_with_the_operators_only(example_run: Any) -> None:
    _, run, _ = example_run
    assert run["state"] == "success", run["tasks"]
    assert {t["task_id"]: t["state"] for t in run["tasks"]} == dict.fromkeys(
        ("export_customers", "extract", "transform", "load"), "success"
    )


def test_the_export_holds_every_usmf_customer(example_run: Any) -> None:
    world, run, _ = example_run
    exported = _returns(run)["export_customers"]
    expected = world.reader.rows("fno", "CustomersV3", CUSTOMER_COLUMNS, "dataAreaId eq 'usmf'")
    table = pq.read_table(exported["path"].removeprefix("file://"))
    assert table.column_names == CUSTOMER_COLUMNS
    assert exported["rows"] == table.num_rows == len(expected)
    assert set(table.column("CustomerAccount").to_pylist()) == {c["CustomerAccount"] for c in expected}
    assert set(table.column("dataAreaId").to_pylist()) == {"usmf"}


def test_the_users_mapping_updates_exactly_the_changed_credit_limits(example_run: Any) -> None:
    world, run, changed = example_run
    loaded = _returns(run)["load"]
    customers = world.reader.rows(
        "fno", "CustomersV3", ["CustomerAccount", "CreditLimit"], f"dataAreaId eq 'usmf' and {EXTERNAL}"
    )
    counts = loaded["counts"]
    assert (counts["read"], counts["created"], counts["updated"], counts["failed"]) == (
        len(customers),
        0,
        len(RAISED),
        0,
    )
    assert counts["unchanged"] == len(customers) - len(RAISED)
    accounts = {
        a["accountnumber"]: _limit(a["creditlimit"])
        for a in world.reader.rows("dataverse", "accounts", ["accountnumber", "creditlimit"])
    }
    assert {c["CustomerAccount"]: _limit(c["CreditLimit"]) for c in customers} == {
        c["CustomerAccount"]: accounts[c["CustomerAccount"]] for c in customers
    }
    assert [accounts[c["CustomerAccount"]] for c in changed] == [limit.normalize() for limit in RAISED]
    (event,) = run["asset_events"]
    assert event["uri"] == "dataverse://dynamics_dataverse_default/accounts"
    assert event["extra"]["counts"] == loaded["counts"]
