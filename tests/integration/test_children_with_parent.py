"""Children come with their parent, over HTTPS against the emulators with the demo world.

A Sales order of the usmf business unit is pointed at a customer F&O does not have: the
day-1 run (a window holding the header's change, not its unchanged lines) rejects the
header. On day 2 the header is edited to a customer F&O has; the day-2 window again holds
only the header, and the header lands with every one of its lines, read by their header
because it had been pending.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import ObjectStoragePath

from devstack.airflow_stack import connection_env
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.sync.contracts import SyncHooks, Window
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.runner import run_template
from tests.conftest import TEST_CONFIG
from tests.support.emulators import Oracle, start_emulators

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_children_it_dataverse", "fno": "p2c_children_it_fno"}
ACTIVE_ORDERS = (
    "statecode eq 0 and msdynce_processingstatus eq 647390000 "
    "and msdynce_hasexternallymaintainedproductsonly eq true and msdynce_ismaintainedexternally ne true"
)


def sync(root: ObjectStoragePath, run_id: str, start: datetime) -> dict[str, Any]:
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
    )
    result = run_template(
        "sales_orders_sales_to_fno",
        legal_entity="usmf",
        run_id=run_id,
        staging_root=root,
        hooks=hooks,
        window=Window.of(start, start + timedelta(hours=1)),  # a backfill's exact window
        max_rejected="100%",
    )
    return {task: report["counts"] for task, report in result["tasks"].items()}


def test_a_header_that_waited_lands_with_all_its_unchanged_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = start_emulators(tmp_path / "state", "--seed", "demo", config=TEST_CONFIG)
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    sales, fno = Oracle(running.endpoints, "dataverse"), Oracle(running.endpoints, "fno")
    try:
        for name, value in connection_env(running.endpoints, conn_ids=CONN).items():
            monkeypatch.setenv(name, value)
        (unit,) = sales.rows("businessunits?$select=businessunitid&$filter=name eq 'Contoso US'")
        unit_id = unit["businessunitid"]
        orders = sales.rows(
            "salesorders?$select=salesorderid,ordernumber&$orderby=ordernumber"
            f"&$filter={ACTIVE_ORDERS} and _owningbusinessunit_value eq {unit_id}"
        )
        order = orders[0]
        lines = sales.rows(
            "salesorderdetails?$select=salesorderdetailid"
            f"&$filter=_salesorderid_value eq {order['salesorderid']}"
        )
        assert len(lines) >= 2
        in_fno = {
            r["CustomerAccount"]
            for r in fno.rows("CustomersV3?$select=CustomerAccount&$filter=dataAreaId eq 'usmf'")
        }
        known = next(
            a
            for a in sales.rows(
                "accounts?$select=accountid,accountnumber&$orderby=accountnumber"
                f"&$filter=statecode eq 0 and _owningbusinessunit_value eq {unit_id}"
            )
            if a["accountnumber"] in in_fno
        )
        stranger = str(uuid.uuid4())  # an account F&O has no customer for
        created = sales.client.post(
            sales.root + "accounts",
            json={"accountid": stranger, "accountnumber": "CHILDREN-1", "name": "New"},
        )
        assert created.status_code == 204, created.text

        def point_order_at(account_id: str) -> datetime:
            time.sleep(1.1)  # modifiedon has second precision: each day's change in its own window
            start = datetime.now(timezone.utc).replace(microsecond=0)
            response = sales.client.patch(
                f"{sales.root}salesorders({order['salesorderid']})",
                json={"customerid_account@odata.bind": f"/accounts({account_id})"},
            )
            assert response.status_code == 204, response.text
            return start

        day1 = sync(root, "day-1", point_order_at(stranger))
        assert (day1["order_headers"]["read"], day1["order_headers"]["rejected"]) == (1, 1)
        assert day1["order_lines"]["read"] == 0  # unchanged lines: outside the window
        (waiting,) = PendingLedger(root, "sales_orders_sales_to_fno", "usmf", "order_headers").read()
        assert (waiting["source_key"], waiting["record_id"]) == (order["ordernumber"], order["salesorderid"])

        day2 = sync(root, "day-2", point_order_at(known["accountid"]))
        assert (day2["order_headers"]["read"], day2["order_headers"]["created"]) == (1, 1)
        assert {k: day2["order_lines"][k] for k in ("read", "created", "rejected", "failed")} == {
            "read": len(lines),
            "created": len(lines),
            "rejected": 0,
            "failed": 0,
        }
        landed = fno.rows(
            "CDSSalesOrderLines?$select=SalesOrderNumber,LineCreationSequenceNumber"
            f"&$filter=dataAreaId eq 'usmf' and SalesOrderNumber eq '{order['ordernumber']}'"
        )
        assert len(landed) == len(lines)
    finally:
        sales.close()
        fno.close()
        running.stop()
