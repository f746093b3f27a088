"""The hooks over an httpx.MockTransport: request shapes, paging, retries, bulk routing, logs.

Every canned answer has the status, headers and body the real service sends (shapes from
Microsoft's Web API and $batch documentation); the emulator-backed integration tests cover
real protocol behaviour.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from prospect_to_cash.hooks import WriteKind, WriteOperation
from prospect_to_cash.hooks.errors import DynamicsAPIError

from .conftest import DATAVERSE, FNO, SECRET, multipart, odata_json

if TYPE_CHECKING:
    from collections.abc import Callable

DV_ROOT = f"{DATAVERSE}/api/data/v9.2"
FNO_ROOT = f"{FNO}/data"
ACCOUNT_IDS = [f"00000000-0000-0000-0000-00000000000{n}" for n in range(1, 6)]

METADATA = """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="account"><Key><PropertyRef Name="accountid"/></Key>
        <Property Name="accountid" Type="Edm.Guid"/></EntityType>
      <EntityType Name="product"><Key><PropertyRef Name="productid"/></Key>
        <Property Name="productid" Type="Edm.Guid"/></EntityType>
      <EntityContainer Name="System">
        <EntitySet Name="accounts" EntityType="Microsoft.Dynamics.CRM.account"/>
        <EntitySet Name="products" EntityType="Microsoft.Dynamics.CRM.product"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"""


def query(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(str(request.url)).query, keep_blank_values=True)


def account_page(start: int, count: int, next_link: str | None) -> httpx.Response:
    rows = []
    for n in range(start, start + count):
        row: dict[str, Any] = {
            "@odata.etag": f'W/"{1000 + n}"',
            "accountid": f"id-{n}",
            "name": f"Account {n}",
        }
        if n % 2 == 0:
            row["accountnumber"] = f"ACC-{n:05d}"  # odd rows: null, so the service leaves it out
        rows.append(row)
    body: dict[str, Any] = {
        "@odata.context": f"{DV_ROOT}/$metadata#accounts(name,accountnumber)",
        "value": rows,
    }
    if next_link:
        body["@odata.nextLink"] = next_link
    return odata_json(200, body, **{"Preference-Applied": f"odata.maxpagesize={count}"})


class TestReads:
    def test_dataverse_pages_follow_next_links_with_exact_columns(
        self, make_hook: Callable[..., Any]
    ) -> None:
        requests: list[httpx.Request] = []
        cookie = (
            "%3Ccookie%20pagenumber=%222%22%20"
            "pagingcookie=%22%253ccookie%2520page%253d%25221%2522%253e%22%20/%3E"
        )
        link = f"{DV_ROOT}/accounts?$select=accountnumber,name&$filter=statecode%20eq%200&$skiptoken={cookie}"

        def handler(request: httpx.Request) -> httpx.Response:
            requests.append(request)
            if "$skiptoken" in str(request.url):
                return account_page(3, 2, None)
            return account_page(1, 2, link)

        hook = make_hook("dataverse", handler)
        frames = list(
            hook.iter_pages(
                "accounts", select=["accountnumber", "name"], filter="statecode eq 0", page_size=2
            )
        )
        assert [len(f) for f in frames] == [2, 2]
        assert all(list(f.columns) == ["accountnumber", "name"] for f in frames)
        assert frames[0]["name"].tolist() == ["Account 1", "Account 2"]
        assert frames[0]["accountnumber"].isna().tolist() == [True, False]
        first = requests[0]
        assert str(first.url) == f"{DV_ROOT}/accounts?$select=accountnumber,name&$filter=statecode%20eq%200"
        assert first.headers["Prefer"] == "odata.maxpagesize=2"
        assert first.headers["OData-Version"] == "4.0"
        assert first.headers["OData-MaxVersion"] == "4.0"
        assert first.headers["Accept"] == "application/json"
        assert first.headers["Authorization"].startswith("Bearer eyJ")
        assert unquote(str(requests[1].url)) == unquote(link)  # followed unchanged

    def test_empty_result_yields_one_empty_frame(self, make_hook: Callable[..., Any]) -> None:
        hook = make_hook("dataverse", lambda r: odata_json(200, {"@odata.context": "x", "value": []}))
        frames = list(hook.iter_pages("accounts", select=["name"]))
        assert len(frames) == 1
        assert list(frames[0].columns) == ["name"]
        assert frames[0].empty

    @pytest.mark.parametrize(
        ("companies", "cross_company", "company_filter"),
        [
            (None, "true", "dataAreaId eq 'usmf'"),
            (["usmf", "demf"], "true", "(dataAreaId eq 'usmf' or dataAreaId eq 'demf')"),
            ("*", "true", None),
        ],
    )
    def test_fno_company_selection(
        self, make_hook: Callable[..., Any], companies: Any, cross_company: str, company_filter: str | None
    ) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return odata_json(200, {"@odata.context": f"{FNO_ROOT}/$metadata#CustomersV3", "value": []})

        hook = make_hook("fno", handler)
        list(hook.iter_pages("CustomersV3", select=["CustomerAccount", "dataAreaId"], companies=companies))
        params = query(seen[0])
        assert params["cross-company"] == [cross_company]
        assert params["$select"] == ["CustomerAccount,dataAreaId"]
        assert params.get("$filter", [None])[0] == company_filter
        assert seen[0].headers["Prefer"] == "odata.maxpagesize=10000"

    def test_fno_user_filter_and_company_are_combined(self, make_hook: Callable[..., Any]) -> None:
        seen: list[httpx.Request] = []
        hook = make_hook("fno", lambda r: seen.append(r) or odata_json(200, {"value": []}))
        list(hook.iter_pages("CustomersV3", select=["CustomerAccount"], filter="CustomerGroupId eq '10'"))
        assert query(seen[0])["$filter"] == ["(CustomerGroupId eq '10') and (dataAreaId eq 'usmf')"]

    def test_service_error_is_raised_readably(self, make_hook: Callable[..., Any]) -> None:
        body = {
            "error": {
                "code": "0x80060888",
                "message": "Could not find a property named 'nam' on type 'account'.",
            }
        }
        hook = make_hook("dataverse", lambda r: odata_json(400, body))
        with pytest.raises(
            DynamicsAPIError, match=r"HTTP 400 0x80060888: Could not find a property named 'nam'"
        ):
            list(hook.iter_pages("accounts", select=["nam"]))

    def test_throttled_read_waits_and_continues(self, make_hook: Callable[..., Any]) -> None:
        answers = iter(
            [
                odata_json(
                    429,
                    {
                        "error": {
                            "code": "0x80072326",
                            "message": "Number of concurrent requests exceeded the limit of 52.",
                        }
                    },
                    **{"Retry-After": "0"},
                ),
                account_page(1, 2, None),
            ]
        )
        hook = make_hook("dataverse", lambda r: next(answers))
        frames = list(hook.iter_pages("accounts", select=["name"]))
        assert len(frames[0]) == 2
        assert hook.session.limiter.stats.throttles == 1


CHANGESET_ANSWER = """--batchresponse_1
Content-Type: multipart/mixed; boundary=changesetresponse_2

