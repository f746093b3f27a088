"""OData system query options for both emulated services: parsing, checking, SQL.

The emulators must refuse what the real services refuse, or every client test above
them proves nothing. This module therefore parses ``$filter`` with a real lexer and a
recursive-descent parser shaped like Microsoft.OData.Core's (same precedence, same
error wording and character positions), type-checks it the way the OData binder does,
and only then turns it into SQLite through a caller-supplied resolver.

The ``dialect`` switch carries what differs between the two services:

* ``"dataverse"``: ``contains``/``startswith``/``endswith``/``tolower``/``toupper``,
  ``Microsoft.Dynamics.CRM.In``/``NotIn``/``Between``/``NotBetween`` query functions,
  parameter aliases (``@p1``), the ``in`` operator; no arithmetic; ``$skip``,
  ``$search`` and ``$format`` are errors. Query errors carry code ``0x0``.
* ``"fno"``: arithmetic (including ``divby``), ``$skip``, qualified enum literals
  (``Microsoft.Dynamics.DataEntities.NoYes'Yes'``, with ``eq``/``ne`` only), wildcard
  equality (``Name eq '*abc*'``) instead of ``contains``; no functions, no ``in``/``has``.
  Query errors use ASP.NET OData's "The query specified in the URI is not valid." shape.

String comparisons are case-insensitive on both services (SQL Server collation), so the
SQL uses ``COLLATE NOCASE`` and ``LIKE``. Literals are always bound as parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from emulators.odata.errors import ODataError
from emulators.schema.model import EdmType

if TYPE_CHECKING:
    from emulators.schema.model import EnumType, Field

Dialect = Literal["dataverse", "fno"]
DATAVERSE: Dialect = "dataverse"
FNO: Dialect = "fno"

FNO_ENUM_NAMESPACE = "Microsoft.Dynamics.DataEntities"
DATAVERSE_NAMESPACE = "Microsoft.Dynamics.CRM"

# Grammar levels entered while parsing (about seven per parenthesis): ~55 nested
# parentheses, far beyond real filters. Anything deeper is a 400, like ODL's limit.
MAX_DEPTH = 400
_TOO_DEEP = "Recursion depth exceeded allowed limit."


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def query_error(dialect: Dialect, message: str) -> ODataError:
    """Build the 400 a service returns for an invalid query, in that service's wording.

    Dataverse documents ``{"code": "0x0", "message": "<parser message>"}``. F&O runs
    ASP.NET Web API OData, which prefixes the parser message and repeats it in
    ``innererror`` (inferred from captures of that stack; F&O-specific captures are rare).
    """
    if dialect == FNO:
        return ODataError(
            400,
            "",
            f"The query specified in the URI is not valid. {message}",
            inner={"message": message, "type": "Microsoft.OData.ODataException", "stacktrace": ""},
        )
    return ODataError(400, "0x0", message)


def _check_dialect(dialect: str) -> Dialect:
    if dialect not in (DATAVERSE, FNO):
        raise ValueError(f"unknown OData dialect {dialect!r}; expected 'dataverse' or 'fno'")
    return dialect  # type: ignore[return-value]


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


class _Lexer:
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
        self.tokens = _Lexer(text, dialect).tokens()
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
            raise self.error(_TOO_DEEP)

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
            return _literal_node(token)
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


def _literal_node(token: Token) -> LiteralNode:
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
    dialect = _check_dialect(dialect)
    if not text.strip():
        raise query_error(dialect, f"Expression expected at position {len(text)} in '{text}'.")
    try:
        return _Parser(text, dialect, aliases).parse()
    except RecursionError:
        raise query_error(dialect, _TOO_DEEP) from None


# ---------------------------------------------------------------------------
# Compiler: AST -> SQLite
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnRef:
    """What a property name means in SQL, as answered by the caller's resolver.

    :param sql: SQL expression (already quoted), e.g. ``'"name"'`` or ``'t."customerid"'``.
    :param field: the catalogue field, when there is one (lookup ``_x_value`` columns have none).
    :param kind: the OData type the property has on the wire.
    """

    sql: str
    field: Field | None = None
    kind: EdmType = EdmType.STRING


Resolver = Callable[[str], ColumnRef]

_NUMERIC = (EdmType.INT32, EdmType.INT64, EdmType.DECIMAL, EdmType.DOUBLE)
_NUMERIC_RANK = {EdmType.INT32: 0, EdmType.INT64: 1, EdmType.DECIMAL: 2, EdmType.DOUBLE: 3}
_SQL_COMPARISON = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


@dataclass
class _Operand:
    """A compiled sub-expression; literals stay unbound until the peer's type is known."""

    kind: EdmType | None  # None: the null literal
    type_name: str
    sql: str = ""
    params: list[Any] = field(default_factory=list)
    literal: LiteralNode | EnumNode | None = None
    enum: EnumType | None = None


