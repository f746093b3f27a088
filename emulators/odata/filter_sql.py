"""``$filter`` compilation for both emulated services: type checks and SQLite.

Type-checks a parsed filter the way the OData binder does and only then turns it into a
SQLite ``WHERE`` fragment through a caller-supplied resolver. String comparisons are
case-insensitive on both services (SQL Server collation), so the SQL uses ``COLLATE
NOCASE`` and ``LIKE``. Literals are always bound as parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from emulators.odata.dialect import (
    DATAVERSE,
    DATAVERSE_NAMESPACE,
    FNO,
    FNO_ENUM_NAMESPACE,
    TOO_DEEP,
    Dialect,
    check_dialect,
    query_error,
)
from emulators.odata.errors import ODataError
from emulators.odata.filter_parse import (
    COMPARISON_OPS,
    OPERATOR_KINDS,
    BinaryNode,
    EnumNode,
    FunctionNode,
    InNode,
    Lexer,
    ListNode,
    LiteralNode,
    Node,
    PropertyNode,
    UnaryNode,
    literal_node,
    parse_filter,
)
from emulators.schema.model import EdmType

if TYPE_CHECKING:
    from emulators.schema.model import EnumType, Field

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
            tokens = Lexer(item.value.strip(), self.dialect).tokens()
        except ODataError:
            tokens = []
        if len(tokens) == 2:
            parsed: Node | None = None
            token = tokens[0]
            if token.kind in ("number", "guid", "datetime", "date"):
                parsed = literal_node(token)
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
    dialect = check_dialect(dialect)
    if isinstance(node, str):
        node = parse_filter(node, dialect, aliases=aliases)
    try:
        sql, params = _Compiler(resolver, dialect, enums or {}).compile_predicate(node)
    except RecursionError:
        raise query_error(dialect, TOO_DEEP) from None
    if _nesting(sql) > MAX_SQL_NESTING:
        raise query_error(dialect, TOO_DEEP)
    return sql, params
