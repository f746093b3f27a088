"""What callers hand to a hook to write, and what they get back per record.

The sync engine builds `WriteOperation`s from its plan and dead-letters every
`WriteOutcome` that is not `ok`; the hooks decide how to batch them on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


#: ``WriteOutcome.error_code`` of a write the hooks gave up on after repeated interruptions
#: (no answer, status 0): not applied as far as a read-back tells, so sending it again later
#: may well succeed, unlike a refusal of the row's data.
INTERRUPTED = "interrupted"


class WriteKind(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    UPSERT = "upsert"  # Dataverse only: PATCH or UpsertMultiple by primary or alternate key
    DELETE = "delete"


@dataclass(frozen=True)
class WriteOperation:
    """One record to write.

    :param kind: create, update, upsert or delete.
    :param entity_set: target entity set, exactly as the service spells it.
    :param key: the row's identity. Dataverse: ``{"<primary id column>": "<guid>"}`` or the
        columns of an alternate key; F&O: every key field including ``dataAreaId``.
        For a Dataverse create, a primary-key GUID chosen by the caller makes the create
        idempotent (a retry answers 412 instead of inserting a second row).
    :param body: the fields to send (for Dataverse lookups, ``<nav>@odata.bind`` entries).
    :param ref: the caller's identifier for the record, echoed in its outcome.
    """

    kind: WriteKind
    entity_set: str
    key: Mapping[str, Any]
    body: Mapping[str, Any] = field(default_factory=dict)
    ref: str = ""


@dataclass(frozen=True)
class WriteOutcome:
    """The service's answer for one `WriteOperation`.

    ``ok`` is true when the row is in the state asked for. ``status`` is the HTTP status of
    the record's own response (inside a batch, the part's status). ``error_code`` and
    ``message`` come from the service's error body. ``entity_id`` is the Dataverse GUID
    of a created or upserted row when the service reports it.
    """

    ref: str
    ok: bool
    status: int
    error_code: str | None = None
    message: str | None = None
    entity_id: str | None = None
    attempts: int = 1
