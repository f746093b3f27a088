"""Target reads scoped to the run, over HTTPS against the emulators: the hooks' chunked
key reads (Dataverse ``Microsoft.Dynamics.CRM.In``, F&O ``or`` chains) return exactly the
rows of the keys, and a windowed accounts run after two accounts changed reads only those
two customers from F&O (snapshot and lookup), not the company's whole customer table."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.sync.contracts import DEFAULT_MAX_FAILED, DEFAULT_MAX_REJECTED, SyncHooks, Window
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.runner import run_template
from prospect_to_cash.sync.staging import TaskStaging
from tests.support.emulators import Oracle, connected_demo_world

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_scope_it_dataverse", "fno": "p2c_scope_it_fno"}


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulators]:
    logging.getLogger("prospect_to_cash").setLevel(logging.WARNING)
    with connected_demo_world(tmp_path / "state", monkeypatch, CONN) as started:
        yield started


def _usmf_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment with the usmf pair only (the runs below sync one company)."""
    unscoped = tmp_path / "usmf-only.yaml"
    unscoped.write_text(
        yaml.safe_dump({"company_pairs": [{"legal_entity": "usmf", "business_unit": "Contoso US"}]})
    )
    monkeypatch.setenv("P2C_ENVIRONMENT_FILE", str(unscoped))


def _sync(
    template: str,
    root: ObjectStoragePath,
    run_id: str,
    window: Window,
    *,
    max_rejected: str = DEFAULT_MAX_REJECTED,
    max_failed: str = DEFAULT_MAX_FAILED,
) -> Any:
    """One usmf run of ``template`` with fresh hooks, as a new Airflow task has."""
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
    )
    return run_template(
        template,
        legal_entity="usmf",
        run_id=run_id,
        staging_root=root,
        hooks=hooks,
        window=window,
        max_rejected=max_rejected,
        max_failed=max_failed,
    )


