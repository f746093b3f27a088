"""F&O emulator reads over real HTTPS: company context, queries, paging, views, metadata.

Runs against its own seeded instance (`--seed demo`, emulators/seed/STORY.md) so the few
writes these tests need (flipping a customer's flag) never disturb other test modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

import httpx
import pytest

from tests.support.emulators import acquire_token, start_emulators

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.emulators import RunningEmulators

pytestmark = pytest.mark.integration

CONFIG = {"fno": {"cost": {"request_latency_ms": 0.0, "operation_ms": 0.0}}}
ENUMS = "Microsoft.Dynamics.DataEntities"
NOYES = f"{ENUMS}.NoYes"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


class FnoClient:
    """An authenticated HTTPS client of the F&O emulator's service root."""

    def __init__(self, running: RunningEmulators) -> None:
        self.endpoints = running.endpoints
        self.root = running.endpoints.fno_service_root
        token = acquire_token(running.endpoints, "fno")
        self.http = httpx.Client(
            verify=running.endpoints.ssl_context(),
            base_url=self.root,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=30,
        )

    def get(self, path: str, params: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, params=params, **kwargs)

    def rows(self, path: str, **params: str) -> list[dict[str, Any]]:
        response = self.get(path, params)
        assert response.status_code == 200, response.text
        return response.json()["value"]

    def inner_message(self, response: httpx.Response) -> str:
        return response.json()["error"]["innererror"]["message"]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulators]:
    instance = start_emulators(
        tmp_path_factory.mktemp("fno-reads") / "state", "--seed", "demo", config=CONFIG
    )
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def fno(running: RunningEmulators) -> Iterator[FnoClient]:
    client = FnoClient(running)
    yield client
    client.http.close()


@pytest.fixture
def admin(running: RunningEmulators) -> Iterator[Any]:
    with running.admin("fno") as client:
        yield client


# -- service root, names, metadata ---------------------------------------------------------


def test_service_document_lists_the_entity_sets(fno: FnoClient) -> None:
    response = fno.get("")
    assert response.status_code == 200
    assert response.headers["OData-Version"] == "4.0"
    body = response.json()
    assert body["@odata.context"] == f"{fno.root}$metadata"
    names = {item["name"] for item in body["value"]}
    assert {"CustomersV3", "CustomersV2", "SellableReleasedProducts", "LegalEntities"} <= names


def test_entity_set_names_are_case_sensitive(fno: FnoClient) -> None:
    response = fno.get("customersv3")
    assert response.status_code == 404
    assert response.json() == {
        "Message": f"No HTTP resource was found that matches the request URI '{fno.root}customersv3'."
    }
    assert fno.get("CustomersV3").status_code == 200


def test_metadata_declares_keys_enums_and_nullability(fno: FnoClient) -> None:
    response = fno.get("$metadata")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    schema = ElementTree.fromstring(response.content).find(f".//{EDM}Schema")
    assert schema is not None
    assert schema.get("Namespace") == "Microsoft.Dynamics.DataEntities"
    noyes = schema.find(f"{EDM}EnumType[@Name='NoYes']")
    assert noyes is not None
    assert {m.get("Name"): m.get("Value") for m in noyes} == {"No": "0", "Yes": "1"}
    customer = schema.find(f"{EDM}EntityType[@Name='CustomerV3']")
    assert customer is not None
    key = [ref.get("Name") for ref in customer.find(f"{EDM}Key") or []]
    assert key == ["dataAreaId", "CustomerAccount"]
    props = {p.get("Name"): p for p in customer.findall(f"{EDM}Property")}
    assert props["IsExternallyMaintained"].get("Type") == NOYES
    assert props["CreditLimit"].get("Nullable") == "false"
    assert props["OrganizationName"].get("Nullable") is None
    container = schema.find(f"{EDM}EntityContainer")
    assert container is not None
    sets = {s.get("Name"): s.get("EntityType") for s in container}
    assert sets["CustomersV3"] == "Microsoft.Dynamics.DataEntities.CustomerV3"


# -- company context ------------------------------------------------------------------------


