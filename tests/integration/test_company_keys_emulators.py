"""Company-safe keys over HTTPS against the emulators: two legal entities both number an
order ``SO-000123`` (seeded through F&O's OData API). The F&O -> Sales orders template
keeps them as two Sales orders, each in its company pair's business unit; the usmf one,
created by an earlier version with the id that ignored the company, is found by number
within its business unit and updated, never duplicated; a rerun writes nothing."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import ObjectStoragePath

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.sync.company_scope import company_row_id
from prospect_to_cash.sync.contracts import SyncHooks, Window
from prospect_to_cash.sync.runner import run_company_pairs
from prospect_to_cash.sync.values import deterministic_id
from tests.support.emulators import Oracle, connected_demo_world

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_keys_it_dataverse", "fno": "p2c_keys_it_fno"}
NUMBER = "SO-000123"
#: Computed by F&O (the emulator refuses them on create, as F&O does).
READ_ONLY = (
    "@odata.etag",
    "FormattedDelveryAddress",
    "FormattedInvoiceAddress",
    "OrderingCustomerIsExternallyMaintained",
    "InvoiceCustomerIsExternallyMaintained",
)


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulators]:
    logging.getLogger("prospect_to_cash").setLevel(logging.WARNING)
    with connected_demo_world(tmp_path / "state", monkeypatch, CONN) as started:
        yield started


def _copy_order(fno: Oracle, model: str, name: str) -> dict[str, Any]:
    """Create ``NUMBER`` in the model order's company, as a copy of that order."""
    (row,) = fno.rows(f"CDSSalesOrderHeaders?cross-company=true&$filter=SalesOrderNumber eq '{model}'")
    body = {k: v for k, v in row.items() if k not in READ_ONLY}
    body.update({"SalesOrderNumber": NUMBER, "SalesOrderName": name})
    response = fno.client.post(fno.root + "CDSSalesOrderHeaders", json=body)
    assert response.status_code == 201, response.text
    return body


def _sync(root: ObjectStoragePath, run_id: str) -> Any:
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
    )
    return run_company_pairs(
        "sales_orders_fno_to_sales",
        legal_entities=["usmf", "demf"],
        run_id=run_id,
        staging_root=root,
        hooks=hooks,
        window=Window(full_refresh=True),
        max_rejected="100%",  # the demo's lines wait for products (not this test's subject)
    )


def test_equal_order_numbers_of_two_companies_stay_two_sales_orders(
    running: RunningEmulators, tmp_path: Path
) -> None:
    fno, sales = Oracle(running.endpoints, "fno"), Oracle(running.endpoints, "dataverse")
    try:
        usmf = _copy_order(fno, "USMF-SO000001", "Order of Contoso US")
        demf = _copy_order(fno, "DEMF-SO000001", "Auftrag von Contoso Europe")
        units = {
            r["name"]: r["businessunitid"] for r in sales.rows("businessunits?$select=name,businessunitid")
        }
        (account,) = sales.rows(
            f"accounts?$select=accountid&$filter=accountnumber eq '{usmf['OrderingCustomerAccountNumber']}'"
        )
        (usd,) = sales.rows(
            "transactioncurrencies?$select=transactioncurrencyid&$filter=isocurrencycode eq 'USD'"
        )
        # the usmf order as an earlier version created it: the id hashed the number only
        legacy_id = deterministic_id("salesorders", NUMBER)
        created = sales.client.post(
            sales.root + "salesorders",
            json={
                "salesorderid": legacy_id,
                "ordernumber": NUMBER,
                "name": "stale name",
                "customerid_account@odata.bind": f"/accounts({account['accountid']})",
                "transactioncurrencyid@odata.bind": f"/transactioncurrencies({usd['transactioncurrencyid']})",
                "ownerid@odata.bind": "/systemusers(605559f3-0270-406e-91c4-7ee5d524605d)",  # usmf's owner
            },
            headers={"Content-Type": "application/json"},
        )
        assert created.status_code == 204, created.text

        root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
        first = _sync(root, "keys-1")
        headers = {
            company: first["companies"][company]["counts"] for company in ("usmf", "demf")
        }  # per pair: the new number besides the demo's own orders
        assert headers["usmf"]["failed"] == headers["demf"]["failed"] == 0

        orders = sales.rows(
            "salesorders?$select=salesorderid,name,_owningbusinessunit_value,_transactioncurrencyid_value"
            f"&$filter=ordernumber eq '{NUMBER}'"
        )
        assert {(o["salesorderid"], o["name"], o["_owningbusinessunit_value"]) for o in orders} == {
            (legacy_id, usmf["SalesOrderName"], units["Contoso US"]),
            (company_row_id("salesorders", "demf", NUMBER), demf["SalesOrderName"], units["Contoso Europe"]),
        }
        (eur,) = sales.rows(
            "transactioncurrencies?$select=transactioncurrencyid&$filter=isocurrencycode eq 'EUR'"
        )
        currency = {o["salesorderid"]: o["_transactioncurrencyid_value"] for o in orders}
        assert currency[legacy_id] == usd["transactioncurrencyid"]
        assert currency[company_row_id("salesorders", "demf", NUMBER)] == eur["transactioncurrencyid"]

        second = _sync(root, "keys-2")
        for company in ("usmf", "demf"):
            counts = second["companies"][company]["counts"]
            assert (counts["created"], counts["updated"]) == (0, 0), (company, counts)
        assert len(sales.rows(f"salesorders?$select=salesorderid&$filter=ordernumber eq '{NUMBER}'")) == 2
    finally:
        fno.close()
        sales.close()
