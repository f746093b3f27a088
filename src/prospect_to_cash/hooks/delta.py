"""Dataverse change tracking reads: what a delta page holds, and the typed result.

powerapps-docs ``use-change-tracking-synchronize-data-external-systems.md``: a read with
``Prefer: odata.track-changes`` returns every row and, on its last page only, an
``@odata.deltaLink`` whose ``$deltatoken`` later returns what changed since: new and
changed rows first, then ``$deletedEntity`` entries (``{"id", "reason": "deleted"}``).
Only ``$select`` may shape such a read. Callers keep the token, not the link: the link is
the same query with the token, and rebuilding it keeps the ``$select`` under the caller's
control.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from prospect_to_cash.hooks.errors import DynamicsAPIError
from prospect_to_cash.hooks.odata import page_to_frame

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

_DELETED_ENTITY = "/$deletedEntity"


@dataclass(frozen=True)
class DeltaRead:
    """The outcome of one tracked read of a table.

    :param changed: new and changed rows (every row on a first read), exactly the
        selected columns, in the service's order (by version); empty when the caller took
        the pages as they came (``on_page``).
    :param deleted_ids: primary keys of rows deleted since the token (lowercase GUIDs),
        including rows created and deleted between two reads; empty on a first read.
    :param delta_token: the ``$deltatoken`` to pass next time (opaque, not a secret).
    :param initial: True when no token was given: ``changed`` is the whole table.
    :param rows: new and changed rows read (also those handed to ``on_page``).
    """

    changed: pd.DataFrame
    deleted_ids: tuple[str, ...]
    delta_token: str
    initial: bool
    pages: int = 0
    select: tuple[str, ...] = field(default=())
    rows: int = 0


class DeltaCollector:
    """Accumulates the pages of a tracked read into a `DeltaRead`."""

    def __init__(
        self, select: Sequence[str], *, initial: bool, on_page: Callable[[pd.DataFrame], None] | None = None
    ) -> None:
        self.select = tuple(select)
        self.initial = initial
        self.on_page = on_page
        self.frames: list[pd.DataFrame] = []
        self.deleted: list[str] = []
        self.pages = 0
        self.rows = 0
        self.delta_link: str | None = None

    def add(self, payload: Mapping[str, Any], url: str) -> None:
        records = payload.get("value")
        if not isinstance(records, list):
            raise DynamicsAPIError(200, None, "delta response without a 'value' array", url)
        self.pages += 1
        rows = []
        for record in records:
            if str(record.get("@odata.context", "")).endswith(_DELETED_ENTITY):
                self.deleted.append(str(record["id"]).lower())
            else:
                rows.append(record)
        if rows:
            frame = page_to_frame(rows, self.select)
            self.rows += len(frame)
            if self.on_page is None:
                self.frames.append(frame)
            else:
                self.on_page(frame)
        link = payload.get("@odata.deltaLink")
        if link:
            self.delta_link = str(link)

    def result(self, url: str) -> DeltaRead:
        if self.delta_link is None:
            raise DynamicsAPIError(200, None, "tracked read ended without an @odata.deltaLink", url)
        changed = pd.concat(self.frames, ignore_index=True) if self.frames else page_to_frame([], self.select)
        return DeltaRead(
            changed=changed,
            deleted_ids=tuple(dict.fromkeys(self.deleted)),
            delta_token=delta_token_of(self.delta_link),
            initial=self.initial,
            pages=self.pages,
            select=self.select,
            rows=self.rows,
        )


def delta_token_of(delta_link: str) -> str:
    """The ``$deltatoken`` value of a delta link (decoded)."""
    tokens = parse_qs(urlsplit(delta_link).query).get("$deltatoken")
    if not tokens:
        raise DynamicsAPIError(200, None, "@odata.deltaLink without a $deltatoken", delta_link)
    return tokens[0]
