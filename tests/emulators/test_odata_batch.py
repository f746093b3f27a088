"""Tests of the emulators' $batch library against Microsoft's documented examples and clients."""

from __future__ import annotations

import email
import email.policy
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.odata.batch import (
    DATAVERSE_LIMITS,
    BatchLimits,
    BatchRequest,
    BatchResponseWriter,
    ChangeSet,
    ChangeSetResponse,
    OperationResponse,
    boundary_of,
    build_batch_response,
    iter_requests,
    parse_batch,
    prefers_continue_on_error,
    relative_to_root,
    resolve_reference,
    resolve_url,
)
from emulators.odata.errors import ODataError

ROOT = "https://org.example.com/api/data/v9.2/"

# ---------------------------------------------------------------------------
# Microsoft's documented examples, verbatim from powerapps-docs
# developer/data-platform/webapi/execute-batch-operations-using-web-api.md
# (only "[Organization URI]" replaced by a host, as a real client would send it)
# ---------------------------------------------------------------------------

DOC_BATCH_WITHOUT_CHANGESETS = """--batch_80dd1615-2a10-428a-bb6f-0e559792721f
Content-Type: application/http
Content-Transfer-Encoding: binary

POST /api/data/v9.2/tasks HTTP/1.1
Content-Type: application/json; type=entry

{
  "subject": "Task 1 in batch",
  "regardingobjectid_account_task@odata.bind": "accounts(00000000-0000-0000-0000-000000000001)"
}
--batch_80dd1615-2a10-428a-bb6f-0e559792721f
Content-Type: application/http
Content-Transfer-Encoding: binary

POST /api/data/v9.2/tasks HTTP/1.1
Content-Type: application/json; type=entry

{
  "subject": "Task 2 in batch",
  "regardingobjectid_account_task@odata.bind": "accounts(00000000-0000-0000-0000-000000000001)"
}
--batch_80dd1615-2a10-428a-bb6f-0e559792721f
Content-Type: application/http
Content-Transfer-Encoding: binary

POST /api/data/v9.2/tasks HTTP/1.1
Content-Type: application/json; type=entry

{
  "subject": "Task 3 in batch",
  "regardingobjectid_account_task@odata.bind": "accounts(00000000-0000-0000-0000-000000000001)"
}
--batch_80dd1615-2a10-428a-bb6f-0e559792721f
Content-Type: application/http
Content-Transfer-Encoding: binary

GET /api/data/v9.2/accounts(00000000-0000-0000-0000-000000000001)/Account_Tasks?$select=subject HTTP/1.1


--batch_80dd1615-2a10-428a-bb6f-0e559792721f--

"""
DOC_BATCH_WITHOUT_CHANGESETS_TYPE = 'multipart/mixed; boundary="batch_80dd1615-2a10-428a-bb6f-0e559792721f"'

DOC_BATCH_WITH_CHANGESET = """--batch_22975cad-7f57-410d-be15-6363209367ea
Content-Type: multipart/mixed; boundary="changeset_246e6bfe-89a4-4c77-b293-7a433f082e8a"

--changeset_246e6bfe-89a4-4c77-b293-7a433f082e8a
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

POST /api/data/v9.2/tasks HTTP/1.1
Content-Type: application/json; type=entry

{
  "subject": "Task 1 in batch",
  "regardingobjectid_account_task@odata.bind": "accounts(00000000-0000-0000-0000-000000000001)"
}
--changeset_246e6bfe-89a4-4c77-b293-7a433f082e8a
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

POST /api/data/v9.2/tasks HTTP/1.1
Content-Type: application/json; type=entry

{
  "subject": "Task 2 in batch",
  "regardingobjectid_account_task@odata.bind": "accounts(00000000-0000-0000-0000-000000000001)"
}
--changeset_246e6bfe-89a4-4c77-b293-7a433f082e8a
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 3

POST /api/data/v9.2/tasks HTTP/1.1
Content-Type: application/json; type=entry

{
  "subject": "Task 3 in batch",
  "regardingobjectid_account_task@odata.bind": "accounts(00000000-0000-0000-0000-000000000001)"
}
--changeset_246e6bfe-89a4-4c77-b293-7a433f082e8a--

--batch_22975cad-7f57-410d-be15-6363209367ea
Content-Type: application/http
Content-Transfer-Encoding: binary

GET /api/data/v9.2/accounts(00000000-0000-0000-0000-000000000001)/Account_Tasks?$select=subject HTTP/1.1


--batch_22975cad-7f57-410d-be15-6363209367ea--

"""
DOC_BATCH_WITH_CHANGESET_TYPE = 'multipart/mixed; boundary="batch_22975cad-7f57-410d-be15-6363209367ea"'

