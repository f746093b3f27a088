"""``$filter`` parsing for both emulated services: lexer, AST and recursive-descent parser.

Shaped like Microsoft.OData.Core's parser (same precedence, same error wording and
character positions) so a filter the real service refuses is refused here too; see
:mod:`emulators.odata.query` for what differs between the dialects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from emulators.odata.dialect import (
    DATAVERSE,
    FNO,
    MAX_DEPTH,
    TOO_DEEP,
    Dialect,
    check_dialect,
    query_error,
)
from emulators.schema.model import EdmType

if TYPE_CHECKING:
    from collections.abc import Mapping

    from emulators.odata.errors import ODataError

# ---------------------------------------------------------------------------
# Lexer
# ---------------------------------------------------------------------------

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_GUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,12}))?)?(Z|[+-]\d{2}:\d{2})"
)
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_NUMBER_RE = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?([mMdDfFlL])?")
_IDENT_CHAR_RE = re.compile(r"[A-Za-z0-9_]")
_PUNCTUATION = frozenset("(),/[]=")

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Token:
    """One lexical token; ``position`` is the 0-based offset ODL reports in errors."""

    kind: str
    text: str
    position: int
    value: Any = None


class Lexer:
    """Turns filter text into tokens, reporting errors with ODL's messages."""

    def __init__(self, text: str, dialect: Dialect) -> None:
        self.text = text
        self.dialect = dialect
        self.pos = 0

    def error(self, message: str) -> ODataError:
        return query_error(self.dialect, message)

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        while True:
            token = self._next()
            out.append(token)
            if token.kind == "end":
                return out

    def _next(self) -> Token:
        text = self.text
        while self.pos < len(text) and text[self.pos] in " \t\r\n":
            self.pos += 1
        start = self.pos
        if start >= len(text):
            return Token("end", "", start)
        ch = text[start]
        if ch in _PUNCTUATION:
            self.pos += 1
            return Token(ch, ch, start)
        if ch == "'":
            value = self._quoted(start, unterminated="string")
            return Token("string", text[start : self.pos], start, value)
        if ch == '"':
            value = self._double_quoted(start)
            return Token("string", text[start : self.pos], start, value)
        if ch == "@":
            match = _IDENT_RE.match(text, start + 1)
            if not match:
                raise self.error(f"Syntax error: character '@' is not valid at position {start} in '{text}'.")
            self.pos = match.end()
            return Token("alias", text[start : self.pos], start, match.group(0))
        if ch == "-":
            if start + 1 < len(text) and text[start + 1].isdigit():
                return self._number_or_temporal(start)
            self.pos += 1
            return Token("-", "-", start)
        if ch.isdigit():
            return self._number_or_temporal(start)
        if ch.isalpha() or ch == "_":
            guid = _GUID_RE.match(text, start)
            if guid and not self._ident_char_at(guid.end()):
                self.pos = guid.end()
                return Token("guid", guid.group(0), start, guid.group(0).lower())
            match = _IDENT_RE.match(text, start)
            assert match is not None
            self.pos = match.end()
            name = match.group(0)
            if self.pos < len(text) and text[self.pos] == "'":
                value = self._quoted(self.pos, unterminated="typed")
                return Token("typed", text[start : self.pos], start, (name, value))
            return Token("ident", name, start, name)
        raise self.error(f"Syntax error: character '{ch}' is not valid at position {start} in '{text}'.")

    def _ident_char_at(self, pos: int) -> bool:
        return pos < len(self.text) and bool(_IDENT_CHAR_RE.match(self.text[pos]))

    def _quoted(self, start: int, unterminated: str) -> str:
        """Scan a single-quoted literal; a doubled quote stands for one quote."""
        text = self.text
        pos = start + 1
        chunks: list[str] = []
        while True:
            end = text.find("'", pos)
            if end < 0:
                self.pos = len(text)
                kind = "string literal" if unterminated == "string" else "literal"
                raise self.error(f"There is an unterminated {kind} at position {len(text)} in '{text}'.")
            chunks.append(text[pos:end])
            if end + 1 < len(text) and text[end + 1] == "'":
                chunks.append("'")
                pos = end + 2
                continue
            self.pos = end + 1
            return "".join(chunks)

    def _double_quoted(self, start: int) -> str:
        """Scan a JSON-style string, as used inside Dataverse query-function arrays."""
        text = self.text
        pos = start + 1
        chunks: list[str] = []
        escapes = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
        while pos < len(text):
            ch = text[pos]
            if ch == '"':
                self.pos = pos + 1
                return "".join(chunks)
            if ch == "\\" and pos + 1 < len(text):
                nxt = text[pos + 1]
                if nxt in escapes:
                    chunks.append(escapes[nxt])
                    pos += 2
                    continue
                if nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[pos + 2 : pos + 6]):
                    chunks.append(chr(int(text[pos + 2 : pos + 6], 16)))
                    pos += 6
                    continue
                raise self.error(
                    f"An unrecognized escape sequence '\\{nxt}' was found at position {pos} in '{text}'."
                )
            chunks.append(ch)
            pos += 1
        self.pos = len(text)
        raise self.error(f"There is an unterminated string literal at position {len(text)} in '{text}'.")

    def _number_or_temporal(self, start: int) -> Token:
        text = self.text
        if text[start] != "-":
            guid = _GUID_RE.match(text, start)
            if guid and not self._ident_char_at(guid.end()):
                self.pos = guid.end()
                return Token("guid", guid.group(0), start, guid.group(0).lower())
            stamp = _DATETIME_RE.match(text, start)
            if stamp:
                self.pos = stamp.end()
                return Token("datetime", stamp.group(0), start, self._datetime(stamp))
            day = _DATE_RE.match(text, start)
            if day and not self._ident_char_at(day.end()) and not text.startswith("T", day.end()):
                self.pos = day.end()
                try:
                    value = datetime(int(day.group(1)), int(day.group(2)), int(day.group(3))).date()
                except ValueError:
                    raise self._unrecognized("Edm.Date", day.group(0), start) from None
                return Token("date", day.group(0), start, value)
        match = _NUMBER_RE.match(text, start)
        if not match:
            raise self.error(f"A digit was expected at position {start + 1} in '{text}'.")
        self.pos = match.end()
        if self._ident_char_at(self.pos) or (self.pos < len(text) and text[self.pos] == "."):
            raise self.error(f"Syntax error at position {self.pos} in '{text}'.")
        raw = match.group(0)
        fraction, exponent, suffix = match.group(1), match.group(2), (match.group(3) or "").lower()
        body = raw[:-1] if suffix else raw
        if suffix in ("d", "f") or exponent:
            return Token("number", raw, start, (EdmType.DOUBLE, float(body)))
        if suffix == "m" or fraction:
            try:
                return Token("number", raw, start, (EdmType.DECIMAL, Decimal(body)))
            except InvalidOperation:  # pragma: no cover - the regex only admits valid decimals
                raise self.error(
                    f"Numeric string '{raw}' is not a valid Int32/Int64/Double/Decimal."
                ) from None
        number = int(body)
        if suffix == "l" or not _INT32_MIN <= number <= _INT32_MAX:
            if not _INT64_MIN <= number <= _INT64_MAX:
                return Token("number", raw, start, (EdmType.DECIMAL, Decimal(number)))
            return Token("number", raw, start, (EdmType.INT64, number))
        return Token("number", raw, start, (EdmType.INT32, number))

    def _datetime(self, match: re.Match[str]) -> datetime:
        year, month, day, hour, minute = (int(match.group(i)) for i in range(1, 6))
        second = int(match.group(6) or 0)
        fraction = match.group(7) or ""
        micro = int((fraction + "000000")[:6]) if fraction else 0
        zone = match.group(8)
        try:
            if zone == "Z":
                tz = timezone.utc
            else:
                sign = 1 if zone[0] == "+" else -1
                tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
            return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
        except ValueError:
            raise self._unrecognized("Edm.DateTimeOffset", match.group(0), match.start()) from None

    def _unrecognized(self, type_name: str, literal: str, position: int) -> ODataError:
        return self.error(f"Unrecognized '{type_name}' literal '{literal}' at '{position}' in '{self.text}'.")


