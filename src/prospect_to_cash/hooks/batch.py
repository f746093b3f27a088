"""OData ``$batch`` in its multipart/mixed form: request encoding and response decoding.

Both services speak the OData 4.0 multipart batch format (Dataverse documents it in
"Execute batch operations using the Web API"): top-level parts are single requests
(``Content-Type: application/http``) or change sets (a nested ``multipart/mixed`` whose
requests are applied atomically). A change set that fails is answered by one response
for the whole set, not one per request.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

CRLF = b"\r\n"
_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_STATUS_LINE = re.compile(rb"^HTTP/\d(?:\.\d)?\s+(\d{3})(?:\s+(.*))?$")


class BatchFormatError(ValueError):
    """A batch response that cannot be decoded."""


@dataclass(frozen=True)
class BatchRequest:
    """One request inside a batch.

    :param method: HTTP method.
    :param url: absolute URL (both services accept absolute URLs inside a batch).
    :param headers: the request's own headers (``Content-Type`` for a body, ``If-Match``...).
    :param body: the request body, already serialized.
    :param content_id: ``Content-ID`` inside a change set; echoed in the response.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_id: str | None = None


@dataclass(frozen=True)
class BatchResponse:
    """One response decoded from a batch.

    ``changeset`` is the position of the change set the response belongs to (None for a
    top-level response, which is also how a failed change set is answered).
    """

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes
    content_id: str | None = None
    changeset: int | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


def _encode_request(request: BatchRequest) -> bytes:
    lines = [b"Content-Type: application/http", b"Content-Transfer-Encoding: binary"]
    if request.content_id is not None:
        lines.append(b"Content-ID: " + request.content_id.encode("ascii"))
    lines.append(b"")
    lines.append(f"{request.method.upper()} {request.url} HTTP/1.1".encode())
    for name, value in request.headers.items():
        lines.append(f"{name}: {value}".encode())
    lines.append(b"")
    head = CRLF.join(lines) + CRLF
    return head + (request.body or b"")


