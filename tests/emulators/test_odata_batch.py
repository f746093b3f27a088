"""Tests of the emulators' $batch library against Microsoft's documented examples and clients."""

from __future__ import annotations

import email
import email.policy
import json
import re
from typing import Any

import pytest

from emulators.odata.batch import (
    DATAVERSE_LIMITS,
    BatchRequest,
    BatchResponseWriter,
    ChangeSet,
    ChangeSetResponse,
    OperationResponse,
    build_batch_response,
    iter_requests,
    parse_batch,
    prefers_continue_on_error,
    relative_to_root,
    resolve_reference,
    resolve_url,
)

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
