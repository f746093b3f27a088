"""$batch multipart encoding and decoding, against the shapes Dataverse documents."""

from __future__ import annotations

import email
import email.policy
import json

import pytest

from prospect_to_cash.hooks.batch import (
    BatchFormatError,
    BatchRequest,
    boundary_of,
    decode_batch_response,
    encode_batch,
)

ORG = "https://org.crm.dynamics.com/api/data/v9.2"
ACCOUNT_1 = "00000000-0000-0000-0000-000000000001"
NOT_FOUND = "Entity 'account' With Id = 00000000-0000-0000-0000-000000000002 Does Not Exist"


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


# Shape of a successful change set answer (execute-batch-operations-using-web-api.md).
CHANGESET_OK = f"""--batchresponse_aa11
Content-Type: multipart/mixed; boundary=changesetresponse_bb22

--changesetresponse_bb22
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

HTTP/1.1 204 No Content
OData-Version: 4.0
Location: {ORG}/tasks(e73ffc82-e292-ed11-aad1-000d3a9933c9)
OData-EntityId: {ORG}/tasks(e73ffc82-e292-ed11-aad1-000d3a9933c9)


--changesetresponse_bb22
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

HTTP/1.1 204 No Content
OData-Version: 4.0
OData-EntityId: {ORG}/tasks(e83ffc82-e292-ed11-aad1-000d3a9933c9)


--changesetresponse_bb22--
--batchresponse_aa11--
"""

# Shape of a failed request when odata.continue-on-error is not set: HTTP 400 outside,
# one application/http part carrying the error.
VALIDATION_ERROR = json.dumps(
    {
        "error": {
            "code": "0x80044331",
            "message": "A validation error occurred.  The length of the 'subject' attribute of the 'task' "
            "entity exceeded the maximum allowed length of '200'.",
        }
    }
)
FAILED = f"""--batchresponse_cc33
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 400 Bad Request
REQ_ID: 5ecd1cb3-1730-4ffc-909c-d44c22270026
Content-Type: application/json; odata.metadata=minimal
OData-Version: 4.0

{VALIDATION_ERROR}
--batchresponse_cc33--
"""

GETS_CONTINUE_ON_ERROR = f"""--batchresponse_dd44
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 200 OK
Content-Type: application/json; odata.metadata=minimal; odata.streaming=true
OData-Version: 4.0

{json.dumps({"@odata.context": f"{ORG}/$metadata#accounts(accountid)/$entity", "accountid": ACCOUNT_1})}
--batchresponse_dd44
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 404 Not Found
Content-Type: application/json; odata.metadata=minimal
OData-Version: 4.0

{json.dumps({"error": {"code": "0x80040217", "message": NOT_FOUND}})}
--batchresponse_dd44--
"""