def quote_string(value: str) -> str:
    """Render ``value`` as an OData string literal (single quotes, inner quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


# ---------------------------------------------------------------------------
# AST
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LiteralNode:
    """A primitive literal; ``kind`` is ``None`` for ``null``."""

    kind: EdmType | None
    value: Any
    text: str
    position: int


@dataclass(frozen=True)
class EnumNode:
    """A qualified enum literal such as ``Microsoft.Dynamics.DataEntities.NoYes'Yes'``."""

    type_name: str
    member: str
    text: str
    position: int


@dataclass(frozen=True)
class PropertyNode:
    """A property path (``name`` or ``nav/name``); the caller's resolver gives it meaning."""

    path: str
    position: int


@dataclass(frozen=True)
class BinaryNode:
    """``left <op> right`` where op is a comparison, logical or arithmetic keyword."""

    op: str
    left: Node
    right: Node
    position: int


@dataclass(frozen=True)
class UnaryNode:
    """``not x`` or ``-x`` (op ``not`` / ``negate``)."""

    op: str
    operand: Node
    position: int


@dataclass(frozen=True)
class ListNode:
    """A bracketed or parenthesised list of literals (query-function arrays, ``in``)."""

    items: tuple[Node, ...]
    position: int


@dataclass(frozen=True)
class FunctionNode:
    """A function call with positional and/or named (``Name=value``) arguments."""

    name: str
    args: tuple[Node, ...]
    named: tuple[tuple[str, Node], ...]
    position: int