def test_queries_see_only_the_default_company_without_cross_company(fno: FnoClient) -> None:
    default = fno.rows("CustomersV3", **{"$select": "dataAreaId,CustomerAccount"})
    assert default
    assert {row["dataAreaId"] for row in default} == {"usmf"}
    everything = fno.rows("CustomersV3", **{"$select": "dataAreaId", "cross-company": "true"})
    assert {row["dataAreaId"] for row in everything} == {"usmf", "demf"}
    assert len(everything) == 34  # STORY.md: fno_customers.total
    assert len(default) == 17


def test_default_company_is_configurable_per_client(fno: FnoClient, admin: Any) -> None:
    admin.patch_config({"client_companies": {fno.endpoints.client_id: "demf"}})
    try:
        rows = fno.rows("CustomersV3", **{"$select": "dataAreaId"})
        assert rows
        assert {row["dataAreaId"] for row in rows} == {"demf"}
    finally:
        admin.patch_config({"client_companies": {}})
    admin.patch_config({"default_company": "demf"})
    try:
        assert {row["dataAreaId"] for row in fno.rows("CustomersV3", **{"$select": "dataAreaId"})} == {"demf"}
    finally:
        admin.patch_config({"default_company": "usmf"})


def test_documented_cross_company_filter_example(fno: FnoClient) -> None:
    """odata.md: `$filter=dataAreaId eq 'usrt'&cross-company=true` picks another company."""
    other = fno.rows("CustomersV3", **{"$filter": "dataAreaId eq 'demf'", "cross-company": "true"})
    assert other
    assert {row["dataAreaId"] for row in other} == {"demf"}
    assert fno.rows("CustomersV3", **{"$filter": "dataAreaId eq 'demf'"}) == []


def test_key_reads_of_another_company_need_cross_company(fno: FnoClient) -> None:
    path = "CustomersV3(dataAreaId='demf',CustomerAccount='DE-001')"
    hidden = fno.get(path)
    assert hidden.status_code == 404
    assert hidden.json()["error"]["message"] == "Resource not found for the segment 'CustomersV3'."
    found = fno.get(path, {"cross-company": "true"})
    assert found.status_code == 200
    assert found.json()["CustomerAccount"] == "DE-001"


def test_legal_entities_list_the_companies_without_company_filter(fno: FnoClient) -> None:
    rows = fno.rows("LegalEntities")
    assert sorted(row["LegalEntityId"] for row in rows) == ["DEMF", "USMF"]
    assert "dataAreaId" not in rows[0]


# -- keys -----------------------------------------------------------------------------------


def test_key_read_needs_every_key_field_in_any_order(fno: FnoClient) -> None:
    one = fno.get("CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')")
    assert one.status_code == 200
    body = one.json()
    assert body["@odata.context"] == f"{fno.root}$metadata#CustomersV3/$entity"
    assert body["@odata.etag"].startswith('W/"')
    swapped = fno.get("CustomersV3(CustomerAccount='US-001',dataAreaId='usmf')")
    assert swapped.json()["CustomerAccount"] == "US-001"
    encoded = fno.get("CustomersV3(dataAreaId%3D%27usmf%27%2CCustomerAccount%3D%27US-001%27)")
    assert encoded.status_code == 200
    assert encoded.json()["CustomerAccount"] == "US-001"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "CustomersV3(CustomerAccount='US-001')",
            "The number of keys specified in the URI does not match number of key properties for the "
            "resource 'Microsoft.Dynamics.DataEntities.CustomerV3'.",
        ),
        (
            "CustomersV3('US-001')",
            "The number of keys specified in the URI does not match number of key properties for the "
            "resource 'Microsoft.Dynamics.DataEntities.CustomerV3'.",
        ),
        (
            "CustomersV3(dataAreaId='usmf',CustomerAccount='US-001',Extra='x')",
            "The number of keys specified in the URI does not match number of key properties for the "
            "resource 'Microsoft.Dynamics.DataEntities.CustomerV3'.",
        ),
        ("CustomersV3(dataAreaId='usmf',CustomerAccount=US-001)", "Bad Request - Error in query syntax."),
    ],
)
def test_incomplete_or_malformed_keys_are_refused(fno: FnoClient, path: str, message: str) -> None:
    response = fno.get(path)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == message


