"""OData v4 ``$batch`` in its multipart/mixed form, as Dataverse and F&O both speak it.

Parsing turns a request body into top-level requests and change sets (nested
multipart/mixed parts) without executing anything; the service app runs each request
through its ordinary dispatch, so a batched request behaves exactly like a direct one.
Building turns the app's per-request answers back into a ``batchresponse_<uuid>``
multipart body.

The parser is strict where Microsoft.OData.Core is strict (missing ``Content-Type``,
wrong ``Content-Transfer-Encoding``, bad request lines, nested change sets, GET in a
change set, duplicate ``Content-ID`` in a change set) and tolerant where real clients
vary (LF or CRLF line ends, preambles, epilogues, quoted boundaries, header spacing).
Error texts are ODL's own, so a client sees what it would see from the real service.

Policy stays with the caller: how many requests a batch may hold (:class:`BatchLimits`),
whether to stop at the first failure (:func:`prefers_continue_on_error`,
:class:`BatchResponseWriter`), and what ``$1`` means (:func:`resolve_url`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

from emulators.odata.errors import ODataError

CRLF = b"\r\n"
CHANGESET_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "MERGE"})

DATAVERSE_MAX_REQUESTS = 1000  # powerapps-docs: "Batch requests can contain up to 1000 individual requests"
FNO_MAX_REQUESTS = 5000  # docs/reference: F&O batches hold up to 5000 operations


class Headers:
    """Ordered, case-insensitive HTTP headers that keep the names as written."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(name, value) for name, value in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        for key, value in self._items:
            if key.lower() == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._items if key.lower() == wanted]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def as_dict(self) -> dict[str, str]:
        """Lower-cased names to the last value, for code that wants a plain mapping."""
        return {key.lower(): value for key, value in self._items}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass
class BatchRequest:
    """One operation of a batch: an HTTP request carried in an ``application/http`` part.

    :param method: HTTP method, upper case.
    :param url: request target as written (absolute, ``/absolute-path``, relative or ``$1...``).
    :param headers: the operation's own HTTP headers.
    :param body: the operation's body bytes (empty when it has none).
    :param content_id: the part's ``Content-ID``, used for ``$<id>`` references and echoed back.
    :param part_headers: the MIME part headers around the operation.
    :param changeset: boundary of the enclosing change set, ``None`` at top level.
    """

    method: str
    url: str
    headers: Headers
    body: bytes = b""
    content_id: str | None = None
    part_headers: Headers = field(default_factory=Headers)
    changeset: str | None = None
    http_version: str = "HTTP/1.1"


@dataclass
class ChangeSet:
    """An atomic group of requests (a nested multipart/mixed part)."""

    boundary: str
    requests: list[BatchRequest]


BatchItem = BatchRequest | ChangeSet


@dataclass(frozen=True)
class BatchLimits:
    """What a service accepts in one ``$batch``.

    :param max_requests: most operations in the whole batch (change-set members count one each).
    :param max_changeset_requests: most operations in one change set.
    :param allow_get_in_changeset: OData and Dataverse forbid GET in change sets.
    """

    max_requests: int | None = None
    max_changeset_requests: int | None = None
    allow_get_in_changeset: bool = False


DATAVERSE_LIMITS = BatchLimits(max_requests=DATAVERSE_MAX_REQUESTS)
FNO_LIMITS = BatchLimits(max_requests=FNO_MAX_REQUESTS)


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

