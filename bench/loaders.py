"""The two baselines: a naive hand-written loader and Microsoft's Dataverse Python SDK.

Both load the same rows the template loads, mapped the way a hand-written script maps
them (same columns, same value maps from ``environment.yaml``, same per-company
defaults), and both read the source the way scripts do: whole pages, following
``@odata.nextLink``. What differs is the write path:

* **naive**: one request per record, sequential, ``httpx`` with TLS verified and an msal
  token; on a 429 it sleeps for ``Retry-After`` and sends the record again;
* **sdk**: ``DataverseClient.records.create(table, [records])``, which sends one
  ``CreateMultiple`` per call, in chunks of ``sdk_batch`` records, sequentially (the SDK's
  synchronous client); on a 429 it sleeps for ``Retry-After`` and resends the chunk.

Neither detects what is already in the target: a rerun would write everything again.
"""

from __future__ import annotations

import re
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = ROOT / "include" / "mappings" / "environment.yaml"
ODATA = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass
class Stats:
    """What the loader saw from its own side."""

    written: int = 0
    failed: int = 0
    throttled: int = 0
    throttle_wait_s: float = 0.0
    requests: int = 0
    first_errors: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.failed += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(message[:300])


class Http:
    """An httpx client with an msal token per service; TLS verified against ``ca_bundle``."""

    def __init__(self, endpoints: dict[str, Any]) -> None:
        import msal
        import requests

        self.endpoints = endpoints
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE must not replace verify=
        session.verify = endpoints["ca_bundle"]
        self._msal = msal.ConfidentialClientApplication(
            endpoints["client_id"],
            client_credential=endpoints["client_secret"],
            authority=endpoints["authority"],
            instance_discovery=False,
            http_client=session,
        )
        self.client = httpx.Client(
            verify=ssl.create_default_context(cafile=endpoints["ca_bundle"]), timeout=600, headers=ODATA
        )

    def token(self, service: str) -> str:
        scope = f"{self.endpoints[f'{service}_url']}/.default"
        result = self._msal.acquire_token_for_client(scopes=[scope])
        if "access_token" not in result:
            raise RuntimeError(f"no token for {service}: {result.get('error')}")
        return str(result["access_token"])

    def root(self, service: str) -> str:
        return str(self.endpoints[f"{service}_service_root"])

    def send(self, service: str, method: str, path: str, stats: Stats, **kwargs: Any) -> httpx.Response:
        """One request; a 429 is waited out (``Retry-After``) and sent again."""
        url = path if path.startswith("https://") else self.root(service) + path
        while True:
            headers = {"Authorization": f"Bearer {self.token(service)}", **kwargs.pop("headers", {})}
            stats.requests += 1
            response = self.client.request(method, url, headers=headers, **kwargs)
            if response.status_code != 429:
                return response
            stats.throttled += 1
            wait = float(response.headers.get("Retry-After") or 1)
            stats.throttle_wait_s += wait
            time.sleep(wait)
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}

    def read_all(self, service: str, path: str, stats: Stats, page_size: int) -> list[dict[str, Any]]:
        """Every row of a query, page by page."""
        rows: list[dict[str, Any]] = []
        url: str | None = path
        while url:
            response = self.send(
                service, "GET", url, stats, headers={"Prefer": f"odata.maxpagesize={page_size}"}
            )
            response.raise_for_status()
            payload = response.json()
            rows.extend(payload["value"])
            url = payload.get("@odata.nextLink")
        return rows

    def close(self) -> None:
        self.client.close()


def _environment() -> dict[str, Any]:
    return yaml.safe_load(ENVIRONMENT.read_text())


def _value_map(environment: dict[str, Any], name: str) -> dict[str, Any]:
    return {str(k).casefold(): v for k, v in environment["value_maps"][name]["entries"].items()}


def _defaults(environment: dict[str, Any], company: str) -> dict[str, Any]:
    merged = dict(environment["defaults"])
    for pair in environment["company_pairs"]:
        if pair["legal_entity"] == company:
            merged.update(pair.get("defaults") or {})
    return merged


# -- products: F&O SellableReleasedProducts -> Dataverse products + productpricelevels ------------


@dataclass
class ProductRecord:
    """A product body and the price list item to create once the product has its id."""

    product: dict[str, Any]
    price_item: dict[str, Any]


