"""Dataverse emulator, reads: queries, paging cookies, annotations, keys and read errors.

Runs over real HTTPS against the shared demo-seeded emulators; tests only create rows of
their own (unique names) so they never depend on or disturb other tests' data.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def new_contact(api: httpx.Client, **fields: Any) -> str:
    contact_id = str(uuid.uuid4())
    response = api.post("contacts", json={"contactid": contact_id, "lastname": "Reader", **fields})
    assert response.status_code == 204, response.text
    return contact_id


def test_collection_has_odata_headers_context_and_etags(api: httpx.Client) -> None:
    response = api.get("accounts", params={"$select": "name,creditonhold", "$top": "3"})
    assert response.status_code == 200
    assert response.headers["OData-Version"] == "4.0"
    assert response.headers["Content-Type"].startswith("application/json; odata.metadata=minimal")
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#accounts(name,creditonhold)")
    assert len(body["value"]) == 3
    for row in body["value"]:
        assert row["@odata.etag"].startswith('W/"')
        # The primary key comes back even when not selected, like the real service.
        assert set(row) == {"@odata.etag", "name", "creditonhold", "accountid"}
        assert isinstance(row["creditonhold"], bool)


def test_without_select_every_column_is_returned_including_nulls(api: httpx.Client) -> None:
    row = api.get("accounts", params={"$top": "1"}).json()["value"][0]
    for column in ("name", "accountnumber", "address1_city", "createdon", "versionnumber"):
        assert column in row
    assert "_primarycontactid_value" in row
    assert "primarycontactid" not in row
    assert "_ownerid_value" in row


def test_filter_orderby_and_lookup_value_properties(api: httpx.Client) -> None:
    account = api.get("accounts", params={"$select": "name", "$top": "1"}).json()["value"][0]
    bind = {"parentcustomerid_account@odata.bind": f"/accounts({account['accountid']})"}
    contact_id = new_contact(api, firstname="Filter", **bind)
    response = api.get(
        "contacts",
        params={
            "$select": "fullname,_parentcustomerid_value",
            "$filter": f"_parentcustomerid_value eq {account['accountid']} and firstname eq 'filter'",
            "$orderby": "fullname desc",
        },
    )
    assert response.status_code == 200, response.text
    rows = response.json()["value"]
    assert [row["contactid"] for row in rows] == [contact_id]
    assert rows[0]["_parentcustomerid_value"] == account["accountid"]
    assert rows[0]["fullname"] == "Filter Reader"


def new_account(api: httpx.Client, name: str) -> str:
    account_id = str(uuid.uuid4())
    response = api.post("accounts", json={"accountid": account_id, "name": name})
    assert response.status_code == 204, response.text
    return account_id


def test_filter_through_a_lookup_navigation_path(api: httpx.Client) -> None:
    """Exactly the contacts whose parent account has the name, not the other account's."""
    name = f"Navigation O'Path {uuid.uuid4().hex[:8]}"
    wanted = new_account(api, name)
    other = new_account(api, f"{name} other")
    inside = {
        new_contact(api, **{"parentcustomerid_account@odata.bind": f"accounts({wanted})"}) for _ in range(2)
    }
    new_contact(api, **{"parentcustomerid_account@odata.bind": f"accounts({other})"})
    literal = name.replace("'", "''")
    response = api.get(
        "contacts",
        params={"$select": "lastname", "$filter": f"parentcustomerid_account/name eq '{literal}'"},
    )
    assert response.status_code == 200, response.text
    assert {row["contactid"] for row in response.json()["value"]} == inside


def test_count_is_the_total_of_the_filter_not_of_the_page(api: httpx.Client) -> None:
    everything = api.get("accounts", params={"$select": "accountid"}).json()["value"]
    response = api.get(
        "accounts", params={"$select": "name", "$count": "true"}, headers={"Prefer": "odata.maxpagesize=2"}
    )
    body = response.json()
    assert body["@odata.count"] == len(everything)
    assert len(body["value"]) == 2
    assert api.get("accounts/$count").text == str(len(everything))


def test_skip_search_and_unknown_options_are_refused(api: httpx.Client) -> None:
    response = api.get("accounts", params={"$skip": "10"})
    assert response.status_code == 400
    assert error_of(response) == {"code": "0x0", "message": "The query parameter $skip is not supported"}
    assert api.get("accounts", params={"$search": "x"}).status_code == 400


