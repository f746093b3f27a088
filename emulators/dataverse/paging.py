"""Server-driven paging: the ``$skiptoken`` paging cookie of ``@odata.nextLink``.

Dataverse's next links carry ``$skiptoken=<cookie pagenumber="2" pagingcookie="…"
istracking="False" />``. Clients must follow the link unchanged, so the cookie only has
to be stable and opaque. Here it holds the sort values and primary key of the last row
sent (keyset paging): the next page starts strictly after that row in the query's order,
so rows inserted or deleted while a client pages through never make it see a row twice
or miss one that existed throughout.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from emulators.odata.errors import ODataError

_COOKIE_RE = re.compile(
    r'^<cookie pagenumber="(\d+)" pagingcookie="([A-Za-z0-9_\-=]*)" istracking="False" />$'
)


@dataclass(frozen=True)
class SortTerm:
    """One ORDER BY key: SQL expression, string (case-insensitive) or not, direction."""

    sql: str
    column: str
    is_string: bool
    descending: bool


@dataclass(frozen=True)
class Cookie:
    page: int
    values: list[Any]


def encode_cookie(page: int, values: list[Any]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode()
    return f'<cookie pagenumber="{page}" pagingcookie="{payload}" istracking="False" />'


def decode_cookie(token: str, terms: int) -> Cookie:
    """Read a ``$skiptoken``; anything not issued by this emulator for this order is a 400."""
    match = _COOKIE_RE.match(token.strip())
    invalid = ODataError(400, "0x80040203", "The paging cookie in $skiptoken is not valid.")
    if match is None:
        raise invalid
    try:
        values = json.loads(base64.urlsafe_b64decode(match.group(2).encode()))
    except (ValueError, TypeError):
        raise invalid from None
    if not isinstance(values, list) or len(values) != terms:
        raise invalid
    return Cookie(int(match.group(1)), values)


def after_clause(terms: list[SortTerm], values: list[Any]) -> tuple[str, list[Any]]:
    """WHERE fragment selecting rows that sort strictly after ``values``.

    SQLite puts NULLs first in ascending and last in descending order; the clause follows
    that, and compares strings with NOCASE like the ORDER BY does.
    """
    alternatives: list[str] = []
    params: list[Any] = []
    equal_sql: list[str] = []
    equal_params: list[Any] = []
    for term, value in zip(terms, values, strict=True):
        collate = " COLLATE NOCASE" if term.is_string else ""
        if value is None:
            greater = None if term.descending else (f"{term.sql} IS NOT NULL", [])
            equal = (f"{term.sql} IS NULL", [])
        else:
            if term.descending:
                greater = (f"({term.sql}{collate} < ? OR {term.sql} IS NULL)", [value])
            else:
                greater = (f"{term.sql}{collate} > ?", [value])
            equal = (f"{term.sql}{collate} = ?", [value])
        if greater is not None:
            alternatives.append("(" + " AND ".join([*equal_sql, greater[0]]) + ")")
            params.extend([*equal_params, *greater[1]])
        equal_sql.append(equal[0])
        equal_params.extend(equal[1])
    if not alternatives:
        return "0", []
    return "(" + " OR ".join(alternatives) + ")", params


def next_link(base_url: str, query: list[tuple[str, str]], cookie: str) -> str:
    """The original query with the new ``$skiptoken``, percent-encoded like Dataverse does."""
    return link_with(base_url, query, "$skiptoken", cookie)


def link_with(base_url: str, query: list[tuple[str, str]], option: str, value: str) -> str:
    """The query without its ``$skiptoken`` and ``option``, plus ``option=value``."""
    pairs = [(name, v) for name, v in query if name not in ("$skiptoken", option)]
    pairs.append((option, value))
    encoded = "&".join(f"{quote(name, safe='$@')}={quote(value, safe='')}" for name, value in pairs)
    return f"{base_url}?{encoded}"