def test_property_of_an_entity(fno: FnoClient) -> None:
    response = fno.get("CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')/CustomerGroupId")
    assert response.status_code == 200
    assert response.json()["value"] == "20"


# -- query options --------------------------------------------------------------------------


def test_documented_enum_filter_example(fno: FnoClient) -> None:
    """odata.md: `CustomersV3?$filter=PersonGender eq Microsoft.Dynamics.DataEntities.Gender'Unknown'`."""
    all_rows = fno.rows("CustomersV3", **{"$select": "CustomerAccount,PersonGender"})
    unknown = fno.rows(
        "CustomersV3",
        **{
            "$filter": "PersonGender eq Microsoft.Dynamics.DataEntities.Gender'Unknown'",
            "$select": "PersonGender",
        },
    )
    assert unknown
    assert {row["PersonGender"] for row in unknown} == {"Unknown"}
    assert len(unknown) == sum(1 for row in all_rows if row["PersonGender"] == "Unknown") < len(all_rows)


def test_enum_literals_filter_with_eq_and_ne(fno: FnoClient) -> None:
    external = fno.rows(
        "CustomersV3",
        **{
            "$filter": f"IsExternallyMaintained eq {NOYES}'Yes'",
            "$select": "IsExternallyMaintained,CustomerGroupId",
        },
    )
    others = fno.rows(
        "CustomersV3", **{"$filter": f"IsExternallyMaintained ne {NOYES}'Yes'", "$select": "CustomerGroupId"}
    )
    assert {row["IsExternallyMaintained"] for row in external} == {"Yes"}
    assert {row["CustomerGroupId"] for row in external} == {"10"}
    assert {row["CustomerGroupId"] for row in others} == {"20"}
    assert len(external) + len(others) == 17


@pytest.mark.parametrize(
    ("filter_text", "fragment"),
    [
        (f"IsExternallyMaintained gt {NOYES}'No'", "enums can only be compared with 'eq' and 'ne'"),
        (f"IsExternallyMaintained eq {NOYES}'Maybe'", "is not a valid enumeration type constant"),
        ("contains(OrganizationName,'Retail')", "Function 'contains' is not allowed"),
        ("CustomerGroupId in ('10','20')", ""),
        (f"IsExternallyMaintained has {NOYES}'Yes'", ""),
        ("NoSuchProperty eq 'x'", "Could not find a property named 'NoSuchProperty'"),
    ],
)
def test_refused_filter_forms(fno: FnoClient, filter_text: str, fragment: str) -> None:
    response = fno.get("CustomersV3", {"$filter": filter_text})
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert message.startswith("The query specified in the URI is not valid.")
    assert fragment in message


def test_wildcard_equality_is_contains(fno: FnoClient) -> None:
    matching = fno.rows(
        "CustomersV3", **{"$filter": "OrganizationName eq '*retail*'", "$select": "OrganizationName"}
    )
    rest = fno.rows(
        "CustomersV3", **{"$filter": "OrganizationName ne '*Retail*'", "$select": "OrganizationName"}
    )
    assert len(matching) == 5  # the five F&O-only customers of usmf ("... Retail")
    assert all("retail" in row["OrganizationName"].lower() for row in matching)
    assert all("retail" not in row["OrganizationName"].lower() for row in rest)
    assert len(matching) + len(rest) == 17


def test_select_orderby_top_skip_count(fno: FnoClient) -> None:
    response = fno.get(
        "CustomersV3",
        {
            "$select": "CustomerAccount,CreditLimit",
            "$orderby": "CustomerAccount desc",
            "$top": "3",
            "$skip": "2",
            "$count": "true",
        },
    )
    body = response.json()
    assert body["@odata.count"] == 17
    assert body["@odata.context"] == f"{fno.root}$metadata#CustomersV3(CustomerAccount,CreditLimit)"
    everything = sorted((row["CustomerAccount"] for row in fno.rows("CustomersV3")), reverse=True)
    assert [row["CustomerAccount"] for row in body["value"]] == everything[2:5]
    assert set(body["value"][0]) == {"@odata.etag", "CustomerAccount", "CreditLimit"}
    assert "@odata.nextLink" not in body


