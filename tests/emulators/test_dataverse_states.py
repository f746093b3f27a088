"""Dataverse emulator: the state (statecode) and status reason (statuscode) of a written row.

Each test follows one sentence of Microsoft's documentation (see
`emulators.dataverse.states` for the pages): a status reason belongs to one state (the
entity reference pages' "StatusCode Choices/Options"), a mismatch is refused with
``InvalidStateCodeStatusCode`` 0x80048408, a state written without a status reason gets
that state's DefaultStatus, and a status reason alone never changes the state. Every write
path is covered: create, update and upsert through PATCH, property PUT, the bulk messages
and a ``$batch`` change set.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.batch_requests import operation, parts, send

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.integration

INVALID_STATE_STATUS = {
    "code": "0x80048408",
    "message": (
        "State code is invalid or state code is valid but status code is invalid for a specified state code."
    ),
}


def refused(response: httpx.Response) -> None:
    """The documented InvalidStateCodeStatusCode answer, and nothing else."""
    assert response.status_code == 400, response.text
    assert response.json() == {"error": INVALID_STATE_STATUS}


def pair(api: httpx.Client, entity_set: str, row_id: str) -> tuple[int, int]:
    row = api.get(f"{entity_set}({row_id})", params={"$select": "statecode,statuscode"}).json()
    return row["statecode"], row["statuscode"]


def create(api: httpx.Client, entity_set: str, body: dict[str, Any]) -> str:
    response = api.post(entity_set, json=body)
    assert response.status_code == 204, response.text
    return response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")


def named(api: httpx.Client, entity_set: str, name: str) -> list[dict[str, Any]]:
    return api.get(entity_set, params={"$select": "name", "$filter": f"name eq '{name}'"}).json()["value"]


# --- "a status reason belongs to one state" -----------------------------------------------


def test_create_with_a_status_reason_of_another_state_is_refused_and_writes_nothing(
    api: httpx.Client,
) -> None:
    name = f"Mismatch {uuid.uuid4()}"
    # account: Active (0) has only Active (1); Inactive (2) belongs to Inactive (1).
    refused(api.post("accounts", json={"name": name, "statecode": 0, "statuscode": 2}))
    assert named(api, "accounts", name) == []


def test_create_with_a_matching_pair_keeps_it(api: httpx.Client) -> None:
    account = create(api, "accounts", {"name": "Inactive on arrival", "statecode": 1, "statuscode": 2})
    assert pair(api, "accounts", account) == (1, 2)
    # salesorder: Pending (2) is the second status reason of Active (0).
    order = create(api, "salesorders", {"name": "Pending order", "statecode": 0, "statuscode": 2})
    assert pair(api, "salesorders", order) == (0, 2)


def test_update_with_a_mismatching_pair_is_refused_and_leaves_the_row(api: httpx.Client) -> None:
    order = create(api, "salesorders", {"name": "Order to invoice"})
    # salesorder: Invoiced (100003) belongs to Invoiced (4), Complete (100001) to Fulfilled (3).
    refused(api.patch(f"salesorders({order})", json={"statecode": 4, "statuscode": 100001}))
    assert pair(api, "salesorders", order) == (0, 1)
    assert api.patch(f"salesorders({order})", json={"statecode": 4, "statuscode": 100003}).status_code == 204
    assert pair(api, "salesorders", order) == (4, 100003)


# --- "When you update StateCode without specifying a StatusCode, the default status value
# --- will be set by the system" ----------------------------------------------------------


def test_create_with_only_a_state_gets_its_default_status(api: httpx.Client) -> None:
    # quote: Closed (3) has Lost 5, Canceled 6, Revised 7; its DefaultStatus is 7.
    quote = create(api, "quotes", {"name": "Closed quote", "statecode": 3})
    assert pair(api, "quotes", quote) == (3, 7)
    # product: Draft (2) defaults to Draft (0), a falsy value that must still be stored.
    product = create(
        api, "products", {"name": "Draft product", "productnumber": f"D-{uuid.uuid4()}", "statecode": 2}
    )
    assert pair(api, "products", product) == (2, 0)


def test_create_without_either_gets_the_default_state_and_its_status(api: httpx.Client) -> None:
    price_list = create(api, "pricelevels", {"name": f"List {uuid.uuid4()}"})
    assert pair(api, "pricelevels", price_list) == (0, 100001)


def test_update_of_only_the_state_resets_the_status_even_when_the_state_is_unchanged(
    api: httpx.Client,
) -> None:
    # The documentation's example: a case On Hold (2) updated with statecode 0 alone is In
    # Progress (1) afterwards. Same shape here: an order Pending (2) updated with statecode 0.
    order = create(api, "salesorders", {"name": "Pending", "statecode": 0, "statuscode": 2})
    assert api.patch(f"salesorders({order})", json={"statecode": 0}).status_code == 204
    assert pair(api, "salesorders", order) == (0, 1)
    # A state change without a status reason: Submitted (1) defaults to In Progress (3).
    assert api.patch(f"salesorders({order})", json={"statecode": 1}).status_code == 204
    assert pair(api, "salesorders", order) == (1, 3)


def test_property_put_of_the_state_gets_its_default_status(api: httpx.Client) -> None:
    contact = create(api, "contacts", {"lastname": "Leaving"})
    assert api.put(f"contacts({contact})/statecode", json={"value": 1}).status_code == 204
    assert pair(api, "contacts", contact) == (1, 2)


# --- "Update ... statuscode ... values that don't represent a change in state" -------------


def test_a_status_reason_alone_may_move_within_the_current_state(api: httpx.Client) -> None:
    order = create(api, "salesorders", {"name": "New order"})
    assert api.patch(f"salesorders({order})", json={"statuscode": 2}).status_code == 204
    assert pair(api, "salesorders", order) == (0, 2)


def test_a_status_reason_alone_of_another_state_is_refused_not_followed(api: httpx.Client) -> None:
    order = create(api, "salesorders", {"name": "Stays active"})
    refused(api.patch(f"salesorders({order})", json={"statuscode": 3}))  # In Progress: Submitted's
    assert pair(api, "salesorders", order) == (0, 1)
    refused(api.put(f"salesorders({order})/statuscode", json={"value": 100003}))
    assert pair(api, "salesorders", order) == (0, 1)


def test_a_status_reason_alone_on_create_must_belong_to_the_default_state(api: httpx.Client) -> None:
    name = f"Born inactive {uuid.uuid4()}"
    refused(api.post("accounts", json={"name": name, "statuscode": 2}))
    assert named(api, "accounts", name) == []


def test_a_null_status_reason_is_refused(api: httpx.Client) -> None:
    account = create(api, "accounts", {"name": "Keeps its reason"})
    refused(api.patch(f"accounts({account})", json={"statuscode": None}))
    assert pair(api, "accounts", account) == (0, 1)


# --- the same rule on every other write path ----------------------------------------------


def test_upsert_that_creates_is_checked_like_a_create(api: httpx.Client) -> None:
    new_id = str(uuid.uuid4())
    refused(api.patch(f"accounts({new_id})", json={"name": "Upserted", "statecode": 1, "statuscode": 1}))
    assert api.get(f"accounts({new_id})").status_code == 404
    assert api.patch(f"accounts({new_id})", json={"name": "Upserted", "statecode": 1}).status_code == 204
    assert pair(api, "accounts", new_id) == (1, 2)


def test_bulk_messages_refuse_a_mismatching_target_and_write_none(api: httpx.Client) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    targets = [
        {"@odata.type": "Microsoft.Dynamics.CRM.quote", "quoteid": first, "name": "Fine"},
        # quote: Won (4) belongs to Won (2), not to Active (1).
        {"@odata.type": "Microsoft.Dynamics.CRM.quote", "quoteid": second, "statecode": 1, "statuscode": 4},
    ]
    refused(api.post("quotes/Microsoft.Dynamics.CRM.CreateMultiple", json={"Targets": targets}))
    assert api.get(f"quotes({first})").status_code == 404
    refused(api.post("quotes/Microsoft.Dynamics.CRM.UpsertMultiple", json={"Targets": targets}))
    assert api.get(f"quotes({first})").status_code == 404
    quote = create(api, "quotes", {"name": "Draft quote"})
    update = [{"@odata.type": "Microsoft.Dynamics.CRM.quote", "quoteid": quote, "statuscode": 2}]
    refused(api.post("quotes/Microsoft.Dynamics.CRM.UpdateMultiple", json={"Targets": update}))
    assert pair(api, "quotes", quote) == (0, 1)
    update = [{"@odata.type": "Microsoft.Dynamics.CRM.quote", "quoteid": quote, "statecode": 1}]
    assert (
        api.post("quotes/Microsoft.Dynamics.CRM.UpdateMultiple", json={"Targets": update}).status_code == 204
    )
    assert pair(api, "quotes", quote) == (1, 2)


def test_batch_change_set_with_a_mismatch_fails_as_a_whole(api: httpx.Client) -> None:
    name = f"Batched {uuid.uuid4()}"
    response = send(
        api,
        [
            [
                operation("POST", "accounts", f'{{"name": "{name}"}}', "1"),
                operation("POST", "accounts", f'{{"name": "{name}", "statecode": 1, "statuscode": 1}}', "2"),
            ]
        ],
    )
    answers = parts(response)
    assert [status for status, _, _ in answers] == [400]
    assert INVALID_STATE_STATUS["code"] in answers[0][2]
    assert INVALID_STATE_STATUS["message"] in answers[0][2]
    assert named(api, "accounts", name) == []


# --- the metadata that says which pairs exist ---------------------------------------------


def test_entity_definitions_publish_default_status_and_state_of_each_option(api: httpx.Client) -> None:
    attributes = api.get(
        "EntityDefinitions(LogicalName='salesorder')/Attributes",
        params={"$select": "LogicalName", "$expand": "OptionSet"},
    ).json()["value"]
    by_name = {
        a["LogicalName"]: a["OptionSet"]["Options"]
        for a in attributes
        if a["LogicalName"] in {"statecode", "statuscode"}
    }
    assert {o["Value"]: o["DefaultStatus"] for o in by_name["statecode"]} == {
        0: 1,
        1: 3,
        2: 4,
        3: 100001,
        4: 100003,
    }
    assert {o["Value"]: o["State"] for o in by_name["statuscode"]} == {
        1: 0,
        2: 0,
        3: 1,
        4: 2,
        100001: 3,
        100002: 3,
        100003: 4,
    }