def encode_batch(
    items: Sequence[BatchRequest | Sequence[BatchRequest]], *, boundary: str | None = None
) -> tuple[str, bytes]:
    """Encode a batch body.

    :param items: single requests and change sets (a sequence of requests), in order.
    :param boundary: the batch boundary; random when not given.
    :return: the ``Content-Type`` header value and the body.
    """
    batch_boundary = boundary or f"batch_{uuid.uuid4()}"
    out: list[bytes] = []
    for item in items:
        out.append(f"--{batch_boundary}".encode() + CRLF)
        if isinstance(item, BatchRequest):
            out.append(_encode_request(item) + CRLF)
            continue
        changeset_boundary = f"changeset_{uuid.uuid4()}"
        out.append(f"Content-Type: multipart/mixed; boundary={changeset_boundary}".encode() + CRLF + CRLF)
        for request in item:
            if request.method.upper() == "GET":
                raise ValueError("GET requests are not allowed inside a change set")
            out.append(f"--{changeset_boundary}".encode() + CRLF)
            out.append(_encode_request(request) + CRLF)
        out.append(f"--{changeset_boundary}--".encode() + CRLF)
    out.append(f"--{batch_boundary}--".encode() + CRLF)
    return f"multipart/mixed; boundary={batch_boundary}", b"".join(out)


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a multipart Content-Type."""
    match = _BOUNDARY.search(content_type or "")
    if not match:
        raise BatchFormatError(f"no boundary in Content-Type {content_type!r}")
    return match.group(1) or match.group(2)


def _split_lines(block: bytes) -> list[bytes]:
    return [line[:-1] if line.endswith(b"\r") else line for line in block.split(b"\n")]


def _split_head(block: bytes) -> tuple[dict[str, str], bytes]:
    """Split MIME/HTTP headers from the content at the first empty line (CRLF or LF)."""
    match = re.search(rb"\r?\n\r?\n", block)
    if match is None:
        head, body = block, b""
    else:
        head, body = block[: match.start()], block[match.end() :]
    headers: dict[str, str] = {}
    for line in _split_lines(head):
        if not line.strip():
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            headers.setdefault("", line.decode("latin-1").strip())
            continue
        headers[name.decode("latin-1").strip()] = value.decode("latin-1").strip()
    return headers, body


def _parts(body: bytes, boundary: str) -> list[bytes]:
    """The encapsulated parts between ``--boundary`` delimiters (preamble and epilogue dropped).

    A delimiter is ``--boundary`` at the start of a line, optionally followed by ``--`` (the
    close delimiter) and transport padding up to the end of its line; the line break before
    it belongs to it. Candidates are found with ``bytes.find``: a response carries every
    written record back, and a regex that can start at any byte is slow on megabytes.
    """
    marker = b"--" + boundary.encode("latin-1")
    size = len(body)
    parts: list[bytes] = []
    position: int | None = None
    closed = False
    index = body.find(marker)
    while index >= 0:
        after = index + len(marker)
        if index > 0 and body[index - 1] != 0x0A:  # not at the start of a line
            index = body.find(marker, index + 1)
            continue
        is_close = body.startswith(b"--", after)
        cursor = after + 2 if is_close else after
        while cursor < size and body[cursor] in (0x20, 0x09):
            cursor += 1
        if cursor < size and body[cursor] == 0x0A:
            line_end = cursor + 1
        elif body.startswith(b"\r\n", cursor):
            line_end = cursor + 2
        elif cursor >= size:
            line_end = size
        else:  # the boundary text followed by more text on its line: content, not a delimiter
            index = body.find(marker, index + 1)
            continue
        part_end = index
        if index > 0:
            part_end = index - 2 if index >= 2 and body[index - 2] == 0x0D else index - 1
        if position is not None:
            parts.append(body[position:part_end])
        if is_close:
            closed = True
            break
        position = line_end
        index = body.find(marker, line_end)
    if position is None:
        raise BatchFormatError("batch body has no part delimited by its boundary")
    if not closed:
        raise BatchFormatError("batch body is truncated: the closing boundary is missing")
    return parts


def _get(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _decode_http(block: bytes, content_id: str | None, changeset: int | None) -> BatchResponse:
    match = re.search(rb"\r?\n", block)
    status_line = block if match is None else block[: match.start()]
    rest = b"" if match is None else block[match.end() :]
    parsed = _STATUS_LINE.match(status_line.strip())
    if not parsed:
        raise BatchFormatError(f"not an HTTP status line: {status_line[:80]!r}")
    blank = re.match(rb"\r?\n", rest)
    if blank:
        # The status line is followed directly by the empty line: no headers.
        headers: dict[str, str] = {}
        body = rest[blank.end() :]
    else:
        headers, body = _split_head(rest)
    return BatchResponse(
        status=int(parsed.group(1)),
        reason=(parsed.group(2) or b"").decode("latin-1").strip(),
        headers=headers,
        body=body,
        content_id=content_id,
        changeset=changeset,
    )


def decode_batch_response(content_type: str, body: bytes) -> list[BatchResponse]:
    """Decode a multipart batch response into its responses, change sets flattened in order.

    :param content_type: the response's ``Content-Type`` (carries the boundary).
    :param body: the raw response body.
    """
    responses: list[BatchResponse] = []
    changeset_index = 0
    for part in _parts(body, boundary_of(content_type)):
        headers, content = _split_head(part)
        raw_type = _get(headers, "Content-Type") or ""
        part_type = raw_type.lower()
        if part_type.startswith("multipart/mixed"):
            for inner in _parts(content, boundary_of(raw_type)):
                inner_headers, inner_content = _split_head(inner)
                responses.append(
                    _decode_http(inner_content, _get(inner_headers, "Content-ID"), changeset_index)
                )
            changeset_index += 1
        elif part_type.startswith("application/http"):
            responses.append(_decode_http(content, _get(headers, "Content-ID"), None))
        else:
            raise BatchFormatError(f"unexpected batch part Content-Type {part_type!r}")
    return responses
