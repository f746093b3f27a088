"""F&O -> Sales number precision over HTTPS (issue 15, point 6, "number precision"): an F&O
price with six decimals lands in Sales rounded to the places its currency columns keep (the
organization's pricing decimal precision, read from EntityDefinitions), a second run finds it
unchanged, and after the organization keeps 4 places (PATCH organizations, as an administrator
would) the next full refresh sends 4."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from devstack.airflow_stack import connection_env
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.sync.contracts import SyncOptions, Window
from prospect_to_cash.sync.runner import SyncHooks, run_template
from tests.conftest import TEST_CONFIG
from tests.support.emulators import acquire_token, start_emulators

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_precision_dataverse", "fno": "p2c_precision_fno"}
COMPANY = "usmf"
NUMBER = "PREC-PRICE-1"
PRICE = 12.345678


class _Run:
    """Emulators with the demo world plus one finely priced F&O product, and the product sync."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.running = start_emulators(base / "emulators", "--seed", "demo", config=TEST_CONFIG)
        endpoints = self.running.endpoints
        self.http = httpx.Client(verify=endpoints.ssl_context(), timeout=60)
        self.tokens = {s: acquire_token(endpoints, s) for s in ("dataverse", "fno")}
        self.hooks = SyncHooks(
            dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
            fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
        )
        self.runs = 0

    def call(self, service: str, method: str, path: str, body: Any = None, **params: str) -> Any:
        url = f"{self.running.endpoints.service_root(service).rstrip('/')}/{path}"
        headers = {"Authorization": f"Bearer {self.tokens[service]}", "Accept": "application/json"}
        response = self.http.request(method, url, json=body, params=params or None, headers=headers)
        assert response.status_code in (200, 201, 204), (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    def sync(self, *, full_refresh: bool = False) -> dict[str, dict[str, int]]:
        """One products run with fresh hooks (a new task reads the metadata again)."""
        self.runs += 1
        hooks = SyncHooks(
            dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
            fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
        )
        options = SyncOptions(
            run_id=f"precision-{self.runs}", staging_root=f"file://{self.base / 'staging'}", hooks=hooks
        )
        window = Window(full_refresh=full_refresh)
        result = run_template("products", legal_entity=COMPANY, options=options, window=window)
        return {task: dict(report["counts"]) for task, report in result["tasks"].items()}

    def in_sales(self) -> tuple[float, list[float]]:
        """The product's list price and its price list items' amounts, as Sales holds them."""
        (product,) = self.call(
            "dataverse",
            "GET",
            "products",
            **{"$select": "productid,price", "$filter": f"productnumber eq '{NUMBER}'"},
        )["value"]
        items = self.call(
            "dataverse",
            "GET",
            "productpricelevels",
            **{"$select": "amount", "$filter": f"_productid_value eq {product['productid']}"},
        )["value"]
        return product["price"], [item["amount"] for item in items]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Run]:
    logging.getLogger("prospect_to_cash").setLevel(logging.ERROR)
    base = tmp_path_factory.mktemp("precision")
    run = _Run(base)
    variables = connection_env(run.running.endpoints, conn_ids=CONN)
    os.environ.update(variables)
    try:
        body = {
            "dataAreaId": COMPANY,
            "ProductNumber": NUMBER,
            "ProductName": "Finely priced",
            "ProductType": "Item",
            "SalesUnitSymbol": "ea",
            "InventoryUnitSymbol": "ea",
            "SalesPrice": PRICE,
            "CurrencyCode": "USD",
        }
        run.call("fno", "POST", "SellableReleasedProducts", body)
        yield run
    finally:
        for name in variables:
            os.environ.pop(name, None)
        run.http.close()
        run.running.stop()


def test_a_six_decimal_price_lands_with_the_places_sales_keeps_and_stays_unchanged(run: _Run) -> None:
    first = run.sync()
    assert run.in_sales() == (12.35, [12.35])  # pricingdecimalprecision 2, a new organization's
    assert first["products"]["created"] >= 1
    second = run.sync()
    for task in ("products", "price_list_items"):
        assert (second[task]["created"], second[task]["updated"], second[task]["failed"]) == (0, 0, 0), task

    (organization,) = run.call("dataverse", "GET", "organizations", **{"$select": "organizationid"})["value"]
    run.call(
        "dataverse",
        "PATCH",
        f"organizations({organization['organizationid']})",
        {"pricingdecimalprecision": 4},
    )
    # unchanged F&O rows are not transformed again: a full refresh puts the target right
    third = run.sync(full_refresh=True)
    assert run.in_sales() == (12.3457, [12.3457])
    assert (third["products"]["updated"], third["price_list_items"]["updated"]) == (1, 1)
    fourth = run.sync()
    for task in ("products", "price_list_items"):
        assert (fourth[task]["created"], fourth[task]["updated"], fourth[task]["failed"]) == (0, 0, 0), task
