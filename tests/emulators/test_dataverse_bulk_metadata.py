"""Dataverse emulator: bulk messages, their availability, ``$metadata``, EntityDefinitions, WhoAmI."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.support.emulators import AdminClient, EmulatorEndpoints

pytestmark = pytest.mark.integration

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


@pytest.fixture
def api(endpoints: EmulatorEndpoints, bearer_token: Callable[[str], str]) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=endpoints.dataverse_service_root,
        verify=endpoints.ssl_context(),
        headers={"Authorization": f"Bearer {bearer_token('dataverse')}", "Accept": "application/json"},
        timeout=30,
    ) as client:
        yield client


def quote_target(**fields: Any) -> dict[str, Any]:
    return {"@odata.type": "Microsoft.Dynamics.CRM.quote", "name": "Bulk quote", **fields}


def test_create_multiple_returns_ids_in_order(api: httpx.Client, dataverse_admin: AdminClient) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    before = dataverse_admin.counters()
    response = api.post(
        "quotes/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [quote_target(quoteid=i, name=f"Bulk {n}") for n, i in enumerate(ids)]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["Ids"] == ids
    assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse")
    after = dataverse_admin.counters()
    assert after["operations_written"]["create"] - before["operations_written"].get("create", 0) == 3
    assert after["requests_total"] - before["requests_total"] == 1
    assert api.get(f"quotes({ids[2]})").json()["name"] == "Bulk 2"


def test_one_bad_record_rolls_back_the_whole_create_multiple(api: httpx.Client) -> None:
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    response = api.post(
        "quotes/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [quote_target(quoteid=good), quote_target(quoteid=bad, shippingmethodcode=77)]},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x8004431a"
    assert api.get(f"quotes({good})").status_code == 404
    duplicate = api.post(
        "quotes/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [quote_target(quoteid=good), quote_target(quoteid=good)]},
    )
    assert duplicate.status_code == 412
    assert duplicate.json()["error"]["message"] == "Cannot insert duplicate key."
    assert api.get(f"quotes({good})").status_code == 404


def test_targets_must_carry_the_table_type(api: httpx.Client) -> None:
    missing = api.post(
        "quotes/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": [{"name": "untyped"}]}
    )
    assert missing.status_code == 400
    wrong = api.post(
        "quotes/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "x"}]},
    )
    assert wrong.status_code == 400


@pytest.mark.parametrize(("entity_set", "logical"), [("accounts", "account"), ("contacts", "contact")])
def test_tables_without_bulk_messages_refuse_them(api: httpx.Client, entity_set: str, logical: str) -> None:
    for message in ("CreateMultiple", "UpsertMultiple"):
        response = api.post(
            f"{entity_set}/Microsoft.Dynamics.CRM.{message}",
            json={"Targets": [{"@odata.type": f"Microsoft.Dynamics.CRM.{logical}", "name": "x"}]},
        )
        assert response.status_code == 400
        assert response.json()["error"]["message"] == (
            f"The '{message}' method does not support entities of type '{logical}'. "
            "MessageProcessorCache returned MessageProcessor.Empty."
        )


def test_documented_availability_query_through_sdkmessagefilters(api: httpx.Client) -> None:
    """bulk-operations.md, "Availability with standard tables" (parameter aliases included)."""

    def available(message: str, table: str) -> list[dict[str, Any]]:
        response = api.get(
            "sdkmessagefilters",
            params={
                "$select": "sdkmessagefilterid",
                "$filter": "sdkmessageid/name eq @message and primaryobjecttypecode eq @table",
                "@message": f"'{message}'",
                "@table": f"'{table}'",
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["@odata.context"].endswith("$metadata#sdkmessagefilters(sdkmessagefilterid)")
        return response.json()["value"]

    assert len(available("CreateMultiple", "quote")) == 1
    assert len(available("UpdateMultiple", "salesorderdetail")) == 1
    assert available("CreateMultiple", "account") == []
    assert available("UpsertMultiple", "contact") == []
    assert len(available("Create", "account")) == 1
    assert api.post("sdkmessagefilters", json={"name": "x"}).status_code == 405


def test_upsert_multiple_by_odata_id_and_update_multiple(api: httpx.Client) -> None:
    existing, new = str(uuid.uuid4()), str(uuid.uuid4())
    api.post("quotes", json={"quoteid": existing, "name": "Before"})
    response = api.post(
        "quotes/Microsoft.Dynamics.CRM.UpsertMultiple",
        json={
            "Targets": [
                quote_target(name="After", **{"@odata.id": f"quotes({existing})"}),
                quote_target(name="Brand new", **{"@odata.id": f"quotes({new})"}),
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["Ids"] == [existing, new]
    assert api.get(f"quotes({existing})").json()["name"] == "After"
    assert api.get(f"quotes({new})").json()["name"] == "Brand new"
    updated = api.post(
        "quotes/Microsoft.Dynamics.CRM.UpdateMultiple",
        json={"Targets": [quote_target(quoteid=new, name="Updated")]},
    )
    assert updated.status_code == 204
    assert api.get(f"quotes({new})").json()["name"] == "Updated"
    ghost = str(uuid.uuid4())
    missing = api.post(
        "quotes/Microsoft.Dynamics.CRM.UpdateMultiple", json={"Targets": [quote_target(quoteid=ghost)]}
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == f"Quote With Ids = {ghost} Do Not Exist"


def test_metadata_document_lists_tables_keys_and_bulk_actions(api: httpx.Client) -> None:
    response = api.get("$metadata")
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    entity_sets = {e.get("Name"): e.get("EntityType") for e in root.iter(f"{EDM}EntitySet")}
    assert entity_sets["accounts"] == "Microsoft.Dynamics.CRM.account"
    assert entity_sets["sdkmessagefilters"] == "Microsoft.Dynamics.CRM.sdkmessagefilter"
    bound = {
        (action.get("Name"), action.find(f"{EDM}Parameter").get("Type"))  # type: ignore[union-attr]
        for action in root.iter(f"{EDM}Action")
    }
    assert ("CreateMultiple", "Collection(mscrm.quote)") in bound
    assert ("CreateMultiple", "Collection(mscrm.account)") not in bound


def test_entity_definitions_as_the_python_sdk_queries_them(api: httpx.Client) -> None:
    response = api.get(
        "EntityDefinitions",
        params={
            "$select": "LogicalName,EntitySetName,PrimaryIdAttribute",
            "$filter": "LogicalName eq 'account'",
        },
    )
    assert response.status_code == 200
    (item,) = response.json()["value"]
    assert item["EntitySetName"] == "accounts"
    assert item["PrimaryIdAttribute"] == "accountid"
    assert set(item) == {"LogicalName", "EntitySetName", "PrimaryIdAttribute", "MetadataId"}
    assert api.get("EntityDefinitions", params={"$filter": "LogicalName eq 'nope'"}).json()["value"] == []
    single = api.get("EntityDefinitions(LogicalName='contact')", params={"$expand": "Keys"}).json()
    assert single["PrimaryNameAttribute"] == "fullname"
    assert single["Keys"][0]["KeyAttributes"] == ["msdynce_contactnumber"]
    by_id = api.get(f"EntityDefinitions({single['MetadataId']})").json()
    assert by_id["LogicalName"] == "contact"


def test_attribute_metadata_and_picklist_options(api: httpx.Client) -> None:
    attributes = api.get("EntityDefinitions(LogicalName='account')/Attributes").json()["value"]
    by_name = {a["LogicalName"]: a for a in attributes}
    assert by_name["name"]["@odata.type"] == "#Microsoft.Dynamics.CRM.StringAttributeMetadata"
    assert by_name["name"]["MaxLength"] == 160
    assert by_name["name"]["IsPrimaryName"] is True
    assert by_name["primarycontactid"]["Targets"] == ["contact"]
    assert by_name["createdon"]["IsValidForCreate"] is False
    single = api.get("EntityDefinitions(LogicalName='account')/Attributes(LogicalName='telephone1')").json()
    assert single["MaxLength"] == 50
    picklists = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
        params={"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
    ).json()["value"]
    options = {p["LogicalName"]: p["OptionSet"]["Options"] for p in picklists}
    assert {"Value": 3, "Label": options["customertypecode"][2]["Label"]} == options["customertypecode"][2]
    assert options["customertypecode"][2]["Label"]["UserLocalizedLabel"]["Label"] == "Customer"
    assert all(p["@odata.type"] == "#Microsoft.Dynamics.CRM.PicklistAttributeMetadata" for p in picklists)


def test_who_am_i_and_its_wrong_method(api: httpx.Client) -> None:
    body = api.get("WhoAmI").json()
    assert set(body) == {"@odata.context", "BusinessUnitId", "UserId", "OrganizationId"}
    user = api.get(f"systemusers({body['UserId']})").json()
    assert user["_businessunitid_value"] == body["BusinessUnitId"]
    wrong = api.post("WhoAmI")
    assert wrong.status_code == 404
    assert wrong.json()["error"]["message"] == (
        f"No HTTP resource was found that matches the request URI '{api.base_url}WhoAmI'."
    )