class _Compiler:
    def __init__(
        self,
        resolver: Resolver,
        dialect: Dialect,
        enums: Mapping[str, EnumType],
    ) -> None:
        self.resolver = resolver
        self.dialect = dialect
        self.enums = dict(enums)
        self.enums_by_qualified = {f"{FNO_ENUM_NAMESPACE}.{name}": e for name, e in self.enums.items()}

    def error(self, message: str) -> ODataError:
        return query_error(self.dialect, message)

    def incompatible(self, left: _Operand, right: _Operand, op: str) -> ODataError:
        return self.error(
            "A binary operator with incompatible types was detected. Found operand types "
            f"'{left.type_name}' and '{right.type_name}' for operator kind '{OPERATOR_KINDS[op]}'."
        )

    # entry ----------------------------------------------------------------
    def compile_predicate(self, node: Node) -> tuple[str, list[Any]]:
        operand = self.compile(node)
        if operand.kind not in (EdmType.BOOLEAN, None):
            raise self.error("The $filter expression must evaluate to a single boolean value.")
        return self.bind(operand, EdmType.BOOLEAN, None)

    # dispatch -------------------------------------------------------------
    def compile(self, node: Node) -> _Operand:
        if isinstance(node, LiteralNode):
            name = node.kind.value if node.kind is not None else "null"
            return _Operand(node.kind, name, literal=node)
        if isinstance(node, EnumNode):
            return self.enum_literal(node)
        if isinstance(node, PropertyNode):
            return self.property(node)
        if isinstance(node, UnaryNode):
            return self.unary(node)
        if isinstance(node, BinaryNode):
            if node.op in ("and", "or"):
                return self.logical(node)
            if node.op in COMPARISON_OPS:
                return self.comparison(node)
            if node.op == "has":
                left, right = self.compile(node.left), self.compile(node.right)
                raise self.incompatible(left, right, "has")
            return self.arithmetic(node)
        if isinstance(node, FunctionNode):
            return self.function(node)
        if isinstance(node, InNode):
            return self.in_list(node)
        raise self.error("Syntax error: a list is not valid here.")

    def enum_literal(self, node: EnumNode) -> _Operand:
        if self.dialect != FNO or not node.type_name.startswith(f"{FNO_ENUM_NAMESPACE}."):
            raise self.error(f"Unrecognized '{node.type_name}' literal '{node.text}' at '{node.position}'.")
        enum = self.enums_by_qualified.get(node.type_name)
        if enum is None:
            raise self.error(f"The type '{node.type_name}' is not defined in the model.")
        if node.member not in enum.members:
            raise self.error(f"The string '{node.text}' is not a valid enumeration type constant.")
        return _Operand(EdmType.ENUM, node.type_name, literal=node, enum=enum)

    def property(self, node: PropertyNode) -> _Operand:
        ref = self.resolver(node.path)
        if ref.kind == EdmType.ENUM:
            enum_name = ref.field.enum_type if ref.field is not None else None
            enum = self.enums.get(enum_name or "")
            type_name = f"{FNO_ENUM_NAMESPACE}.{enum_name}" if enum_name else EdmType.ENUM.value
            return _Operand(EdmType.ENUM, type_name, sql=ref.sql, enum=enum)
        return _Operand(ref.kind, ref.kind.value, sql=ref.sql)

    # binding --------------------------------------------------------------
    def bind(self, operand: _Operand, target: EdmType | None, op: str | None) -> tuple[str, list[Any]]:
        """Return SQL for ``operand``, converting a literal to the storage form of ``target``."""
        lit = operand.literal
        if lit is None:
            return operand.sql, list(operand.params)
        if isinstance(lit, EnumNode):
            assert operand.enum is not None
            return "?", [operand.enum.members[lit.member]]
        if lit.kind is None:
            return "NULL", []
        return "?", [_storage_value(lit, target if target is not None else lit.kind, op)]

    # operators ------------------------------------------------------------
    def unary(self, node: UnaryNode) -> _Operand:
        # Fold chains of the same operator: `not not x` is x (also under three-valued
        # logic) and `- - x` is x, so long chains cost no SQL nesting.
        count = 0
        inner: Node = node
        while isinstance(inner, UnaryNode) and inner.op == node.op:
            count += 1
            inner = inner.operand
        operand = self.compile(inner)
        if node.op == "not":
            if operand.kind not in (EdmType.BOOLEAN, None):
                raise self.error(
                    "A unary operator with an incompatible type was detected. Found operand type "
                    f"'{operand.type_name}' for operator kind 'Not'."
                )
            sql, params = self.bind(operand, EdmType.BOOLEAN, None)
            if count % 2 == 0:
                return _Operand(EdmType.BOOLEAN, EdmType.BOOLEAN.value, sql, params)
            return _Operand(EdmType.BOOLEAN, EdmType.BOOLEAN.value, f"(NOT {sql})", params)
        if operand.kind not in (*_NUMERIC, None):
            raise self.error(
                "A unary operator with an incompatible type was detected. Found operand type "
                f"'{operand.type_name}' for operator kind 'Negate'."
            )
        if count % 2 == 0:
            return operand
        if isinstance(operand.literal, LiteralNode) and operand.literal.kind is not None:
            lit = operand.literal
            negated = LiteralNode(lit.kind, -lit.value, f"-{lit.text}", node.position)
            return _Operand(lit.kind, operand.type_name, literal=negated)
        sql, params = self.bind(operand, operand.kind, None)
        return _Operand(operand.kind, operand.type_name, f"(-{sql})", params)

    def logical(self, node: BinaryNode) -> _Operand:
        """Compile a whole ``a or b or c ...`` chain at once.

        Clients filter on hundreds of keys with long ``or`` chains; the parser builds them
        left-deep, so walking the spine iteratively keeps both Python's recursion and
        SQLite's expression depth (1000) flat, and ``(a OR b OR c)`` means the same.
        """
        operands: list[Node] = []
        current: Node = node
        while isinstance(current, BinaryNode) and current.op == node.op:
            operands.append(current.right)
            current = current.left
        operands.append(current)
        operands.reverse()
        compiled = [self.compile(operand_node) for operand_node in operands]
        # Report the first failing pair the way the binder meets them: innermost first.
        boolean = _Operand(EdmType.BOOLEAN, EdmType.BOOLEAN.value)
        for index in range(1, len(compiled)):
            left = compiled[0] if index == 1 else boolean
            right = compiled[index]
            if left.kind not in (EdmType.BOOLEAN, None) or right.kind not in (EdmType.BOOLEAN, None):
                raise self.incompatible(left, right, node.op)
        sqls: list[str] = []
        params: list[Any] = []
        for operand in compiled:
            sql, operand_params = self.bind(operand, EdmType.BOOLEAN, None)
            sqls.append(sql)
            params.extend(operand_params)
        keyword = " AND " if node.op == "and" else " OR "
        return _Operand(EdmType.BOOLEAN, EdmType.BOOLEAN.value, _balanced(sqls, keyword), params)

    def comparable(self, left: _Operand, right: _Operand, op: str) -> EdmType | None:
        """Check ODL's promotion rules; return the common type literals are bound to."""
        a, b = left.kind, right.kind
        if a is None or b is None:
            return b if a is None else a
        if a in _NUMERIC and b in _NUMERIC:
            return max(a, b, key=_NUMERIC_RANK.__getitem__)
        if a == b == EdmType.ENUM:
            if left.type_name != right.type_name:
                raise self.incompatible(left, right, op)
            return EdmType.ENUM
        if a == b:
            return a
        temporal = {EdmType.DATETIMEOFFSET, EdmType.DATE}
        if {a, b} <= temporal:
            # The property decides the storage form a date/time literal is bound as.
            return a if left.literal is None else b
        raise self.incompatible(left, right, op)

    def comparison(self, node: BinaryNode) -> _Operand:
        op = node.op
        left, right = self.compile(node.left), self.compile(node.right)
        common = self.comparable(left, right, op)
        if EdmType.ENUM in (left.kind, right.kind) and op not in ("eq", "ne"):
            raise self.error(
                f"The operator '{op}' is not supported for enum values; enums can only be compared "
                "with 'eq' and 'ne'."
            )
        boolean = EdmType.BOOLEAN.value
        # Only the null literal has no type, so ``eq null`` / ``ne null`` become IS [NOT] NULL.
        if op in ("eq", "ne") and None in (left.kind, right.kind):
            other = left if right.kind is None else right
            sql, params = self.bind(other, other.kind, op)
            test = "IS NULL" if op == "eq" else "IS NOT NULL"
            return _Operand(EdmType.BOOLEAN, boolean, f"({sql} {test})", params)
        if common == EdmType.STRING and self.dialect == FNO and op in ("eq", "ne"):
            wildcard = self.wildcard(left, right, op)
            if wildcard is not None:
                return wildcard
        lsql, lparams = self.bind(left, common, op)
        rsql, rparams = self.bind(right, common, op)
        collate = " COLLATE NOCASE" if common == EdmType.STRING else ""
        sql = f"({lsql} {_SQL_COMPARISON[op]} {rsql}{collate})"
        return _Operand(EdmType.BOOLEAN, boolean, sql, lparams + rparams)

    def wildcard(self, left: _Operand, right: _Operand, op: str) -> _Operand | None:
        """F&O's ``contains``: ``Field eq '*text*'`` becomes a LIKE (``*`` is the only wildcard)."""
        for pattern_side, other in ((right, left), (left, right)):
            lit = pattern_side.literal
            if isinstance(lit, LiteralNode) and lit.kind == EdmType.STRING and "*" in lit.value:
                if other.literal is not None:
                    continue
                pattern = like_pattern(lit.value)
                sql, params = self.bind(other, EdmType.STRING, op)
                keyword = "LIKE" if op == "eq" else "NOT LIKE"
                return _Operand(
                    EdmType.BOOLEAN,
                    EdmType.BOOLEAN.value,
                    f"({sql} {keyword} ? ESCAPE '\\')",
                    [*params, pattern],
                )
        return None

    def arithmetic(self, node: BinaryNode) -> _Operand:
        left, right = self.compile(node.left), self.compile(node.right)
        if self.dialect == DATAVERSE:
            # Dataverse turns $filter into QueryExpression conditions, which have no arithmetic.
            raise self.error(f"The arithmetic operator '{OPERATOR_KINDS[node.op]}' is not supported.")
        for side in (left, right):
            if side.kind not in (*_NUMERIC, None):
                raise self.incompatible(left, right, node.op)
        kinds = [k for k in (left.kind, right.kind) if k is not None] or [EdmType.INT32]
        result = max(kinds, key=_NUMERIC_RANK.__getitem__)
        if node.op == "divby":
            result = EdmType.DOUBLE if result == EdmType.DOUBLE else EdmType.DECIMAL
        lsql, lparams = self.bind(left, result, None)
        rsql, rparams = self.bind(right, result, None)
        integral = result in (EdmType.INT32, EdmType.INT64)
        if node.op == "divby":
            sql = f"(CAST({lsql} AS REAL) / {rsql})"
        elif node.op == "mod" and not integral:
            # SQLite's % truncates REAL operands to integers; OData's mod keeps the fraction.
            sql = f"({lsql} - {rsql} * CAST({lsql} / {rsql} AS INTEGER))"
            return _Operand(result, result.value, sql, lparams + rparams + lparams + rparams)
        elif node.op == "div" and not integral:
            sql = f"(CAST({lsql} AS REAL) / {rsql})"
        else:
            symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%"}[node.op]
            sql = f"({lsql} {symbol} {rsql})"
        return _Operand(result, result.value, sql, lparams + rparams)

    # functions ------------------------------------------------------------
    def function(self, node: FunctionNode) -> _Operand:
        name = node.name
        if self.dialect == FNO:
            raise self.error(
                f"Function '{name}' is not allowed. To allow it, set the 'AllowedFunctions' property on "
                "EnableQueryAttribute or QueryValidationSettings."
            )
        if name.startswith(f"{DATAVERSE_NAMESPACE}."):
            return self.query_function(node, name[len(DATAVERSE_NAMESPACE) + 1 :])
        signatures = {
            "contains": 2,
            "startswith": 2,
            "endswith": 2,
            "tolower": 1,
            "toupper": 1,
        }
        if name not in signatures:
            raise self.error(
                f"An unknown function with name '{name}' was found. This may also be a function import "
                "or a key lookup on a navigation property, which is not allowed."
            )
        args = [self.compile(arg) for arg in node.args]
        arity = signatures[name]
        if node.named or len(args) != arity or any(a.kind not in (EdmType.STRING, None) for a in args):
            params = ", ".join(["Edm.String Nullable=true"] * arity)
            raise self.error(
                f"No function signature for the function with name '{name}' matches the specified "
                f"arguments. The function signatures considered are: {name}({params})."
            )
        if arity == 1:
            sql, params_ = self.bind(args[0], EdmType.STRING, None)
            func = "lower" if name == "tolower" else "upper"
            return _Operand(EdmType.STRING, EdmType.STRING.value, f"{func}({sql})", params_)
        subject, needle = args
        ssql, sparams = self.bind(subject, EdmType.STRING, None)
        # Dataverse passes %, _ and [] through to SQL LIKE (documented wildcard behaviour).
        prefix = "%" if name in ("contains", "endswith") else ""
        suffix = "%" if name in ("contains", "startswith") else ""
        lit = needle.literal
        if isinstance(lit, LiteralNode) and lit.kind == EdmType.STRING:
            return _Operand(
                EdmType.BOOLEAN,
                EdmType.BOOLEAN.value,
                f"({ssql} LIKE ?)",
                [*sparams, prefix + lit.value + suffix],
            )
        nsql, nparams = self.bind(needle, EdmType.STRING, None)
        pattern = " || ".join(
            part for part in (f"'{prefix}'" if prefix else "", nsql, f"'{suffix}'" if suffix else "") if part
        )
        return _Operand(
            EdmType.BOOLEAN, EdmType.BOOLEAN.value, f"({ssql} LIKE ({pattern}))", sparams + nparams
        )

    def query_function(self, node: FunctionNode, short: str) -> _Operand:
        """Dataverse ``Microsoft.Dynamics.CRM.In/NotIn/Between/NotBetween`` query functions."""
        if short not in ("In", "NotIn", "Between", "NotBetween"):
            raise self.error(
                f"An unknown function with name '{node.name}' was found. This may also be a function "
                "import or a key lookup on a navigation property, which is not allowed."
            )
        named = dict(node.named)
        if node.args or set(named) != {"PropertyName", "PropertyValues"}:
            raise self.error(
                f"Could not find a function named '{node.name}' with parameters "
                f"'{','.join(name for name, _ in node.named)}'."
            )
        prop_node, values_node = named["PropertyName"], named["PropertyValues"]
        if not (isinstance(prop_node, LiteralNode) and prop_node.kind == EdmType.STRING):
            raise self.error(
                f"The value of parameter 'PropertyName' of function '{node.name}' must be a string."
            )
        if not isinstance(values_node, ListNode):
            raise self.error(
                f"The value of parameter 'PropertyValues' of function '{node.name}' must be an array."
            )
        column = self.property(PropertyNode(prop_node.value, prop_node.position))
        values: list[Any] = []
        for item in values_node.items:
            if not isinstance(item, LiteralNode) or item.kind is None:
                raise self.error(
                    f"The values of parameter 'PropertyValues' of function '{node.name}' must be literals."
                )
            values.append(self.coerce_text(item, column))
        if short in ("Between", "NotBetween"):
            if len(values) != 2:
                raise self.error(
                    f"The function '{node.name}' expects exactly two values in 'PropertyValues'."
                )
            keyword = "BETWEEN" if short == "Between" else "NOT BETWEEN"
            collate = " COLLATE NOCASE" if column.kind == EdmType.STRING else ""
            sql = f"({column.sql} {keyword} ?{collate} AND ?{collate})"
            return _Operand(EdmType.BOOLEAN, EdmType.BOOLEAN.value, sql, values)
        if not values:
            raise self.error(f"The function '{node.name}' expects at least one value in 'PropertyValues'.")
        keyword = "IN" if short == "In" else "NOT IN"
        collate = " COLLATE NOCASE" if column.kind == EdmType.STRING else ""
        marks = ", ".join("?" for _ in values)
        return _Operand(
            EdmType.BOOLEAN, EdmType.BOOLEAN.value, f"({column.sql}{collate} {keyword} ({marks}))", values
        )

    def coerce_text(self, item: LiteralNode, column: _Operand) -> Any:
        """Query-function values arrive as strings; convert them to the property's type."""
        if item.kind != EdmType.STRING:
            probe = _Operand(item.kind, item.kind.value if item.kind else "null", literal=item)
            common = self.comparable(column, probe, "eq")
            return _storage_value(item, common or column.kind or EdmType.STRING, "eq")
        if column.kind == EdmType.STRING:
            return item.value
        try:
            tokens = _Lexer(item.value.strip(), self.dialect).tokens()
        except ODataError:
            tokens = []
        if len(tokens) == 2:
            parsed: Node | None = None
            token = tokens[0]
            if token.kind in ("number", "guid", "datetime", "date"):
                parsed = _literal_node(token)
            elif token.kind == "ident" and token.text in ("true", "false"):
                parsed = LiteralNode(EdmType.BOOLEAN, token.text == "true", token.text, item.position)
            if isinstance(parsed, LiteralNode):
                probe = _Operand(parsed.kind, parsed.kind.value if parsed.kind else "null", literal=parsed)
                try:
                    common = self.comparable(column, probe, "eq")
                except ODataError:
                    common = None
                if common is not None:
                    return _storage_value(parsed, common, "eq")
        raise self.error(
            f"The value '{item.value}' is not valid for a property of type '{column.type_name}'."
        )

    def in_list(self, node: InNode) -> _Operand:
        operand = self.compile(node.operand)
        if not node.items.items:
            raise self.error(f"Expression expected at position {node.items.position + 1}.")
        sqls: list[str] = []
        params: list[Any] = []
        for item in node.items.items:
            value = self.compile(item)
            common = self.comparable(operand, value, "eq")
            sql, item_params = self.bind(value, common, "eq")
            sqls.append(sql)
            params.extend(item_params)
        osql, oparams = self.bind(operand, operand.kind, "eq")
        collate = " COLLATE NOCASE" if operand.kind == EdmType.STRING else ""
        return _Operand(
            EdmType.BOOLEAN,
            EdmType.BOOLEAN.value,
            f"({osql}{collate} IN ({', '.join(sqls)}))",
            oparams + params,
        )


