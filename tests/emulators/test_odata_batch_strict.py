"""The $batch library's tolerance and strictness (what it accepts beyond Microsoft's examples,
what it refuses with the documented 400s) and a property-based round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.odata.batch import (
    DATAVERSE_LIMITS,
    BatchLimits,
    BatchRequest,
    boundary_of,
    iter_requests,
    parse_batch,
    relative_to_root,
    resolve_reference,
    resolve_url,
)
from emulators.odata.errors import ODataError

ROOT = "https://org.example.com/api/data/v9.2/"


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