_PARAM_RE = re.compile(r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')


def media_type(content_type: str) -> str:
    """The lower-cased ``type/subtype`` of a Content-Type value."""
    return content_type.split(";", 1)[0].strip().lower()


def content_type_parameters(content_type: str) -> dict[str, str]:
    """Parameters of a Content-Type value, lower-cased names, quotes removed."""
    params: dict[str, str] = {}
    for name, raw in _PARAM_RE.findall(content_type):
        value = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else raw
        params[name.lower()] = value
    return params


def boundary_of(content_type: str | None, *, error_code: str = "") -> str:
    """Extract the ``boundary`` of a ``multipart/mixed`` Content-Type, or raise a 400."""
    if not content_type or media_type(content_type) != "multipart/mixed":
        raise ODataError(
            400,
            error_code,
            f"The content type '{content_type or ''}' is not valid for a batch request; "
            "it must be 'multipart/mixed' with a boundary.",
        )
    boundary = content_type_parameters(content_type).get("boundary", "")
    if not boundary or len(boundary) > 70:
        raise ODataError(
            400,
            error_code,
            f"The batch request content type '{content_type}' does not specify a valid boundary parameter.",
        )
    return boundary


def _split_multipart(body: bytes, boundary: str, error_code: str) -> list[bytes]:
    """Cut a multipart body into part bytes by its delimiter lines (RFC 2046 section 5.1.1).

    The line break before a delimiter belongs to the delimiter, so part bodies keep
    exactly their bytes; text before the first delimiter (preamble) and after the
    closing one (epilogue) is ignored.
    """
    delimiter = re.escape(b"--" + boundary.encode("latin-1"))
    # The pattern starts with the literal boundary so the regex engine scans for it quickly;
    # "at the start of a line" is checked by hand (a pattern that may start anywhere is
    # slow on the megabytes of a large batch).
    pattern = re.compile(delimiter + rb"(--)?[ \t]*(?:\r?\n|\Z)")
    parts: list[bytes] = []
    start: int | None = None
    for match in pattern.finditer(body):
        begin = match.start()
        if begin and body[begin - 1] != 0x0A:
            continue  # boundary text inside a line is content
        if start is not None:
            cut = begin - 2 if begin >= 2 and body[begin - 2] == 0x0D else begin - 1
            parts.append(body[start:cut])
        if match.group(1):
            return parts  # an immediate close delimiter is an empty batch
        start = match.end()
    raise ODataError(
        400, error_code, "Encountered an unexpected end of input while reading the batch payload."
    )


def _split_head(data: bytes) -> tuple[list[str], bytes]:
    """Split a part into header lines and the bytes after the first empty line."""
    match = re.search(rb"\r?\n\r?\n", data)
    if data.startswith((b"\r\n", b"\n")):
        head, rest = b"", data[2 if data.startswith(b"\r\n") else 1 :]
    elif match is None:
        head, rest = data, b""
    else:
        head, rest = data[: match.start()], data[match.end() :]
    text = _decode(head)
    return (re.split(r"\r?\n", text) if text else []), rest


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _parse_headers(lines: list[str], error_code: str) -> Headers:
    items: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and items:  # obsolete line folding
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or name != name.strip():
            raise ODataError(
                400,
                error_code,
                f"The message header '{line}' is invalid. The header value must be of the format "
                "'<header name>: <header value>'.",
            )
        items.append((name, value.strip()))
    return Headers(items)


def _parse_operation(
    data: bytes, part_headers: Headers, changeset: str | None, error_code: str, *, allow_get: bool = False
) -> BatchRequest:
    encoding = (part_headers.get("Content-Transfer-Encoding") or "").strip().lower()
    if encoding != "binary":
        raise ODataError(
            400,
            error_code,
            "A missing or invalid 'Content-Transfer-Encoding' header was found. The "
            "'Content-Transfer-Encoding' header must be specified for each batch operation, and its value "
            "must be 'binary'.",
        )
    # Tolerate blank lines between the part headers and the request line.
    stripped = data.lstrip(b"\r\n")
    line_end = re.search(rb"\r?\n", stripped)
    request_line = _decode(stripped if line_end is None else stripped[: line_end.start()])
    rest = b"" if line_end is None else stripped[line_end.end() :]
    pieces = request_line.split(" ")
    if len(pieces) != 3 or not pieces[0] or not pieces[1]:
        raise ODataError(
            400,
            error_code,
            f"The request line '{request_line}' is invalid. The request line at the start of each operation "
            "must be of the format 'HttpMethod RequestUrl HttpVersion'.",
        )
    method, url, version = pieces
    if method not in KNOWN_METHODS:
        raise ODataError(
            400,
            error_code,
            f"The request line '{request_line}' is invalid. The request line at the start of each operation "
            "must be of the format 'HttpMethod RequestUrl HttpVersion'.",
        )
    if version != "HTTP/1.1":
        raise ODataError(
            400,
            error_code,
            f"The HTTP version '{version}' used in a batch operation request or response is not valid. "
            "The value must be 'HTTP/1.1'.",
        )
    if rest.startswith((b"\r\n", b"\n")):
        header_lines: list[str] = []
        body = rest[2 if rest.startswith(b"\r\n") else 1 :]
    else:
        header_lines, body = _split_head(rest)
    headers = _parse_headers(header_lines, error_code)
    content_id = part_headers.get("Content-ID") or headers.get("Content-ID")
    if changeset is not None and method not in CHANGESET_METHODS and not (allow_get and method == "GET"):
        raise ODataError(
            400,
            error_code,
            f"An invalid HTTP method '{method}' was detected for a request in a change set. Requests in "
            "change sets only support the HTTP methods 'POST', 'PUT', 'DELETE', and 'PATCH'.",
        )
    return BatchRequest(
        method=method,
        url=url,
        headers=headers,
        body=body,
        content_id=content_id.strip() if content_id else None,
        part_headers=part_headers,
        changeset=changeset,
        http_version=version,
    )


def _part_content_type_error(value: str, error_code: str) -> ODataError:
    return ODataError(
        400,
        error_code,
        f"The 'Content-Type' header value '{value}' is invalid. When this is the start of the change set, "
        "the value must be 'multipart/mixed'; otherwise it must be 'application/http'.",
    )


def parse_batch(
    body: bytes,
    content_type: str | None,
    limits: BatchLimits | None = None,
    *,
    error_code: str = "",
) -> list[BatchItem]:
    """Parse a ``$batch`` request body into requests and change sets, in order.

    :param body: the raw request body.
    :param content_type: the request's Content-Type (``multipart/mixed; boundary=...``).
    :param limits: what the service accepts; ``None`` means no count limits but still no
        GET inside a change set.
    :param error_code: the ``code`` the service puts on its batch-format 400s.
    :raises ODataError: 400 for malformed input or exceeded limits.
    """
    limits = limits or BatchLimits()
    boundary = boundary_of(content_type, error_code=error_code)
    items: list[BatchItem] = []
    total = 0
    for raw_part in _split_multipart(body, boundary, error_code):
        head, rest = _split_head(raw_part)
        part_headers = _parse_headers(head, error_code)
        part_type = part_headers.get("Content-Type")
        if part_type is None:
            raise ODataError(
                400,
                error_code,
                "The 'Content-Type' header is missing. The 'Content-Type' header must be specified for each "
                "MIME part of a batch message.",
            )
        kind = media_type(part_type)
        if kind == "application/http":
            items.append(_parse_operation(rest, part_headers, None, error_code))
            total += 1
        elif kind == "multipart/mixed":
            changeset = _parse_changeset(rest, part_type, limits, error_code)
            items.append(changeset)
            total += len(changeset.requests)
        else:
            raise _part_content_type_error(part_type, error_code)
        if limits.max_requests is not None and total > limits.max_requests:
            raise ODataError(
                400,
                error_code,
                "The current batch message contains too many parts. A maximum number of "
                f"'{limits.max_requests}' query operations and change sets are allowed in a batch message.",
            )
    return items


def _parse_changeset(data: bytes, content_type: str, limits: BatchLimits, error_code: str) -> ChangeSet:
    boundary = boundary_of(content_type, error_code=error_code)
    requests: list[BatchRequest] = []
    seen_ids: set[str] = set()
    for raw_part in _split_multipart(data, boundary, error_code):
        head, rest = _split_head(raw_part)
        part_headers = _parse_headers(head, error_code)
        part_type = part_headers.get("Content-Type")
        if part_type is None:
            raise ODataError(
                400,
                error_code,
                "The 'Content-Type' header is missing. The 'Content-Type' header must be specified for each "
                "MIME part of a batch message.",
            )
        kind = media_type(part_type)
        if kind == "multipart/mixed":
            raise ODataError(400, error_code, "Nested change sets in a batch payload are not supported.")
        if kind != "application/http":
            raise _part_content_type_error(part_type, error_code)
        request = _parse_operation(
            rest, part_headers, boundary, error_code, allow_get=limits.allow_get_in_changeset
        )
        if request.content_id is not None:
            if request.content_id in seen_ids:
                raise ODataError(
                    400,
                    error_code,
                    f"The content ID '{request.content_id}' was found more than once in the same change set "
                    "or same batch request. Content IDs have to be unique across all operations of a change "
                    "set for OData V4.0 and have to be unique across all operations in the whole batch "
                    "request for OData V4.01.",
                )
            seen_ids.add(request.content_id)
        requests.append(request)
        if limits.max_changeset_requests is not None and len(requests) > limits.max_changeset_requests:
            raise ODataError(
                400,
                error_code,
                "The current change set contains too many operations. A maximum number of "
                f"'{limits.max_changeset_requests}' operations are allowed in a change set.",
            )
    return ChangeSet(boundary, requests)


def iter_requests(items: Iterable[BatchItem]) -> Iterator[BatchRequest]:
    """Every operation of a parsed batch in order, flattening change sets."""
    for item in items:
        if isinstance(item, ChangeSet):
            yield from item.requests
        else:
            yield item


# ---------------------------------------------------------------------------
# URLs and $<Content-ID> references
# ---------------------------------------------------------------------------

_REFERENCE_RE = re.compile(r"^\$([^/?#]+)(.*)$", re.DOTALL)
# Resource paths that start with "$" without being Content-ID references.
_SYSTEM_SEGMENTS = frozenset(
    {"batch", "metadata", "filter", "count", "value", "ref", "entity", "all", "crossjoin"}
)

References = Mapping[str, str] | Callable[[str], str | None]


def _lookup(references: References, content_id: str) -> str | None:
    if callable(references):
        return references(content_id)
    return references.get(content_id)


def resolve_reference(value: str, references: References | None, *, error_code: str = "") -> str | None:
    """Expand ``$<Content-ID>[/rest]`` to the created entity's URL; ``None`` if not a reference.

    Used for request URLs and for body values such as ``"primarycontactid@odata.bind": "$2"``.
    A reference to an id not (yet) created in this change set is the 400 Dataverse documents.
    """
    match = _REFERENCE_RE.match(value)
    if match is None or match.group(1).split("(", 1)[0] in _SYSTEM_SEGMENTS:
        return None
    target = None if references is None else _lookup(references, match.group(1))
    if target is None:
        raise ODataError(
            400, error_code, f"Content-ID Reference: '${match.group(1)}' does not exist in the batch context."
        )
    return target + match.group(2)


def resolve_url(
    url: str, service_root: str, references: References | None = None, *, error_code: str = ""
) -> str:
    """Make an operation's URL absolute: ``$1/x``, ``/api/...``, ``accounts`` or already absolute.

    :param url: the URL from the request line.
    :param service_root: the service root with a trailing slash (``https://host/api/data/v9.2/``).
    :param references: Content-ID to entity URL (mapping or callback) for this change set.
    """
    resolved = resolve_reference(url, references, error_code=error_code)
    if resolved is not None:
        return resolved
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        return url
    root = urlsplit(service_root)
    if url.startswith("/"):
        return f"{root.scheme}://{root.netloc}{url}"
    return service_root.rstrip("/") + "/" + url


def relative_to_root(url: str, service_root: str) -> str | None:
    """The part of an absolute URL after the service root (path and query), or ``None``."""
    root = urlsplit(service_root if service_root.endswith("/") else service_root + "/")
    split = urlsplit(url)
    if (split.scheme.lower(), split.netloc.lower()) != (root.scheme.lower(), root.netloc.lower()):
        return None
    path = root.path if split.path + "/" == root.path else split.path
    if not path.startswith(root.path):
        return None
    return path[len(root.path) :] + (f"?{split.query}" if split.query else "")


# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------


def prefers_continue_on_error(headers: Mapping[str, str] | Headers | Iterable[tuple[str, str]]) -> bool:
    """Whether the client asked ``Prefer: odata.continue-on-error`` (or 4.01's ``continue-on-error``)."""
    if isinstance(headers, Headers):
        values = headers.get_all("Prefer")
    elif isinstance(headers, Mapping):
        values = [value for key, value in headers.items() if key.lower() == "prefer"]
    else:
        values = [value for key, value in headers if key.lower() == "prefer"]
    for value in values:
        for preference in value.split(","):
            name, _, setting = preference.strip().partition("=")
            if name.strip().lower() in ("odata.continue-on-error", "continue-on-error"):
                return setting.strip().lower() not in ("false",)
    return False


@dataclass
class OperationResponse:
    """The answer to one batched operation."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    content_id: str | None = None

    @property
    def failed(self) -> bool:
        return self.status >= 400


@dataclass
class ChangeSetResponse:
    """The answers of a change set that succeeded as a whole.

    A failed change set is answered by the single failing operation's response instead
    (OData 4.0 part 1, 11.7.4), which the writer accepts as a plain :class:`OperationResponse`.
    """

    responses: list[OperationResponse]


ResponseItem = OperationResponse | ChangeSetResponse


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _operation_part(response: OperationResponse, boundary: str) -> bytes:
    lines = [
        f"--{boundary}",
        "Content-Type: application/http",
        "Content-Transfer-Encoding: binary",
    ]
    if response.content_id is not None:
        lines.append(f"Content-ID: {response.content_id}")
    lines += ["", f"HTTP/1.1 {response.status} {_reason(response.status)}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    head = CRLF.join(line.encode("utf-8") for line in lines)
    return head + CRLF + CRLF + response.body + CRLF


def build_batch_response(items: Iterable[ResponseItem], *, boundary: str | None = None) -> tuple[str, bytes]:
    """Render a batch response body; returns ``(content_type, body)``.

    Change sets become nested ``changesetresponse_<uuid>`` parts, every operation part
    carries ``HTTP/1.1 <status> <reason>``, its headers, its body and its Content-ID.
    """
    boundary = boundary or f"batchresponse_{uuid.uuid4()}"
    chunks: list[bytes] = []
    for item in items:
        if isinstance(item, ChangeSetResponse):
            inner = f"changesetresponse_{uuid.uuid4()}"
            chunks.append(
                f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n".encode("ascii")
            )
            for response in item.responses:
                chunks.append(_operation_part(response, inner))
            chunks.append(f"--{inner}--\r\n".encode("ascii"))
        else:
            chunks.append(_operation_part(item, boundary))
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return f"multipart/mixed; boundary={boundary}", b"".join(chunks)


class BatchResponseWriter:
    """Collects answers and applies the stop-or-continue policy the caller chose.

    Without ``continue_on_error`` Dataverse stops at the first failed operation and
    answers the batch with that operation's status, the failure being the last part
    (powerapps-docs, "Handling errors"); with it, every part is answered and the batch
    is 200. F&O answers 200 and keeps going, so its app passes ``continue_on_error=True``.
    """

    def __init__(self, *, continue_on_error: bool) -> None:
        self.continue_on_error = continue_on_error
        self.items: list[ResponseItem] = []
        self.first_failure: OperationResponse | None = None

    def add(self, item: ResponseItem) -> bool:
        """Record an answer; return whether the caller should process the next item."""
        self.items.append(item)
        if isinstance(item, OperationResponse) and item.failed and self.first_failure is None:
            self.first_failure = item
        return self.continue_on_error or self.first_failure is None

    @property
    def status(self) -> int:
        if self.first_failure is not None and not self.continue_on_error:
            return self.first_failure.status
        return 200

    def render(self, *, boundary: str | None = None) -> tuple[int, str, bytes]:
        """``(status, content_type, body)`` of the batch response."""
        content_type, body = build_batch_response(self.items, boundary=boundary)
        return self.status, content_type, body