_CHAIN_CHUNK = 64
# SQLite's parser stack (about 100 entries) overflows near 90 nested parentheses, or
# near 47 when each level is a NOT; 45 is safe for any mix and far beyond real filters.
MAX_SQL_NESTING = 45


def _nesting(sql: str) -> int:
    """Deepest parenthesis nesting of generated SQL (its only quoted text has no parentheses)."""
    depth = deepest = 0
    for char in sql:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    return deepest


def _balanced(terms: list[str], keyword: str) -> str:
    """Join terms with AND/OR in parenthesised chunks.

    SQLite parses even a flat ``a OR b OR c`` as a left-deep tree and refuses trees
    deeper than 1000, so long chains are grouped; parameters keep their order.
    """
    while len(terms) > _CHAIN_CHUNK:
        terms = [f"({keyword.join(terms[i : i + _CHAIN_CHUNK])})" for i in range(0, len(terms), _CHAIN_CHUNK)]
    return f"({keyword.join(terms)})"


def like_pattern(value: str) -> str:
    """Turn an F&O wildcard value (``*`` = any run) into a LIKE pattern escaped with ``\\``."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _storage_value(lit: LiteralNode, target: EdmType, op: str | None) -> Any:
    """Convert a literal to how the store keeps ``target`` values (see docs/design.md)."""
    value = lit.value
    kind = lit.kind
    if kind == EdmType.BOOLEAN:
        return 1 if value else 0
    if kind in _NUMERIC:
        if isinstance(value, Decimal):
            return (
                int(value)
                if target in (EdmType.INT32, EdmType.INT64) and value == int(value)
                else float(value)
            )
        return value
    if kind == EdmType.GUID:
        return str(value).lower()
    if kind == EdmType.DATETIMEOFFSET:
        stamp: datetime = value.astimezone(timezone.utc)
        if target == EdmType.DATE:
            return stamp.date().isoformat()
        return _stamp_for_comparison(stamp, op)
    if kind == EdmType.DATE:
        if target == EdmType.DATETIMEOFFSET:
            return f"{value.isoformat()}T00:00:00Z"
        return value.isoformat()
    return value


def _stamp_for_comparison(stamp: datetime, op: str | None) -> str:
    """Render a UTC instant in the stored whole-second form without changing the comparison.

    Stored values have no fraction, so ``ge``/``lt`` against a fractional instant equal
    the same comparison against the next whole second, and ``gt``/``le`` the previous one;
    ``eq`` with a fraction can never match, so it keeps the fraction.
    """
    whole = stamp.replace(microsecond=0)
    if stamp.microsecond:
        if op in ("ge", "lt"):
            whole += timedelta(seconds=1)
        elif op in ("eq", "ne"):
            return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return whole.strftime("%Y-%m-%dT%H:%M:%SZ")


def compile_filter(
    node: Node | str,
    resolver: Resolver,
    *,
    dialect: Dialect,
    enums: Mapping[str, EnumType] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> tuple[str, list[Any]]:
    """Turn a ``$filter`` (text or parsed AST) into a SQLite ``WHERE`` fragment and parameters.

    :param node: AST from :func:`parse_filter`, or the raw filter text.
    :param resolver: maps a property path to a :class:`ColumnRef`; raises ``ODataError``
        for unknown properties, worded the way its service words it.
    :param dialect: ``"dataverse"`` or ``"fno"``.
    :param enums: the catalogue's F&O enum types by name, for enum literals and properties.
    :param aliases: Dataverse parameter aliases, only used when ``node`` is text.
    """
    dialect = _check_dialect(dialect)
    if isinstance(node, str):
        node = parse_filter(node, dialect, aliases=aliases)
    try:
        sql, params = _Compiler(resolver, dialect, enums or {}).compile_predicate(node)
    except RecursionError:
        raise query_error(dialect, _TOO_DEEP) from None
    if _nesting(sql) > MAX_SQL_NESTING:
        raise query_error(dialect, _TOO_DEEP)
    return sql, params


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
    dialect = _check_dialect(dialect)
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
    dialect = _check_dialect(dialect)
    tokens = _Lexer(text, dialect).tokens()
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
    dialect = _check_dialect(dialect)
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
