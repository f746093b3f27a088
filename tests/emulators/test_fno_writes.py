"""F&O emulator writes over real HTTPS: creates, updates, deletes, validation, referential
checks and `$batch`, each failure in the shape and status real F&O answers with.

Its own seeded instance (`--seed demo`) takes every write, so other modules keep the story.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.emulators import acquire_token, start_emulators

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.emulators import RunningEmulators

pytestmark = pytest.mark.integration

CONFIG = {"fno": {"cost": {"request_latency_ms": 0.0, "operation_ms": 0.05}}}
WRITE_EXCEPTION = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
ORDER = "USMF-SO000001"  # a seeded usmf sales order (STORY.md, template 5)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulators]:
    instance = start_emulators(
        tmp_path_factory.mktemp("fno-writes") / "state", "--seed", "demo", config=CONFIG
    )
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def http(running: RunningEmulators) -> Iterator[httpx.Client]:
    token = acquire_token(running.endpoints, "fno")
    with httpx.Client(
        verify=running.endpoints.ssl_context(),
        base_url=running.endpoints.fno_service_root,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture
def admin(running: RunningEmulators) -> Iterator[Any]:
    with running.admin("fno") as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


def customer(account: str, **extra: Any) -> dict[str, Any]:
    return {
        "CustomerAccount": account,
        "CustomerGroupId": "10",
        "OrganizationName": f"{account} Ltd",
        **extra,
    }


def inner(response: httpx.Response) -> str:
    error = response.json()["error"]
    assert error["message"] == "An error has occurred."
    return error["innererror"]["message"]


def write_failure(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["innererror"]["type"] == WRITE_EXCEPTION
    return inner(response)


# -- create, update, delete -----------------------------------------------------------------


def test_create_answers_201_with_the_row_and_its_location(http: httpx.Client) -> None:
    account = unique("NEW")
    response = http.post(
        "CustomersV3",
        json={**customer(account), "@odata.type": "#Microsoft.Dynamics.DataEntities.CustomerV3"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["dataAreaId"] == "usmf"  # the caller's default company
    assert body["CustomerAccount"] == account
    assert body["CreditLimit"] == 0
    assert body["IsExternallyMaintained"] == "No"
    location = response.headers["Location"]
    assert location == f"{http.base_url}CustomersV3(dataAreaId='usmf',CustomerAccount='{account}')"
    assert http.get(location).json()["OrganizationName"] == f"{account} Ltd"


def test_creating_an_existing_key_fails_like_fno(http: httpx.Client) -> None:
    account = unique("DUP")
    assert http.post("CustomersV3", json=customer(account)).status_code == 201
    again = http.post("CustomersV3", json=customer(account))
    assert write_failure(again, 500) == (
        "Write failed for table row of type 'CustCustomerV3Entity'. Infolog: Info: Cannot create a record in "
        f"Customers (CustTable). Customer account: {account}.\nThe record already exists."
    )


def test_patch_updates_and_answers_204(http: httpx.Client) -> None:
    account = unique("UPD")
    http.post("CustomersV3", json=customer(account))
    path = f"CustomersV3(dataAreaId='usmf',CustomerAccount='{account}')"
    response = http.patch(path, json={"PrimaryContactPhone": "+1 555 0100", "CreditLimit": 2500.5})
    assert response.status_code == 204
    assert response.content == b""
    row = http.get(path).json()
    assert row["PrimaryContactPhone"] == "+1 555 0100"
    assert row["CreditLimit"] == 2500.5


def test_patch_of_a_missing_row_does_not_create_it(http: httpx.Client) -> None:
    path = "CustomersV3(dataAreaId='usmf',CustomerAccount='NO-SUCH-CUSTOMER')"
    response = http.patch(path, json=customer("NO-SUCH-CUSTOMER"))
    assert write_failure(response) == "No resources were found when selecting for update."
    assert http.get(path).status_code == 404


def test_writes_by_key_to_another_company_need_cross_company(http: httpx.Client) -> None:
    path = "CustomersV3(dataAreaId='demf',CustomerAccount='DE-002')"
    refused = http.patch(path, json={"NameAlias": "Cross"})
    assert write_failure(refused) == "No resources were found when selecting for update."
    allowed = http.patch(path, params={"cross-company": "true"}, json={"NameAlias": "Cross"})
    assert allowed.status_code == 204
    assert http.get(path, params={"cross-company": "true"}).json()["NameAlias"] == "Cross"


def test_create_in_another_company_through_the_body(http: httpx.Client) -> None:
    account = unique("DE")
    response = http.post("CustomersV3", json=customer(account, dataAreaId="DEMF"))
    assert response.status_code == 201, response.text
    assert response.json()["dataAreaId"] == "demf"
    assert (
        http.get("CustomersV3", params={"$filter": f"CustomerAccount eq '{account}'"}).json()["value"] == []
    )
    found = http.get(
        "CustomersV3", params={"$filter": f"CustomerAccount eq '{account}'", "cross-company": "true"}
    )
    assert [row["dataAreaId"] for row in found.json()["value"]] == ["demf"]


def test_unknown_company_is_refused(http: httpx.Client) -> None:
    response = http.post("CustomersV3", json=customer(unique("X"), dataAreaId="zzzz"))
    assert "Company 'zzzz' does not exist." in write_failure(response)


def test_delete_answers_204_then_the_row_is_gone(http: httpx.Client) -> None:
    account = unique("DEL")
    http.post("CustomersV3", json=customer(account))
    path = f"CustomersV3(dataAreaId='usmf',CustomerAccount='{account}')"
    assert http.delete(path).status_code == 204
    assert http.get(path).status_code == 404
    assert write_failure(http.delete(path)) == "No resources were found when selecting for update."


def test_key_fields_cannot_be_changed_by_patch(http: httpx.Client) -> None:
    account = unique("KEY")
    http.post("CustomersV3", json=customer(account))
    path = f"CustomersV3(dataAreaId='usmf',CustomerAccount='{account}')"
    refused = http.patch(path, json={"CustomerAccount": "RENAMED"})
    assert "The key field 'Customer account' cannot be changed." in write_failure(refused)
    assert http.get(path).status_code == 200
    same_key = http.patch(path, json={"CustomerAccount": account, "dataAreaId": "usmf", "NameAlias": "Same"})
    assert same_key.status_code == 204


def test_key_values_with_quotes_and_reserved_characters(http: httpx.Client) -> None:
    account = "O'Brien & Co/1"
    created = http.post("CustomersV3", json=customer(account))
    assert created.status_code == 201
    assert created.headers["Location"] == (
        f"{http.base_url}CustomersV3(dataAreaId='usmf',CustomerAccount='O''Brien%20%26%20Co%252F1')"
    )
    encoded = "CustomersV3(dataAreaId='usmf',CustomerAccount='O''Brien%20%26%20Co%252F1')"
    response = http.get(encoded)
    assert response.status_code == 200, response.text
    assert response.json()["CustomerAccount"] == account
    # "/" encoded once reaches F&O's routing as a path separator.
    once = http.get("CustomersV3(dataAreaId='usmf',CustomerAccount='O''Brien%20%26%20Co%2F1')")
    assert once.status_code == 404
    assert once.json() == {
        "Message": "No HTTP resource was found that matches the request URI "
        f"'{http.base_url}CustomersV3(dataAreaId='usmf',CustomerAccount='O''Brien%20%26%20Co%2F1')'."
    }


def test_write_through_v2_and_read_through_v3(http: httpx.Client) -> None:
    account = unique("V2")
    created = http.post("CustomersV2", json=customer(account))
    assert created.status_code == 201, created.text
    assert "AddressStreetNumber" not in created.json()
    v3 = http.get(f"CustomersV3(dataAreaId='usmf',CustomerAccount='{account}')")
    assert v3.status_code == 200
    assert v3.json()["AddressStreetNumber"] == ""
    assert (
        http.patch(
            f"CustomersV3(dataAreaId='usmf',CustomerAccount='{account}')",
            json={"OrganizationName": "Renamed"},
        ).status_code
        == 204
    )
    assert (
        http.get(f"CustomersV2(dataAreaId='usmf',CustomerAccount='{account}')").json()["OrganizationName"]
        == "Renamed"
    )
    v3_only = http.post("CustomersV2", json=customer(unique("V2"), AddressStreetNumber="12"))
    assert v3_only.status_code == 400
    assert (
        "The property 'AddressStreetNumber' does not exist on type "
        "'Microsoft.Dynamics.DataEntities.CustomerV2'" in inner(v3_only)
    )


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"Colour": "blue"},
            "The property 'Colour' does not exist on type 'Microsoft.Dynamics.DataEntities.CustomerV3'. "
            "Make sure to only use property names that are defined by the type or mark the type as open "
            "type.",
        ),
        ({"CreditLimit": "a lot"}, "Cannot convert the literal 'a lot' to the expected type 'Edm.Decimal'."),
        (
            {"OrganizationNumberOfEmployees": 12.5},
            "Cannot convert the literal '12.5' to the expected type 'Edm.Int32'.",
        ),
        (
            {"CreditLimit": None},
            "A null value was found for the property named 'CreditLimit', which has the expected type "
            "'Edm.Decimal[Nullable=False]'. The expected type 'Edm.Decimal[Nullable=False]' does not allow "
            "null values.",
        ),
        ({"IsExternallyMaintained": "Maybe"}, "Requested value 'Maybe' was not found."),
    ],
)
def test_payload_errors_are_refused_with_400(
    http: httpx.Client, extra: dict[str, Any], expected: str
) -> None:
    response = http.post("CustomersV3", json=customer(unique("BAD"), **extra))
    assert response.status_code == 400
    assert response.json()["error"]["innererror"]["type"] == "Microsoft.OData.ODataException"
    assert inner(response) == expected


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"CustomerAccount": "NO-GROUP", "OrganizationName": "x"}, "Customer group"),
        ({"CustomerGroupId": "10", "OrganizationName": "x"}, "Customer account"),
        ({"CustomerAccount": "EMPTY-GROUP", "CustomerGroupId": ""}, "Customer group"),
    ],
)
def test_missing_mandatory_and_key_fields_fail_the_write(
    http: httpx.Client, body: dict[str, Any], missing: str
) -> None:
    message = write_failure(http.post("CustomersV3", json=body))
    assert message == (
        "Write failed for table row of type 'CustCustomerV3Entity'. Infolog: "
        f"Warning: Field '{missing}' must be filled in.; "
        "Warning: validateWrite failed on data source 'CustTable (CustTable)'."
    )


def test_read_only_fields_cannot_be_written(http: httpx.Client) -> None:
    response = http.post("CustomersV3", json=customer(unique("RO"), FullPrimaryAddress="1 Main St"))
    assert "Field 'Full primary address' cannot be edited." in write_failure(response)


# -- referential checks ----------------------------------------------------------------------

ORDER_LINE = {
    "SalesOrderNumber": ORDER,
    "LineCreationSequenceNumber": 900,
    "ProductNumber": "USMF-P00001",
    "SalesUnitSymbol": "ea",
    "OrderedSalesQuantity": 1,
}


@pytest.mark.parametrize(
    ("entity_set", "body", "expected"),
    [
        (
            "CustomersV3",
            customer("REF-GROUP", CustomerGroupId="99"),
            "Write failed for table row of type 'CustCustomerV3Entity'. Infolog: "
            "Warning: The value '99' in field 'Customer group' is not found in the related table "
            "'Customer groups'.; Warning: validateField failed on field "
            "'CustCustomerV3Entity.CustomerGroupId'.",
        ),
        (
            "CustomersV3",
            customer("REF-CUR", SalesCurrencyCode="XYZ"),
            "Write failed for table row of type 'CustCustomerV3Entity'. Infolog: "
            "Warning: The value 'XYZ' in field 'Currency' is not found in the related table 'Currency'.; "
            "Warning: validateField failed on field 'CustCustomerV3Entity.SalesCurrencyCode'.",
        ),
        (
            "CDSSalesOrderHeaders",
            {
                "SalesOrderNumber": "REF-SO-1",
                "OrderingCustomerAccountNumber": "NO-SUCH",
                "CurrencyCode": "USD",
            },
            "Write failed for table row of type 'SalesOrderHeaderCDSEntity'. Infolog: "
            "Warning: The value 'NO-SUCH' in field 'Customer account' is not found in the related table "
            "'Customers'.; Warning: validateField failed on field "
            "'SalesOrderHeaderCDSEntity.OrderingCustomerAccountNumber'.",
        ),
        (
            "CDSSalesOrderLines",
            {**ORDER_LINE, "ProductNumber": "NO-SUCH-ITEM"},
            "Write failed for table row of type 'SalesOrderLineCDSEntity'. Infolog: Warning: The value "
            "'NO-SUCH-ITEM' in field 'Item number' is not found in the related table 'Released products'.; "
            "Warning: validateField failed on field 'SalesOrderLineCDSEntity.ProductNumber'.",
        ),
        (
            "CDSSalesOrderLines",
            {**ORDER_LINE, "SalesOrderNumber": "USMF-SO999999"},
            "Write failed for table row of type 'SalesOrderLineCDSEntity'. Infolog: Warning: The value "
            "'USMF-SO999999' in field 'Sales order' is not found in the related table 'Sales orders'.; "
            "Warning: validateField failed on field 'SalesOrderLineCDSEntity.SalesOrderNumber'.",
        ),
        (
            "CDSContactPersons",
            {
                "ContactPersonPartyNumber": "CON-REF-1",
                "AssociatedPartyNumber": "NOT-A-CUSTOMER",
                "LastName": "Doe",
            },
            "Write failed for table row of type 'SmmContactPersonCDSEntity'. Infolog: "
            "Warning: The associated party NOT-A-CUSTOMER is not a customer of this company.; "
            "Warning: validateField failed on field 'SmmContactPersonCDSEntity.AssociatedPartyNumber'.",
        ),
    ],
)
def test_referential_checks_name_the_missing_value(
    http: httpx.Client, entity_set: str, body: dict[str, Any], expected: str
) -> None:
    assert write_failure(http.post(entity_set, json=body)) == expected


def test_references_that_exist_pass_and_are_company_bound(http: httpx.Client) -> None:
    line = http.post("CDSSalesOrderLines", json=ORDER_LINE)
    assert line.status_code == 201, line.text
    # Customer group "10" exists in usmf; a demf customer needs demf's own group rows.
    ok = http.post("CustomersV3", json=customer(unique("DE"), dataAreaId="demf", SalesCurrencyCode="EUR"))
    assert ok.status_code == 201
    # A usmf contact person cannot point at a demf customer.
    contact = {"ContactPersonPartyNumber": unique("CON"), "AssociatedPartyNumber": "DE-001"}
    assert "DE-001 is not a customer of this company" in write_failure(
        http.post("CDSContactPersons", json=contact)
    )
    # PATCH checks the fields it changes.
    path = f"CDSSalesOrderLines(dataAreaId='usmf',SalesOrderNumber='{ORDER}',LineCreationSequenceNumber=900)"
    assert "'Unit' is not found" in write_failure(http.patch(path, json={"SalesUnitSymbol": "parsec"}))
    assert http.patch(path, json={"SalesUnitSymbol": "box"}).status_code == 204


# -- $batch ------------------------------------------------------------------------------------


@dataclass
class Part:
    status: int
    headers: dict[str, str]
    body: Any
    content_id: str | None


def batch_body(items: list[Any], base: str) -> tuple[str, bytes]:
    """`items`: (method, url, body, content_id) tuples, or lists of them for change sets."""
    boundary = f"batch_{uuid.uuid4()}"
    out: list[str] = []

    def operation(method: str, url: str, body: Any, content_id: str | None) -> list[str]:
        lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
        if content_id:
            lines.append(f"Content-ID: {content_id}")
        target = url if url.startswith("$") else base + url
        lines += ["", f"{method} {target} HTTP/1.1", "Accept: application/json"]
        if body is not None:
            lines += ["Content-Type: application/json", "", json.dumps(body)]
        else:
            lines += ["", ""]
        return lines

    for item in items:
        out.append(f"--{boundary}")
        if isinstance(item, list):
            inner_boundary = f"changeset_{uuid.uuid4()}"
            out += [f"Content-Type: multipart/mixed; boundary={inner_boundary}", ""]
            for op in item:
                out.append(f"--{inner_boundary}")
                out += operation(*op)
            out.append(f"--{inner_boundary}--")
        else:
            out += operation(*item)
    out.append(f"--{boundary}--")
    return f"multipart/mixed; boundary={boundary}", ("\r\n".join(out) + "\r\n").encode()


def parse_batch_response(content_type: str, body: bytes) -> list[Any]:
    """Top-level parts in order; a change set answer is a list of parts."""
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"')
    items: list[Any] = []
    for chunk in body.split(f"--{boundary}".encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, rest = chunk.strip(b"\r\n").partition(b"\r\n\r\n")
        part_headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        if part_headers["Content-Type"].startswith("multipart/mixed"):
            items.append(parse_batch_response(part_headers["Content-Type"], rest))
            continue
        status_line, _, after = rest.partition(b"\r\n")
        header_block, _, payload = after.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in header_block.decode().split("\r\n") if line)
        payload = payload.rstrip(b"\r\n")
        items.append(
            Part(
                int(status_line.split()[1]),
                headers,
                json.loads(payload) if payload else None,
                part_headers.get("Content-ID"),
            )
        )
    return items


def send_batch(http: httpx.Client, items: list[Any]) -> tuple[httpx.Response, list[Any]]:
    content_type, body = batch_body(items, str(http.base_url))
    response = http.post("$batch", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    return response, parse_batch_response(response.headers["Content-Type"], response.content)


def group(group_id: str, description: str = "Batch group") -> dict[str, Any]:
    return {
        "@odata.type": "#Microsoft.Dynamics.DataEntities.CustomerGroup",
        "CustomerGroupId": group_id,
        "dataAreaId": "usmf",
        "Description": description,
    }


def test_captured_batch_example_answers_200_with_the_failure_inside(http: httpx.Client) -> None:
    """A public capture of F&O: the same two-group change set sent twice (third-party)."""
    first, second = unique("B1"), unique("B2")
    changeset = [
        ("POST", "CustomerGroups", group(first), "1"),
        ("POST", "CustomerGroups", group(second), "2"),
    ]
    _, items = send_batch(http, [changeset])
    assert [p.status for p in items[0]] == [201, 201]
    _, again = send_batch(http, [changeset])
    failed = again[0]
    assert isinstance(failed, list)
    assert len(failed) == 1  # a failed change set is answered by its failing operation alone
    assert failed[0].status == 500
    assert failed[0].content_id == "1"
    assert failed[0].body["error"]["innererror"]["message"] == (
        "Write failed for table row of type 'CustCustomerGroupEntity'. Infolog: Info: Cannot create a "
        f"record in Customer groups (CustGroup). Customer group: {first}.\nThe record already exists."
    )


def test_change_sets_are_atomic_and_independent(http: httpx.Client) -> None:
    good, bad_a, bad_b = unique("OK"), unique("RB"), unique("RB")
    _, items = send_batch(
        http,
        [
            [
                ("POST", "CustomersV3", customer(bad_a), "1"),
                ("POST", "CustomersV3", customer(bad_b, CustomerGroupId="99"), "2"),
                ("POST", "CustomersV3", customer(unique("RB")), "3"),
            ],
            [("POST", "CustomersV3", customer(good), "1")],
            ("GET", f"CustomersV3(dataAreaId='usmf',CustomerAccount='{bad_a}')", None, None),
        ],
    )
    failed, landed, lookup = items
    assert len(failed) == 1
    assert failed[0].status == 400
    assert failed[0].content_id == "2"
    assert "'Customer group' is not found" in failed[0].body["error"]["innererror"]["message"]
    assert [p.status for p in landed] == [201]
    assert lookup.status == 404  # the first create of the failed change set was rolled back
    assert http.get(f"CustomersV3(dataAreaId='usmf',CustomerAccount='{good}')").status_code == 200
    assert http.get(f"CustomersV3(dataAreaId='usmf',CustomerAccount='{bad_a}')").status_code == 404


def test_content_id_references_inside_a_change_set(http: httpx.Client) -> None:
    account = unique("CID")
    _, items = send_batch(
        http,
        [
            [
                ("POST", "CustomersV3", customer(account), "1"),
                ("PATCH", "$1", {"NameAlias": "Referenced"}, "2"),
            ]
        ],
    )
    assert [p.status for p in items[0]] == [201, 204]
    assert items[0][0].headers["Location"].endswith(f"CustomerAccount='{account}')")
    row = http.get(f"CustomersV3(dataAreaId='usmf',CustomerAccount='{account}')").json()
    assert row["NameAlias"] == "Referenced"


def test_batch_parts_use_the_same_rules_as_direct_requests(http: httpx.Client) -> None:
    _, items = send_batch(
        http,
        [
            ("GET", "customersv3", None, None),
            ("PATCH", "CustomersV3(dataAreaId='usmf',CustomerAccount='NOPE')", {"NameAlias": "x"}, None),
            ("GET", "CustomersV3?$filter=dataAreaId%20eq%20'demf'&$top=1&cross-company=true", None, None),
        ],
    )
    wrong_case, missing, other_company = items
    assert wrong_case.status == 404
    assert "No HTTP resource was found" in wrong_case.body["Message"]
    assert missing.status == 400
    assert (
        missing.body["error"]["innererror"]["message"] == "No resources were found when selecting for update."
    )
    assert other_company.status == 200
    assert [row["dataAreaId"] for row in other_company.body["value"]] == ["demf"]


def test_a_batch_is_one_request_but_every_operation_is_charged(http: httpx.Client, admin: Any) -> None:
    admin.reset_counters()
    operations = [("POST", "CustomerGroups", group(unique("G")), str(n)) for n in range(1, 21)]
    _, items = send_batch(http, [operations])
    assert [p.status for p in items[0]] == [201] * 20
    counters = admin.counters()
    assert counters["requests"] == {"POST $batch": 1}
    assert counters["batch_parts"] == {"POST CustomerGroups": 20}
    assert counters["operations_written"] == {"create": 20}
    assert counters["operations_charged"] == 20


def test_a_batch_holds_at_most_5000_operations(http: httpx.Client) -> None:
    operations = [("GET", "Currencies", None, None)] * 5001
    content_type, body = batch_body(operations, str(http.base_url))
    response = http.post("$batch", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert "A maximum number of '5000' query operations" in response.json()["error"]["message"]


def test_customers_without_a_party_number_get_one_from_the_party_number_sequence(http: httpx.Client) -> None:
    """A customer created without ``PartyNumber`` becomes a new party numbered by the global
    party number sequence (not by its account); contact persons attach to that party."""
    first, second, named = unique("PN"), unique("PN"), unique("PN")
    a = http.post("CustomersV3", json=customer(first))
    b = http.post("CustomersV2", json=customer(second, dataAreaId="demf", SalesCurrencyCode="EUR"))
    assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
    party_a, party_b = a.json()["PartyNumber"], b.json()["PartyNumber"]
    assert len(party_a) == 9
    assert party_a.isdigit()
    assert int(party_b) == int(party_a) + 1  # one sequence for every company
    read = http.get(f"CustomersV3(dataAreaId='usmf',CustomerAccount='{first}')").json()
    assert read["PartyNumber"] == party_a != first
    given = http.post("CustomersV3", json=customer(named, PartyNumber=f"P-{named}"))
    assert given.json()["PartyNumber"] == f"P-{named}"

    person = {"ContactPersonPartyNumber": unique("CON"), "LastName": "Doe"}
    by_account = http.post("CDSContactPersons", json={**person, "AssociatedPartyNumber": first})
    assert f"{first} is not a customer of this company" in write_failure(by_account)
    by_party = http.post("CDSContactPersons", json={**person, "AssociatedPartyNumber": party_a})
    assert by_party.status_code == 201, by_party.text