def test_unknown_select_property_is_the_documented_error(api: httpx.Client) -> None:
    response = api.get("accounts", params={"$select": "Name"})
    assert response.status_code == 400
    assert error_of(response) == {
        "code": "0x0",
        "message": "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.account'.",
    }
    # The lookup column itself is not a property; only _<name>_value is.
    assert api.get("accounts", params={"$select": "primarycontactid"}).status_code == 400
    assert api.get("accounts", params={"$filter": "nosuchcolumn eq 1"}).status_code == 400


def test_unknown_entity_set_is_the_documented_404(api: httpx.Client) -> None:
    response = api.get("Account")
    assert response.status_code == 404
    assert error_of(response) == {
        "code": "0x8006088a",
        "message": "Resource not found for the segment 'Account'.",
    }


def test_annotations_formatted_values_and_lookup_logical_names(api: httpx.Client) -> None:
    account = api.get("accounts", params={"$select": "name", "$top": "1"}).json()["value"][0]
    contact_id = new_contact(
        api, gendercode=2, **{"parentcustomerid_account@odata.bind": f"/accounts({account['accountid']})"}
    )
    plain = api.get(
        f"contacts({contact_id})", params={"$select": "gendercode,_parentcustomerid_value"}
    ).json()
    assert not any("@" in key for key in plain if not key.startswith("@"))
    response = api.get(
        f"contacts({contact_id})",
        params={"$select": "gendercode,_parentcustomerid_value,donotemail"},
        headers={"Prefer": 'odata.include-annotations="*"'},
    )
    assert response.headers["Preference-Applied"] == 'odata.include-annotations="*"'
    row = response.json()
    assert row[f"gendercode@{FORMATTED}"] == "Female"
    assert row[f"donotemail@{FORMATTED}"] == "No"
    assert row[f"_parentcustomerid_value@{FORMATTED}"] == account["name"]
    assert row[f"_parentcustomerid_value@{LOOKUP_NAME}"] == "account"
    assert row["_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] == (
        "parentcustomerid_account"
    )
    only_formatted = api.get(
        f"contacts({contact_id})",
        params={"$select": "_parentcustomerid_value"},
        headers={"Prefer": f'odata.include-annotations="{FORMATTED}"'},
    ).json()
    assert f"_parentcustomerid_value@{FORMATTED}" in only_formatted
    assert f"_parentcustomerid_value@{LOOKUP_NAME}" not in only_formatted


