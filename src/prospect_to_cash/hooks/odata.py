r"""The one place that builds OData URLs, keys, literals and query strings for both services.

Escaping happens in two layers, always in this order: OData literal syntax first (a
quote inside a string literal is doubled), then URL percent-encoding of everything that
is not unreserved or part of OData's own key syntax (``'(),=``). So ``O'Brien & Sons``
becomes ``'O''Brien%20%26%20Sons'``. In an F&O key, ``/``, ``\`` and ``+`` (and so ``%``)
are encoded twice: F&O's web server decodes the path once before routing, and a bare
``/`` there answers 404 "No HTTP resource was found"; so ``A/B #1`` becomes
``'A%252FB%20%231'`` (F&O's OData layer decodes the value a second time).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

import pandas as pd

from prospect_to_cash.hooks.errors import InvalidKeyError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

# Characters left as they are inside a key segment: OData's key syntax itself.
_KEY_SAFE = "'(),="
# F&O key value characters encoded twice (the web server decodes the path before routing).
_FNO_DOUBLE_ENCODED = "%/\\+"
# Characters left as they are inside a query option value.
_QUERY_SAFE = "'(),:$/@*"
# Dataverse refuses these in alternate key values, even percent-encoded (powerapps-docs
# "Define alternate keys using Power Apps": / # < > * % & : \ ? +).
DATAVERSE_FORBIDDEN_KEY_CHARACTERS = frozenset("/#<>*%&:\\?+")

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ENTITY_ID = re.compile(
    r"\(([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\)\s*$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class EnumLiteral:
    """An F&O enum value in a filter: ``Microsoft.Dynamics.DataEntities.NoYes'Yes'``.

    :param enum_type: the qualified enum type name.
    :param member: the member name.
    """

    enum_type: str
    member: str

    def __str__(self) -> str:
        return f"{self.enum_type}'{self.member.replace(chr(39), chr(39) * 2)}'"


def is_guid(value: Any) -> bool:
    """True for a `uuid.UUID` or a string in canonical GUID form."""
    return isinstance(value, uuid.UUID) or (isinstance(value, str) and bool(_GUID.match(value)))


def format_literal(value: Any) -> str:
    """Format a Python value as an OData literal (not yet URL-encoded).

    Strings are single-quoted with embedded quotes doubled; GUIDs, numbers, booleans and
    ``null`` are bare; datetimes become ISO 8601 in UTC with a ``Z``.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, EnumLiteral):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} has no OData literal")
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware datetime")
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot express {type(value).__name__} as an OData literal")


def format_key_value(value: Any) -> str:
    """Format one key value for a URL key segment: GUIDs bare, everything else a literal."""
    if isinstance(value, str) and _GUID.match(value):
        return value.lower()
    return format_literal(value)


def check_dataverse_key_value(column: str, value: Any) -> None:
    """Raise `InvalidKeyError` when Dataverse would refuse ``value`` in an alternate key.

    Dataverse rejects ``/ # < > * % & : \\ ? +`` in alternate key values whatever the
    encoding, so a row keyed that way can only be addressed by its primary key.
    """
    if not isinstance(value, str):
        return
    found = sorted(DATAVERSE_FORBIDDEN_KEY_CHARACTERS.intersection(value))
    if found:
        raise InvalidKeyError(
            f"Dataverse does not allow {' '.join(found)} in alternate key values "
            f"(column {column!r}, value {value!r}); address this row by its primary key GUID"
        )


def key_segment(key: Mapping[str, Any], *, dataverse: bool = False) -> str:
    """Build the parenthesised key of an entity URL, URL-encoded.

    A single GUID value gives the bare form ``(guid)`` (Dataverse primary key). Every
    other key is named, in the mapping's order: ``(dataAreaId='usmf',CustomerAccount='US-001')``.
    With ``dataverse=True`` alternate key values are checked for forbidden characters;
    otherwise (F&O) ``% / \\ +`` are encoded twice (``%252F``), which F&O needs.

    :param key: column name to value, in key order.
    :param dataverse: apply Dataverse's alternate key rules.
    """
    if not key:
        raise InvalidKeyError("an entity key needs at least one column")
    for column in key:
        if not _IDENTIFIER.match(column):
            raise InvalidKeyError(f"{column!r} is not a valid key property name")
    if len(key) == 1:
        ((column, value),) = key.items()
        if is_guid(value):
            return "(" + str(value).lower() + ")"
    parts = []
    for column, value in key.items():
        if value is None:
            raise InvalidKeyError(f"key column {column!r} has no value")
        if dataverse:
            check_dataverse_key_value(column, value)
        literal = format_key_value(value)
        parts.append(f"{column}={literal if dataverse else _fno_pre_encode(literal)}")
    return "(" + quote(",".join(parts), safe=_KEY_SAFE) + ")"