DOC_RESPONSE_WITH_CHANGESET = """--batchresponse_f27ef42d-51b0-4685-bac9-f468f844de2f
Content-Type: multipart/mixed; boundary=changesetresponse_64cc3fff-023a-45b0-b29d-df21583ffa15

--changesetresponse_64cc3fff-023a-45b0-b29d-df21583ffa15
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

HTTP/1.1 204 No Content
OData-Version: 4.0
Location: [Organization Uri]/api/data/v9.2/tasks(e73ffc82-e292-ed11-aad1-000d3a9933c9)
OData-EntityId: [Organization Uri]/api/data/v9.2/tasks(e73ffc82-e292-ed11-aad1-000d3a9933c9)


--changesetresponse_64cc3fff-023a-45b0-b29d-df21583ffa15
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

HTTP/1.1 204 No Content
OData-Version: 4.0
Location: [Organization Uri]/api/data/v9.2/tasks(e83ffc82-e292-ed11-aad1-000d3a9933c9)
OData-EntityId: [Organization Uri]/api/data/v9.2/tasks(e83ffc82-e292-ed11-aad1-000d3a9933c9)


--changesetresponse_64cc3fff-023a-45b0-b29d-df21583ffa15
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 3

HTTP/1.1 204 No Content
OData-Version: 4.0
Location: [Organization Uri]/api/data/v9.2/tasks(e93ffc82-e292-ed11-aad1-000d3a9933c9)
OData-EntityId: [Organization Uri]/api/data/v9.2/tasks(e93ffc82-e292-ed11-aad1-000d3a9933c9)


--changesetresponse_64cc3fff-023a-45b0-b29d-df21583ffa15--
--batchresponse_f27ef42d-51b0-4685-bac9-f468f844de2f
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 200 OK
Content-Type: application/json; odata.metadata=minimal; odata.streaming=true
OData-Version: 4.0

{
  "@odata.context": "[Organization Uri]/api/data/v9.2/$metadata#tasks(subject)",
  "value": [
    {
      "@odata.etag": "W/\\"77181173\\"",
      "subject": "Task 1 in batch",
      "activityid": "e73ffc82-e292-ed11-aad1-000d3a9933c9"
    }
  ]
}
--batchresponse_f27ef42d-51b0-4685-bac9-f468f844de2f--

"""

# "Reference URI in request URL": a PUT to $1/lastname inside the change set.
DOC_REFERENCE_IN_URL = """--batch_AAA123
Content-Type: multipart/mixed; boundary=changeset_dd81ccab-11ce-4d57-b91d-12c4e25c3cab

--changeset_dd81ccab-11ce-4d57-b91d-12c4e25c3cab
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

POST https://org.example.com/api/data/v9.2/contacts HTTP/1.1
Content-Type: application/json

{
  "firstname":"First Name",
  "lastname":"Last name"
}

--changeset_dd81ccab-11ce-4d57-b91d-12c4e25c3cab
Content-Transfer-Encoding: binary
Content-Type: application/http
Content-ID: 2

PUT $1/lastname HTTP/1.1
Content-Type: application/json

{
  "value":"BBBBB"
}

--changeset_dd81ccab-11ce-4d57-b91d-12c4e25c3cab--
--batch_AAA123--
"""

# "Reference URIs in URL and request body using @odata.id": headers written without spaces.
DOC_REFERENCE_ODATA_ID = """--batch_AAA123
Content-Type: multipart/mixed; boundary=changeset_dd81ccab-11ce-4d57-b91d-12c4e25c3cab

--changeset_dd81ccab-11ce-4d57-b91d-12c4e25c3cab
Content-Type:application/http
Content-Transfer-Encoding:binary
Content-ID:1

POST https://org.example.com/api/data/v9.2/accounts HTTP/1.1
Content-Type: application/json

{ "name":"Account Name"}

--changeset_dd81ccab-11ce-4d57-b91d-12c4e25c3cab
Content-Type:application/http
Content-Transfer-Encoding:binary
Content-ID:2

POST https://org.example.com/api/data/v9.2/contacts HTTP/1.1
Content-Type:application/json

{ "firstname":"Contact first name"}

--changeset_dd81ccab-11ce-4d57-b91d-12c4e25c3cab
Content-Type:application/http
Content-Transfer-Encoding:binary
Content-ID:3

PUT $1/primarycontactid/$ref HTTP/1.1
Content-Type:application/json

{"@odata.id":"$2"}

--changeset_dd81ccab-11ce-4d57-b91d-12c4e25c3cab--
--batch_AAA123--
"""

