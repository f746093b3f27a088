"""A mapping's source ``filter`` applied to rows already read: the one home of its semantics
on the client side.

Dataverse refuses ``$filter`` on a change-tracking read (powerapps-docs, "Use change
tracking to synchronize data with external systems"), so a delta covers the whole table and
the engine keeps the rows the mapping's filter (and the company pair's business unit) would
have let through. The subset is what mappings use: comparisons of a column with a literal
(``eq ne gt ge lt le``), ``and``, ``or``, ``not`` and parentheses; literals are numbers,
``'text'`` (``''`` escapes a quote), ``true``, ``false``, ``null`` and GUIDs. Text and GUIDs
compare case-insensitively, as Dataverse's own ``$filter`` does (SQL collation), and a null
column equals only ``null``: ``x ne true`` holds for a null ``x``, ``x gt 0`` does not.
Anything else raises `UnsupportedFilter`, and the caller reads by window instead.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class UnsupportedFilter(ValueError):
    """The filter uses OData the client-side evaluator does not know."""


_TOKEN = re.compile(
    r"\s*(?:(?P<open>\()|(?P<close>\))|(?P<text>'(?:[^']|'')*')"
    r"|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w.-]))"
    r"|(?P<number>-?\d+(?:\.\d+)?(?![\w.-]))|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_ORDER = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}
_OPERATORS = frozenset({"eq", "ne", *_ORDER})
_NULL = object()


@dataclass(frozen=True)
class _Compare:
    column: str
    op: str
    value: Any  # bool, Decimal, str (casefolded) or _NULL


@dataclass(frozen=True)
class _Junction:
    op: str  # "and" | "or"
    left: _Node
    right: _Node


@dataclass(frozen=True)
class _Not:
    operand: _Node


_Node = _Compare | _Junction | _Not


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise UnsupportedFilter(f"cannot read the filter at {text[position : position + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.position = 0

    def parse(self) -> _Node:
        node = self._or()
        if self.position != len(self.tokens):
            raise UnsupportedFilter(f"unexpected {self.tokens[self.position][1]!r}")
        return node

    def _peek_word(self) -> str | None:
        if self.position < len(self.tokens) and self.tokens[self.position][0] == "word":
            return self.tokens[self.position][1].lower()
        return None

    def _take(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise UnsupportedFilter("the filter ends too early")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _or(self) -> _Node:
        node = self._and()
        while self._peek_word() == "or":
            self.position += 1
            node = _Junction("or", node, self._and())
        return node

    def _and(self) -> _Node:
        node = self._not()
        while self._peek_word() == "and":
            self.position += 1
            node = _Junction("and", node, self._not())
        return node

    def _not(self) -> _Node:
        if self._peek_word() == "not":
            self.position += 1
            return _Not(self._not())
        kind, text = self._take()
        if kind == "open":
            node = self._or()
            if self._take()[0] != "close":
                raise UnsupportedFilter("unbalanced parentheses")
            return node
        if kind != "word" or text.lower() in {"true", "false", "null"}:
            raise UnsupportedFilter(f"expected a column, found {text!r}")
        op_kind, op = self._take()
        if op_kind != "word" or op.lower() not in _OPERATORS:
            raise UnsupportedFilter(f"expected a comparison after {text!r}, found {op!r}")
        return _Compare(text, op.lower(), self._literal())

    def _literal(self) -> Any:
        kind, text = self._take()
        if kind == "text":
            return text[1:-1].replace("''", "'").casefold()
        if kind == "guid":
            return text.lower()
        if kind == "number":
            return Decimal(text)
        if kind == "word" and text.lower() in {"true", "false"}:
            return text.lower() == "true"
        if kind == "word" and text.lower() == "null":
            return _NULL
        raise UnsupportedFilter(f"expected a literal, found {text!r}")


def _comparable(value: Any, literal: Any) -> Any:
    """``value`` in the literal's terms, or None when it is null or of another type."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(literal, bool):
        if isinstance(value, str) and value in ("true", "false"):  # as staged (a shared delta's rows)
            return value == "true"
        return value if isinstance(value, bool) else None
    if isinstance(literal, Decimal):
        if isinstance(value, bool):
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    return str(value).casefold()


def _holds(value: Any, op: str, literal: Any) -> bool:
    if literal is _NULL:
        is_null = _comparable(value, "") is None
        return is_null if op == "eq" else (not is_null if op == "ne" else False)
    current = _comparable(value, literal)
    if current is None:
        return op == "ne"  # null equals only null
    if op == "eq":
        return bool(current == literal)
    if op == "ne":
        return bool(current != literal)
    if isinstance(literal, bool):
        return False
    return bool(_ORDER[op](current, literal))


class RowFilter:
    """A parsed filter: `columns` it reads, and `mask` of the rows it keeps."""

    def __init__(self, *texts: str | None) -> None:
        nodes = [_Parser(text).parse() for text in texts if text and text.strip()]
        self.node: _Node | None = None
        for node in nodes:
            self.node = node if self.node is None else _Junction("and", self.node, node)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the filter compares, in first-use order."""
        found: dict[str, None] = {}

        def walk(node: _Node | None) -> None:
            if isinstance(node, _Compare):
                found[node.column] = None
            elif isinstance(node, _Junction):
                walk(node.left)
                walk(node.right)
            elif isinstance(node, _Not):
                walk(node.operand)

        walk(self.node)
        return tuple(found)

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        """Which rows of ``frame`` the filter keeps (every row without a filter)."""
        import pandas as pd

        def evaluate(node: _Node) -> pd.Series:
            if isinstance(node, _Compare):
                if node.column not in frame.columns:
                    raise UnsupportedFilter(f"column {node.column!r} was not read")
                return frame[node.column].map(lambda v: _holds(v, node.op, node.value)).astype(bool)
            if isinstance(node, _Not):
                return ~evaluate(node.operand)
            left, right = evaluate(node.left), evaluate(node.right)
            return (left & right) if node.op == "and" else (left | right)

        if self.node is None:
            return pd.Series(True, index=frame.index, dtype=bool)
        return evaluate(self.node)