def test_expand_of_a_property_that_is_no_navigation_is_refused(fno: FnoClient) -> None:
    response = fno.get("CustomersV3", {"$expand": "CustomerGroupId"})
    assert response.status_code == 400
    assert "is not a navigation property" in response.json()["error"]["message"]


def test_values_use_fno_wire_forms_and_fill_ins(fno: FnoClient) -> None:
    retail = fno.get("CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')").json()
    assert retail["IsExternallyMaintained"] == "No"  # enum member names
    assert retail["CreditLimit"] == 0  # unset decimal
    assert retail["OrganizationNumberOfEmployees"] == 0  # unset int
    assert retail["PersonMiddleName"] == ""  # strings are never null in F&O
    assert retail["OnHoldStatus"] == "No"
    order = fno.rows(
        "CDSSalesOrderHeaders",
        **{"$filter": f"SalesOrderProcessingStatus eq {ENUMS}.SalesOrderProcessingStatus'Active'"},
    )[0]
    assert order["ConfirmedShippingDate"] == "1900-01-01T12:00:00Z"
    assert isinstance(order["OrderTotalAmount"], (int, float))


# -- server-driven paging -------------------------------------------------------------------


def _follow(
    fno: FnoClient, response: httpx.Response, headers: dict[str, str] | None = None
) -> list[list[str]]:
    pages = []
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([row["CustomerAccount"] for row in body["value"]])
        link = body.get("@odata.nextLink")
        if link is None:
            return pages
        assert link.startswith(fno.root)
        assert "$skip=" in link
        response = fno.http.get(link, headers=headers)


def test_paging_follows_next_links_across_pages(fno: FnoClient, admin: Any) -> None:
    expected = [row["CustomerAccount"] for row in fno.rows("CustomersV3", **{"cross-company": "true"})]
    with admin.overrides({"page_size": 10}):
        first = fno.get("CustomersV3", {"cross-company": "true", "$select": "CustomerAccount"})
        pages = _follow(fno, first)
        assert [len(p) for p in pages] == [10, 10, 10, 4]
        assert [a for page in pages for a in page] == expected
        limited = _follow(fno, fno.get("CustomersV3", {"cross-company": "true", "$top": "25"}))
        assert [len(p) for p in limited] == [10, 10, 5]
        assert [a for page in limited for a in page] == expected[:25]


def test_prefer_maxpagesize_is_honoured_up_to_the_maximum(fno: FnoClient, admin: Any) -> None:
    prefer = {"Prefer": "odata.maxpagesize=8"}
    response = fno.get("CustomersV3", {"cross-company": "true"}, headers=prefer)
    assert response.headers["Preference-Applied"] == "odata.maxpagesize=8"
    assert [len(p) for p in _follow(fno, response, prefer)] == [8, 8, 8, 8, 2]
    with admin.overrides({"page_size": 5}):
        capped = fno.get("CustomersV3", {"cross-company": "true"}, headers={"Prefer": "odata.maxpagesize=20"})
        assert len(capped.json()["value"]) == 5
        assert capped.headers["Preference-Applied"] == "odata.maxpagesize=5"


# -- entity views ---------------------------------------------------------------------------


def test_customers_v2_and_v3_show_the_same_rows(fno: FnoClient) -> None:
    v3 = fno.rows("CustomersV3", **{"cross-company": "true", "$select": "dataAreaId,CustomerAccount"})
    v2 = fno.rows("CustomersV2", **{"cross-company": "true", "$select": "dataAreaId,CustomerAccount"})
    assert [(r["dataAreaId"], r["CustomerAccount"]) for r in v2] == [
        (r["dataAreaId"], r["CustomerAccount"]) for r in v3
    ]
    one_v2 = fno.get("CustomersV2(dataAreaId='usmf',CustomerAccount='US-001')").json()
    assert "AddressStreetNumber" not in one_v2  # a CustomersV3-only property
    assert fno.get("CustomersV2", {"$select": "AddressStreetNumber"}).status_code == 400


