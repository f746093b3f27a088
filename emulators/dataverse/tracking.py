"""Change tracking of the Web API: ``Prefer: odata.track-changes`` and ``$deltatoken``.

Follows powerapps-docs ``use-change-tracking-synchronize-data-external-systems.md``:

* only tables with ``ChangeTrackingEnabled`` answer; the answer to the first request carries
  ``Preference-Applied: odata.track-changes``;
* ``$select`` works, ``$filter``, ``$orderby``, ``$expand`` and ``$top`` are refused;
* the last page (only) carries ``@odata.deltaLink`` with a ``$deltatoken``
  (``<version>!<MM/dd/yyyy HH:mm:ss>``, the shape of the documented example); pages before it
  carry ``@odata.nextLink`` like any query (``odata.maxpagesize`` applies);
* a delta answer lists new and changed rows first, by version, then one ``$deletedEntity``
  per deleted row (``"reason": "deleted"``), including rows created after the token;
* a token older than ``change_tracking_expiry_seconds`` (default 7 days, the organization's
  ExpireChangeTrackingInDays) is refused with the ExpiredVersionStamp error.

The answer is a snapshot: the first page fixes the highest version it covers, so changes
made while a client pages through come in the next delta, never twice or not at all.
Deletions are kept in ``_dataverse_deleted`` inside the service's store.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from emulators.config import CHANGE_TRACKING_EXPIRY_SECONDS, DataverseServiceConfig
from emulators.dataverse import errors
from emulators.dataverse.calls import ROWS_PER_OPERATION, Reply
from emulators.dataverse.paging import link_with, next_link
from emulators.dataverse.records import Renderer, storage_columns
from emulators.odata.errors import ODataError
from emulators.store import quote

if TYPE_CHECKING:
    from emulators.dataverse.calls import Call, Source
    from emulators.dataverse.reads import DataverseReads
    from emulators.odata.query import QueryOptions
    from emulators.schema.model import Table
    from emulators.store import Store

#: The options the docs list as unsupported with ``Prefer: odata.track-changes``.
REFUSED_OPTIONS = ("$filter", "$orderby", "$expand", "$top")
DELETED_TABLE = "_dataverse_deleted"
_TOKEN_FORMAT = "%m/%d/%Y %H:%M:%S"
_TOKEN_RE = re.compile(r"^(\d+)!(\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2})$")
_COOKIE_RE = re.compile(
    r'^<cookie pagenumber="(\d+)" pagingcookie="([A-Za-z0-9_\-=]*)" istracking="True" />$'
)


@dataclass(frozen=True)
class DeltaToken:
    """Where a delta starts: the highest version the client has seen, and when it was issued."""

    version: int
    issued: datetime

    def encode(self) -> str:
        return f"{self.version}!{self.issued.strftime(_TOKEN_FORMAT)}"

    @classmethod
    def parse(cls, text: str) -> DeltaToken:
        match = _TOKEN_RE.match(text.strip())
        if match is None:
            raise errors.invalid_delta_token(text)
        try:
            issued = datetime.strptime(match.group(2), _TOKEN_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            raise errors.invalid_delta_token(text) from None
        return cls(int(match.group(1)), issued)


@dataclass(frozen=True)
class TrackingCookie:
    """The ``$skiptoken`` of a tracked read: the snapshot's top version, and the (version,
    id) of the last row or deletion sent, per phase (``rows`` then ``deleted``)."""

    page: int
    upto: int
    phase: str
    after: tuple[int, str] | None

    def encode(self) -> str:
        data = {"upto": self.upto, "phase": self.phase, "after": list(self.after) if self.after else None}
        payload = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()
        return f'<cookie pagenumber="{self.page}" pagingcookie="{payload}" istracking="True" />'

    @classmethod
    def parse(cls, text: str) -> TrackingCookie | None:
        """The cookie, or None when ``text`` is not a tracking cookie (an ordinary one)."""
        match = _COOKIE_RE.match(text.strip())
        if match is None:
            return None
        invalid = ODataError(400, errors.INVALID_ARGUMENT, "The paging cookie in $skiptoken is not valid.")
        try:
            data = json.loads(base64.urlsafe_b64decode(match.group(2).encode()))
            after = data["after"]
            cookie = cls(
                int(match.group(1)),
                int(data["upto"]),
                str(data["phase"]),
                (int(after[0]), str(after[1])) if after else None,
            )
        except (ValueError, TypeError, KeyError, IndexError):
            raise invalid from None
        if cookie.phase not in ("rows", "deleted"):
            raise invalid
        return cookie


class Deletions:
    """The deleted rows of every tracked table, with the version of their deletion."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.execute_write(
            f"CREATE TABLE IF NOT EXISTS {DELETED_TABLE} "
            "(entity_set TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, "
            "PRIMARY KEY (entity_set, version, id))"
        )

    def record(self, table: Table, row_id: str, version: int) -> None:
        if table.change_tracking:
            self.store.execute_write(
                f"INSERT INTO {DELETED_TABLE} (entity_set, id, version) VALUES (?, ?, ?)",
                [table.entity_set, str(row_id), version],
            )

    def max_version(self) -> int:
        return int(self.store.execute(f"SELECT MAX(version) FROM {DELETED_TABLE}")[0][0] or 0)

    def since(
        self, table: Table, since: int, upto: int, after: tuple[int, str] | None, limit: int
    ) -> list[tuple[int, str]]:
        """(version, id) of rows deleted in (since, upto] that do not exist again, in order."""
        where = "entity_set = ? AND version > ? AND version <= ?"
        params: list[Any] = [table.entity_set, since, upto]
        if after is not None:
            where += " AND (version > ? OR (version = ? AND id > ?))"
            params += [after[0], after[0], after[1]]
        key = quote(table.key[0])
        sql = (
            f"SELECT version, id FROM {DELETED_TABLE} WHERE {where} "
            f"AND id NOT IN (SELECT {key} FROM {quote(table.entity_set)} WHERE {key} IS NOT NULL) "
            "ORDER BY version, id LIMIT ?"
        )
        return [(int(r[0]), str(r[1])) for r in self.store.execute(sql, [*params, limit])]


