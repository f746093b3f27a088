"""Run order with the real scheduler: api-server, scheduler (LocalExecutor), dag-processor and
triggerer in a temp AIRFLOW_HOME (SQLite), against a fresh emulator instance.

The story, for one company pair (usmf, through an environment override):

1. A Sales order ``O`` whose customer account ``C`` changed the same day ``D`` as the order;
   ``C`` is removed from F&O, as if the accounts sync had not delivered it yet.
2. An ad-hoc run of the Sales -> F&O orders DAG with ``wait_for_upstream=false`` and the
   window of ``D``: ``O`` is rejected as a dangling lookup (dead-letter file) and its lines
   are held back; nothing of ``O`` reaches F&O.
3. A backfill of the orders DAG for ``D`` is created first: its run-order sensors defer,
   no extract starts. Then backfills of accounts (three daily intervals), products and
   contacts. Contacts waits for accounts and products, orders for all three; every run
   succeeds; each accounts run reads only its own interval's accounts.
4. ``C`` is back in F&O, and the orders run of ``D`` lands ``O`` with all its lines.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pytest

from devstack.airflow_stack import AirflowStack, StackError
from tests.support.world import ODataReader, SchedulerWorld, business_units, scheduler_world, tasks_by_key

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORDERS = "p2c_sales_orders_sales_to_fno"
UPSTREAM = ("p2c_accounts", "p2c_products", "p2c_contacts")
DAYS = ("2026-11-01", "2026-11-02", "2026-11-03")
ACTIVE = 647390000


def _day(timestamp: str) -> str:
    return timestamp[:10]


def _at(day: str) -> str:
    return f"{day}T00:00:00Z"


def _next(day: str) -> str:
    return (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()


def _moment(value: str | None) -> datetime:
    assert value, "timestamp missing"
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _pick_order(reader: ODataReader, usmf_unit: str) -> dict[str, Any]:
    """An activated usmf order whose customer is an account that is already in F&O and
    changed on the same day as the order."""
    accounts = {
        a["accountid"]: a
        for a in reader.rows(
            "dataverse",
            "accounts",
            ["accountid", "accountnumber", "modifiedon"],
            f"statecode eq 0 and _owningbusinessunit_value eq {usmf_unit}",
        )
    }
    in_fno = {
        c["CustomerAccount"]
        for c in reader.rows("fno", "CustomersV3", ["dataAreaId", "CustomerAccount"])
        if c["dataAreaId"] == "usmf"
    }
    orders = reader.rows(
        "dataverse",
        "salesorders",
        ["salesorderid", "ordernumber", "modifiedon", "_customerid_value"],
        f"statecode eq 0 and msdynce_processingstatus eq {ACTIVE}"
        " and msdynce_hasexternallymaintainedproductsonly eq true and msdynce_ismaintainedexternally ne true"
        f" and _owningbusinessunit_value eq {usmf_unit}",
    )
    for order in sorted(orders, key=lambda o: o["ordernumber"]):
        account = accounts.get(order["_customerid_value"])
        if (
            account
            and account["accountnumber"] in in_fno
            and _day(account["modifiedon"]) == _day(order["modifiedon"])
            and _day(order["modifiedon"]) in DAYS
        ):
            lines = reader.rows(
                "dataverse",
                "salesorderdetails",
                ["sequencenumber"],
                f"_salesorderid_value eq {order['salesorderid']}",
            )
            return {
                **order,
                "customer": account["accountnumber"],
                "day": _day(order["modifiedon"]),
                "lines": lines,
            }
    raise AssertionError("the demo world has no usmf order whose customer account changed the same day")


def _fno_order(reader: ODataReader, number: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    headers = reader.rows(
        "fno", "CDSSalesOrderHeaders", ["dataAreaId", "SalesOrderNumber"], f"SalesOrderNumber eq '{number}'"
    )
    lines = reader.rows(
        "fno",
        "CDSSalesOrderLines",
        ["dataAreaId", "SalesOrderNumber", "LineCreationSequenceNumber"],
        f"SalesOrderNumber eq '{number}'",
    )
    return headers, lines


def _run_for(stack: AirflowStack, dag_id: str, day: str) -> dict[str, Any]:
    runs = [
        r for r in stack.dag_runs(dag_id) if r["run_type"] == "backfill" and _day(r["logical_date"]) == day
    ]
    assert len(runs) == 1, (dag_id, day, runs)
    return runs[0]


def _wait_for_state(
    stack: AirflowStack, dag_id: str, task_id: str, state: str, timeout: float = 240
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in stack.dag_runs(dag_id) if r["run_type"] == "backfill"]
        for run in runs:
            task = tasks_by_key(stack, dag_id, run["dag_run_id"]).get((task_id, -1))
            if task and task["state"] == state:
                return run
        time.sleep(1)
    raise StackError(f"{dag_id}.{task_id} never reached {state}\n{stack.diagnostics()}")


def test_downstream_waits_for_upstream_and_a_dangling_order_lands_later(
    tmp_path: Path, airflow_template_home: Path
) -> None:
    with scheduler_world(tmp_path, airflow_template_home) as world:
        _scenario(world)


def _scenario(world: SchedulerWorld) -> None:
    reader = world.reader
    units = {company: unit for unit, company in business_units(reader).items()}
    order = _pick_order(reader, units["usmf"])
    day = order["day"]
    reader.delete("fno", "CustomersV3", f"dataAreaId='usmf',CustomerAccount='{order['customer']}'")

    with world.stack(P2C_RUN_ORDER_TIMEOUT_SECONDS="900") as stack:
        stack.wait_for_dags([ORDERS, *UPSTREAM])
        for dag_id in (ORDERS, *UPSTREAM):
            stack.unpause(dag_id)

        # 2. ad-hoc run without the run order: the order is dead-lettered, not half-written
        # (the user accepts this run's rejects: above the default threshold the run would fail)
        adhoc = stack.trigger(
            ORDERS,
            conf={
                "wait_for_upstream": False,
                "window_start": _at(day),
                "window_end": _at(_next(day)),
                "max_rejected": "100%",
            },
        )
        finished = stack.wait_for_run(ORDERS, adhoc["dag_run_id"], timeout=420)
        assert finished["state"] == "success", stack.failed_task_logs(ORDERS, adhoc["dag_run_id"])
        headers, lines = _fno_order(reader, order["ordernumber"])
        assert headers == [], "an order without its customer reached F&O"
        assert lines == [], "order lines without their header reached F&O"
        summary = stack.xcom(ORDERS, adhoc["dag_run_id"], "sync.report", 0)
        dead = {(d["task"], d["kind"]): d["path"] for d in summary["dead_letters"]}
        rejected = pq.read_table(dead[("order_headers", "rejected")].removeprefix("file://")).to_pylist()
        (row,) = [r for r in rejected if order["ordernumber"] in (r["source_key"] or "") + (r["ref"] or "")]
        assert "OrderingCustomerAccountNumber" in row["reason"] or order["customer"] in row["reason"], row
        held = pq.read_table(dead[("order_lines", "rejected")].removeprefix("file://")).to_pylist()
        assert order["lines"], "the chosen order has lines"
        held_for_order = [r for r in held if order["ordernumber"] in (r["row"] or "") + (r["reason"] or "")]
        assert len(held_for_order) == len(order["lines"]), held

        # 3. the downstream backfill first: it must wait. Every backfill accepts its rejects:
        # the demo world's are deliberate (duplicate numbers, unknown codes, the customer
        # deleted above), and a day's window can hold more than the default 20 % of them
        # (the key-sharer reads bring other days' rows of a shared number); thresholds have
        # their own scheduler test (test_threshold_scheduler.py).
        accept = {"max_rejected": "100%"}
        stack.backfill(ORDERS, _at(day), _at(day), conf=accept)
        waiting = _wait_for_state(stack, ORDERS, "wait_for_p2c_accounts", "deferred")
        time.sleep(5)
        early = tasks_by_key(stack, ORDERS, waiting["dag_run_id"])
        assert early[("sync.order_headers.extract", -1)]["state"] is None, (
            "orders started before its upstream"
        )
        assert stack.dag_runs("p2c_accounts") == [], "no accounts run exists yet"

        stack.backfill("p2c_accounts", _at(DAYS[0]), _at(DAYS[-1]), conf=accept)  # three intervals
        stack.backfill("p2c_products", _at(day), _at(day), conf=accept)
        stack.backfill("p2c_contacts", _at(day), _at(day), conf=accept)
        for dag_id, count in (("p2c_accounts", 3), ("p2c_products", 1), ("p2c_contacts", 1), (ORDERS, 2)):
            runs = stack.wait_for_runs(dag_id, count, timeout=900)
            failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
            assert not failed, "\n".join(stack.failed_task_logs(dag_id, run_id) for run_id in failed)

        # the waits: each downstream run started its work only after its upstream runs ended
        ended = {dag_id: _moment(_run_for(stack, dag_id, day)["end_date"]) for dag_id in UPSTREAM}
        orders_run = _run_for(stack, ORDERS, day)
        orders_tasks = tasks_by_key(stack, ORDERS, orders_run["dag_run_id"])
        first_extract = _moment(orders_tasks[("sync.order_headers.extract", 0)]["start_date"])
        assert first_extract >= max(ended.values())
        sensor_started = _moment(orders_tasks[("wait_for_p2c_accounts", -1)]["start_date"])
        assert sensor_started < ended["p2c_accounts"], "the orders sensor did not have to wait"
        contacts_tasks = tasks_by_key(
            stack, "p2c_contacts", _run_for(stack, "p2c_contacts", day)["dag_run_id"]
        )
        contacts_extract = _moment(contacts_tasks[("sync.contact_persons.extract", 0)]["start_date"])
        assert contacts_extract >= max(ended["p2c_accounts"], ended["p2c_products"])

        # the backfill over three intervals: each run read exactly its own day's accounts, plus
        # the rows earlier runs rejected (the pending ledger re-reads them by key, issue 13) and
        # the other days' rows sharing an account number with its own (issue 17's key rules)
        accounts = reader.rows(
            "dataverse",
            "accounts",
            ["accountid", "accountnumber", "modifiedon"],
            f"statecode eq 0 and _owningbusinessunit_value eq {units['usmf']}",
        )
        day_of = {account["accountid"]: _day(account["modifiedon"]) for account in accounts}
        number_of = {account["accountid"]: account["accountnumber"] for account in accounts}
        rejected_before: set[str] = set()
        for each in DAYS:
            run = _run_for(stack, "p2c_accounts", each)
            assert (run["data_interval_start"], run["data_interval_end"]) == (_at(each), _at(_next(each)))
            extracted = stack.xcom("p2c_accounts", run["dag_run_id"], "sync.customers.extract", 0)
            ids = pq.read_table(extracted["source"]["path"].removeprefix("file://")).column("accountid")
            read = ids.to_pylist()
            outside = {i for i in read if day_of[i] != each}
            assert sorted(i for i in read if day_of[i] == each) == sorted(
                i for i, d in day_of.items() if d == each
            )
            own_numbers = {number_of[i] for i, d in day_of.items() if d == each and number_of[i]}
            sharing = {i for i in outside if number_of[i] in own_numbers}
            assert all(day_of[i] < each for i in outside - sharing), (each, outside)
            assert outside - sharing <= rejected_before, (each, outside, rejected_before)
            result = stack.xcom("p2c_accounts", run["dag_run_id"], "sync.report", 0)
            assert result["counts"]["read"] == len(read), (each, result["counts"])
            for dead in result["dead_letters"]:
                if dead["task"] == "customers":
                    table = pq.read_table(dead["path"].removeprefix("file://"))
                    rejected_before |= {r for r in table.column("record_id").to_pylist() if r}

    # 4. the customer is back in F&O and the order landed with all its lines
    customers = reader.rows(
        "fno", "CustomersV3", ["dataAreaId", "CustomerAccount"], f"CustomerAccount eq '{order['customer']}'"
    )
    assert [c["dataAreaId"] for c in customers] == ["usmf"]
    headers, lines = _fno_order(reader, order["ordernumber"])
    assert [h["dataAreaId"] for h in headers] == ["usmf"]
    assert sorted(int(line["LineCreationSequenceNumber"]) for line in lines) == sorted(
        int(line["sequencenumber"]) for line in order["lines"]
    )
