"""Dataverse emulator, decimal places: currency columns state their ``PrecisionSource`` in
EntityDefinitions and a saved value is rounded to the places its column keeps (the column's,
the organization's ``pricingdecimalprecision`` or the record currency's ``currencyprecision``).

Sources: ``MoneyAttributeMetadata.PrecisionSource`` (0/1/2, unset means 2) and Dynamics 365
Sales "Decimal precision in currency and pricing" (the price columns follow the pricing decimal
precision, 0 to 4; the others the currency's)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.integration

MONEY = "Microsoft.Dynamics.CRM.MoneyAttributeMetadata"


def money_columns(api: httpx.Client, logical_name: str) -> dict[str, tuple[int, int]]:
    url = f"EntityDefinitions(LogicalName='{logical_name}')/Attributes/{MONEY}"
    answer = api.get(url, params={"$select": "LogicalName,Precision,PrecisionSource"})
    assert answer.status_code == 200, answer.text
    return {row["LogicalName"]: (row["Precision"], row["PrecisionSource"]) for row in answer.json()["value"]}


def test_price_columns_follow_the_pricing_precision_and_the_others_the_currency(api: httpx.Client) -> None:
    assert money_columns(api, "productpricelevel") == {
        "amount": (2, 1),
        "amount_base": (2, 1),
        "roundingoptionamount": (2, 1),
        "roundingoptionamount_base": (2, 1),
    }
    product = money_columns(api, "product")
    assert {name: product[name] for name in ("price", "standardcost", "currentcost")} == {
        "price": (2, 1),
        "standardcost": (2, 1),
        "currentcost": (2, 1),
    }
    assert money_columns(api, "account")["creditlimit"] == (2, 2)
    assert money_columns(api, "quotedetail")["priceperunit"] == (2, 1)
    assert money_columns(api, "quotedetail")["tax"] == (2, 2)


def organization(api: httpx.Client) -> dict[str, Any]:
    rows = api.get("organizations", params={"$select": "organizationid,pricingdecimalprecision"}).json()[
        "value"
    ]
    assert len(rows) == 1
    return rows[0]


def test_a_price_is_rounded_to_the_organizations_pricing_precision(api: httpx.Client) -> None:
    org = organization(api)
    assert org["pricingdecimalprecision"] == 2  # a new organization's
    number = f"PREC-{uuid.uuid4().hex[:8]}"
    product_id = str(uuid.uuid4())
    created = api.post(
        "products",
        json={"productid": product_id, "name": number, "productnumber": number, "price": 12.345678},
    )
    assert created.status_code == 204, created.text
    assert api.get(f"products({product_id})/price").json()["value"] == 12.35
    url = f"organizations({org['organizationid']})"
    try:
        assert (
            api.patch(url, json={"pricingdecimalprecision": 4}, headers={"If-Match": "*"}).status_code == 204
        )
        assert api.patch(f"products({product_id})", json={"price": 12.345678}).status_code == 204
        assert api.get(f"products({product_id})/price").json()["value"] == 12.3457
        assert api.patch(f"products({product_id})", json={"price": 0.00005}).status_code == 204
        assert api.get(f"products({product_id})/price").json()["value"] == 0.0001  # half away from zero
    finally:
        api.patch(url, json={"pricingdecimalprecision": 2}, headers={"If-Match": "*"})
        api.delete(f"products({product_id})")
    assert organization(api)["pricingdecimalprecision"] == 2


def test_other_currency_columns_keep_their_currencys_places(api: httpx.Client) -> None:
    currency = api.get(
        "transactioncurrencies", params={"$select": "transactioncurrencyid,currencyprecision", "$top": "1"}
    ).json()["value"][0]
    assert currency["currencyprecision"] == 2
    account_id = str(uuid.uuid4())
    bind = f"/transactioncurrencies({currency['transactioncurrencyid']})"
    body = {
        "accountid": account_id,
        "name": "Precise",
        "creditlimit": 1000.125,
        "transactioncurrencyid@odata.bind": bind,
    }
    assert api.post("accounts", json=body).status_code == 204
    try:
        assert api.get(f"accounts({account_id})/creditlimit").json()["value"] == 1000.13
    finally:
        api.delete(f"accounts({account_id})")


def test_a_record_currency_with_no_decimals_rounds_its_currency_columns_only(api: httpx.Client) -> None:
    """JPY keeps 0 places (``currencyprecision``): an order in yen keeps whole yen in its
    totals (``PrecisionSource`` 2), while an order in dollars keeps cents; a line's price
    per unit follows the organization's pricing precision (2) whatever its currency, and an
    update that leaves the currency out is rounded by the currency the record holds."""
    yen = api.post(
        "transactioncurrencies",
        json={
            "isocurrencycode": "JPY",
            "currencyname": "Yen",
            "currencysymbol": "\u00a5",
            "exchangerate": 150.0,
            "currencyprecision": 0,
        },
        headers={"Prefer": "return=representation"},
    )
    assert yen.status_code == 201, yen.text
    yen_id = yen.json()["transactioncurrencyid"]
    (usd,) = api.get(
        "transactioncurrencies",
        params={"$select": "transactioncurrencyid", "$filter": "isocurrencycode eq 'USD'"},
    ).json()["value"]
    (account,) = api.get("accounts", params={"$select": "accountid", "$top": "1"}).json()["value"]
    orders = {"JPY": str(uuid.uuid4()), "USD": str(uuid.uuid4())}
    line_id = str(uuid.uuid4())
    try:
        for code, currency_id in (("JPY", yen_id), ("USD", usd["transactioncurrencyid"])):
            body = {
                "salesorderid": orders[code],
                "name": f"Precision {code}",
                "totalamount": 1234.567,
                "customerid_account@odata.bind": f"/accounts({account['accountid']})",
                "transactioncurrencyid@odata.bind": f"/transactioncurrencies({currency_id})",
            }
            assert api.post("salesorders", json=body).status_code == 204
        assert api.get(f"salesorders({orders['JPY']})/totalamount").json()["value"] == 1235
        assert api.get(f"salesorders({orders['USD']})/totalamount").json()["value"] == 1234.57
        line = {
            "salesorderdetailid": line_id,
            "salesorderid@odata.bind": f"/salesorders({orders['JPY']})",
            "productdescription": "Write-in",
            "isproductoverridden": True,
            "quantity": 1,
            "priceperunit": 1234.567,
            "extendedamount": 1234.567,
            "transactioncurrencyid@odata.bind": f"/transactioncurrencies({yen_id})",
        }
        assert api.post("salesorderdetails", json=line).status_code == 204
        kept = api.get(
            f"salesorderdetails({line_id})", params={"$select": "priceperunit,extendedamount"}
        ).json()
        assert (kept["priceperunit"], kept["extendedamount"]) == (1234.57, 1235)
        assert api.patch(f"salesorders({orders['JPY']})", json={"totalamount": 99.5}).status_code == 204
        assert api.get(f"salesorders({orders['JPY']})/totalamount").json()["value"] == 100
    finally:
        api.delete(f"salesorderdetails({line_id})")
        for order_id in orders.values():
            api.delete(f"salesorders({order_id})")
        api.delete(f"transactioncurrencies({yen_id})")