@dataclass(frozen=True)
class InNode:
    """``operand in (a, b, ...)``."""

    operand: Node
    items: ListNode
    position: int


Node = LiteralNode | EnumNode | PropertyNode | BinaryNode | UnaryNode | ListNode | FunctionNode | InNode

COMPARISON_OPS = ("eq", "ne", "gt", "ge", "lt", "le")
ADDITIVE_OPS = ("add", "sub")
MULTIPLICATIVE_OPS = ("mul", "div", "divby", "mod")

# ODL's BinaryOperatorKind names, used in binder error messages.
OPERATOR_KINDS = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
    "and": "And",
    "or": "Or",
    "add": "Add",
    "sub": "Subtract",
    "mul": "Multiply",
    "div": "Divide",
    "divby": "Divide",
    "mod": "Modulo",
    "has": "Has",
    "not": "Not",
    "negate": "Negate",
}


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------


class _Parser:
    """Recursive descent with ODL's precedence: or < and < comparison < in < add < mul < unary."""

    def __init__(
        self, text: str, dialect: Dialect, aliases: Mapping[str, str] | None, depth: int = 0
    ) -> None:
        self.text = text
        self.dialect = dialect
        self.aliases = aliases
        self.tokens = Lexer(text, dialect).tokens()
        self.index = 0
        self.depth = depth

    # token helpers -------------------------------------------------------
    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.token.kind == "ident" and self.token.text in words

    def error(self, message: str) -> ODataError:
        return query_error(self.dialect, message)

    def syntax_error(self, position: int | None = None) -> ODataError:
        pos = self.token.position if position is None else position
        return self.error(f"Syntax error at position {pos} in '{self.text}'.")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(TOO_DEEP)

    def leave(self) -> None:
        self.depth -= 1

    # grammar -------------------------------------------------------------
    def parse(self) -> Node:
        node = self.parse_or()
        if self.token.kind != "end":
            raise self.syntax_error()
        return node

    def parse_or(self) -> Node:
        self.enter()
        left = self.parse_and()
        while self.at_keyword("or"):
            op = self.advance()
            left = BinaryNode("or", left, self.parse_and(), op.position)
        self.leave()
        return left

    def parse_and(self) -> Node:
        self.enter()
        left = self.parse_comparison()
        while self.at_keyword("and"):
            op = self.advance()
            left = BinaryNode("and", left, self.parse_comparison(), op.position)
        self.leave()
        return left

    def parse_comparison(self) -> Node:
        self.enter()
        left = self.parse_in()
        while self.at_keyword(*COMPARISON_OPS, "has"):
            op = self.advance()
            if op.text == "has" and self.dialect == FNO:
                raise self.error("The operator 'has' is not supported.")
            left = BinaryNode(op.text, left, self.parse_in(), op.position)
        self.leave()
        return left

    def parse_in(self) -> Node:
        self.enter()
        left = self.parse_additive()
        if self.at_keyword("in"):
            op = self.advance()
            if self.dialect == FNO:
                raise self.error("The operator 'in' is not supported.")
            if self.token.kind != "(":
                raise self.error(f"'(' expected at position {self.token.position} in '{self.text}'.")
            items = self.parse_list(open_kind="(", close_kind=")")
            left = InNode(left, items, op.position)
        self.leave()
        return left

    def parse_additive(self) -> Node:
        self.enter()
        left = self.parse_multiplicative()
        while self.at_keyword(*ADDITIVE_OPS):
            op = self.advance()
            left = BinaryNode(op.text, left, self.parse_multiplicative(), op.position)
        self.leave()
        return left

    def parse_multiplicative(self) -> Node:
        self.enter()
        left = self.parse_unary()
        ops = MULTIPLICATIVE_OPS if self.dialect == FNO else ("mul", "div", "mod")
        while self.at_keyword(*ops):
            op = self.advance()
            left = BinaryNode(op.text, left, self.parse_unary(), op.position)
        self.leave()
        return left

    def parse_unary(self) -> Node:
        self.enter()
        token = self.token
        if token.kind == "-":
            self.advance()
            node: Node = UnaryNode("negate", self.parse_unary(), token.position)
        elif token.kind == "ident" and token.text == "not":
            self.advance()
            node = UnaryNode("not", self.parse_unary(), token.position)
        else:
            node = self.parse_primary()
        self.leave()
        return node

    def parse_primary(self) -> Node:
        token = self.token
        kind = token.kind
        if kind == "(":
            self.advance()
            node = self.parse_or()
            if self.token.kind != ")":
                raise self.error(
                    f"')' or operator expected at position {self.token.position} in '{self.text}'."
                )
            self.advance()
            return node
        if kind == "end":
            raise self.error(f"Expression expected at position {token.position} in '{self.text}'.")
        if kind in ("string", "number", "guid", "datetime", "date"):
            self.advance()
            return literal_node(token)
        if kind == "typed":
            self.advance()
            type_name, member = token.value
            return EnumNode(type_name, member, token.text, token.position)
        if kind == "alias":
            self.advance()
            return self.alias(token)
        if kind == "ident":
            if token.text in ("true", "false"):
                self.advance()
                return LiteralNode(EdmType.BOOLEAN, token.text == "true", token.text, token.position)
            if token.text == "null":
                self.advance()
                return LiteralNode(None, None, token.text, token.position)
            self.advance()
            if self.token.kind == "(":
                return self.function(token)
            return self.property_path(token)
        raise self.syntax_error()

    def alias(self, token: Token) -> Node:
        """Substitute a Dataverse parameter alias (``@p1``); an unset alias means null."""
        if self.dialect != DATAVERSE or self.aliases is None:
            raise self.syntax_error(token.position)
        value = self.aliases.get(token.text)
        if value is None:
            return LiteralNode(None, None, "null", token.position)
        sub = _Parser(value, self.dialect, None, depth=self.depth)
        if sub.token.kind == "[":  # an array value for a query function's PropertyValues
            node: Node = sub.parse_list("[", "]")
            if sub.token.kind != "end":
                raise sub.syntax_error()
            return node
        return sub.parse()

    def property_path(self, first: Token) -> PropertyNode:
        parts = [first.text]
        while self.token.kind == "/":
            self.advance()
            if self.token.kind != "ident":
                raise self.syntax_error()
            parts.append(self.advance().text)
        return PropertyNode("/".join(parts), first.position)

    def function(self, name: Token) -> FunctionNode:
        self.advance()  # "("
        args: list[Node] = []
        named: list[tuple[str, Node]] = []
        if self.token.kind == ")":
            self.advance()
            return FunctionNode(name.text, (), (), name.position)
        while True:
            if self.token.kind == "ident" and self.tokens[self.index + 1].kind == "=":
                param = self.advance().text
                self.advance()  # "="
                value: Node = self.parse_list("[", "]") if self.token.kind == "[" else self.parse_or()
                named.append((param, value))
            else:
                args.append(self.parse_or())
            if self.token.kind == ",":
                self.advance()
                continue
            if self.token.kind == ")":
                self.advance()
                break
            raise self.error(f"')' or ',' expected at position {self.token.position} in '{self.text}'.")
        return FunctionNode(name.text, tuple(args), tuple(named), name.position)

    def parse_list(self, open_kind: str, close_kind: str) -> ListNode:
        start = self.advance()  # opening bracket
        items: list[Node] = []
        if self.token.kind == close_kind:
            self.advance()
            return ListNode((), start.position)
        while True:
            items.append(self.parse_or())
            if self.token.kind == ",":
                self.advance()
                continue
            if self.token.kind == close_kind:
                self.advance()
                return ListNode(tuple(items), start.position)
            raise self.error(
                f"'{close_kind}' or ',' expected at position {self.token.position} in '{self.text}'."
            )