# "Handling errors": parts with a Content-Length header and a continue-on-error request.
DOC_ERROR_EXAMPLE = """--batch_431faf5a-f979-4ee6-a374-d242f8962d41
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-Length: 436

POST /api/data/v9.2/tasks HTTP/1.1
Content-Type: application/json; type=entry

{
  "subject": "Subject is too long xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  "regardingobjectid_account_task@odata.bind": "accounts(00000000-0000-0000-0000-000000000001)"
}
--batch_431faf5a-f979-4ee6-a374-d242f8962d41
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-Length: 250

POST /api/data/v9.2/tasks HTTP/1.1
Content-Type: application/json; type=entry

{
  "subject": "Task 2 in batch",
  "regardingobjectid_account_task@odata.bind": "accounts(00000000-0000-0000-0000-000000000001)"
}
--batch_431faf5a-f979-4ee6-a374-d242f8962d41--

"""

DOC_ERROR_RESPONSE_STOPPED = """--batchresponse_156da4b8-cd2c-4862-a911-4aaab97c001a
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 400 Bad Request
REQ_ID: 5ecd1cb3-1730-4ffc-909c-d44c22270026
Content-Type: application/json; odata.metadata=minimal
OData-Version: 4.0

{"error":{"code":"0x80044331","message":"A validation error occurred.  The length of the 'subject' attribute of the 'task' entity exceeded the maximum allowed length of '200'."}}
--batchresponse_156da4b8-cd2c-4862-a911-4aaab97c001a--

"""  # noqa: E501 - verbatim documentation text

TASK_BIND = "accounts(00000000-0000-0000-0000-000000000001)"


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