def _frame(pages: Iterator[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(list(pages), ignore_index=True)


def test_hooks_read_by_keys_in_chunks_exactly_the_rows_of_the_keys(
    running: RunningEmulators, monkeypatch: pytest.MonkeyPatch
) -> None:
    fno_oracle, sales_oracle = Oracle(running.endpoints, "fno"), Oracle(running.endpoints, "dataverse")
    try:
        customers = fno_oracle.rows(
            "CustomersV3?$select=CustomerAccount&cross-company=true&$filter=dataAreaId eq 'usmf'"
        )
        accounts = sales_oracle.rows("accounts?$select=accountnumber")
    finally:
        fno_oracle.close()
        sales_oracle.close()
    wanted_fno = [*sorted(r["CustomerAccount"] for r in customers)[:7], "NO-SUCH-CUSTOMER"]
    numbers = sorted(r["accountnumber"] for r in accounts if r["accountnumber"])
    wanted_sales = [*numbers[:7], "NO-SUCH-ACCOUNT"]
    with (
        FinanceOperationsHook(fno_conn_id=CONN["fno"]) as fno,
        DataverseHook(dataverse_conn_id=CONN["dataverse"]) as dv,
    ):
        monkeypatch.setattr(fno, "keys_per_read", 3)  # 8 keys: 3 requests, side by side
        monkeypatch.setattr(dv, "keys_per_read", 3)
        got_fno = _frame(
            fno.iter_pages_by_keys(
                "CustomersV3",
                select=["CustomerAccount"],
                column="CustomerAccount",
                values=wanted_fno,
                companies=["usmf"],
            )
        )
        got_sales = _frame(
            dv.iter_pages_by_keys(
                "accounts",
                select=["accountnumber"],
                column="accountnumber",
                values=wanted_sales,
                filter="statecode eq 0",
            )
        )
        empty = _frame(
            dv.iter_pages_by_keys("accounts", select=["accountnumber"], column="accountnumber", values=[])
        )
    assert sorted(got_fno["CustomerAccount"]) == wanted_fno[:7]
    assert sorted(got_sales["accountnumber"]) == wanted_sales[:7]
    assert (list(empty.columns), len(empty)) == (["accountnumber"], 0)


def test_hooks_read_composite_keys_in_chunks_exactly_the_rows_of_the_keys(
    running: RunningEmulators, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Order lines by (order, line): F&O's lines by number, Sales' by the order's GUID (a
    bare GUID literal) and the sequence number; a pair that does not exist reads nothing."""
    fno_oracle, sales_oracle = Oracle(running.endpoints, "fno"), Oracle(running.endpoints, "dataverse")
    try:
        fno_lines = fno_oracle.rows(
            "CDSSalesOrderLines?cross-company=true&$select=SalesOrderNumber,LineCreationSequenceNumber"
            "&$filter=dataAreaId eq 'usmf'"
        )
        sales_lines = sales_oracle.rows("salesorderdetails?$select=_salesorderid_value,sequencenumber")
    finally:
        fno_oracle.close()
        sales_oracle.close()
    fno_keys = sorted((r["SalesOrderNumber"], r["LineCreationSequenceNumber"]) for r in fno_lines)[:7]
    sales_keys = sorted((r["_salesorderid_value"], r["sequencenumber"]) for r in sales_lines)[:7]
    assert len(fno_keys) == len(sales_keys) == 7
    running.reset_counters()
    with (
        FinanceOperationsHook(fno_conn_id=CONN["fno"]) as fno,
        DataverseHook(dataverse_conn_id=CONN["dataverse"]) as dv,
    ):
        monkeypatch.setattr(fno, "keys_per_read", 3)  # 8 keys: 3 requests, side by side
        monkeypatch.setattr(dv, "keys_per_read", 3)
        got_fno = _frame(
            fno.iter_pages_by_key_rows(
                "CDSSalesOrderLines",
                select=["SalesOrderNumber", "LineCreationSequenceNumber"],
                columns=["SalesOrderNumber", "LineCreationSequenceNumber"],
                rows=[*fno_keys, (fno_keys[0][0], 999)],
                companies=["usmf"],
            )
        )
        got_sales = _frame(
            dv.iter_pages_by_key_rows(
                "salesorderdetails",
                select=["_salesorderid_value", "sequencenumber"],
                columns=["_salesorderid_value", "sequencenumber"],
                rows=[(uuid.UUID(order), line) for order, line in [*sales_keys, (sales_keys[0][0], 999)]],
            )
        )
    assert (
        sorted(zip(got_fno["SalesOrderNumber"], got_fno["LineCreationSequenceNumber"], strict=True))
        == fno_keys
    )
    got = zip(got_sales["_salesorderid_value"], got_sales["sequencenumber"], strict=True)
    assert sorted(got) == sales_keys
    counters = running.counters()
    assert counters["fno"]["requests"]["GET CDSSalesOrderLines"] == 3
    assert counters["dataverse"]["requests"]["GET salesorderdetails"] == 3


def _staged_rows(tmp_path: Path, run_id: str, name: str) -> Any:
    root = ObjectStoragePath(f"file://{tmp_path / run_id}")
    return TaskStaging(root, "accounts", run_id, "usmf", "customers").read_frame("target", name)


def test_a_daily_accounts_run_reads_the_customers_of_the_changed_accounts_only(
    running: RunningEmulators, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _usmf_only(tmp_path, monkeypatch)

    def sync(run_id: str, window: Window, max_rejected: str) -> Any:
        # each run its own staging: no pending ledger re-reads of the demo's rejects
        root = ObjectStoragePath(f"file://{tmp_path / run_id}")
        return _sync("accounts", root, run_id, window, max_rejected=max_rejected)

    def customers() -> set[str]:
        fno = Oracle(running.endpoints, "fno")
        try:
            query = "CustomersV3?cross-company=true&$select=CustomerAccount&$filter=dataAreaId eq 'usmf'"
            return {r["CustomerAccount"] for r in fno.rows(query)}
        finally:
            fno.close()

    before = customers()
    sync("initial", Window(full_refresh=True), "20%")
    whole = len(_staged_rows(tmp_path, "initial", "rows"))
    sales = Oracle(running.endpoints, "dataverse")
    try:
        units = {
            r["name"]: r["businessunitid"] for r in sales.rows("businessunits?$select=name,businessunitid")
        }
        mine = sales.rows(
            "accounts?$select=accountid,accountnumber"
            f"&$filter=_owningbusinessunit_value eq {units['Contoso US']} and statecode eq 0"
            " and _parentaccountid_value eq null&$orderby=accountnumber"
        )
        synced = customers()
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
        changed = [r for r in mine if r["accountnumber"] in synced][:2]  # two the initial load created
        assert len(changed) == 2
        for row in changed:
            response = sales.client.patch(
                f"{sales.root}accounts({row['accountid']})",
                json={"telephone1": "+1 555 0100"},
                headers={"Content-Type": "application/json", "If-Match": "*"},
            )
            assert response.status_code == 204, response.text
    finally:
        sales.close()
    daily = sync("daily", Window.of(start, start + timedelta(hours=1)), "0")

    assert daily["counts"]["read"] == 2
    assert daily["counts"]["updated"] == 2
    numbers = sorted(r["accountnumber"] for r in changed)
    assert sorted(_staged_rows(tmp_path, "daily", "rows")["CustomerAccount"]) == numbers
    assert whole == len(before)  # the full refresh read every customer of the company
    assert len(synced) > len(before)  # and the daily run had even more to choose from
    # the invoice-account lookup reads only the changed accounts' parents: they have none
    assert len(_staged_rows(tmp_path, "daily", "ref-tgt_customers")) == 0


def test_a_daily_products_run_transforms_only_what_changed_in_the_whole_fno_read(
    running: RunningEmulators, tmp_path: Path
) -> None:
    """F&O entities have no change timestamp: the run reads them whole, but rows whose
    digest equals the last load's are counted unchanged without being transformed, so the
    Sales snapshot reads only the changed product."""
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")

    def sync(run_id: str, window: Window) -> Any:
        return _sync("products", root, run_id, window)

    first = sync("initial", Window(full_refresh=True))["tasks"]["products"]["counts"]
    fno = Oracle(running.endpoints, "fno")
    try:
        (product,) = fno.rows(
            "SellableReleasedProducts?$select=ProductNumber&$top=1&$orderby=ProductNumber"
            "&cross-company=true&$filter=dataAreaId eq 'usmf'"
        )
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
        response = fno.client.patch(
            f"{fno.root}SellableReleasedProducts(dataAreaId='usmf',ProductNumber='{product['ProductNumber']}')",
            json={"ProductDescription": "changed in F&O"},
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 204, response.text
    finally:
        fno.close()
    daily = sync("daily", Window.of(start, start + timedelta(hours=1)))["tasks"]["products"]["counts"]

    assert daily["read"] == first["read"]  # the whole read, as counted before
    assert (daily["updated"], daily["created"], daily["unchanged"]) == (
        1,
        0,
        first["read"] - 1 - first["rejected"],
    )
    staging = TaskStaging(root, "products", "daily", "usmf", "products")
    waiting = [e["source_key"] for e in PendingLedger(root, "products", "usmf", "products").read()]
    assert len(waiting) == first["rejected"]  # rejected on day 1: re-tried though unchanged
    assert sorted(staging.read_frame("source", "rows")["ProductNumber"]) == sorted(
        [product["ProductNumber"], *waiting]
    )
    assert list(staging.read_frame("target", "rows")["productnumber"]) == [product["ProductNumber"]]


def test_a_daily_orders_run_reads_only_the_customers_of_the_changed_orders(
    running: RunningEmulators, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order's customer number is itself looked up (among accounts or contacts), then
    matched in F&O's customers: the daily run reads only the changed order's customer."""
    _usmf_only(tmp_path, monkeypatch)
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    for template in ("accounts", "contacts", "products", "sales_orders_sales_to_fno"):
        _sync(template, root, "initial", Window(full_refresh=True), max_rejected="100%", max_failed="100%")

    def customers(run_id: str) -> pd.DataFrame:
        staging = TaskStaging(root, "sales_orders_sales_to_fno", run_id, "usmf", "order_headers")
        return staging.read_frame("target", "ref-tgt_customers")

    whole = customers("initial")
    fno = Oracle(running.endpoints, "fno")
    sales = Oracle(running.endpoints, "dataverse")
    try:
        synced = {
            r["SalesOrderNumber"]
            for r in fno.rows(
                "CDSSalesOrderHeaders?cross-company=true&$select=SalesOrderNumber"
                "&$filter=dataAreaId eq 'usmf'"
            )
        }
        orders = [
            r
            for r in sales.rows(
                "salesorders?$select=salesorderid,ordernumber,_customerid_value"
                "&$filter=statecode eq 0 and msdynce_processingstatus eq 647390000&$orderby=ordernumber"
            )
            if r["ordernumber"] in synced
        ]
        assert orders, "the initial load sent no order"
        order = orders[0]
        account = sales.rows(
            f"accounts?$select=accountnumber&$filter=accountid eq {order['_customerid_value']}"
        )
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
        response = sales.client.patch(
            f"{sales.root}salesorders({order['salesorderid']})",
            json={"description": "changed for the scoped read"},
            headers={"Content-Type": "application/json", "If-Match": "*"},
        )
        assert response.status_code == 204, response.text
    finally:
        sales.close()
        fno.close()
    window = Window.of(start, start + timedelta(hours=1))
    daily = _sync("sales_orders_sales_to_fno", root, "daily", window, max_rejected="100%", max_failed="100%")

    assert daily["tasks"]["order_headers"]["counts"]["updated"] == 1
    assert len(whole) > 10  # the full refresh read the company's customers
    # the daily run read one customer: the changed order's (an account's number)
    assert [a["accountnumber"] for a in account] == list(customers("daily")["CustomerAccount"])


def _patch_line(sales: Oracle, detail_id: str, description: str) -> None:
    response = sales.client.patch(
        f"{sales.root}salesorderdetails({detail_id})",
        json={"description": description},
        headers={"Content-Type": "application/json", "If-Match": "*"},
    )
    assert response.status_code == 204, response.text


def _details(sales: Oracle, number: str) -> list[dict[str, Any]]:
    (order,) = sales.rows(f"salesorders?$select=salesorderid&$filter=ordernumber eq '{number}'")
    return sales.rows(
        "salesorderdetails?$select=salesorderdetailid,sequencenumber"
        f"&$filter=_salesorderid_value eq {order['salesorderid']}&$orderby=sequencenumber"
    )


def _delete_fno_order(fno: Oracle, number: str, lines: list[int]) -> None:
    """Delete an order in F&O, its lines first (what deleting a sales order there does)."""
    for line in lines:
        key = f"dataAreaId='usmf',SalesOrderNumber='{number}',LineCreationSequenceNumber={line}"
        response = fno.client.delete(f"{fno.root}CDSSalesOrderLines({key})?cross-company=true")
        assert response.status_code == 204, response.text
    key = f"dataAreaId='usmf',SalesOrderNumber='{number}'"
    response = fno.client.delete(f"{fno.root}CDSSalesOrderHeaders({key})?cross-company=true")
    assert response.status_code == 204, response.text


def test_a_daily_orders_run_reads_the_changed_order_line_only(
    running: RunningEmulators, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One line of a four-line order changes in Sales: the daily run reads that one F&O line
    (by order number and line number, not every line of the order), and no F&O header for
    it (the line found in F&O proves its header is there). A changed line of an order
    someone deleted in F&O finds no line, so its header is read: absent, the line is held
    back as on any run, not created."""
    _usmf_only(tmp_path, monkeypatch)
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    for template in ("accounts", "contacts", "products", "sales_orders_sales_to_fno"):
        _sync(template, root, "initial", Window(full_refresh=True), max_rejected="100%", max_failed="100%")
    fno, sales = Oracle(running.endpoints, "fno"), Oracle(running.endpoints, "dataverse")
    try:
        lines = fno.rows(
            "CDSSalesOrderLines?cross-company=true&$select=SalesOrderNumber,LineCreationSequenceNumber"
            "&$filter=dataAreaId eq 'usmf'"
        )
        per_order: dict[str, list[int]] = {}
        for line in lines:
            per_order.setdefault(line["SalesOrderNumber"], []).append(line["LineCreationSequenceNumber"])
        number, gone = sorted(n for n, numbers in per_order.items() if len(numbers) == 4)[:2]
        details, gone_details = _details(sales, number), _details(sales, gone)
        assert [d["sequencenumber"] for d in details] == sorted(per_order[number])
        _delete_fno_order(fno, gone, per_order[gone])
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
        changed = details[2]
        _patch_line(sales, changed["salesorderdetailid"], "changed for the line-keyed read")
        _patch_line(sales, gone_details[0]["salesorderdetailid"], "changed after F&O deleted the order")
    finally:
        sales.close()
        fno.close()
    with running.admin("fno") as admin:
        admin.reset_counters()
        window = Window.of(start, start + timedelta(hours=1))
        daily = _sync(
            "sales_orders_sales_to_fno", root, "daily", window, max_rejected="100%", max_failed="100%"
        )
        read = admin.counters()["rows_read_by_set"]

    counts = daily["tasks"]["order_lines"]["counts"]
    assert (counts["read"], counts["updated"], counts["created"], counts["rejected"]) == (2, 1, 0, 1)
    assert read.get("CDSSalesOrderLines", 0) == 1  # the changed line, not the order's four
    assert read.get("CDSSalesOrderHeaders", 0) == 0  # one proven by its line, one asked for: absent
    staging = TaskStaging(root, "sales_orders_sales_to_fno", "daily", "usmf", "order_lines")
    target = staging.read_frame("target", "rows")
    assert list(zip(target["SalesOrderNumber"], target["LineCreationSequenceNumber"], strict=True)) == [
        (number, str(changed["sequencenumber"]))
    ]
    assert list(staging.read_frame("target", "ref-tgt_headers")["SalesOrderNumber"]) == [number]
    (reason,) = staging.read_frame("deadletter", "rejected")["reason"]
    assert reason.startswith(
        f"dangling lookup SalesOrderNumber: no CDSSalesOrderHeaders with SalesOrderNumber='{gone}'"
    )