def _fno_pre_encode(literal: str) -> str:
    """The first of the two encodings F&O needs for ``% / \\ +`` in a key value."""
    for character in _FNO_DOUBLE_ENCODED:  # "%" first, so the escapes made here stay intact
        literal = literal.replace(character, quote(character, safe=""))
    return literal


def entity_path(entity_set: str, key: Mapping[str, Any] | None = None, *, dataverse: bool = False) -> str:
    """``<entity set>`` or ``<entity set>(<key>)``, relative to the service root."""
    if not _IDENTIFIER.match(entity_set):
        raise ValueError(f"{entity_set!r} is not a valid entity set name")
    if key is None:
        return entity_set
    return entity_set + key_segment(key, dataverse=dataverse)


def query_string(options: Iterable[tuple[str, str | None]]) -> str:
    """Encode query options (``$select``, ``$filter``, ``cross-company``...) in order.

    Option names are emitted as given (OData option names are case-sensitive); values
    are percent-encoded except for characters OData expressions use verbatim.
    Options whose value is None are left out.
    """
    pairs = [f"{name}={quote(value, safe=_QUERY_SAFE)}" for name, value in options if value is not None]
    return "&".join(pairs)


def select_option(select: Sequence[str]) -> str:
    """Validate and join a ``$select`` list; an explicit select is required for every read."""
    if isinstance(select, str):
        raise TypeError("select must be a sequence of column names, not one string")
    columns = list(select)
    if not columns:
        raise ValueError("select must name at least one column")
    for column in columns:
        if not _IDENTIFIER.match(column):
            raise ValueError(f"{column!r} is not a valid column name")
    if len(set(columns)) != len(columns):
        raise ValueError("select names a column twice")
    return ",".join(columns)


def any_equals(column: str, values: Iterable[Any]) -> str:
    """``(col eq 'a' or col eq 'b')``: F&O has no ``in`` operator, so equality is or-ed."""
    terms = [f"{column} eq {format_literal(value)}" for value in values]
    if not terms:
        raise ValueError("any_equals needs at least one value")
    return terms[0] if len(terms) == 1 else "(" + " or ".join(terms) + ")"


def key_filters(column: str, values: Iterable[Any], *, use_in: bool, budget: int, most: int) -> list[str]:
    """Filters that together select the rows whose ``column`` is one of ``values``, each
    one at most ``most`` values and ``budget`` characters once URL-encoded.

    ``use_in`` writes Dataverse's ``Microsoft.Dynamics.CRM.In`` query function (one term
    per chunk); otherwise equality terms are or-ed, the only way F&O knows. Distinct values
    only, in first-seen order; a value longer than the budget on its own is still sent
    alone (the service then decides).
    """
    if most < 1 or budget < 1:
        raise ValueError("key_filters needs most >= 1 and budget >= 1")
    prefix = f"Microsoft.Dynamics.CRM.In(PropertyName={format_literal(column)},PropertyValues=["
    chunks: list[list[str]] = []
    size = 0
    for literal in dict.fromkeys(format_literal(v) for v in values):
        if use_in:
            term, fixed = literal, len(quote(prefix, safe=_QUERY_SAFE)) + len("])")
        else:
            term, fixed = f"{column} eq {literal}", 2
        cost = len(quote(term, safe=_QUERY_SAFE)) + 4  # separator: "," or "%20or%20"
        if chunks and len(chunks[-1]) < most and fixed + size + cost <= budget:
            chunks[-1].append(term)
            size += cost
        else:
            chunks.append([term])
            size = cost
    if use_in:
        return [f"{prefix}{','.join(chunk)}])" for chunk in chunks]
    return [chunk[0] if len(chunk) == 1 else "(" + " or ".join(chunk) + ")" for chunk in chunks]