@pytest.fixture(params=["LF", "CRLF"])
def line_end(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def encode(text: str, line_end: str) -> bytes:
    return crlf(text) if line_end == "CRLF" else text.encode()


# ---------------------------------------------------------------------------
# Parsing Microsoft's examples
# ---------------------------------------------------------------------------


def test_doc_batch_without_changesets(line_end: str) -> None:
    items = parse_batch(
        encode(DOC_BATCH_WITHOUT_CHANGESETS, line_end), DOC_BATCH_WITHOUT_CHANGESETS_TYPE, DATAVERSE_LIMITS
    )
    assert all(isinstance(item, BatchRequest) for item in items)
    requests = list(iter_requests(items))
    assert [(r.method, r.url) for r in requests] == [
        ("POST", "/api/data/v9.2/tasks"),
        ("POST", "/api/data/v9.2/tasks"),
        ("POST", "/api/data/v9.2/tasks"),
        (
            "GET",
            "/api/data/v9.2/accounts(00000000-0000-0000-0000-000000000001)/Account_Tasks?$select=subject",
        ),
    ]
    for number, request in enumerate(requests[:3], start=1):
        assert request.headers.get("content-type") == "application/json; type=entry"
        assert json.loads(request.body) == {
            "subject": f"Task {number} in batch",
            "regardingobjectid_account_task@odata.bind": TASK_BIND,
        }
        assert request.content_id is None
        assert request.changeset is None
        assert request.part_headers.get("Content-Transfer-Encoding") == "binary"
    get = requests[3]
    assert get.body == b""
    assert len(get.headers) == 0
    assert resolve_url(get.url, ROOT) == (
        "https://org.example.com/api/data/v9.2/accounts(00000000-0000-0000-0000-000000000001)"
        "/Account_Tasks?$select=subject"
    )
    assert relative_to_root(resolve_url(get.url, ROOT), ROOT) == (
        "accounts(00000000-0000-0000-0000-000000000001)/Account_Tasks?$select=subject"
    )


def test_doc_batch_with_changeset(line_end: str) -> None:
    items = parse_batch(
        encode(DOC_BATCH_WITH_CHANGESET, line_end), DOC_BATCH_WITH_CHANGESET_TYPE, DATAVERSE_LIMITS
    )
    assert len(items) == 2
    changeset, get = items
    assert isinstance(changeset, ChangeSet)
    assert changeset.boundary == "changeset_246e6bfe-89a4-4c77-b293-7a433f082e8a"
    assert [r.content_id for r in changeset.requests] == ["1", "2", "3"]
    assert all(r.changeset == changeset.boundary for r in changeset.requests)
    assert [json.loads(r.body)["subject"] for r in changeset.requests] == [
        f"Task {n} in batch" for n in (1, 2, 3)
    ]
    assert isinstance(get, BatchRequest)
    assert get.method == "GET"
    assert get.changeset is None


def test_doc_reference_in_url(line_end: str) -> None:
    items = parse_batch(encode(DOC_REFERENCE_IN_URL, line_end), "multipart/mixed;boundary=batch_AAA123")
    (changeset,) = items
    assert isinstance(changeset, ChangeSet)
    create, put = changeset.requests
    assert resolve_url(create.url, ROOT) == "https://org.example.com/api/data/v9.2/contacts"
    assert json.loads(create.body) == {"firstname": "First Name", "lastname": "Last name"}
    created = {"1": "https://org.example.com/api/data/v9.2/contacts(f8ea5d2c-8c75-e911-a97a-000d3a34a1bd)"}
    assert put.method == "PUT"
    assert put.content_id == "2"
    assert resolve_url(put.url, ROOT, created) == created["1"] + "/lastname"
    assert json.loads(put.body) == {"value": "BBBBB"}


def test_doc_reference_in_body_with_tight_headers(line_end: str) -> None:
    items = parse_batch(encode(DOC_REFERENCE_ODATA_ID, line_end), "multipart/mixed;boundary=batch_AAA123")
    (changeset,) = items
    assert isinstance(changeset, ChangeSet)
    assert [r.content_id for r in changeset.requests] == ["1", "2", "3"]
    link = changeset.requests[2]
    created = {
        "1": f"{ROOT}accounts(3dcf8c02-8c75-e911-a97a-000d3a34a1bd)",
        "2": f"{ROOT}contacts(43cf8c02-8c75-e911-a97a-000d3a34a1bd)",
    }
    assert resolve_url(link.url, ROOT, created.get) == created["1"] + "/primarycontactid/$ref"
    assert resolve_reference(json.loads(link.body)["@odata.id"], created) == created["2"]


def test_doc_error_example_ignores_part_content_length(line_end: str) -> None:
    items = parse_batch(
        encode(DOC_ERROR_EXAMPLE, line_end),
        'multipart/mixed; boundary="batch_431faf5a-f979-4ee6-a374-d242f8962d41"',
    )
    assert [json.loads(r.body)["subject"][:7] for r in iter_requests(items)] == ["Subject", "Task 2 "]


# ---------------------------------------------------------------------------
# Response building, checked against the documented structure
# ---------------------------------------------------------------------------


def response_shape(content_type: str, body: bytes) -> list[Any]:
    """Parse a multipart response with the stdlib email parser (an independent implementation)."""
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    assert message.is_multipart()
    return [_part_shape(part) for part in message.get_payload()]  # type: ignore[union-attr]


def _part_shape(part: Any) -> Any:
    if part.is_multipart():
        boundary = part.get_param("boundary")
        assert re.fullmatch(r"changesetresponse_[0-9a-f-]{36}", boundary)
        return ("changeset", [_part_shape(inner) for inner in part.get_payload()])
    assert part.get_content_type() == "application/http"
    assert part["Content-Transfer-Encoding"] == "binary"
    payload = part.get_payload().replace("\r\n", "\n")
    head, _, body = payload.partition("\n\n")
    status, *header_lines = head.split("\n")
    names = [line.split(":", 1)[0] for line in header_lines]
    parsed_body = json.loads(body) if body.strip() else None
    return (part["Content-ID"], status, names, parsed_body)


def test_built_response_has_the_documented_structure() -> None:
    created = [
        "e73ffc82-e292-ed11-aad1-000d3a9933c9",
        "e83ffc82-e292-ed11-aad1-000d3a9933c9",
        "e93ffc82-e292-ed11-aad1-000d3a9933c9",
    ]
    listing = {
        "@odata.context": "[Organization Uri]/api/data/v9.2/$metadata#tasks(subject)",
        "value": [{"@odata.etag": 'W/"77181173"', "subject": "Task 1 in batch", "activityid": created[0]}],
    }
    writer = BatchResponseWriter(continue_on_error=False)
    changeset = ChangeSetResponse(
        [
            OperationResponse(
                204,
                [
                    ("OData-Version", "4.0"),
                    ("Location", f"[Organization Uri]/api/data/v9.2/tasks({guid})"),
                    ("OData-EntityId", f"[Organization Uri]/api/data/v9.2/tasks({guid})"),
                ],
                content_id=str(number),
            )
            for number, guid in enumerate(created, start=1)
        ]
    )
    assert writer.add(changeset)
    assert writer.add(
        OperationResponse(
            200,
            [
                ("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true"),
                ("OData-Version", "4.0"),
            ],
            json.dumps(listing).encode(),
        )
    )
    status, content_type, body = writer.render()
    assert status == 200
    assert re.fullmatch(r"multipart/mixed; boundary=batchresponse_[0-9a-f-]{36}", content_type)
    documented = response_shape(
        "multipart/mixed; boundary=batchresponse_f27ef42d-51b0-4685-bac9-f468f844de2f",
        crlf(DOC_RESPONSE_WITH_CHANGESET),
    )
    assert response_shape(content_type, body) == documented
    assert documented[0][1][0] == (
        "1",
        "HTTP/1.1 204 No Content",
        ["OData-Version", "Location", "OData-EntityId"],
        None,
    )


def test_stop_at_first_failure_matches_the_documented_error_response() -> None:
    error = {
        "error": {
            "code": "0x80044331",
            "message": "A validation error occurred.  The length of the 'subject' attribute of the 'task' "
            "entity exceeded the maximum allowed length of '200'.",
        }
    }
    writer = BatchResponseWriter(continue_on_error=prefers_continue_on_error({"OData-Version": "4.0"}))
    keep_going = writer.add(
        OperationResponse(
            400,
            [
                ("REQ_ID", "5ecd1cb3-1730-4ffc-909c-d44c22270026"),
                ("Content-Type", "application/json; odata.metadata=minimal"),
                ("OData-Version", "4.0"),
            ],
            json.dumps(error, separators=(",", ":")).encode(),
        )
    )
    assert keep_going is False
    status, content_type, body = writer.render()
    assert status == 400
    documented = response_shape(
        "multipart/mixed; boundary=batchresponse_156da4b8-cd2c-4862-a911-4aaab97c001a",
        crlf(DOC_ERROR_RESPONSE_STOPPED),
    )
    assert response_shape(content_type, body) == documented


def test_continue_on_error_answers_every_part() -> None:
    writer = BatchResponseWriter(
        continue_on_error=prefers_continue_on_error({"Prefer": "odata.continue-on-error"})
    )
    assert writer.add(OperationResponse(400, body=b'{"error":{}}'))
    assert writer.add(OperationResponse(204))
    status, content_type, body = writer.render()
    assert status == 200
    assert [shape[1] for shape in response_shape(content_type, body)] == [
        "HTTP/1.1 400 Bad Request",
        "HTTP/1.1 204 No Content",
    ]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Prefer": "odata.continue-on-error"}, True),
        ({"prefer": "return=representation, odata.continue-on-error"}, True),
        ([("Prefer", "odata.maxpagesize=10"), ("Prefer", "continue-on-error=true")], True),
        ({"Prefer": "odata.continue-on-error=false"}, False),
        ({"Prefer": "odata.include-annotations=*"}, False),
        ({}, False),
    ],
)
def test_prefers_continue_on_error(headers: Any, expected: bool) -> None:
    assert prefers_continue_on_error(headers) is expected