def literal_node(token: Token) -> LiteralNode:
    if token.kind == "string":
        return LiteralNode(EdmType.STRING, token.value, token.text, token.position)
    if token.kind == "number":
        kind, value = token.value
        return LiteralNode(kind, value, token.text, token.position)
    if token.kind == "guid":
        return LiteralNode(EdmType.GUID, token.value, token.text, token.position)
    if token.kind == "datetime":
        return LiteralNode(EdmType.DATETIMEOFFSET, token.value, token.text, token.position)
    return LiteralNode(EdmType.DATE, token.value, token.text, token.position)


def parse_filter(text: str, dialect: Dialect, *, aliases: Mapping[str, str] | None = None) -> Node:
    """Parse a ``$filter`` expression into an AST, raising the service's 400 on bad syntax.

    :param text: the decoded ``$filter`` value.
    :param dialect: ``"dataverse"`` or ``"fno"``; decides which operators are accepted.
    :param aliases: Dataverse parameter aliases (``{"@p1": "'value'"}``) from the query string.
    """
    dialect = check_dialect(dialect)
    if not text.strip():
        raise query_error(dialect, f"Expression expected at position {len(text)} in '{text}'.")
    try:
        return _Parser(text, dialect, aliases).parse()
    except RecursionError:
        raise query_error(dialect, TOO_DEEP) from None
