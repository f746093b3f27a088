"""F&O -> Sales currency precision per row over HTTPS (reliability.md, "number precision"):
an order total follows its record currency's ``currencyprecision`` in Sales
(``MoneyAttributeMetadata.PrecisionSource`` 2). Two F&O orders total 1234.567, one in yen
(``currencyprecision`` 0, made in both services through their APIs as an administrator
would), one in dollars (2): they land as 1235 and 1234.57, and a second full refresh finds
both unchanged instead of updating the yen order again on every run."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import ObjectStoragePath

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.sync.contracts import SyncHooks, SyncOptions, Window
from prospect_to_cash.sync.runner import run_template
from tests.support.emulators import Oracle, connected_demo_world

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_currency_dataverse", "fno": "p2c_currency_fno"}
COMPANY = "usmf"
MODEL = "USMF-SO000001"  # a confirmed usmf order the template takes, copied twice
TOTAL = 1234.567
TAX = 98.76  # cents: kept in dollars, 99 in yen
YEN_PRICES = "Yen prices"
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


def _ok(response: Any) -> Any:
    assert response.status_code in (200, 201, 204), response.text
    return response.json() if response.content else None


def _add_yen(fno: Oracle, sales: Oracle) -> None:
    """JPY in both services and a Sales price list in it, as an administrator sets them up."""
    _ok(fno.client.post(fno.root + "Currencies", json={"CurrencyCode": "JPY", "Name": "Yen", "Symbol": "¥"}))
    yen = _ok(
        sales.client.post(
            sales.root + "transactioncurrencies",
            json={
                "isocurrencycode": "JPY",
                "currencyname": "Yen",
                "currencysymbol": "¥",
                "exchangerate": 150.0,
                "currencyprecision": 0,
            },
            headers={"Prefer": "return=representation"},
        )
    )
    bind = f"/transactioncurrencies({yen['transactioncurrencyid']})"
    _ok(
        sales.client.post(
            sales.root + "pricelevels", json={"name": YEN_PRICES, "transactioncurrencyid@odata.bind": bind}
        )
    )


def _copy_order(fno: Oracle, number: str, currency: str) -> None:
    """A copy of the model order in ``currency`` with totals of our own (no header tax line)."""
    (row,) = fno.rows(f"CDSSalesOrderHeaders?cross-company=true&$filter=SalesOrderNumber eq '{MODEL}'")
    body = {k: v for k, v in row.items() if k not in READ_ONLY}
    body.update(
        {
            "SalesOrderNumber": number,
            "CurrencyCode": currency,
            "OrderTotalAmount": TOTAL,
            "OrderTotalTaxAmount": TAX,
            "TotalDiscountAmount": 0.0,
            "OrderTotalChargesAmount": 0.0,
            "OrderHeaderTaxAmount": 0.0,
        }
    )
    _ok(fno.client.post(fno.root + "CDSSalesOrderHeaders", json=body))


def _sync(base: Path, run_id: str, environment: Path) -> dict[str, dict[str, int]]:
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
    )
    options = SyncOptions(
        run_id=run_id,
        staging_root=ObjectStoragePath(f"file://{base / 'staging'}"),
        hooks=hooks,
        environment_file=str(environment),
        max_rejected="100%",  # the demo's lines wait for products (not this test's subject)
    )
    result = run_template(
        "sales_orders_fno_to_sales", legal_entity=COMPANY, options=options, window=Window(full_refresh=True)
    )
    return {task: dict(report["counts"]) for task, report in result["tasks"].items()}


def test_a_yen_and_a_dollar_total_land_with_their_currencys_places_and_stay_unchanged(
    running: RunningEmulators, tmp_path: Path
) -> None:
    fno, sales = Oracle(running.endpoints, "fno"), Oracle(running.endpoints, "dataverse")
    try:
        _add_yen(fno, sales)
        _copy_order(fno, "PREC-JPY", "JPY")
        _copy_order(fno, "PREC-USD", "USD")
        environment = tmp_path / "yen.yaml"
        environment.write_text(
            f"value_maps:\n  price_list_by_currency:\n    entries: {{JPY: {YEN_PRICES}}}\n"
        )

        first = _sync(tmp_path, "currency-1", environment)
        orders = sales.rows(
            "salesorders?$select=ordernumber,totalamount,totaltax&$filter=startswith(ordernumber,'PREC-')"
        )
        assert {o["ordernumber"]: (o["totalamount"], o["totaltax"]) for o in orders} == {
            "PREC-JPY": (1235, 99),
            "PREC-USD": (1234.57, 98.76),
        }
        # both totals of 1234.567 and the yen tax lost places (the demo's own orders none)
        assert (first["order_headers"]["rounded"], first["order_headers"]["failed"]) == (3, 0)

        second = _sync(tmp_path, "currency-2", environment)
        for task, counts in second.items():
            read = first[task]["read"]
            assert (counts["created"], counts["updated"], counts["failed"], counts["unchanged"]) == (
                0,
                0,
                0,
                read,
            ), (task, counts)
    finally:
        fno.close()
        sales.close()