def test_invoice_view_only_shows_externally_maintained_customers(fno: FnoClient) -> None:
    headers = fno.rows("ExternallyMaintainedCustomerSalesInvoiceHeaders", **{"cross-company": "true"})
    assert len(headers) == 6  # STORY.md: invoices.total
    invoice = next(h for h in headers if h["dataAreaId"] == "usmf")
    account = invoice["InvoiceCustomerAccountNumber"]
    lines_before = fno.rows("ExternallyMaintainedCustomerSalesInvoiceLines", **{"cross-company": "true"})
    mine = [line for line in lines_before if line["InvoiceNumber"] == invoice["InvoiceNumber"]]
    assert mine
    customer = f"CustomersV3(dataAreaId='usmf',CustomerAccount='{account}')"
    flip = fno.http.patch(customer, json={"IsExternallyMaintained": "No"})
    assert flip.status_code == 204, flip.text
    try:
        after = fno.rows("ExternallyMaintainedCustomerSalesInvoiceHeaders", **{"cross-company": "true"})
        assert invoice["InvoiceNumber"] not in {h["InvoiceNumber"] for h in after}
        assert all(h["InvoiceCustomerAccountNumber"] != account or h["dataAreaId"] != "usmf" for h in after)
        lines_after = fno.rows("ExternallyMaintainedCustomerSalesInvoiceLines", **{"cross-company": "true"})
        assert invoice["InvoiceNumber"] not in {line["InvoiceNumber"] for line in lines_after}
        assert len(lines_after) < len(lines_before)
        # The sales-order view computes the customer flag the same way, at read time.
        orders = fno.rows(
            "CDSSalesOrderHeaders",
            **{
                "$filter": f"OrderingCustomerAccountNumber eq '{account}'",
                "$select": "OrderingCustomerIsExternallyMaintained",
            },
        )
        assert orders
        assert {o["OrderingCustomerIsExternallyMaintained"] for o in orders} == {"No"}
    finally:
        assert fno.http.patch(customer, json={"IsExternallyMaintained": "Yes"}).status_code == 204
    assert len(fno.rows("ExternallyMaintainedCustomerSalesInvoiceHeaders", **{"cross-company": "true"})) == 6


def test_sellable_products_hide_products_stopped_for_sales(fno: FnoClient) -> None:
    products = fno.rows("SellableReleasedProducts", **{"cross-company": "true", "$select": "ProductNumber"})
    assert len(products) == 60  # STORY.md: products.total
    stopped = {
        "ProductNumber": "USMF-STOPPED",
        "ProductName": "Discontinued",
        "SalesUnitSymbol": "ea",
        "IsSalesStopped": "Yes",
    }
    created = fno.http.post("SellableReleasedProducts", json=stopped)
    assert created.status_code == 201, created.text
    listed = fno.rows("SellableReleasedProducts", **{"$filter": "ProductNumber eq 'USMF-STOPPED'"})
    assert listed == []
    assert (
        fno.get("SellableReleasedProducts(dataAreaId='usmf',ProductNumber='USMF-STOPPED')").status_code == 404
    )


# -- protection and counters ----------------------------------------------------------------


def test_counters_count_requests_by_method_and_entity_set(fno: FnoClient, admin: Any) -> None:
    admin.reset_counters()
    fno.rows("CustomersV3", **{"$top": "4"})
    fno.rows("Currencies")
    counters = admin.counters()
    assert counters["requests"]["GET CustomersV3"] == 1
    assert counters["requests"]["GET Currencies"] == 1
    assert counters["rows_read"] == 4 + 2
    assert counters["rows_read_by_set"] == {"CustomersV3": 4, "Currencies": 2}
    assert counters["operations_charged"] == 2  # one per page read


def test_throttling_answers_429_in_the_fno_shape(fno: FnoClient, admin: Any) -> None:
    with admin.overrides({"limits": {"max_requests": 2}}):
        admin.reset_limits()  # earlier tests filled this caller's window
        assert [fno.get("Currencies").status_code for _ in range(2)] == [200, 200]
        throttled = fno.get("Currencies")
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1
        assert "Number of requests exceeded the limit of 2" in throttled.json()["error"]["message"]
