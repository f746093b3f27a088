"""Closed orders in Sales, over HTTPS against the emulators: the invoices template sets a fully
invoiced order to Invoiced, which Sales keeps read-only ("Only active orders can be edited"),
lines included. When F&O then changes that order (its header and a line), the next F&O ->
Sales orders run writes neither: both are rejected as closed in Sales (the emulator would
refuse them, 0x8004022e) and parked; another order's change lands, the run ends green, and
the run after it is quiet (nothing read again for them, nothing written, nothing rejected).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import ObjectStoragePath

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.hooks.odata import key_segment
from prospect_to_cash.sync.contracts import SyncHooks, Window
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.runner import run_template
from tests.support.emulators import Oracle, connected_demo_world

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from prospect_to_cash.sync.contracts import TemplateRunResult
    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_closed_it_dataverse", "fno": "p2c_closed_it_fno"}
ORDERS = "sales_orders_fno_to_sales"
COUNTED = ("created", "updated", "rejected", "failed", "parked")


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulators]:
    with connected_demo_world(tmp_path / "state", monkeypatch, CONN) as started:
        yield started


def sync(root: ObjectStoragePath, template: str, run_id: str, window: Window) -> TemplateRunResult:
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
    )
    return run_template(
        template, legal_entity="usmf", run_id=run_id, staging_root=root, hooks=hooks, window=window
    )


def per_task(result: TemplateRunResult) -> dict[str, dict[str, int]]:
    return {task: {k: done["counts"][k] for k in COUNTED} for task, done in result["tasks"].items()}


def daily() -> Window:
    start = datetime.now(timezone.utc).replace(microsecond=0)
    return Window.of(start, start + timedelta(hours=1), since_watermark=True)


def patch(oracle: Oracle, path: str, body: dict[str, Any]) -> None:
    response = oracle.client.patch(f"{oracle.root}{path}?cross-company=true", json=body)
    assert response.status_code == 204, response.text


def test_a_closed_order_is_reported_not_written_and_the_next_run_is_quiet(
    running: RunningEmulators, tmp_path: Path
) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    for template in ("products", ORDERS, "sales_invoices"):
        result = sync(root, template, f"initial-{template}", Window(full_refresh=True))
        assert result["counts"]["failed"] == 0, result["counts"]

    sales, fno = Oracle(running.endpoints, "dataverse"), Oracle(running.endpoints, "fno")
    try:
        (unit,) = sales.rows("businessunits?$select=businessunitid&$filter=name eq 'Contoso US'")
        in_unit = f"_owningbusinessunit_value eq {unit['businessunitid']}"
        orders = sales.rows(
            f"salesorders?$select=salesorderid,ordernumber,statecode,emailaddress&$filter={in_unit}"
        )
        invoiced = sorted(o["ordernumber"] for o in orders if o["statecode"] == 4)
        in_fno = {
            row["SalesOrderNumber"]
            for row in fno.rows(
                "CDSSalesOrderHeaders?cross-company=true&$select=SalesOrderNumber"
                "&$filter=dataAreaId eq 'usmf'"
            )
        }
        active = sorted(
            o["ordernumber"] for o in orders if o["statecode"] == 0 and o["ordernumber"] in in_fno
        )
        assert len(invoiced) == 2  # STORY.md: only fully invoiced orders close, two per company
        closed, other = invoiced[0], active[0]
        closed_id = next(o["salesorderid"] for o in orders if o["ordernumber"] == closed)
        lines = [
            line
            for line in sales.rows(
                "salesorderdetails?$select=sequencenumber,description,msdynce_ismisctax"
                f"&$filter=_salesorderid_value eq {closed_id}&$orderby=sequencenumber"
            )
            if not line["msdynce_ismisctax"]  # not the "Freight Tax" write-in line
        ]
        sequence, description = lines[0]["sequencenumber"], lines[0]["description"]

        # F&O changes the invoiced order (header and a line) and an active one (header)
        def header(number: str) -> str:
            return "CDSSalesOrderHeaders" + key_segment({"dataAreaId": "usmf", "SalesOrderNumber": number})

        patch(fno, header(closed), {"Email": "after-invoice@contoso.com"})
        key = {"dataAreaId": "usmf", "SalesOrderNumber": closed, "LineCreationSequenceNumber": sequence}
        patch(fno, "CDSSalesOrderLines" + key_segment(key), {"ProductName": "Renamed after the invoice"})
        patch(fno, header(other), {"Email": "changed@contoso.com"})

        running.reset_counters()
        result = sync(root, ORDERS, "day-1", daily())  # raises when the run does not end green
        assert per_task(result) == {
            "order_headers": {"created": 0, "updated": 1, "rejected": 1, "failed": 0, "parked": 0},
            "order_lines": {"created": 0, "updated": 0, "rejected": 1, "failed": 0, "parked": 0},
            "order_freight_tax": {"created": 0, "updated": 0, "rejected": 0, "failed": 0, "parked": 0},
        }
        assert running.counters()["dataverse"]["operations_written"] == {"update": 1}
        headers = PendingLedger(root, ORDERS, "usmf", "order_headers").read()
        assert [(e["source_key"], e["reason"], e["parked"]) for e in headers] == [
            (closed, "closed in Sales: Invoiced", True)
        ]
        line_entries = PendingLedger(root, ORDERS, "usmf", "order_lines").read()
        assert [(e["source_key"], e["reason"], e["parked"]) for e in line_entries] == [
            (f"{closed}|{sequence}", f"closed in Sales: order {closed} is Invoiced", True)
        ]
        after = {
            o["ordernumber"]: (o["statecode"], o["emailaddress"])
            for o in sales.rows(f"salesorders?$select=ordernumber,statecode,emailaddress&$filter={in_unit}")
        }
        assert after[closed] == (4, next(o["emailaddress"] for o in orders if o["ordernumber"] == closed))
        assert after[other] == (0, "changed@contoso.com")
        (kept,) = sales.rows(
            f"salesorderdetails?$select=description&$filter=_salesorderid_value eq {closed_id}"
            f" and sequencenumber eq {sequence}"
        )
        assert kept["description"] == description

        # nothing changed since: the parked rows are counted, not tried again
        running.reset_counters()
        quiet = sync(root, ORDERS, "day-2", daily())
        assert per_task(quiet) == {
            "order_headers": {"created": 0, "updated": 0, "rejected": 0, "failed": 0, "parked": 1},
            "order_lines": {"created": 0, "updated": 0, "rejected": 0, "failed": 0, "parked": 1},
            "order_freight_tax": {"created": 0, "updated": 0, "rejected": 0, "failed": 0, "parked": 0},
        }
        assert running.counters()["dataverse"]["operations_written"] == {}
    finally:
        sales.close()
        fno.close()
