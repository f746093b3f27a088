"""What the Dataverse service passes around: a call, its answer, where an entity set lives.

Shared by the reads, writes and routing modules so each can build replies without importing
the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulators.dataverse.prefer import Preferences, parse_prefer
from emulators.odata.batch import Headers, OperationResponse

if TYPE_CHECKING:
    from collections.abc import Iterable

    from emulators.odata.errors import ODataError
    from emulators.schema.model import Catalog
    from emulators.store import Store

JSON_TYPE = "application/json; odata.metadata=minimal"
MAX_GET_URL = 32 * 1024
MAX_COUNT = 5000
ROWS_PER_OPERATION = 100
ALL_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS", "MERGE"]
BULK_ACTIONS = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")


@dataclass
class Reply:
    """A service answer, before it becomes an HTTP response or a batch part."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    entity_url: str | None = None  # the row a write touched, for $<Content-ID> references

    @classmethod
    def json(cls, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Reply:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(status, [("Content-Type", JSON_TYPE), ("OData-Version", "4.0"), *headers], body)

    @classmethod
    def error(cls, exc: ODataError) -> Reply:
        return cls.json(exc.status, {"error": {"code": exc.code, "message": exc.message}})

    @classmethod
    def empty(cls, status: int = 204, headers: Iterable[tuple[str, str]] = ()) -> Reply:
        return cls(status, [("OData-Version", "4.0"), *headers])


@dataclass
class Call:
    """One request as the dispatcher sees it (direct or a batch part)."""

    method: str
    path: str  # decoded, relative to the service root
    query: list[tuple[str, str]]
    headers: Headers
    body: bytes
    in_batch: bool = False
    references: dict[str, str] | None = None

    @property
    def prefs(self) -> Preferences:
        return parse_prefer(self.headers.get_all("Prefer"))


@dataclass(frozen=True)
class Source:
    """Where an entity set lives: the business store, or the read-only system store."""

    store: Store
    catalog: Catalog
    writable: bool


class Rollback(Exception):
    """Abort a change set; the failing part's answer becomes the change set's answer."""

    def __init__(self, answer: OperationResponse) -> None:
        self.answer = answer


def operation(reply: Reply, content_id: str | None) -> OperationResponse:
    """A reply as one part of a ``$batch`` answer."""
    return OperationResponse(reply.status, list(reply.headers), reply.body, content_id)