class TestDecode:
    @pytest.mark.parametrize("newline", ["crlf", "lf"])
    def test_changeset_success(self, newline: str) -> None:
        body = crlf(CHANGESET_OK) if newline == "crlf" else CHANGESET_OK.encode()
        parts = decode_batch_response("multipart/mixed; boundary=batchresponse_aa11", body)
        assert [(p.status, p.content_id, p.changeset) for p in parts] == [(204, "1", 0), (204, "2", 0)]
        assert parts[0].header("odata-entityid") == f"{ORG}/tasks(e73ffc82-e292-ed11-aad1-000d3a9933c9)"
        assert parts[0].reason == "No Content"
        assert parts[0].body.strip() == b""
        assert all(p.ok for p in parts)

    def test_failed_request_is_one_top_level_part(self) -> None:
        parts = decode_batch_response('multipart/mixed; boundary="batchresponse_cc33"', crlf(FAILED))
        assert len(parts) == 1
        (part,) = parts
        assert (part.status, part.changeset, part.ok) == (400, None, False)
        assert json.loads(part.body)["error"]["code"] == "0x80044331"

    def test_top_level_gets_keep_their_order(self) -> None:
        parts = decode_batch_response(
            "multipart/mixed; boundary=batchresponse_dd44", crlf(GETS_CONTINUE_ON_ERROR)
        )
        assert [p.status for p in parts] == [200, 404]
        assert json.loads(parts[0].body)["accountid"].endswith("0001")

    def test_preamble_and_epilogue_are_ignored(self) -> None:
        body = b"preamble text\r\n" + crlf(FAILED) + b"epilogue"
        assert len(decode_batch_response("multipart/mixed; boundary=batchresponse_cc33", body)) == 1

    @pytest.mark.parametrize(
        ("content_type", "body", "message"),
        [
            ("application/json", b"{}", "no boundary"),
            ("multipart/mixed; boundary=other", crlf(FAILED), "no part"),
            (
                "multipart/mixed; boundary=batchresponse_cc33",
                crlf(FAILED).rsplit(b"--batchresponse", 1)[0],
                "truncated",
            ),
            (
                "multipart/mixed; boundary=b",
                b"--b\r\nContent-Type: application/http\r\n\r\nnot a status line\r\n--b--\r\n",
                "status line",
            ),
            (
                "multipart/mixed; boundary=b",
                b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n",
                "unexpected",
            ),
        ],
    )
    def test_malformed_bodies_are_reported(self, content_type: str, body: bytes, message: str) -> None:
        with pytest.raises(BatchFormatError, match=message):
            decode_batch_response(content_type, body)

    def test_boundary_text_inside_content_is_not_a_delimiter(self) -> None:
        """Only ``--boundary`` at a line start, with nothing but padding after it, delimits."""
        payload = json.dumps({"Note": "see --b and\n--bx and --b-- mid-line"}).encode()
        inner = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + payload
        body = (
            b"preamble --b\r\n"
            + b"--b \t\r\nContent-Type: application/http\r\n\r\n"
            + inner
            + b"\r\n--bx not this\r\n--b\nContent-Type: application/http\n\nHTTP/1.1 204 No Content\n\n"
            + b"\r\n--b--   \r\nepilogue --b--\r\n"
        )
        parts = decode_batch_response("multipart/mixed; boundary=b", body)
        assert [p.status for p in parts] == [200, 204]
        assert parts[0].body.startswith(payload)
        assert b"--bx not this" in parts[0].body  # a longer boundary-like line is content
        assert json.loads(parts[0].body.split(b"\r\n--bx")[0])["Note"].startswith("see --b")

    def test_a_large_answer_parses_part_for_part(self) -> None:
        records = [{"CustomerAccount": f"C{i}", "Blob": "x" * 3000} for i in range(300)]
        chunks = [b"--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_1\r\n\r\n"]
        for number, record in enumerate(records, 1):
            chunks.append(
                b"--changesetresponse_1\r\nContent-Type: application/http\r\n"
                + f"Content-ID: {number}\r\n\r\nHTTP/1.1 201 Created\r\n".encode()
                + b"Content-Type: application/json\r\n\r\n"
                + json.dumps(record).encode()
                + b"\r\n"
            )
        chunks.append(b"--changesetresponse_1--\r\n--batchresponse_1--\r\n")
        parts = decode_batch_response("multipart/mixed; boundary=batchresponse_1", b"".join(chunks))
        assert [p.content_id for p in parts] == [str(n) for n in range(1, 301)]
        assert [json.loads(p.body)["CustomerAccount"] for p in parts] == [
            r["CustomerAccount"] for r in records
        ]

    def test_boundary_forms(self) -> None:
        assert boundary_of('multipart/mixed; boundary="batch_1"') == "batch_1"
        assert boundary_of("multipart/mixed;boundary=batch_2;charset=utf-8") == "batch_2"


class TestEncode:
    def test_changeset_structure_parses_as_mime(self) -> None:
        body_json = json.dumps({"name": "O'Brien & Sons"}).encode()
        content_type, body = encode_batch(
            [
                [
                    BatchRequest(
                        "PATCH",
                        f"{ORG}/accounts(00000000-0000-0000-0000-000000000001)",
                        {"Content-Type": "application/json", "If-None-Match": "*"},
                        body_json,
                        "1",
                    ),
                    BatchRequest(
                        "DELETE", f"{ORG}/accounts(00000000-0000-0000-0000-000000000002)", {}, None, "2"
                    ),
                ],
                BatchRequest("GET", f"{ORG}/accounts?$select=name", {"Accept": "application/json"}),
            ],
            boundary="batch_test",
        )
        assert content_type == "multipart/mixed; boundary=batch_test"
        assert b"\r\n" in body
        assert b"\n" not in body.replace(b"\r\n", b"")
        message = email.message_from_bytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP
        )
        top = list(message.iter_parts())
        assert [p.get_content_type() for p in top] == ["multipart/mixed", "application/http"]
        changeset = list(top[0].iter_parts())
        assert [p["Content-ID"] for p in changeset] == ["1", "2"]
        assert all(p["Content-Transfer-Encoding"] == "binary" for p in changeset)
        first = changeset[0].get_payload()
        assert first.startswith(f"PATCH {ORG}/accounts(00000000-0000-0000-0000-000000000001) HTTP/1.1\r\n")
        assert "If-None-Match: *\r\n" in first
        assert first.endswith(body_json.decode())
        assert top[1].get_payload().startswith(f"GET {ORG}/accounts?$select=name HTTP/1.1\r\n")
        assert body.endswith(b"--batch_test--\r\n")

    def test_get_inside_a_changeset_is_refused(self) -> None:
        with pytest.raises(ValueError, match="not allowed inside a change set"):
            encode_batch([[BatchRequest("GET", f"{ORG}/accounts")]])