def test_failed_changeset_is_answered_by_its_failing_operation() -> None:
    content_type, body = build_batch_response(
        [OperationResponse(412, [("OData-Version", "4.0")], b"{}", content_id="2")],
        boundary="batchresponse_x",
    )
    assert content_type == "multipart/mixed; boundary=batchresponse_x"
    text = body.decode()
    assert text.startswith("--batchresponse_x\r\nContent-Type: application/http\r\n")
    assert "Content-ID: 2\r\n\r\nHTTP/1.1 412 Precondition Failed\r\nOData-Version: 4.0\r\n\r\n{}\r\n" in text
    assert text.endswith("--batchresponse_x--\r\n")


def test_microsoft_sdk_reads_our_response() -> None:
    """The official Dataverse Python SDK's batch-response parser understands what we build."""
    batch_base = pytest.importorskip("PowerPlatform.Dataverse.data._batch_base")
    parser = getattr(getattr(batch_base, "_BatchBase", None), "_parse_batch_response", None)
    if parser is None:
        pytest.skip("the SDK's private batch parser moved")
    content_type, body = build_batch_response(
        [
            ChangeSetResponse(
                [
                    OperationResponse(204, [("OData-EntityId", f"{ROOT}accounts(aaaa)")], content_id="1"),
                    OperationResponse(204, [("OData-EntityId", f"{ROOT}contacts(bbbb)")], content_id="2"),
                ]
            ),
            OperationResponse(
                200, [("Content-Type", "application/json")], json.dumps({"value": [{"name": "x"}]}).encode()
            ),
        ]
    )

    class Response:
        headers = {"Content-Type": content_type}
        text = body.decode()
        status_code = 200

    result = parser(None, Response())
    assert [(r.status_code, r.content_id) for r in result.responses] == [(204, "1"), (204, "2"), (200, None)]
    assert result.responses[2].data == {"value": [{"name": "x"}]}