def product_records(http: Http, stats: Stats, companies: tuple[str, ...]) -> list[ProductRecord]:
    """Read the source and the Sales reference tables, map every product a script would load."""
    environment = _environment()
    units = _value_map(environment, "units_fno_to_sales")
    types = _value_map(environment, "product_type")
    state = _value_map(environment, "product_create_state")[environment["products"]["create_as"]]
    status = _value_map(environment, "product_create_status")[environment["products"]["create_as"]]
    select = (
        "dataAreaId,ProductNumber,ProductName,ProductDescription,ProductType,SalesPrice,UnitCost,"
        "IsStockedProduct,SalesUnitSymbol,CurrencyCode"
    )
    company_filter = " or ".join(f"dataAreaId eq '{c}'" for c in companies)
    source = http.read_all(
        "fno",
        f"SellableReleasedProducts?cross-company=true&$select={select}&$filter={company_filter}",
        stats,
        10000,
    )
    currencies = {
        r["isocurrencycode"]: r["transactioncurrencyid"]
        for r in http.read_all(
            "dataverse", "transactioncurrencies?$select=isocurrencycode,transactioncurrencyid", stats, 5000
        )
    }
    groups = {
        r["name"]: r["uomscheduleid"]
        for r in http.read_all("dataverse", "uomschedules?$select=name,uomscheduleid", stats, 5000)
    }
    group_id = groups[environment["defaults"]["unit_group"]]
    uoms = {
        r["name"]: r["uomid"]
        for r in http.read_all("dataverse", "uoms?$select=name,uomid,_uomscheduleid_value", stats, 5000)
        if r["_uomscheduleid_value"] == group_id
    }
    price_lists: dict[str, str] = {}
    for r in sorted(
        http.read_all(
            "dataverse",
            "pricelevels?$select=name,pricelevelid,_transactioncurrencyid_value&$filter=statecode eq 0",
            stats,
            5000,
        ),
        key=lambda r: r["name"],
    ):
        price_lists.setdefault(r["_transactioncurrencyid_value"], r["pricelevelid"])
    records = []
    for row in source:
        unit = units.get(str(row["SalesUnitSymbol"]).casefold())
        kind = types.get(str(row["ProductType"]).casefold())
        currency = currencies.get(row["CurrencyCode"])
        if unit is None or kind is None or currency is None or currency not in price_lists:
            continue  # the script's value maps do not know this row: skipped, as the template rejects it
        uom = uoms[unit]
        product = {
            "productnumber": row["ProductNumber"],
            "name": row["ProductName"] or row["ProductNumber"],
            "description": row["ProductDescription"],
            "producttypecode": int(kind),
            "price": round(float(row["SalesPrice"]), 2),
            "currentcost": round(float(row["UnitCost"]), 2),
            "isstockitem": str(row["IsStockedProduct"]) == "Yes",
            "quantitydecimal": 0,
            "msdynce_ismaintainedexternally": True,
            "statecode": int(state),
            "statuscode": int(status),
            "transactioncurrencyid@odata.bind": f"/transactioncurrencies({currency})",
            "defaultuomscheduleid@odata.bind": f"/uomschedules({group_id})",
            "defaultuomid@odata.bind": f"/uoms({uom})",
        }
        price_item = {
            "pricelevelid@odata.bind": f"/pricelevels({price_lists[currency]})",
            "uomid@odata.bind": f"/uoms({uom})",
            "amount": round(float(row["SalesPrice"]), 2),
            "pricingmethodcode": 1,
            "quantitysellingcode": 1,
        }
        records.append(ProductRecord(product, price_item))
    return records


# -- accounts: Dataverse accounts -> F&O CustomersV3 ----------------------------------------------