def is_tracked(call: Call, options: QueryOptions) -> bool:
    """Whether a query is a change tracking read (first page, next page or delta)."""
    if call.prefs.track_changes or options.deltatoken is not None:
        return True
    return options.skiptoken is not None and TrackingCookie.parse(options.skiptoken) is not None


def refuse_options(call: Call) -> None:
    """Refuse the documented unsupported options before anything else looks at them."""
    names = {name for name, _ in call.query}
    for option in REFUSED_OPTIONS:
        if option in names:
            raise errors.tracking_option_refused(option)


def tracked_query(
    reads: DataverseReads, call: Call, source: Source, table: Table, options: QueryOptions
) -> Reply:
    """One page of a change tracking read."""
    if not source.writable or not table.change_tracking:
        raise errors.tracking_not_enabled(table.logical_name)
    now = datetime.now(timezone.utc)
    since = 0
    if options.deltatoken is not None:
        token = DeltaToken.parse(options.deltatoken)
        settings = reads.ctx.settings
        expiry = (
            settings.change_tracking_expiry_seconds
            if isinstance(settings, DataverseServiceConfig)
            else CHANGE_TRACKING_EXPIRY_SECONDS
        )
        if token.version > reads.current_version():
            raise errors.invalid_delta_token(options.deltatoken)
        if now - token.issued > timedelta(seconds=expiry):
            raise errors.expired_version_stamp()
        since = token.version
    cookie = TrackingCookie.parse(options.skiptoken) if options.skiptoken is not None else None
    if options.skiptoken is not None and cookie is None:
        raise ODataError(400, errors.INVALID_ARGUMENT, "The paging cookie in $skiptoken is not valid.")
    page = cookie.page if cookie else 1
    upto = cookie.upto if cookie else reads.current_version()
    phase = cookie.phase if cookie else "rows"
    after = cookie.after if cookie else None

    prefs = call.prefs
    size = prefs.page_size
    selected = reads.selected(table, options)
    rows: list[dict[str, Any]] = []
    deleted: list[tuple[int, str]] = []
    more = False
    last: tuple[int, str] | None = None
    if phase == "rows":
        rows = _changed_rows(source.store, table, selected, since, upto, after, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        if more:
            last = (int(rows[-1].get("versionnumber") or 0), str(rows[-1][table.key[0]]))
        elif since > 0:  # a delta: deletions follow the rows, on this page if room is left
            phase, after = "deleted", None
    if phase == "deleted":
        room = size - len(rows)
        deleted = reads.deletions.since(table, since, upto, after, room + 1)
        more = len(deleted) > room
        deleted = deleted[:room]
        last = deleted[-1] if deleted else after

    renderer = Renderer(source.catalog, table, selected, prefs, reads.lookup_names(source))
    context = reads.context_url(table, options, "/$delta" if since else "")
    values = renderer.render(rows)
    values += [
        {
            "@odata.context": f"{reads.root}$metadata#{table.entity_set}/$deletedEntity",
            "id": row_id,
            "reason": "deleted",
        }
        for _, row_id in deleted
    ]
    payload: dict[str, Any] = {"@odata.context": context}
    base = f"{reads.root}{table.entity_set}"
    if more:
        next_cookie = TrackingCookie(page + 1, upto, phase, last)
        payload["@odata.nextLink"] = next_link(base, list(call.query), next_cookie.encode())
    else:
        token = DeltaToken(upto, now).encode()
        payload["@odata.deltaLink"] = link_with(base, list(call.query), "$deltatoken", token)
    payload["value"] = values
    reads.ctx.charge_operations(1 + -(-len(values) // ROWS_PER_OPERATION))
    reads.ctx.record_read(len(values), table.entity_set)
    headers = reads.applied(prefs, page_size=True)
    if prefs.track_changes:
        headers = _with_tracking(headers)
    return Reply.json(200, payload, headers)


def _with_tracking(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``Preference-Applied`` with ``odata.track-changes`` added to what else was applied."""
    others = [value for name, value in headers if name == "Preference-Applied"]
    applied = ",".join(["odata.track-changes", *others])
    return [*[(n, v) for n, v in headers if n != "Preference-Applied"], ("Preference-Applied", applied)]


def _changed_rows(
    store: Store,
    table: Table,
    selected: list[Any],
    since: int,
    upto: int,
    after: tuple[int, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Rows whose version is in (since, upto], by version then id, after ``after``."""
    version = f"COALESCE({quote(table.entity_set)}.{quote('versionnumber')}, 0)"
    key = f"{quote(table.entity_set)}.{quote(table.key[0])}"
    where = f"{version} > ? AND {version} <= ?"
    params: list[Any] = [since, upto]
    if after is not None:
        where += f" AND ({version} > ? OR ({version} = ? AND {key} > ?))"
        params += [after[0], after[0], after[1]]
    columns = list(dict.fromkeys([*storage_columns(table, selected), "versionnumber", table.key[0]]))
    return store.query(
        table.entity_set,
        where,
        params,
        order_by=[f"{version} ASC", f"{key} ASC"],
        limit=limit,
        columns=columns,
    )
