"""Resource paths of the Dataverse Web API: segments, key predicates and alternate keys.

A path after the service root looks like ``accounts``, ``accounts(<guid>)``,
``accounts(accountid=<guid>)``, ``contacts(msdynce_contactnumber='CON-1')``,
``accounts/Microsoft.Dynamics.CRM.CreateMultiple`` or
``EntityDefinitions(LogicalName='account')/Attributes``. Key values may contain ``/`` or
``)`` inside quotes, so the splitter is quote-aware rather than a plain ``split('/')``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulators.dataverse import errors
from emulators.odata.errors import ODataError

if TYPE_CHECKING:
    from emulators.schema.model import Table

#: Characters Dataverse cannot take in an alternate key value used in a URL
#: (powerapps-docs "Define alternate keys using Power Apps": / # < > * % & : \ ? +).
FORBIDDEN_KEY_CHARACTERS = frozenset("/#<>*%&:\\?+")

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_GUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


@dataclass(frozen=True)
class Segment:
    """One path segment: a name and the raw text between its parentheses, if any."""

    name: str
    key: str | None = None


@dataclass(frozen=True)
class KeyPredicate:
    """A parsed ``(…)``: one unnamed value, or named values in the order written."""

    value: Any = None
    named: dict[str, Any] = field(default_factory=dict)

    @property
    def is_positional(self) -> bool:
        return not self.named


def split_path(path: str) -> list[Segment]:
    """Split a decoded resource path into segments, keeping quoted key values whole."""
    segments: list[Segment] = []
    i, n = 0, len(path)
    while i < n:
        start = i
        while i < n and path[i] not in "/(":
            i += 1
        name = path[start:i]
        key: str | None = None
        if i < n and path[i] == "(":
            close = _closing_paren(path, i)
            key = path[i + 1 : close]
            i = close + 1
        if i < n and path[i] != "/":
            # Text after ")" that is not a new segment: not a resource Dataverse knows.
            raise errors.segment_not_found(path[start:])
        segments.append(Segment(name, key))
        i += 1  # skip "/"
    return segments


def _closing_paren(path: str, open_at: int) -> int:
    i = open_at + 1
    in_quote = False
    while i < len(path):
        ch = path[i]
        if in_quote:
            if ch == "'":
                if i + 1 < len(path) and path[i + 1] == "'":
                    i += 2
                    continue
                in_quote = False
        elif ch == "'":
            in_quote = True
        elif ch == ")":
            return i
        i += 1
    raise errors.segment_not_found(path)


def parse_key(text: str) -> KeyPredicate:
    """Parse the inside of ``(…)``: ``<guid>``, ``'v'``, ``a='x',b=2`` (quotes doubled inside)."""
    items = _split_top_level(text)
    if len(items) == 1 and "=" not in _unquoted(items[0]):
        return KeyPredicate(value=_literal(items[0].strip()))
    named: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not _NAME_RE.fullmatch(name) or name in named:
            raise ODataError(400, errors.QUERY_ERROR, f"Bad Request - Error in query syntax: '({text})'.")
        named[name] = _literal(raw.strip())
    return KeyPredicate(named=named)


def _unquoted(item: str) -> str:
    """The item with quoted parts removed (to look for a top-level ``=``)."""
    return re.sub(r"'(?:[^']|'')*'", "", item)


def _split_top_level(text: str) -> list[str]:
    parts, current, in_quote, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            if in_quote and i + 1 < len(text) and text[i + 1] == "'":
                current.append("''")
                i += 2
                continue
            in_quote = not in_quote
        if ch == "," and not in_quote:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


class Quoted(str):
    """A key value that was written as a quoted string (a GUID literal is not one)."""


def _literal(raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == "'" and raw[-1] == "'":
        return Quoted(raw[1:-1].replace("''", "'"))
    if _GUID_RE.fullmatch(raw):
        return raw.lower()
    if raw in ("true", "false"):
        return raw == "true"
    if raw == "null":
        return None
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        raise ODataError(400, errors.QUERY_ERROR, f"Bad Request - Error in query syntax: '{raw}'.") from None


@dataclass(frozen=True)
class RowKey:
    """How a URL addresses one row: by primary key, or by an alternate key's columns."""

    primary: str | None = None
    alternate: dict[str, Any] = field(default_factory=dict)
    key_name: str = ""

    def describe(self) -> str:
        if self.primary is not None:
            return self.primary
        return ",".join(f"{k}={v}" for k, v in self.alternate.items())


def resolve_row_key(table: Table, predicate: KeyPredicate) -> RowKey:
    """Check a key predicate against the table's primary and alternate keys.

    The primary key may be written bare (``(<guid>)``) or named (``(accountid=<guid>)``);
    any other set of names must be exactly the columns of one alternate key, else the
    documented "key in the request URI is not valid" error.
    """
    primary_name = table.key[0]
    # ASP.NET refuses these characters in a request path before OData sees the key.
    for value in [predicate.value, *predicate.named.values()]:
        if isinstance(value, str):
            bad = next((ch for ch in value if ch in FORBIDDEN_KEY_CHARACTERS), None)
            if bad is not None:
                raise errors.dangerous_path(bad)
    if predicate.is_positional:
        value = predicate.value
        if not isinstance(value, str) or isinstance(value, Quoted) or not _is_guid(value):
            raise errors.invalid_key(table.logical_name)
        return RowKey(primary=str(uuid.UUID(value)))
    names = set(predicate.named)
    if names == {primary_name}:
        value = predicate.named[primary_name]
        if not isinstance(value, str) or isinstance(value, Quoted) or not _is_guid(value):
            raise errors.invalid_key(table.logical_name)
        return RowKey(primary=str(uuid.UUID(value)))
    for alternate in table.alternate_keys:
        if names == set(alternate.columns):
            values = {column: predicate.named[column] for column in alternate.columns}
            return RowKey(alternate=values, key_name=alternate.name)
    raise errors.invalid_key(table.logical_name)


def _is_guid(text: str) -> bool:
    return bool(_GUID_RE.fullmatch(text))