def customer_records(http: Http, stats: Stats, companies: tuple[str, ...]) -> list[dict[str, Any]]:
    """Read active accounts of each company's business unit and map them to CustomersV3 bodies."""
    environment = _environment()
    countries = _value_map(environment, "country_to_iso")
    units = {
        r["name"]: r["businessunitid"]
        for r in http.read_all("dataverse", "businessunits?$select=name,businessunitid", stats, 5000)
    }
    currencies = {
        r["transactioncurrencyid"]: r["isocurrencycode"]
        for r in http.read_all(
            "dataverse", "transactioncurrencies?$select=isocurrencycode,transactioncurrencyid", stats, 5000
        )
    }
    select = (
        "accountnumber,name,telephone1,emailaddress1,fax,websiteurl,numberofemployees,creditlimit,"
        "description,_transactioncurrencyid_value,address1_line1,address1_city,address1_stateorprovince,"
        "address1_postalcode,address1_country,address2_line1,address2_city,address2_stateorprovince,"
        "address2_postalcode,address2_country"
    )
    records = []
    for pair in environment["company_pairs"]:
        company = pair["legal_entity"]
        if company not in companies:
            continue
        defaults = _defaults(environment, company)
        unit = units[pair["business_unit"]]
        rows = http.read_all(
            "dataverse",
            f"accounts?$select={select}&$filter=statecode eq 0 and _owningbusinessunit_value eq {unit}",
            stats,
            5000,
        )
        for row in rows:
            if not row.get("accountnumber"):
                continue
            delivery = countries.get(str(row.get("address1_country") or "").casefold())
            if row.get("address1_country") and delivery is None:
                continue  # unknown country: the script's value map has no entry
            invoice = countries.get(str(row.get("address2_country") or "").casefold())
            body = {
                "dataAreaId": company,
                "CustomerAccount": row["accountnumber"],
                "OrganizationName": row["name"],
                "PartyType": defaults["party_type_organization"],
                "IsExternallyMaintained": "Yes",
                "CustomerGroupId": defaults["customer_group"],
                "SiteId": defaults["site"],
                "WarehouseId": defaults["warehouse"],
                "LanguageId": defaults["language"],
                "SalesCurrencyCode": currencies.get(row.get("_transactioncurrencyid_value")),
                "PrimaryContactPhone": row.get("telephone1"),
                "PrimaryContactEmail": row.get("emailaddress1"),
                "PrimaryContactFax": row.get("fax"),
                "PrimaryContactURL": row.get("websiteurl"),
                "OrganizationNumberOfEmployees": row.get("numberofemployees"),
                "CreditLimit": row.get("creditlimit"),
                "SalesMemo": row.get("description"),
                "DeliveryAddressStreet": row.get("address1_line1"),
                "DeliveryAddressCity": row.get("address1_city"),
                "DeliveryAddressState": row.get("address1_stateorprovince"),
                "DeliveryAddressZipCode": row.get("address1_postalcode"),
                "DeliveryAddressCountryRegionISOCode": delivery or defaults["country_iso"],
                "AddressCountryRegionISOCode": delivery or defaults["country_iso"],
                "InvoiceAddressStreet": row.get("address2_line1"),
                "InvoiceAddressCity": row.get("address2_city"),
                "InvoiceAddressState": row.get("address2_stateorprovince"),
                "InvoiceAddressZipCode": row.get("address2_postalcode"),
                "InvoiceAddressCountryRegionISOCode": invoice,
            }
            records.append({k: v for k, v in body.items() if v is not None})
    return records


# -- the write paths -------------------------------------------------------------------------------


def _entity_id(response: httpx.Response) -> str | None:
    found = _GUID.search(response.headers.get("OData-EntityId") or response.headers.get("Location") or "")
    return found.group(0).lower() if found else None


def naive_products(http: Http, stats: Stats, records: list[ProductRecord]) -> None:
    """POST each product, then its price list item: two sequential requests per product."""
    for record in records:
        response = http.send("dataverse", "POST", "products", stats, json=record.product)
        product_id = _entity_id(response)
        if response.status_code >= 300 or product_id is None:
            stats.error(
                f"product {record.product['productnumber']}: HTTP {response.status_code} {response.text}"
            )
            continue
        stats.written += 1
        item = {**record.price_item, "productid@odata.bind": f"/products({product_id})"}
        response = http.send("dataverse", "POST", "productpricelevels", stats, json=item)
        if response.status_code >= 300:
            stats.error(
                f"price item {record.product['productnumber']}: HTTP {response.status_code} {response.text}"
            )
            continue
        stats.written += 1


def naive_customers(http: Http, stats: Stats, records: list[dict[str, Any]]) -> None:
    """POST each customer, sequentially; an "already exists" answer is a failed record."""
    for record in records:
        response = http.send("fno", "POST", "CustomersV3", stats, json=record)
        if response.status_code >= 300:
            stats.error(f"customer {record['CustomerAccount']}: HTTP {response.status_code} {response.text}")
            continue
        stats.written += 1


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def sdk_products(endpoints: dict[str, Any], stats: Stats, records: list[ProductRecord], batch: int) -> None:
    """Products then price list items through ``records.create(table, list)`` (CreateMultiple)."""
    from azure.core.credentials import AccessToken
    from PowerPlatform.Dataverse.client import DataverseClient
    from PowerPlatform.Dataverse.core.errors import HttpError

    http = Http(endpoints)

    class Credential:
        """azure-core TokenCredential over the same msal client credentials."""

        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(http.token("dataverse"), int(time.time()) + 3000)

    def create(client: Any, table: str, chunk: list[dict[str, Any]]) -> list[str]:
        while True:
            stats.requests += 1
            try:
                return list(client.records.create(table, chunk))
            except HttpError as exc:
                if exc.status_code != 429:
                    raise
                stats.throttled += 1
                wait = float(exc.retry_after or 1)
                stats.throttle_wait_s += wait
                time.sleep(wait)

    try:
        with DataverseClient(endpoints["dataverse_url"], Credential()) as client:
            for chunk in _chunks(records, batch):
                ids = create(client, "product", [r.product for r in chunk])
                stats.written += len(ids)
                items = [
                    {**r.price_item, "productid@odata.bind": f"/products({product_id})"}
                    for r, product_id in zip(chunk, ids, strict=True)
                ]
                stats.written += len(create(client, "productpricelevel", items))
    finally:
        http.close()


LOADERS: dict[str, Callable[..., Any]] = {
    "products": product_records,
    "accounts": customer_records,
}
