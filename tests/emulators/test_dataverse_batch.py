"""Dataverse emulator, ``$batch``: change sets, references, stop/continue on error, limits, cost.

The request bodies follow the examples of powerapps-docs
``execute-batch-operations-using-web-api.md`` (change set of creates bound to an account
plus a GET outside it; ``$n`` references in URLs and bodies; the "Handling errors" pair
with and without ``Prefer: odata.continue-on-error``), on tables this emulator has.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.batch_requests import operation, parts, send

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.support.emulators import AdminClient, EmulatorEndpoints

pytestmark = pytest.mark.integration


@pytest.fixture
def api(endpoints: EmulatorEndpoints, bearer_token: Callable[[str], str]) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=endpoints.dataverse_service_root,
        verify=endpoints.ssl_context(),
        headers={"Authorization": f"Bearer {bearer_token('dataverse')}", "Accept": "application/json"},
        timeout=30,
    ) as client:
        yield client


def an_account(api: httpx.Client) -> dict[str, Any]:
    return api.get("accounts", params={"$select": "name", "$top": "1"}).json()["value"][0]


def test_documented_change_set_of_creates_then_a_get(api: httpx.Client) -> None:
    account = an_account(api)
    tag = uuid.uuid4().hex[:8]
    creates = [
        operation(
            "POST",
            "/api/data/v9.2/contacts",
            f'{{"lastname": "Task {n} in batch {tag}", '
            f'"parentcustomerid_account@odata.bind": "accounts({account["accountid"]})"}}',
            content_id=str(n),
        )
        for n in (1, 2, 3)
    ]
    query = f"/api/data/v9.2/contacts?$select=lastname&$filter=contains(lastname,'{tag}')&$orderby=lastname"
    response = send(api, [creates, operation("GET", query)])
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    assert "changesetresponse_" in response.text
    answers = parts(response)
    assert [status for status, _, _ in answers] == [204, 204, 204, 200]
    for number, (_, headers, _) in enumerate(answers[:3], start=1):
        assert headers["OData-EntityId"] == headers["Location"]
        assert f"Content-ID: {number}" in response.text
    listed = httpx.Response(200, content=answers[3][2]).json()
    assert [row["lastname"] for row in listed["value"]] == [f"Task {n} in batch {tag}" for n in (1, 2, 3)]
    assert listed["@odata.context"].endswith("$metadata#contacts(lastname)")


def test_references_in_urls_and_bodies(api: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    root = str(api.base_url)
    changeset = [
        operation(
            "POST", f"{root}contacts", f'{{"firstname": "first", "lastname": "{tag}"}}', content_id="1"
        ),
        operation(
            "POST", f"{root}accounts", f'{{"name": "Ref {tag}", "primarycontactid@odata.bind": "$1"}}', "2"
        ),
        operation("PATCH", "$1", '{"jobtitle": "patched through $1"}', content_id="3"),
        operation("PUT", "$1/lastname", f'{{"value": "{tag}-renamed"}}', content_id="4"),
    ]
    response = send(api, [changeset])
    assert [status for status, _, _ in parts(response)] == [204, 204, 204, 204]
    contact_url = parts(response)[0][1]["OData-EntityId"]
    contact = api.get(contact_url).json()
    assert contact["jobtitle"] == "patched through $1"
    assert contact["lastname"] == f"{tag}-renamed"
    account = api.get("accounts", params={"$filter": f"name eq 'Ref {tag}'"}).json()["value"][0]
    assert account["_primarycontactid_value"] == contact["contactid"]


def test_reference_before_declaration_is_the_documented_400(api: httpx.Client) -> None:
    changeset = [
        operation("POST", "contacts", '{"lastname": "x", "parentcustomerid_account@odata.bind": "$1"}', "2"),
        operation("POST", "accounts", '{"name": "QQQQ"}', "1"),
    ]
    response = send(api, [changeset])
    assert response.status_code == 400
    ((status, _, body),) = parts(response)
    assert status == 400
    assert "Content-ID Reference: '$1' does not exist in the batch context." in body


def test_failed_change_set_rolls_back_every_part(api: httpx.Client) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    changeset = [
        operation("POST", "accounts", f'{{"accountid": "{first}", "name": "kept?"}}', "1"),
        operation("POST", "accounts", f'{{"accountid": "{second}", "name": "{"x" * 161}"}}', "2"),
    ]
    response = send(api, [changeset])
    assert response.status_code == 400
    ((status, _, body),) = parts(response)  # the failing part answers for the change set
    assert status == 400
    assert '"code":"0x80044331"' in body
    assert api.get(f"accounts({first})").status_code == 404
    assert api.get(f"accounts({second})").status_code == 404


def test_documented_error_handling_stops_at_the_first_failure(api: httpx.Client) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    too_long = "Subject is too long " + "x" * 200
    operations = [
        operation("POST", "/api/data/v9.2/accounts", f'{{"accountid": "{ids[0]}", "name": "{too_long}"}}'),
        operation(
            "POST", "/api/data/v9.2/accounts", f'{{"accountid": "{ids[1]}", "name": "Task 2 in batch"}}'
        ),
        operation(
            "POST", "/api/data/v9.2/accounts", f'{{"accountid": "{ids[2]}", "name": "Task 3 in batch"}}'
        ),
    ]
    response = send(api, list(operations))
    assert response.status_code == 400
    answers = parts(response)
    assert [status for status, _, _ in answers] == [400]
    assert answers[0][2] == (
        '{"error":{"code":"0x80044331","message":"A validation error occurred.  The length of the \'name\' '
        "attribute of the 'account' entity exceeded the maximum allowed length of '160'.\"}}"
    )
    assert all(api.get(f"accounts({i})").status_code == 404 for i in ids)

    ids = [str(uuid.uuid4()) for _ in range(3)]
    operations = [
        operation("POST", "/api/data/v9.2/accounts", f'{{"accountid": "{ids[0]}", "name": "{too_long}"}}'),
        operation(
            "POST", "/api/data/v9.2/accounts", f'{{"accountid": "{ids[1]}", "name": "Task 2 in batch"}}'
        ),
        operation(
            "POST", "/api/data/v9.2/accounts", f'{{"accountid": "{ids[2]}", "name": "Task 3 in batch"}}'
        ),
    ]
    response = send(api, list(operations), Prefer="odata.continue-on-error")
    assert response.status_code == 200
    assert [status for status, _, _ in parts(response)] == [400, 204, 204]
    assert [api.get(f"accounts({i})").status_code for i in ids] == [404, 200, 200]


def test_get_inside_a_change_set_and_oversized_batches_are_refused(api: httpx.Client) -> None:
    response = send(api, [[operation("GET", "accounts?$top=1")]])
    assert response.status_code == 400
    assert "change set" in response.json()["error"]["message"]
    too_many = [operation("GET", "WhoAmI") for _ in range(1001)]
    response = send(api, too_many)
    assert response.status_code == 400
    assert "'1000'" in response.json()["error"]["message"]


def test_batched_parts_behave_like_direct_requests(api: httpx.Client) -> None:
    answers = parts(send(api, [operation("GET", "accounts?$select=Name"), operation("GET", "Account")]))
    assert answers[0][0] == 400
    assert "Could not find a property named 'Name'" in answers[0][2]


def test_a_batch_is_one_request_but_charges_every_operation(
    api: httpx.Client, dataverse_admin: AdminClient
) -> None:
    before = dataverse_admin.counters()
    tag = uuid.uuid4().hex[:8]
    creates = [operation("POST", "accounts", f'{{"name": "Cost {tag} {n}"}}', str(n)) for n in range(20)]
    assert send(api, [creates]).status_code == 200
    after = dataverse_admin.counters()
    assert after["requests_total"] - before["requests_total"] == 1
    assert after["requests"]["POST $batch"] - before["requests"].get("POST $batch", 0) == 1
    assert after["batch_parts"]["POST accounts"] - before["batch_parts"].get("POST accounts", 0) == 20
    assert after["operations_written"]["create"] - before["operations_written"].get("create", 0) == 20
    assert after["operations_charged"] - before["operations_charged"] == 20  # one per part


def test_request_count_limit_counts_a_batch_once(api: httpx.Client, dataverse_admin: AdminClient) -> None:
    with dataverse_admin.overrides({"limits": {"max_requests": 3}}):
        dataverse_admin.reset_limits()
        tag = uuid.uuid4().hex[:8]
        for round_ in range(3):
            creates = [
                operation("POST", "accounts", f'{{"name": "Limit {tag} {round_} {n}"}}', str(n))
                for n in range(10)
            ]
            assert send(api, [creates]).status_code == 200
        throttled = api.get("WhoAmI")
        assert throttled.status_code == 429
        assert throttled.json()["error"]["code"] == "0x80072322"
    rows = api.get("accounts/$count", params={"$filter": f"startswith(name,'Limit {tag}')"}).text
    assert rows == "30"
