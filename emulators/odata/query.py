"""OData system query options for both emulated services: the option set, $select, $orderby.

The emulators must refuse what the real services refuse, or every client test above
them proves nothing. A request's query string is parsed here into :class:`QueryOptions`
(refusing unknown, repeated or malformed options the way each service does);
``$filter`` is parsed by :mod:`emulators.odata.filter_parse` (a lexer and
recursive-descent parser shaped like Microsoft.OData.Core's) and type-checked and turned
into SQLite by :mod:`emulators.odata.filter_sql`; the dialect names and error shape live
in :mod:`emulators.odata.dialect`.

What differs between the two services:

* ``"dataverse"``: ``contains``/``startswith``/``endswith``/``tolower``/``toupper``,
  ``Microsoft.Dynamics.CRM.In``/``NotIn``/``Between``/``NotBetween`` query functions,
  parameter aliases (``@p1``), the ``in`` operator; no arithmetic; ``$skip``,
  ``$search`` and ``$format`` are errors. Query errors carry code ``0x0``.
* ``"fno"``: arithmetic (including ``divby``), ``$skip``, qualified enum literals
  (``Microsoft.Dynamics.DataEntities.NoYes'Yes'``, with ``eq``/``ne`` only), wildcard
  equality (``Name eq '*abc*'``) instead of ``contains``; no functions, no ``in``/``has``.
  Query errors use ASP.NET OData's "The query specified in the URI is not valid." shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulators.odata.dialect import DATAVERSE, FNO, Dialect, check_dialect, query_error
from emulators.odata.filter_parse import Lexer, Node, parse_filter
from emulators.odata.filter_sql import ColumnRef, Resolver, compile_filter
from emulators.schema.model import EdmType

if TYPE_CHECKING:
    from emulators.odata.errors import ODataError
    from emulators.schema.model import EnumType

# ---------------------------------------------------------------------------
# $select, $orderby, $top, $skip, $count and the option set
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderItem:
    """One ``$orderby`` key."""

    path: str
    descending: bool = False


_SELECT_ITEM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_select(text: str, dialect: Dialect) -> tuple[str, ...] | None:
    """Split ``$select`` into property names; ``*`` means every property (``None``)."""
    dialect = check_dialect(dialect)
    names: list[str] = []
    for raw in text.split(","):
        term = raw.strip()
        if term == "*":
            return None
        if not _SELECT_ITEM_RE.fullmatch(term):
            raise query_error(dialect, f"Term '{term}' is not valid in a $select or $expand expression.")
        if term not in names:
            names.append(term)
    return tuple(names)


def parse_orderby(
    text: str, dialect: Dialect, *, aliases: Mapping[str, str] | None = None
) -> tuple[OrderItem, ...]:
    """Parse ``$orderby`` (``name asc, revenue desc``); only property paths are ordered on."""
    dialect = check_dialect(dialect)
    tokens = Lexer(text, dialect).tokens()
    items: list[OrderItem] = []
    index = 0

    def syntax(position: int) -> ODataError:
        return query_error(dialect, f"Syntax error at position {position} in '{text}'.")

    while True:
        token = tokens[index]
        if token.kind == "alias" and dialect == DATAVERSE and aliases is not None:
            target = (aliases.get(token.text) or "").strip()
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*", target):
                raise query_error(
                    dialect, "The $orderby expression must evaluate to a single value of primitive type."
                )
            path = target
            index += 1
        elif token.kind == "ident":
            parts = [token.text]
            index += 1
            while tokens[index].kind == "/" and tokens[index + 1].kind == "ident":
                parts.append(tokens[index + 1].text)
                index += 2
            path = "/".join(parts)
        elif token.kind == "end":
            raise query_error(dialect, f"Expression expected at position {token.position} in '{text}'.")
        else:
            raise syntax(token.position)
        descending = False
        if tokens[index].kind == "ident" and tokens[index].text in ("asc", "desc"):
            descending = tokens[index].text == "desc"
            index += 1
        items.append(OrderItem(path, descending))
        if tokens[index].kind == ",":
            index += 1
            continue
        if tokens[index].kind == "end":
            return tuple(items)
        raise syntax(tokens[index].position)


def compile_orderby(items: Iterable[OrderItem], resolver: Resolver) -> str:
    """Render ``ORDER BY`` terms (without the keywords); strings sort case-insensitively."""
    terms: list[str] = []
    for item in items:
        ref = resolver(item.path)
        collate = " COLLATE NOCASE" if ref.kind == EdmType.STRING else ""
        terms.append(f"{ref.sql}{collate} {'DESC' if item.descending else 'ASC'}")
    return ", ".join(terms)


def compile_select(names: Iterable[str], resolver: Resolver) -> list[ColumnRef]:
    """Resolve ``$select`` names in order, letting the resolver refuse unknown ones."""
    return [resolver(name) for name in names]


def _non_negative(name: str, value: str, dialect: Dialect) -> int:
    if not re.fullmatch(r"\s*\d+\s*", value):
        raise query_error(
            dialect,
            f"Invalid value '{value}' for {name} query option found. "
            f"The {name} query option requires a non-negative integer value.",
        )
    return int(value)


@dataclass
class QueryOptions:
    """The system query options of one request, parsed and checked for its service."""

    select: tuple[str, ...] | None = None
    filter: Node | None = None
    filter_text: str | None = None
    orderby: tuple[OrderItem, ...] = ()
    top: int | None = None
    skip: int | None = None
    count: bool = False
    expand: str | None = None
    apply: str | None = None
    skiptoken: str | None = None
    deltatoken: str | None = None
    format: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    custom: dict[str, str] = field(default_factory=dict)


# What each service accepts. Names are case-sensitive on both services.
DATAVERSE_OPTIONS = frozenset(
    {"$select", "$filter", "$orderby", "$top", "$count", "$expand", "$apply", "$skiptoken", "$deltatoken"}
)
FNO_OPTIONS = frozenset(
    {"$select", "$filter", "$orderby", "$top", "$skip", "$count", "$expand", "$format", "$skiptoken"}
)


def unsupported_option_error(name: str, dialect: Dialect) -> ODataError:
    """The 400 for a system query option the service does not know (or refuses, like $skip)."""
    if dialect == FNO:
        return query_error(dialect, f"The query parameter '{name}' is not supported.")
    return query_error(dialect, f"The query parameter {name} is not supported")


def parse_query_options(
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    dialect: Dialect,
) -> QueryOptions:
    """Parse decoded query-string pairs into :class:`QueryOptions`, refusing what the service refuses.

    ``$``-prefixed names are system options and must be known to the service; ``@``
    names are Dataverse parameter aliases; anything else (``cross-company``, ``tag``)
    lands in ``custom`` for the caller. Pass every pair (Starlette:
    ``request.query_params.multi_items()``) so a repeated option is refused as it is
    by the real services; a plain mapping has already dropped the duplicates.
    """
    dialect = check_dialect(dialect)
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    allowed = DATAVERSE_OPTIONS if dialect == DATAVERSE else FNO_OPTIONS
    seen: dict[str, str] = {}
    options = QueryOptions()
    for name, value in pairs:
        if name.startswith("$"):
            if name not in allowed:
                raise unsupported_option_error(name, dialect)
            if name in seen:
                raise query_error(
                    dialect,
                    f"Query option '{name}' was specified more than once, "
                    "but it must be specified at most once.",
                )
            seen[name] = value
        elif name.startswith("@") and dialect == DATAVERSE:
            options.aliases[name] = value
        else:
            options.custom[name] = value
    if "$select" in seen:
        options.select = parse_select(seen["$select"], dialect)
    if "$filter" in seen:
        options.filter_text = seen["$filter"]
        options.filter = parse_filter(seen["$filter"], dialect, aliases=options.aliases)
    if "$orderby" in seen:
        options.orderby = parse_orderby(seen["$orderby"], dialect, aliases=options.aliases)
    if "$top" in seen:
        options.top = _non_negative("$top", seen["$top"], dialect)
    if "$skip" in seen:
        options.skip = _non_negative("$skip", seen["$skip"], dialect)
    if "$count" in seen:
        value = seen["$count"].strip()
        if value not in ("true", "false"):
            raise query_error(
                dialect,
                f"Invalid value '{seen['$count']}' for $count query option found. "
                "Valid values are 'true, false'.",
            )
        options.count = value == "true"
    options.expand = seen.get("$expand")
    options.apply = seen.get("$apply")
    options.skiptoken = seen.get("$skiptoken")
    options.deltatoken = seen.get("$deltatoken")
    options.format = seen.get("$format")
    return options


@dataclass(frozen=True)
class CompiledQuery:
    """SQL pieces for :meth:`emulators.store.Store.query`: ``where``/``params``/``order_by``."""

    where: str | None
    params: list[Any]
    order_by: str | None
    columns: list[ColumnRef] | None


def compile_query(
    options: QueryOptions,
    resolver: Resolver,
    *,
    dialect: Dialect,
    enums: Mapping[str, EnumType] | None = None,
) -> CompiledQuery:
    """Resolve and compile ``$filter``, ``$orderby`` and ``$select`` of parsed options at once."""
    where: str | None = None
    params: list[Any] = []
    if options.filter is not None:
        where, params = compile_filter(options.filter, resolver, dialect=dialect, enums=enums)
    order_by = compile_orderby(options.orderby, resolver) if options.orderby else None
    columns = compile_select(options.select, resolver) if options.select is not None else None
    return CompiledQuery(where, params, order_by, columns)