def test_microsoft_sdk_request_body_parses() -> None:
    """A batch body serialised by the official Dataverse Python SDK parses as intended."""
    batch_base = pytest.importorskip("PowerPlatform.Dataverse.data._batch_base")
    raw = pytest.importorskip("PowerPlatform.Dataverse.data._raw_request")
    try:
        builder = batch_base._BatchBase(None)
        change_item = batch_base._ChangeSetBatchItem
        request = raw._RawRequest
    except (AttributeError, TypeError):
        pytest.skip("the SDK's private batch serialiser moved")
    body = builder._build_batch_body(
        [
            request("GET", f"{ROOT}accounts?$select=name"),
            change_item(
                [
                    request("POST", f"{ROOT}accounts", body=json.dumps({"name": "A"}), content_id=1),
                    request(
                        "PATCH", "$1", body=json.dumps({"name": "B"}), headers={"If-Match": "*"}, content_id=2
                    ),
                ]
            ),
        ],
        "batch_sdk",
    )
    items = parse_batch(body.encode(), 'multipart/mixed; boundary="batch_sdk"', DATAVERSE_LIMITS)
    get, changeset = items
    assert isinstance(get, BatchRequest)
    assert (get.method, get.url, get.body) == ("GET", f"{ROOT}accounts?$select=name", b"")
    assert isinstance(changeset, ChangeSet)
    create, patch = changeset.requests
    assert (create.method, create.content_id, json.loads(create.body)) == ("POST", "1", {"name": "A"})
    assert (patch.method, patch.content_id, patch.headers.get("if-match")) == ("PATCH", "2", "*")
    assert resolve_url(patch.url, ROOT, {"1": f"{ROOT}accounts(1)"}) == f"{ROOT}accounts(1)"


# ---------------------------------------------------------------------------
# Tolerance and strictness
# ---------------------------------------------------------------------------


def part(request_text: str, *, boundary: str = "b", extra: str = "") -> str:
    return (
        f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n{extra}\r\n"
        f"{request_text}\r\n"
    )


def test_preamble_epilogue_padding_and_quoted_boundary() -> None:
    body = (
        "This is a preamble, ignored.\r\n"
        + part("GET accounts HTTP/1.1\r\n")
        + "--b  \r\n"  # transport padding after a delimiter is allowed
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "DELETE accounts(1) HTTP/1.1\r\n\r\n"
        "\r\n--b--\r\nepilogue text --b\r\n"
    )
    items = parse_batch(body.encode(), 'Multipart/Mixed; charset=utf-8; Boundary="b"')
    assert [(r.method, r.url) for r in iter_requests(items)] == [
        ("GET", "accounts"),
        ("DELETE", "accounts(1)"),
    ]


def test_body_bytes_are_kept_exactly() -> None:
    payload = b"line1\r\nline2\n--bx not a delimiter\r\n\r\n\xff\x00binary"
    body = (
        b"--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        b"POST accounts HTTP/1.1\r\nContent-Type: application/octet-stream\r\n\r\n"
        + payload
        + b"\r\n--b--\r\n"
    )
    (request,) = parse_batch(body, "multipart/mixed; boundary=b")
    assert isinstance(request, BatchRequest)
    assert request.body == payload