--changesetresponse_2
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

HTTP/1.1 204 No Content
OData-Version: 4.0
OData-EntityId: {root}/accounts({id1})


--changesetresponse_2
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

HTTP/1.1 204 No Content
OData-Version: 4.0


--changesetresponse_2--
--batchresponse_1--
"""


def parse_batch(request: httpx.Request) -> list[email.message.Message]:
    message = email.message_from_bytes(
        b"Content-Type: " + request.headers["Content-Type"].encode() + b"\r\n\r\n" + request.content,
        policy=email.policy.HTTP,
    )
    parts = []
    for part in message.iter_parts():
        parts.extend(part.iter_parts() if part.get_content_type() == "multipart/mixed" else [part])
    return parts


class TestWrites:
    def test_dataverse_changeset_request_shape(self, make_hook: Callable[..., Any]) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return multipart("batchresponse_1", CHANGESET_ANSWER.format(root=DV_ROOT, id1=ACCOUNT_IDS[0]))

        hook = make_hook("dataverse", handler)
        ops = [
            WriteOperation(
                WriteKind.CREATE, "accounts", {"accountid": ACCOUNT_IDS[0]}, {"name": "O'Brien & Sons"}, "a"
            ),
            WriteOperation(
                WriteKind.UPDATE, "accounts", {"accountid": ACCOUNT_IDS[1]}, {"name": "Müller"}, "b"
            ),
        ]
        outcomes = {o.ref: o for o in hook.write(ops, bulk=False)}
        assert outcomes["a"].ok
        assert outcomes["a"].entity_id == ACCOUNT_IDS[0]
        assert outcomes["b"].ok
        assert outcomes["b"].status == 204
        (request,) = seen
        assert str(request.url) == f"{DV_ROOT}/$batch"
        parts = parse_batch(request)
        create, update = (p.get_payload(decode=True).decode("utf-8") for p in parts)
        assert create.startswith(f"PATCH {DV_ROOT}/accounts({ACCOUNT_IDS[0]}) HTTP/1.1\r\n")
        assert "If-None-Match: *" in create
        assert json.loads(create.split("\r\n\r\n", 1)[1]) == {"name": "O'Brien & Sons"}
        assert "If-Match: *" in update
        assert json.loads(update.split("\r\n\r\n", 1)[1]) == {"name": "Müller"}

    def test_one_bad_record_in_a_changeset_is_isolated(self, make_hook: Callable[..., Any]) -> None:
        """Dataverse answers a failed change set with HTTP 400 and one error part for the whole set."""
        batches: list[int] = []

        def handler(request: httpx.Request) -> httpx.Response:
            parts = parse_batch(request)
            batches.append(len(parts))
            bodies = [p.get_payload(decode=True).decode("utf-8") for p in parts]
            if any('"BAD"' in body for body in bodies):
                error = {"error": {"code": "0x80044331", "message": "A validation error occurred."}}
                return multipart(
                    "batchresponse_e",
                    "--batchresponse_e\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
                    "HTTP/1.1 400 Bad Request\nContent-Type: application/json; odata.metadata=minimal\n"
                    f"OData-Version: 4.0\n\n{json.dumps(error)}\n--batchresponse_e--\n",
                    status=400,
                )
            answer = [
                "--batchresponse_ok",
                "Content-Type: multipart/mixed; boundary=changesetresponse_ok",
                "",
            ]
            for part in parts:
                answer += [
                    "--changesetresponse_ok",
                    "Content-Type: application/http",
                    "Content-Transfer-Encoding: binary",
                    f"Content-ID: {part['Content-ID']}",
                    "",
                    "HTTP/1.1 204 No Content",
                    "OData-Version: 4.0",
                    "",
                    "",
                ]
            answer += ["--changesetresponse_ok--", "--batchresponse_ok--", ""]
            return multipart("batchresponse_ok", "\n".join(answer))

        hook = make_hook("dataverse", handler)
        ops = [
            WriteOperation(
                WriteKind.UPSERT,
                "accounts",
                {"accountid": f"00000000-0000-0000-0000-{n:012d}"},
                {"name": "BAD" if n == 5 else f"Account {n}"},
                f"r{n}",
            )
            for n in range(8)
        ]
        outcomes = {o.ref: o for o in hook.write(ops, batch_size=8, bulk=False)}
        assert len(outcomes) == 8
        assert [ref for ref, o in outcomes.items() if not o.ok] == ["r5"]
        assert outcomes["r5"].status == 400
        assert outcomes["r5"].error_code == "0x80044331"
        assert outcomes["r5"].message == "A validation error occurred."
        assert all(o.status == 204 for ref, o in outcomes.items() if ref != "r5")
        assert batches == [8, 4, 4, 2, 1, 1, 2]  # halves, depth first: log2(n) extra requests

    def test_operations_that_cannot_be_sent_fail_without_a_request(
        self, make_hook: Callable[..., Any]
    ) -> None:
        hook = make_hook("dataverse", lambda r: pytest.fail("nothing should be sent"))
        ops = [
            WriteOperation(WriteKind.UPSERT, "contacts", {"msdynce_contactnumber": "CON/1"}, {}, "slash"),
            WriteOperation(WriteKind.CREATE, "accounts", {}, {"name": "no key"}, "nokey"),
        ]
        outcomes = {o.ref: o for o in hook.write(ops)}
        assert outcomes["slash"].error_code == "invalid_key"
        assert "does not allow /" in (outcomes["slash"].message or "")
        assert outcomes["nokey"].error_code == "missing_key"
        assert not any(o.ok for o in outcomes.values())

    def test_fno_upsert_is_refused(self, make_hook: Callable[..., Any]) -> None:
        hook = make_hook("fno", lambda r: pytest.fail("nothing should be sent"))
        (outcome,) = hook.write(
            [WriteOperation(WriteKind.UPSERT, "CustomersV3", {"dataAreaId": "usmf"}, {}, "u")]
        )
        assert outcome.error_code == "unsupported_operation"

    def test_fno_create_after_connection_reset_is_read_back_not_resent(
        self, make_hook: Callable[..., Any]
    ) -> None:
        sent: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            parts = parse_batch(request)
            first_line = parts[0].get_payload().split("\r\n", 1)[0]
            sent.append(first_line)
            if first_line.startswith("POST"):
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            # The read-back: the row is there, so the first attempt was applied.
            row = {
                "@odata.context": f"{FNO_ROOT}/$metadata#CustomersV3/$entity",
                "@odata.etag": 'W/"JzEsNTYzNzE0NDU3Nic="',
                "dataAreaId": "usmf",
                "CustomerAccount": "US-001",
            }
            return multipart(
                "batchresponse_9",
                "--batchresponse_9\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
                "HTTP/1.1 200 OK\nContent-Type: application/json; odata.metadata=minimal\n"
                "OData-Version: 4.0\n\n"
                f"{json.dumps(row)}\n--batchresponse_9--\n",
            )

        hook = make_hook("fno", handler)
        key = {"dataAreaId": "usmf", "CustomerAccount": "US-001"}
        (outcome,) = list(
            hook.write([WriteOperation(WriteKind.CREATE, "CustomersV3", key, {"Name": "A"}, "c1")])
        )
        assert outcome.ok
        assert outcome.message == "row already present after an interrupted attempt"
        assert sent == [
            f"POST {FNO_ROOT}/CustomersV3 HTTP/1.1",
            f"GET {FNO_ROOT}/CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')"
            "?cross-company=true&$select=dataAreaId HTTP/1.1",
        ]

    def test_bulk_where_supported_batch_where_not(self, make_hook: Callable[..., Any]) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            path = urlsplit(str(request.url)).path
            if path.endswith("$metadata"):
                return httpx.Response(
                    200, headers={"Content-Type": "application/xml"}, content=METADATA.encode()
                )
            if path.endswith("sdkmessagefilters"):
                supported = "'product'" in query(request)["$filter"][0]
                value = [
                    {"@odata.etag": 'W/"1"', "sdkmessagefilterid": "f9bedb46-856e-ed11-9561-002248081470"}
                ]
                return odata_json(200, {"@odata.context": "x", "value": value if supported else []})
            if path.endswith("CreateMultiple"):
                targets = json.loads(request.content)["Targets"]
                return odata_json(
                    200,
                    {
                        "@odata.context": f"{DV_ROOT}/$metadata"
                        "#Microsoft.Dynamics.CRM.CreateMultipleResponse",
                        "Ids": [t["productid"] for t in targets],
                    },
                )
            return multipart("batchresponse_1", CHANGESET_ANSWER.format(root=DV_ROOT, id1=ACCOUNT_IDS[0]))

        hook = make_hook("dataverse", handler)
        ops = [
            WriteOperation(WriteKind.CREATE, "products", {"productid": ACCOUNT_IDS[2]}, {"name": "P1"}, "p1"),
            WriteOperation(WriteKind.CREATE, "products", {"productid": ACCOUNT_IDS[3]}, {"name": "P2"}, "p2"),
            WriteOperation(WriteKind.CREATE, "accounts", {"accountid": ACCOUNT_IDS[0]}, {"name": "A1"}, "a1"),
            WriteOperation(WriteKind.CREATE, "accounts", {"accountid": ACCOUNT_IDS[1]}, {"name": "A2"}, "a2"),
        ]
        outcomes = {o.ref: o for o in hook.write(ops, batch_size=2)}
        assert all(o.ok for o in outcomes.values())
        assert outcomes["p2"].entity_id == ACCOUNT_IDS[3]
        bulk = [r for r in seen if r.url.path.endswith("CreateMultiple")]
        assert [r.url.path for r in bulk] == ["/api/data/v9.2/products/Microsoft.Dynamics.CRM.CreateMultiple"]
        assert json.loads(bulk[0].content)["Targets"][0] == {
            "@odata.type": "Microsoft.Dynamics.CRM.product",
            "name": "P1",
            "productid": ACCOUNT_IDS[2],
        }
        assert any(r.url.path.endswith("$batch") for r in seen)
        checks = [query(r)["$filter"][0] for r in seen if r.url.path.endswith("sdkmessagefilters")]
        assert "sdkmessageid/name eq 'CreateMultiple' and primaryobjecttypecode eq 'product'" in checks
        assert "sdkmessageid/name eq 'CreateMultiple' and primaryobjecttypecode eq 'account'" in checks


class TestConnectionAndLogs:
    def test_test_connection_success(self, make_hook: Callable[..., Any]) -> None:
        hook = make_hook(
            "dataverse", lambda r: odata_json(200, {"@odata.context": f"{DV_ROOT}/$metadata", "value": []})
        )
        ok, message = hook.test_connection()
        assert ok
        assert message == f"Connected to Dataverse at {DV_ROOT}/ as client client-id (HTTP 200)"

    def test_test_connection_failure_is_readable(self, make_hook: Callable[..., Any]) -> None:
        body = {"error": {"code": "0x80072560", "message": "The user is not a member of the organization."}}
        hook = make_hook("fno", lambda r: odata_json(403, body))
        ok, message = hook.test_connection()
        assert not ok
        assert "HTTP 403 0x80072560: The user is not a member of the organization." in message

    def test_no_secret_or_token_in_any_log_line(
        self,
        make_hook: Callable[..., Any],
        fake_tokens: list[Any],
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Both log paths: stdlib logging (httpx, msal, helpers) and the hook's structlog output."""
        calls = 0

        def handler(request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            if calls == 1:
                return odata_json(401, {"error": {"code": "", "message": "The access token has expired."}})
            if calls == 2:
                raise httpx.ReadError("connection reset by peer")
            return account_page(1, 3, None)

        caplog.set_level(logging.DEBUG)
        hook = make_hook("dataverse", handler)
        frames = list(hook.iter_pages("accounts", select=["name"]))
        assert len(frames[0]) == 3
        tokens = [entry["secret"] for provider in fake_tokens for entry in provider._app.cached]
        assert fake_tokens[0].tokens_acquired == 2
        captured = capsys.readouterr()
        text = (
            captured.out + captured.err + caplog.text + "".join(str(record.args) for record in caplog.records)
        )
        assert "Read accounts done: 1 page(s), 3 row(s)" in text
        assert "answered 401 (1 for this request); new token" in text
        assert SECRET not in text
        for token in [*tokens, "unit-token-1", "unit-token-2"]:
            assert token not in text