def test_paging_follows_next_links_without_duplicates_or_gaps(api: httpx.Client) -> None:
    expected = {
        row["accountid"] for row in api.get("accounts", params={"$select": "accountid"}).json()["value"]
    }
    assert len(expected) > 20
    seen: list[str] = []
    url: str | None = "accounts?$select=name&$orderby=name"
    pages = 0
    while url:
        response = api.get(url, headers={"Prefer": "odata.maxpagesize=7"})
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == "odata.maxpagesize=7"
        body = response.json()
        assert len(body["value"]) <= 7
        seen.extend(row["accountid"] for row in body["value"])
        url = body.get("@odata.nextLink")
        if url:
            assert "$skiptoken=" in url
            assert "pagingcookie" in httpx.URL(url).params["$skiptoken"]
        pages += 1
    assert len(seen) == len(set(seen))
    assert set(seen) == expected
    assert pages == -(-len(expected) // 7)


def test_rows_inserted_while_paging_are_neither_repeated_nor_make_rows_skip(api: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    for index in range(6):
        new_contact(api, firstname=f"P{tag}", middlename=f"{index:02d}")
    query = {"$select": "middlename", "$filter": f"firstname eq 'P{tag}'", "$orderby": "middlename"}
    first = api.get("contacts", params=query, headers={"Prefer": "odata.maxpagesize=3"}).json()
    assert [row["middlename"] for row in first["value"]] == ["00", "01", "02"]
    # A row that sorts before the cursor and one after it appear mid-way.
    new_contact(api, firstname=f"P{tag}", middlename="00a")
    new_contact(api, firstname=f"P{tag}", middlename="04a")
    second = api.get(first["@odata.nextLink"], headers={"Prefer": "odata.maxpagesize=3"}).json()
    assert [row["middlename"] for row in second["value"]] == ["03", "04", "04a"]
    third = api.get(second["@odata.nextLink"], headers={"Prefer": "odata.maxpagesize=3"}).json()
    assert [row["middlename"] for row in third["value"]] == ["05"]
    assert "@odata.nextLink" not in third


def test_page_size_is_capped_at_5000_and_defaults_apply(api: httpx.Client) -> None:
    response = api.get("accounts", params={"$select": "name"}, headers={"Prefer": "odata.maxpagesize=9000"})
    assert response.headers["Preference-Applied"] == "odata.maxpagesize=5000"
    assert "Preference-Applied" not in api.get("accounts", params={"$select": "name", "$top": "1"}).headers


def test_top_limits_rows_without_a_next_link(api: httpx.Client) -> None:
    body = api.get("accounts", params={"$select": "name", "$top": "4"}).json()
    assert len(body["value"]) == 4
    assert "@odata.nextLink" not in body


def test_tampered_skiptoken_is_refused(api: httpx.Client) -> None:
    response = api.get("accounts", params={"$select": "name", "$skiptoken": "<cookie page='1'/>"})
    assert response.status_code == 400


def test_single_row_by_key_and_its_missing_row_message(api: httpx.Client) -> None:
    contact_id = new_contact(api, firstname="Single")
    response = api.get(f"contacts({contact_id})", params={"$select": "firstname"})
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#contacts(firstname)/$entity")
    assert body["firstname"] == "Single"
    assert api.get(f"contacts(contactid={contact_id})").json()["contactid"] == contact_id
    missing = str(uuid.uuid4())
    response = api.get(f"contacts({missing})")
    assert response.status_code == 404
    assert error_of(response) == {
        "code": "0x80040217",
        "message": f"contact With Id = {missing} Does Not Exist",
    }


def test_conditional_get_answers_304_when_unchanged(api: httpx.Client) -> None:
    contact_id = new_contact(api)
    tag = api.get(f"contacts({contact_id})").json()["@odata.etag"]
    assert api.get(f"contacts({contact_id})", headers={"If-None-Match": tag}).status_code == 304
    api.patch(f"contacts({contact_id})", json={"jobtitle": "Changed"})
    assert api.get(f"contacts({contact_id})", headers={"If-None-Match": tag}).status_code == 200


def test_alternate_key_read_where_the_catalogue_defines_one(api: httpx.Client) -> None:
    number = f"CON-T{uuid.uuid4().hex[:6].upper()}"
    contact_id = new_contact(api, msdynce_contactnumber=number)
    body = api.get(f"contacts(msdynce_contactnumber='{number}')", params={"$select": "lastname"}).json()
    assert body["contactid"] == contact_id
    response = api.get("contacts(msdynce_contactnumber='CON-NOPE')")
    assert response.status_code == 404
    assert (
        error_of(response)["message"]
        == "A record with the specified key values does not exist in contact entity"
    )


def test_key_not_defined_as_alternate_key_is_the_documented_error(api: httpx.Client) -> None:
    response = api.get("accounts(accountnumber='ABC123')")
    assert response.status_code == 400
    assert error_of(response)["message"] == (
        "The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.account'. Ensure that "
        "the names and number of key properties match the declared or alternate key properties for the "
        "resource 'Microsoft.Dynamics.CRM.account'."
    )
    assert api.get("accounts(not-a-guid)").status_code == 400


@pytest.mark.parametrize("character", ["/", "<", ">", "*", "%", "&", ":", "\\", "?", "+"])
def test_alternate_key_values_with_forbidden_characters_fail(api: httpx.Client, character: str) -> None:
    encoded = "%" + format(ord(character), "02X")
    response = api.get(f"contacts(msdynce_contactnumber='CON{encoded}1')")
    assert response.status_code == 400
    assert error_of(response)["message"] == (
        f"A potentially dangerous Request.Path value was detected from the client ({character})."
    )


def test_get_urls_over_32_kb_are_refused(api: httpx.Client) -> None:
    clause = " or ".join(f"name eq 'account {i:05d}'" for i in range(1400))
    response = api.get("accounts", params={"$select": "name", "$filter": clause})
    assert len(str(response.request.url)) > 32 * 1024
    assert response.status_code == 414
    assert "32768" in error_of(response)["message"]


def test_reads_are_counted_and_charged(api: httpx.Client, dataverse_admin: Any) -> None:
    before = dataverse_admin.counters()
    rows = api.get("accounts", params={"$select": "name", "$top": "5"}).json()["value"]
    after = dataverse_admin.counters()
    assert after["rows_read"] - before["rows_read"] == len(rows) == 5
    by_set = after["rows_read_by_set"].get("accounts", 0) - before["rows_read_by_set"].get("accounts", 0)
    assert by_set == 5
    assert after["requests"].get("GET accounts", 0) - before["requests"].get("GET accounts", 0) == 1
    assert after["operations_charged"] - before["operations_charged"] == 2