def _key_row_chunk(columns: Sequence[str], groups: list[tuple[tuple[str, ...], list[str]]]) -> str:
    """``(A eq 'x' and B eq 3) or (A eq 'y' and (B eq 1 or B eq 2))`` for literal groups."""
    *leading, last = columns
    terms = []
    for prefix, lasts in groups:
        tail = [f"{last} eq {literal}" for literal in lasts]
        ored = tail[0] if len(tail) == 1 else "(" + " or ".join(tail) + ")"
        equal = [f"{c} eq {v}" for c, v in zip(leading, prefix, strict=True)]
        terms.append("(" + " and ".join([*equal, ored]) + ")")
    return terms[0] if len(terms) == 1 else "(" + " or ".join(terms) + ")"


def key_row_filters(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, budget: int, most: int
) -> list[str]:
    """Filters that together select the rows whose ``columns`` equal one of ``rows`` (a
    composite key, such as an order line's order number and line number), each one at most
    ``most`` rows and ``budget`` characters once URL-encoded.

    Equalities are and-ed per row and or-ed across rows, the only way F&O knows (Dataverse's
    ``In`` takes one column); rows sharing their leading values are grouped under them
    (``(A eq 'x' and (B eq 1 or B eq 3))``). Distinct rows only, in first-seen order; a row
    longer than the budget on its own is still sent alone (the service then decides).
    """
    if most < 1 or budget < 1 or len(columns) < 2:
        raise ValueError("key_row_filters needs two columns or more, most >= 1 and budget >= 1")
    literal_rows: dict[tuple[str, ...], None] = {}
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a key row has {len(row)} values for {len(columns)} columns")
        literal_rows[tuple(format_literal(v) for v in row)] = None
    grouped: dict[tuple[str, ...], list[str]] = {}
    for literals in literal_rows:
        grouped.setdefault(literals[:-1], []).append(literals[-1])
    chunks: list[list[tuple[tuple[str, ...], list[str]]]] = []
    count = 0
    for prefix, lasts in grouped.items():
        for literal in lasts:
            if chunks and count < most:
                chunk = chunks[-1]
                if chunk[-1][0] == prefix:  # the same leading values: one more last value
                    tried = [*chunk[:-1], (prefix, [*chunk[-1][1], literal])]
                else:
                    tried = [*chunk, (prefix, [literal])]
                if len(quote(_key_row_chunk(columns, tried), safe=_QUERY_SAFE)) <= budget:
                    chunks[-1], count = tried, count + 1
                    continue
            chunks.append([(prefix, [literal])])
            count = 1
    return [_key_row_chunk(columns, chunk) for chunk in chunks]


def and_filters(*filters: str | None) -> str | None:
    """Combine filter expressions with ``and``, parenthesising each; None when all are blank."""
    present = [f.strip() for f in filters if f and f.strip()]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return " and ".join(f"({f})" for f in present)


def entity_id_from_url(url: str | None) -> str | None:
    """The GUID at the end of an ``OData-EntityId`` URL, lower-cased; None otherwise."""
    if not url:
        return None
    match = _ENTITY_ID.search(url)
    return match.group(1).lower() if match else None


def resolve_next_link(base_url: str, next_link: str) -> str:
    """Resolve ``@odata.nextLink`` and refuse one that points at another host.

    The bearer token goes with every request; a next link on a different origin would
    hand it to someone else.
    """
    absolute = urljoin(base_url, next_link)
    base, target = urlsplit(base_url), urlsplit(absolute)
    if (base.scheme, base.netloc.lower()) != (target.scheme, target.netloc.lower()):
        raise ValueError(
            f"refusing to follow a next link to another origin: {target.scheme}://{target.netloc}"
        )
    return absolute


def page_to_frame(rows: Sequence[Mapping[str, Any]], select: Sequence[str]) -> pd.DataFrame:
    """One page of OData rows as a DataFrame with exactly ``select``, in that order.

    The services omit properties that are null and add annotations (``@odata.etag``);
    neither may change the frame's shape, so columns come from ``select`` alone.
    """
    columns = list(select)
    data = {column: [row.get(column) for row in rows] for column in columns}
    return pd.DataFrame(data, columns=columns)
