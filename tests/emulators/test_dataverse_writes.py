"""Dataverse emulator, writes: create, upsert, conditional operations, binds, validation errors.

Includes replays of the request/response pairs of powerapps-docs
``perform-conditional-operations-using-web-api.md`` (with fresh GUIDs instead of the
documentation's fixed ones, so the shared emulator instance stays reusable).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.support.emulators import AdminClient, EmulatorEndpoints

pytestmark = pytest.mark.integration

PAYLOAD_PREFIX = (
    "Error identified in Payload provided by the user for Entity :'{set}', For more information on this "
    "error please follow this help link "
    "https://go.microsoft.com/fwlink/?linkid=2195293  ---->  InnerException : "
    "Microsoft.OData.ODataException: "
)


@pytest.fixture
def api(endpoints: EmulatorEndpoints, bearer_token: Callable[[str], str]) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=endpoints.dataverse_service_root,
        verify=endpoints.ssl_context(),
        headers={"Authorization": f"Bearer {bearer_token('dataverse')}", "Accept": "application/json"},
        timeout=30,
    ) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def an_account(api: httpx.Client) -> dict[str, Any]:
    return api.get("accounts", params={"$select": "name", "$top": "1"}).json()["value"][0]


def test_create_answers_204_with_the_entity_id_and_sets_system_columns(api: httpx.Client) -> None:
    response = api.post("accounts", json={"name": "Created Co"})
    assert response.status_code == 204
    assert response.content == b""
    entity_url = response.headers["OData-EntityId"]
    assert entity_url.startswith(str(api.base_url))
    assert entity_url == response.headers["Location"]
    account_id = entity_url.rsplit("(", 1)[1].rstrip(")")
    row = api.get(f"accounts({account_id})").json()
    assert row["name"] == "Created Co"
    assert row["createdon"].endswith("Z")
    assert row["createdon"] == row["modifiedon"]
    assert row["@odata.etag"] == f'W/"{row["versionnumber"]}"'
    assert row["statecode"] == 0
    assert row["statuscode"] == 1
    assert row["accountnumber"].startswith("ACC-")  # AutoNumberFormat
    assert row["_ownerid_value"] == api.get("WhoAmI").json()["UserId"]


def test_create_with_representation_returns_201_and_the_row(api: httpx.Client) -> None:
    response = api.post(
        "accounts?$select=name,telephone1",
        json={"name": "Represented", "telephone1": "555-0100"},
        headers={"Prefer": "return=representation"},
    )
    assert response.status_code == 201
    assert response.headers["Preference-Applied"] == "return=representation"
    body = response.json()
    assert body["name"] == "Represented"
    assert body["telephone1"] == "555-0100"
    assert body["@odata.context"].endswith("$metadata#accounts(name,telephone1)/$entity")


def test_client_supplied_primary_key_is_honoured_and_duplicates_fail(api: httpx.Client) -> None:
    account_id = str(uuid.uuid4())
    response = api.post("accounts", json={"accountid": account_id, "name": "Own Id"})
    assert response.headers["OData-EntityId"].endswith(f"accounts({account_id})")
    again = api.post("accounts", json={"accountid": account_id, "name": "Own Id again"})
    assert again.status_code == 412
    assert error_of(again) == {
        "code": "0x80040237",
        "message": "A record with matching key values already exists.",
    }


def test_every_write_increments_versionnumber_and_modifiedon_is_server_set(api: httpx.Client) -> None:
    account_id = str(uuid.uuid4())
    api.post("accounts", json={"accountid": account_id, "name": "Versioned"})
    first = api.get(f"accounts({account_id})").json()
    api.patch(f"accounts({account_id})", json={"name": "Versioned 2"})
    second = api.get(f"accounts({account_id})").json()
    assert second["versionnumber"] > first["versionnumber"]
    assert second["createdon"] == first["createdon"]
    assert second["modifiedon"] >= first["modifiedon"]


def test_patch_is_an_upsert(api: httpx.Client, dataverse_admin: AdminClient) -> None:
    account_id = str(uuid.uuid4())
    before = dataverse_admin.counters()["operations_written"].get("upsert", 0)
    created = api.patch(f"accounts({account_id})", json={"name": "Upserted"})
    assert created.status_code == 204
    assert api.get(f"accounts({account_id})").json()["name"] == "Upserted"
    updated = api.patch(
        f"accounts({account_id})",
        json={"name": "Upserted again"},
        headers={"Prefer": "return=representation"},
    )
    assert updated.status_code == 200
    assert updated.json()["name"] == "Upserted again"
    assert dataverse_admin.counters()["operations_written"]["upsert"] - before == 2


def test_documented_prevent_create_in_upsert(api: httpx.Client) -> None:
    """perform-conditional-operations: If-Match: * on a missing row → 404 with the documented text."""
    account_id = str(uuid.uuid4())
    body = {
        "name": "Updated Sample Account ",
        "creditonhold": True,
        "address1_latitude": 47.639583,
        "description": "This is the updated description of the sample account",
        "accountcategorycode": 2,
    }
    response = api.patch(f"accounts({account_id})", json=body, headers={"If-Match": "*"})
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json; odata.metadata=minimal")
    assert error_of(response)["message"] == f"account With Id = {account_id} Does Not Exist"
    assert api.get(f"accounts({account_id})").status_code == 404
    api.post("accounts", json={"accountid": account_id, "name": "exists now"})
    assert api.patch(f"accounts({account_id})", json=body, headers={"If-Match": "*"}).status_code == 204


def test_documented_prevent_update_in_upsert(api: httpx.Client) -> None:
    """perform-conditional-operations: If-None-Match: * on an existing row → 412."""
    account_id = str(uuid.uuid4())
    body = {"name": "Updated Sample Account ", "creditonhold": True, "accountcategorycode": 2}
    assert api.patch(f"accounts({account_id})", json=body, headers={"If-None-Match": "*"}).status_code == 204
    response = api.patch(f"accounts({account_id})", json=body, headers={"If-None-Match": "*"})
    assert response.status_code == 412
    assert error_of(response)["message"] == "A record with matching key values already exists."


def test_documented_optimistic_concurrency_on_update_and_delete(api: httpx.Client) -> None:
    account_id = str(uuid.uuid4())
    api.post("accounts", json={"accountid": account_id, "name": "Concurrency"})
    tag = api.get(f"accounts({account_id})").json()["@odata.etag"]
    api.patch(f"accounts({account_id})", json={"name": "Someone else"})
    stale = api.patch(
        f"accounts({account_id})", json={"name": "Updated Account Name"}, headers={"If-Match": tag}
    )
    assert stale.status_code == 412
    assert error_of(stale) == {
        "code": "0x80060882",
        "message": "The version of the existing record doesn't match the RowVersion property provided.",
    }
    assert api.delete(f"accounts({account_id})", headers={"If-Match": tag}).status_code == 412
    fresh = api.get(f"accounts({account_id})").json()["@odata.etag"]
    assert (
        api.patch(f"accounts({account_id})", json={"name": "Mine"}, headers={"If-Match": fresh}).status_code
        == 204
    )
    latest = api.get(f"accounts({account_id})").json()["@odata.etag"]
    assert api.delete(f"accounts({account_id})", headers={"If-Match": latest}).status_code == 204


def test_delete_answers_204_then_404(api: httpx.Client) -> None:
    account_id = str(uuid.uuid4())
    api.post("accounts", json={"accountid": account_id, "name": "Doomed"})
    assert api.delete(f"accounts({account_id})").status_code == 204
    response = api.delete(f"accounts({account_id})")
    assert response.status_code == 404
    assert error_of(response)["message"] == f"account With Id = {account_id} Does Not Exist"


def test_upsert_by_alternate_key_creates_then_updates(api: httpx.Client) -> None:
    number = f"CON-W{uuid.uuid4().hex[:6].upper()}"
    url = f"contacts(msdynce_contactnumber='{number}')"
    assert api.patch(url, json={"lastname": "Alt"}).status_code == 204
    created = api.get(url, params={"$select": "lastname,msdynce_contactnumber"}).json()
    assert created["msdynce_contactnumber"] == number
    assert api.patch(url, json={"lastname": "Alt 2"}).status_code == 204
    assert api.get(url).json()["contactid"] == created["contactid"]
    clash = api.post("contacts", json={"lastname": "Clash", "msdynce_contactnumber": number})
    assert clash.status_code == 412
    assert error_of(clash)["code"] == "0x80060892"


def test_lookup_binds_set_the_value_and_dangling_binds_fail(api: httpx.Client) -> None:
    account = an_account(api)
    contact_id = str(uuid.uuid4())
    response = api.post(
        "contacts",
        json={
            "contactid": contact_id,
            "lastname": "Bound",
            "parentcustomerid_account@odata.bind": f"/accounts({account['accountid']})",
        },
    )
    assert response.status_code == 204, response.text
    assert api.get(f"contacts({contact_id})").json()["_parentcustomerid_value"] == account["accountid"]
    # Absolute URLs and alternate-key URLs are references too.
    number = f"CON-B{uuid.uuid4().hex[:6].upper()}"
    api.patch(f"contacts(msdynce_contactnumber='{number}')", json={"lastname": "Primary"})
    quote_id = str(uuid.uuid4())
    created = api.post(
        "quotes",
        json={
            "quoteid": quote_id,
            "name": "Bound quote",
            "customerid_contact@odata.bind": f"{api.base_url}contacts(msdynce_contactnumber='{number}')",
        },
    )
    assert created.status_code == 204, created.text
    quote = api.get(f"quotes({quote_id})", headers={"Prefer": 'odata.include-annotations="*"'}).json()
    assert quote["_customerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"
    missing = str(uuid.uuid4())
    dangling = api.post(
        "contacts",
        json={"lastname": "Dangling", "parentcustomerid_account@odata.bind": f"/accounts({missing})"},
    )
    assert dangling.status_code == 404
    assert error_of(dangling) == {
        "code": "0x80040217",
        "message": f"account With Id = {missing} Does Not Exist",
    }
    unbind = api.patch(f"contacts({contact_id})", json={"parentcustomerid_account@odata.bind": None})
    assert unbind.status_code == 204
    assert api.get(f"contacts({contact_id})").json()["_parentcustomerid_value"] is None


def test_bind_to_the_wrong_table_or_undeclared_navigation_fails(api: httpx.Client) -> None:
    account = an_account(api)
    wrong = api.post(
        "contacts",
        json={"lastname": "x", "parentcustomerid_contact@odata.bind": f"/accounts({account['accountid']})"},
    )
    assert wrong.status_code == 400
    assert error_of(wrong) == {
        "code": "0x80048d19",
        "message": PAYLOAD_PREFIX.format(set="contacts")
        + "The navigation property 'parentcustomerid_contact' expects a reference to an entity of set "
        "'contacts', but the reference addresses 'accounts'.",
    }
    undeclared = api.post(
        "contacts", json={"lastname": "x", "parentcustomerid@odata.bind": f"accounts({account['accountid']})"}
    )
    assert undeclared.status_code == 400
    assert error_of(undeclared) == {
        "code": "0x80048d19",
        "message": PAYLOAD_PREFIX.format(set="contacts")
        + "An undeclared property 'parentcustomerid' which only has property annotations in the payload but "
        "no property value was found in the payload. In OData, only declared navigation properties "
        "and declared named streams can be represented as properties without values.",
    }


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (
            {"name": "x", "citty": "Lyon"},
            400,
            "0x80048d19",
            PAYLOAD_PREFIX.format(set="accounts")
            + "The property 'citty' does not exist on type 'Microsoft.Dynamics.CRM.account'. Make "
            "sure to only use property names that are defined by the type or mark the type as open type.",
        ),
        (
            {"name": "x", "numberofemployees": "many"},
            400,
            "0x80048d19",
            PAYLOAD_PREFIX.format(set="accounts")
            + "Cannot convert the literal 'many' to the expected type 'Edm.Int32'.",
        ),
        (
            {"name": "x" * 161},
            400,
            "0x80044331",
            "A validation error occurred.  The length of the 'name' attribute of the 'account' entity "
            "exceeded the maximum allowed length of '160'.",
        ),
        (
            {"name": "x", "customertypecode": 99},
            400,
            "0x8004431a",
            "A validation error occurred. The value 99 of 'customertypecode' on record of type 'account' is "
            "outside the valid range. Accepted Values: 1,2,3,4,5,6,7,8,9,10,11,12",
        ),
        (
            {"name": "x", "createdon": "2020-01-01T00:00:00Z"},
            400,
            "0x80040203",
            None,
        ),
        (
            {"name": "x", "_primarycontactid_value": "00000000-0000-0000-0000-000000000001"},
            400,
            "0x80040203",
            None,
        ),
    ],
    ids=[
        "unknown-property",
        "wrong-type",
        "too-long",
        "invalid-option",
        "read-only",
        "lookup-value-property",
    ],
)
def test_validation_errors_have_dataverse_codes_and_messages(
    api: httpx.Client, body: dict[str, Any], status: int, code: str, message: str | None
) -> None:
    response = api.post("accounts", json=body)
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code
    if message is not None:
        assert error["message"] == message


def test_missing_system_required_column_fails_but_application_required_does_not(api: httpx.Client) -> None:
    response = api.post("products", json={"name": "No number"})
    assert response.status_code == 400
    assert "productnumber" in error_of(response)["message"]
    # ApplicationRequired (account.name) is a form rule the Web API does not enforce.
    assert api.post("accounts", json={"telephone1": "555"}).status_code == 204


def test_writes_are_counted_by_kind(api: httpx.Client, dataverse_admin: AdminClient) -> None:
    before = dataverse_admin.counters()
    account_id = str(uuid.uuid4())
    api.post("accounts", json={"accountid": account_id, "name": "Counted"})
    api.patch(f"accounts({account_id})", json={"name": "Counted 2"}, headers={"If-Match": "*"})
    api.delete(f"accounts({account_id})")
    after = dataverse_admin.counters()
    for kind in ("create", "update", "delete"):
        assert after["operations_written"][kind] - before["operations_written"].get(kind, 0) == 1
    assert after["requests"]["POST accounts"] - before["requests"].get("POST accounts", 0) == 1


def test_single_property_put_and_delete(api: httpx.Client) -> None:
    account_id = str(uuid.uuid4())
    api.post("accounts", json={"accountid": account_id, "name": "Property", "telephone1": "1"})
    assert api.put(f"accounts({account_id})/telephone1", json={"value": "2"}).status_code == 204
    assert api.get(f"accounts({account_id})/telephone1").json()["value"] == "2"
    assert api.delete(f"accounts({account_id})/telephone1").status_code == 204
    assert api.get(f"accounts({account_id})").json()["telephone1"] is None


def test_overriddencreatedon_dates_a_migrated_row_on_create_only(api: httpx.Client) -> None:
    """Entity reference (OverriddenCreatedOn, "Date and time that the record was migrated",
    not valid for update): a create that sets it gets that date as ``createdon``; the column
    then holds the actual time of the create. A client can so create rows in past windows."""
    past = "2026-11-02T08:15:00Z"
    response = api.post("accounts", json={"name": "Migrated Co", "overriddencreatedon": past})
    assert response.status_code == 204, response.text
    account_id = response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")
    row = api.get(f"accounts({account_id})").json()
    assert row["createdon"] == past
    assert row["overriddencreatedon"] == row["modifiedon"]
    assert row["overriddencreatedon"] > past
    window = api.get(
        "accounts",
        params={
            "$select": "name",
            "$filter": f"createdon ge 2026-11-02T00:00:00Z and createdon lt 2026-11-03T00:00:00Z "
            f"and accountid eq {account_id}",
        },
    ).json()["value"]
    assert [r["name"] for r in window] == ["Migrated Co"]

    refused = api.patch(f"accounts({account_id})", json={"overriddencreatedon": "2026-11-01T00:00:00Z"})
    assert refused.status_code == 400
    assert error_of(refused)["code"] == "0x80040203"
    assert "overriddencreatedon" in error_of(refused)["message"]
    assert api.get(f"accounts({account_id})").json()["createdon"] == past

    plain = api.post("accounts", json={"name": "Fresh Co"})
    fresh = api.get(f"accounts({plain.headers['OData-EntityId'].rsplit('(', 1)[1].rstrip(')')})").json()
    assert fresh["overriddencreatedon"] is None
    assert fresh["createdon"] == fresh["modifiedon"]

    attributes = api.get("EntityDefinitions(LogicalName='account')/Attributes").json()["value"]
    column = next(a for a in attributes if a["LogicalName"] == "overriddencreatedon")
    assert (column["IsValidForCreate"], column["IsValidForUpdate"]) == (True, False)


def test_owning_business_unit_follows_the_owner_on_create_and_on_assign(api: httpx.Client) -> None:
    """salesorder reference: Assign is a PATCH of ``ownerid``; ``owningbusinessunit`` is read
    only (not valid for create or update) and is the owner's business unit. Lines
    (salesorderdetail: OwnerId not writable) belong to their order's owner."""

    def one(entity_set: str, select: str, filter_: str) -> dict[str, Any]:
        rows = api.get(entity_set, params={"$select": select, "$filter": filter_}).json()["value"]
        assert len(rows) == 1, rows
        return rows[0]

    units = {
        name: one("businessunits", "businessunitid", f"name eq '{name}'")["businessunitid"]
        for name in ("Contoso", "Contoso US", "Contoso Europe")
    }
    sam = one("systemusers", "systemuserid", "fullname eq 'Sam Seller'")["systemuserid"]
    eva = one("systemusers", "systemuserid", "fullname eq 'Eva Verkauf'")["systemuserid"]
    account = an_account(api)["accountid"]
    price_list = api.get("pricelevels", params={"$select": "pricelevelid", "$top": "1"}).json()["value"][0]
    currency = api.get("transactioncurrencies", params={"$select": "transactioncurrencyid", "$top": "1"})
    order_id, line_id, unowned_id = (str(uuid.uuid4()) for _ in range(3))
    header = {
        "name": "Owned order",
        "customerid_account@odata.bind": f"/accounts({account})",
        "pricelevelid@odata.bind": f"/pricelevels({price_list['pricelevelid']})",
        "transactioncurrencyid@odata.bind": (
            f"/transactioncurrencies({currency.json()['value'][0]['transactioncurrencyid']})"
        ),
    }
    created = api.patch(
        f"salesorders({order_id})",
        json={**header, "ownerid@odata.bind": f"/systemusers({sam})"},
        headers={"If-None-Match": "*"},
    )
    assert created.status_code == 204, created.text
    line = api.patch(
        f"salesorderdetails({line_id})",
        json={
            "salesorderid@odata.bind": f"/salesorders({order_id})",
            "productdescription": "Write-in",
            "isproductoverridden": True,
            "quantity": 1,
        },
        headers={"If-None-Match": "*"},
    )
    assert line.status_code == 204, line.text
    owners = "_ownerid_value,_owninguser_value,_owningbusinessunit_value"

    def owner_of(entity_set: str, row_id: str) -> tuple[str, str, str]:
        row = api.get(f"{entity_set}({row_id})", params={"$select": owners}).json()
        return row["_ownerid_value"], row["_owninguser_value"], row["_owningbusinessunit_value"]

    assert owner_of("salesorders", order_id) == (sam, sam, units["Contoso US"])
    assert owner_of("salesorderdetails", line_id) == (sam, sam, units["Contoso US"])
    in_unit = api.get(
        "salesorders",
        params={"$select": "name", "$filter": f"_owningbusinessunit_value eq {units['Contoso US']}"},
    ).json()["value"]
    assert "Owned order" in {row["name"] for row in in_unit}

    assigned = api.patch(f"salesorders({order_id})", json={"ownerid@odata.bind": f"/systemusers({eva})"})
    assert assigned.status_code == 204, assigned.text
    assert owner_of("salesorders", order_id) == (eva, eva, units["Contoso Europe"])
    assert owner_of("salesorderdetails", line_id) == (eva, eva, units["Contoso Europe"])

    direct = api.patch(
        f"salesorders({order_id})",
        json={"owningbusinessunit@odata.bind": f"/businessunits({units['Contoso US']})"},
    )
    assert direct.status_code == 400
    assert error_of(direct)["code"] == "0x80040203"
    line_owner = api.patch(
        f"salesorderdetails({line_id})", json={"ownerid@odata.bind": f"/systemusers({sam})"}
    )
    assert line_owner.status_code == 400
    assert owner_of("salesorders", order_id) == (eva, eva, units["Contoso Europe"])

    # Without an owner the caller (the integration's application user) owns the row, in its unit.
    caller = api.get("WhoAmI").json()
    unowned = api.patch(f"salesorders({unowned_id})", json=header, headers={"If-None-Match": "*"})
    assert unowned.status_code == 204, unowned.text
    assert owner_of("salesorders", unowned_id) == (
        caller["UserId"],
        caller["UserId"],
        caller["BusinessUnitId"],
    )
    assert caller["BusinessUnitId"] == units["Contoso"]
