"""Dataverse emulator, change tracking, following powerapps-docs
``use-change-tracking-synchronize-data-external-systems.md`` section by section.

Runs over real HTTPS against the shared demo-seeded emulators. Tests run one at a time, so
a delta taken right after a test's own initial read holds exactly that test's changes.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

if TYPE_CHECKING:
    import httpx

    from tests.support.emulators import AdminClient

pytestmark = pytest.mark.integration

TRACK = {"Prefer": "odata.track-changes"}
DELETED_CONTEXT = "$metadata#contacts/$deletedEntity"


def new_contact(api: httpx.Client, lastname: str) -> str:
    contact_id = str(uuid.uuid4())
    response = api.post("contacts", json={"contactid": contact_id, "lastname": lastname})
    assert response.status_code == 204, response.text
    return contact_id


def read_all(api: httpx.Client, url: str, headers: dict[str, str]) -> tuple[list[dict[str, Any]], str, int]:
    """Follow next links to the end: (values, delta link, pages); only the last page has a delta link."""
    values: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = api.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        values.extend(body["value"])
        if "@odata.nextLink" in body:
            assert "@odata.deltaLink" not in body
            url = body["@odata.nextLink"]
            continue
        return values, body["@odata.deltaLink"], pages


def initial(api: httpx.Client, select: str = "lastname") -> str:
    """The delta link after a complete initial tracked read of contacts."""
    _, delta, _ = read_all(
        api, f"contacts?$select={select}", {"Prefer": "odata.track-changes,odata.maxpagesize=5000"}
    )
    return delta


def test_first_request_applies_the_preference_and_returns_a_delta_link(api: httpx.Client) -> None:
    response = api.get("contacts", params={"$select": "lastname,firstname"}, headers=TRACK)
    assert response.status_code == 200, response.text
    assert response.headers["Preference-Applied"] == "odata.track-changes"
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#contacts(lastname,firstname)")
    assert "@odata.nextLink" not in body
    link = urlsplit(body["@odata.deltaLink"])
    assert link.path.endswith("/contacts")
    query = parse_qs(link.query)
    assert query["$select"] == ["lastname,firstname"]
    (token,) = query["$deltatoken"]
    version, _, issued = token.partition("!")  # the documented shape: 919042!08/22/2017 08:10:44
    assert version.isdigit()
    assert time.strptime(issued, "%m/%d/%Y %H:%M:%S")
    total = api.get("contacts/$count").text
    assert len(body["value"]) == int(total)
    for row in body["value"]:
        assert set(row) == {"@odata.etag", "lastname", "firstname", "contactid"}


def test_paging_works_as_for_ordinary_reads_and_only_the_last_page_has_the_delta_link(
    api: httpx.Client,
) -> None:
    total = int(api.get("contacts/$count").text)
    values, delta, pages = read_all(
        api, "contacts?$select=lastname", {"Prefer": "odata.track-changes,odata.maxpagesize=7"}
    )
    assert pages == -(-total // 7)
    assert len(values) == total
    assert len({row["contactid"] for row in values}) == total
    assert "$deltatoken=" in delta


@pytest.mark.parametrize("option", ["$filter", "$orderby", "$expand", "$top"])
def test_unsupported_query_options_are_refused(api: httpx.Client, option: str) -> None:
    value = {
        "$filter": "lastname eq 'x'",
        "$orderby": "lastname",
        "$expand": "parentcustomerid_account",
        "$top": "2",
    }
    response = api.get("contacts", params={"$select": "lastname", option: value[option]}, headers=TRACK)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.'
    )


def test_delta_lists_changes_by_version_then_deletes(api: httpx.Client) -> None:
    keep = new_contact(api, "Tracked keep")
    gone = new_contact(api, "Tracked gone")
    delta = initial(api)

    created = new_contact(api, "Tracked new")
    assert api.patch(f"contacts({keep})", json={"lastname": "Tracked changed"}).status_code == 204
    assert api.delete(f"contacts({gone})").status_code == 204
    ephemeral = new_contact(api, "Tracked ephemeral")  # created and deleted between polls
    assert api.delete(f"contacts({ephemeral})").status_code == 204

    response = api.get(delta)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#contacts(lastname)/$delta")
    assert [row.get("contactid") or row.get("id") for row in body["value"]] == [
        created,
        keep,
        gone,
        ephemeral,
    ]
    assert [row["lastname"] for row in body["value"][:2]] == ["Tracked new", "Tracked changed"]
    for row in body["value"][2:]:
        assert row["@odata.context"].endswith(DELETED_CONTEXT)
        assert set(row) == {"@odata.context", "id", "reason"}
        assert row["reason"] == "deleted"

    # The new delta link starts after these changes: nothing is listed again.
    again = api.get(body["@odata.deltaLink"])
    assert again.status_code == 200
    assert again.json()["value"] == []


def test_delta_pages_through_rows_then_deletes(api: httpx.Client) -> None:
    doomed = [new_contact(api, f"Paged doomed {i}") for i in range(3)]
    delta = initial(api)
    changed = [new_contact(api, f"Paged new {i}") for i in range(4)]
    for contact_id in doomed:
        assert api.delete(f"contacts({contact_id})").status_code == 204
    values, next_delta, pages = read_all(api, delta, {"Prefer": "odata.maxpagesize=3"})
    assert pages == 3  # 4 changed + 3 deleted in pages of 3
    assert [row.get("contactid") or row.get("id") for row in values] == [*changed, *doomed]
    assert [row.get("reason") for row in values] == [None] * 4 + ["deleted"] * 3
    assert api.get(next_delta).json()["value"] == []


def test_changes_made_while_paging_come_in_the_next_delta(api: httpx.Client) -> None:
    first = api.get(
        "contacts?$select=lastname", headers={"Prefer": "odata.track-changes,odata.maxpagesize=5"}
    )
    body = first.json()
    assert "@odata.nextLink" in body
    late = new_contact(api, "Paging late")
    values, delta, _ = read_all(api, body["@odata.nextLink"], {})
    seen = {row["contactid"] for row in [*body["value"], *values]}
    assert late not in seen
    changes = api.get(delta).json()["value"]
    assert [row["contactid"] for row in changes] == [late]


def test_tables_opt_in_through_change_tracking_enabled(api: httpx.Client) -> None:
    definitions = api.get(
        "EntityDefinitions", params={"$select": "LogicalName", "$filter": "ChangeTrackingEnabled eq true"}
    ).json()["value"]
    enabled = {row["LogicalName"] for row in definitions}
    # The tables the templates read are opted in.
    assert {"account", "contact", "product", "quote", "salesorder", "invoice"} <= enabled
    assert "businessunit" not in enabled
    response = api.get("businessunits", params={"$select": "name"}, headers=TRACK)
    assert response.status_code == 400
    assert (
        response.json()["error"]["message"] == "Change tracking is not enabled for the entity 'businessunit'."
    )


def tracked_sets(document: str) -> set[str]:
    """Entity sets annotated with Org.OData.Capabilities.V1.ChangeTracking Supported=true."""
    edm = "{http://docs.oasis-open.org/odata/ns/edm}"
    found = set()
    for entity_set in ET.fromstring(document).iter(f"{edm}EntitySet"):
        for annotation in entity_set.findall(f"{edm}Annotation"):
            if annotation.get("Term") == "Org.OData.Capabilities.V1.ChangeTracking":
                value = annotation.find(f"{edm}Record/{edm}PropertyValue")
                assert value is not None
                assert (value.get("Property"), value.get("Bool")) == ("Supported", "true")
                found.add(str(entity_set.get("Name")))
    return found


def test_metadata_annotates_tracked_entity_sets_when_annotations_are_asked_for(api: httpx.Client) -> None:
    assert tracked_sets(api.get("$metadata").text) == set()
    annotated = tracked_sets(api.get("$metadata", params={"annotations": "true"}).text)
    assert {"accounts", "contacts", "products", "quotes", "salesorders", "invoices"} <= annotated
    assert "businessunits" not in annotated
    definitions = api.get(
        "EntityDefinitions", params={"$select": "EntitySetName", "$filter": "ChangeTrackingEnabled eq true"}
    ).json()["value"]
    assert annotated == {row["EntitySetName"] for row in definitions}


def test_tokens_older_than_the_expiry_are_refused(api: httpx.Client, dataverse_admin: AdminClient) -> None:
    assert dataverse_admin.get_config()["change_tracking_expiry_seconds"] == 7 * 24 * 3600
    delta = initial(api)
    with dataverse_admin.overrides({"change_tracking_expiry_seconds": 1}):
        time.sleep(2.1)
        response = api.get(delta)
        assert response.status_code == 400
        assert response.json()["error"] == {
            "code": "0x80044352",
            "message": "Version stamp associated with the client has expired. Please perform a full sync.",
        }
    assert api.get(delta).status_code == 200  # back to 7 days: the same token is young enough


def test_tokens_the_service_never_issued_are_refused(api: httpx.Client) -> None:
    for token in ("nonsense", "99999999999!01/01/2026 00:00:00"):
        response = api.get("contacts", params={"$select": "lastname", "$deltatoken": token})
        assert response.status_code == 400
        assert response.json()["error"]["message"] == f"The $deltatoken '{token}' is not valid."