def test_folded_headers_and_content_id_in_operation_headers() -> None:
    body = part("POST accounts HTTP/1.1\r\nX-Long: first\r\n second\r\nContent-ID: 7\r\n\r\n{}", boundary="b")
    body = body.replace("--b\r\n", "--b\r\n", 1) + "--b--"
    (request,) = parse_batch(body.encode(), "multipart/mixed; boundary=b")
    assert isinstance(request, BatchRequest)
    assert request.headers.get("x-long") == "first second"
    assert request.content_id == "7"


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("--b\r\n\r\nGET a HTTP/1.1\r\n\r\n--b--", None, "The 'Content-Type' header is missing."),
        (
            "--b\r\nContent-Type: application/http\r\n\r\nGET a HTTP/1.1\r\n\r\n--b--",
            None,
            "A missing or invalid 'Content-Transfer-Encoding' header was found.",
        ),
        (
            "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--",
            None,
            "The 'Content-Type' header value 'text/plain' is invalid.",
        ),
        (part("GET a") + "--b--", None, "The request line 'GET a' is invalid."),
        (part("FETCH a HTTP/1.1") + "--b--", None, "The request line 'FETCH a HTTP/1.1' is invalid."),
        (
            part("GET a HTTP/2") + "--b--",
            None,
            "The HTTP version 'HTTP/2' used in a batch operation request or response is not valid.",
        ),
        (
            part("GET a HTTP/1.1\r\nbroken header line\r\n") + "--b--",
            None,
            "The message header 'broken header line' is invalid.",
        ),
        (
            part("GET a HTTP/1.1\r\n"),
            None,
            "Encountered an unexpected end of input while reading the batch payload.",
        ),
        ("no delimiters at all", None, "Encountered an unexpected end of input"),
        (
            part("GET a HTTP/1.1\r\n") + "--b--",
            "application/json",
            "The content type 'application/json' is not valid",
        ),
        (
            part("GET a HTTP/1.1\r\n") + "--b--",
            "multipart/mixed",
            "does not specify a valid boundary parameter.",
        ),
    ],
)
def test_malformed_batches_are_400(body: str, content_type: str | None, message: str) -> None:
    with pytest.raises(ODataError) as info:
        parse_batch(body.encode(), content_type or "multipart/mixed; boundary=b", error_code="0x0")
    assert info.value.status == 400
    assert info.value.code == "0x0"
    assert message in info.value.message


def changeset_body(*requests: str, inner: str = "c") -> str:
    parts = "".join(part(r, boundary=inner, extra=f"Content-ID: {n}\r\n") for n, r in enumerate(requests, 1))
    return f"--b\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n{parts}--{inner}--\r\n--b--\r\n"


def test_get_inside_a_changeset_is_refused() -> None:
    body = changeset_body("POST accounts HTTP/1.1\r\n\r\n{}", "GET accounts HTTP/1.1\r\n")
    with pytest.raises(ODataError) as info:
        parse_batch(body.encode(), "multipart/mixed; boundary=b", DATAVERSE_LIMITS)
    assert info.value.message == (
        "An invalid HTTP method 'GET' was detected for a request in a change set. Requests in change sets "
        "only support the HTTP methods 'POST', 'PUT', 'DELETE', and 'PATCH'."
    )
    items = parse_batch(
        body.encode(), "multipart/mixed; boundary=b", BatchLimits(allow_get_in_changeset=True)
    )
    assert [r.method for r in iter_requests(items)] == ["POST", "GET"]


def test_nested_changesets_and_duplicate_content_ids_are_refused() -> None:
    nested = changeset_body("POST a HTTP/1.1\r\n\r\n{}").replace(
        "--c\r\nContent-Type: application/http", "--c\r\nContent-Type: multipart/mixed; boundary=d", 1
    )
    with pytest.raises(ODataError, match=r"Nested change sets in a batch payload are not supported\."):
        parse_batch(nested.encode(), "multipart/mixed; boundary=b")
    duplicate = changeset_body("POST a HTTP/1.1\r\n\r\n{}", "POST a HTTP/1.1\r\n\r\n{}").replace(
        "Content-ID: 2", "Content-ID: 1"
    )
    with pytest.raises(ODataError, match="The content ID '1' was found more than once"):
        parse_batch(duplicate.encode(), "multipart/mixed; boundary=b")


def test_request_count_limits() -> None:
    def batch(count: int) -> bytes:
        return ("".join(part("DELETE accounts(1) HTTP/1.1\r\n") for _ in range(count)) + "--b--").encode()

    assert len(parse_batch(batch(1000), "multipart/mixed; boundary=b", DATAVERSE_LIMITS)) == 1000
    with pytest.raises(ODataError, match="A maximum number of '1000' query operations"):
        parse_batch(batch(1001), "multipart/mixed; boundary=b", DATAVERSE_LIMITS)
    changeset = changeset_body(*["DELETE a(1) HTTP/1.1\r\n"] * 3)
    with pytest.raises(ODataError, match=r"A maximum number of '2' operations are allowed in a change set\."):
        parse_batch(changeset.encode(), "multipart/mixed; boundary=b", BatchLimits(max_changeset_requests=2))
    with pytest.raises(ODataError, match="A maximum number of '2' query operations"):
        parse_batch(changeset.encode(), "multipart/mixed; boundary=b", BatchLimits(max_requests=2))


def test_empty_batch_is_allowed() -> None:
    assert parse_batch(b"--b--\r\n", "multipart/mixed; boundary=b") == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("accounts(1)", f"{ROOT}accounts(1)"),
        ("/api/data/v9.2/accounts", "https://org.example.com/api/data/v9.2/accounts"),
        ("https://org.example.com/api/data/v9.2/contacts", "https://org.example.com/api/data/v9.2/contacts"),
        ("$1", f"{ROOT}accounts(abc)"),
        ("$1/name", f"{ROOT}accounts(abc)/name"),
        ("$metadata", f"{ROOT}$metadata"),
    ],
)
def test_resolve_url(url: str, expected: str) -> None:
    assert resolve_url(url, ROOT, {"1": f"{ROOT}accounts(abc)"}) == expected


def test_unknown_reference_is_the_documented_400() -> None:
    with pytest.raises(ODataError) as info:
        resolve_url("$1", ROOT, {})
    assert (info.value.status, info.value.message) == (
        400,
        "Content-ID Reference: '$1' does not exist in the batch context.",
    )
    with pytest.raises(ODataError, match="'\\$9' does not exist"):
        resolve_url("$9/name", ROOT)
    assert resolve_reference("/accounts(1)", {}) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"{ROOT}accounts?$top=1", "accounts?$top=1"),
        ("https://org.example.com/api/data/v9.2", ""),
        ("HTTPS://ORG.example.com/api/data/v9.2/$metadata", "$metadata"),
        ("https://other.example.com/api/data/v9.2/accounts", None),
        ("https://org.example.com/data/accounts", None),
    ],
)
def test_relative_to_root(url: str, expected: str | None) -> None:
    assert relative_to_root(url, ROOT) == expected


def test_boundary_parameter_forms() -> None:
    assert boundary_of('multipart/mixed; boundary="batch_1"') == "batch_1"
    assert boundary_of("multipart/mixed;boundary=batch_2") == "batch_2"
    assert boundary_of("multipart/mixed; charset=utf-8; BOUNDARY=batch_3") == "batch_3"


# ---------------------------------------------------------------------------
# Property-based round trip: any requests, any grouping, either line ending
# ---------------------------------------------------------------------------

_BODIES = st.binary(max_size=60).filter(lambda b: not b.endswith(b"\r"))
_OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["POST", "PATCH", "PUT", "DELETE"]),
        st.from_regex(r"[a-z]{1,8}(\([0-9]{1,4}\))?", fullmatch=True),
        _BODIES,
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=100, deadline=None)
@given(
    groups=st.lists(st.tuples(st.booleans(), _OPERATIONS), min_size=1, max_size=4),
    newline=st.sampled_from(["\r\n", "\n"]),
)
def test_request_round_trip(groups: list[tuple[bool, list[tuple[str, str, bytes]]]], newline: str) -> None:
    nl = newline.encode()
    out: list[bytes] = []
    expected: list[tuple[str, str, bytes, str | None]] = []
    for index, (is_changeset, operations) in enumerate(groups):
        inner = f"changeset_{index}"
        if is_changeset:
            out.append(
                b"--batch_rt" + nl + f"Content-Type: multipart/mixed; boundary={inner}".encode() + nl + nl
            )
        for number, (method, url, body) in enumerate(operations, start=1):
            boundary = inner if is_changeset else "batch_rt"
            content_id = f"{index}.{number}" if is_changeset else None
            head = [f"--{boundary}", "Content-Type: application/http", "Content-Transfer-Encoding: binary"]
            if content_id:
                head.append(f"Content-ID: {content_id}")
            out.append(nl.join(h.encode() for h in head) + nl + nl)
            out.append(f"{method} {url} HTTP/1.1".encode() + nl + b"Content-Type: application/json" + nl + nl)
            out.append(body + nl)
            expected.append((method, url, body, content_id))
        if is_changeset:
            out.append(f"--{inner}--".encode() + nl)
    out.append(b"--batch_rt--" + nl)
    items = parse_batch(b"".join(out), "multipart/mixed; boundary=batch_rt")
    assert [(r.method, r.url, r.body, r.content_id) for r in iter_requests(items)] == expected
    assert len(items) == sum(1 if cs else len(ops) for cs, ops in groups)
