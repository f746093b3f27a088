"""A tiny, whitelisted expression language for computed fields and routing rules.

Mapping files are data that an operator edits, so they must never run code. An
expression is parsed with Python's own parser (``ast.parse(mode="eval")``) and only the
node kinds and functions listed here are accepted; anything else (attribute access,
subscripts, lambdas, comprehensions, unknown names in call position) is refused when
the mapping loads, long before a row is touched. Evaluation walks the checked tree; it
never calls :func:`eval`.

Syntax: column names, literals (``'text'``, ``12``, ``3.5``, ``true``, ``false``,
``null``), ``+ - * /``, unary ``-``, comparisons (``== != < <= > >=``, ``in [..]``),
``and``/``or``/``not``, ``a if cond else b`` and calls of the functions in
:data:`FUNCTIONS`. Blank inputs propagate as null through arithmetic.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import TYPE_CHECKING, Any

from prospect_to_cash.sync.values import (
    MEMO_PROBE_ROWS,
    ConversionError,
    is_blank,
    memo_key,
    normalize,
    py,
    round_half_up,
    to_bool,
    to_decimal,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence


class ExpressionError(ValueError):
    """An expression that is not allowed, or that failed on one row."""


_CONSTANT_NAMES = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


def _text(value: Any) -> str:
    value = py(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else str(value)
    return str(value)


def _concat(*parts: Any) -> str | None:
    """Join the parts as text; blanks count as empty; all blank → null."""
    if all(is_blank(p) for p in parts):
        return None
    return "".join(_text(p) for p in parts)


def _join(separator: Any, *parts: Any) -> str | None:
    """Join the non-blank parts with ``separator`` (e.g. street lines)."""
    kept = [_text(p) for p in parts if not is_blank(p)]
    return _text(separator).join(kept) if kept else None


def _coalesce(*values: Any) -> Any:
    for value in values:
        if not is_blank(value):
            return py(value)
    return None


def _round(value: Any, places: Any = 2) -> Decimal | None:
    number = to_decimal(value)
    return None if number is None else round_half_up(number, int(places))


def _unit_discount(total: Any, quantity: Any, places: Any = 2) -> Decimal | None:
    """A line discount spread over the quantity, rounded (10.00 over 3 → 3.33).

    P2C sends F&O a per-unit discount; F&O multiplies it back by the quantity.
    """
    amount, qty = to_decimal(total), to_decimal(quantity)
    if amount is None:
        return None
    if qty is None or qty == 0:
        return round_half_up(amount, int(places))
    return round_half_up(amount / qty, int(places))


def _discount_rounding_charge(total: Any, quantity: Any, places: Any = 2) -> Decimal | None:
    """What the per-unit rounding lost, as a sales charge (3 x 3.33 leaves -0.01).

    The charge is negative when the rounded unit discount gives away too little, so that
    quantity x unit discount - charge equals the original line discount again.
    """
    amount, qty = to_decimal(total), to_decimal(quantity)
    if amount is None:
        return None
    unit = _unit_discount(amount, qty, places)
    assert unit is not None
    spread = unit * (qty if qty not in (None, 0) else Decimal(1))
    return round_half_up(spread - amount, int(places))


def _line_discount(unit_discount: Any, quantity: Any, charge: Any = 0, places: Any = 2) -> Decimal | None:
    """The whole line discount rebuilt from a unit discount and its rounding charge
    (3 x 3.33 with a -0.01 charge = 10.00): the F&O → Sales direction."""
    unit, qty = to_decimal(unit_discount), to_decimal(quantity)
    if unit is None:
        return None
    rest = to_decimal(charge) or Decimal(0)
    return round_half_up(unit * (qty if qty is not None else Decimal(1)) - rest, int(places))


def _noyes(value: Any) -> str | None:
    """A boolean as F&O's NoYes enum member name."""
    flag = to_bool(value)
    return None if flag is None else ("Yes" if flag else "No")


def _is_yes(value: Any) -> bool | None:
    """F&O's NoYes member name (or any boolean spelling) as a boolean."""
    return to_bool(value)


def _left(value: Any, length: Any) -> str | None:
    return None if is_blank(value) else _text(value)[: int(length)]


def _replace(value: Any, old: Any, new: Any) -> str | None:
    return None if is_blank(value) else _text(value).replace(_text(old), _text(new))


def _fno_date(value: Any) -> str | None:
    """An F&O date, with F&O's "no date" sentinel (1900-01-01) read as null."""
    moment = normalize(value, "datetime")
    if moment is None or moment < "1901-01-01":
        return None
    return moment


def _as_date(value: Any) -> str | None:
    return normalize(value, "date")


def _as_datetime(value: Any) -> str | None:
    return normalize(value, "datetime")


def _as_int(value: Any) -> int | None:
    return normalize(value, "int")


def _as_decimal(value: Any) -> Decimal | None:
    return to_decimal(value)


def _abs(value: Any) -> Decimal | None:
    number = to_decimal(value)
    return None if number is None else abs(number)


def _blank_to_null(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(value: Any, *rest: Any) -> Any:
        return None if is_blank(value) else function(_text(value), *rest)

    return wrapper


@dataclass(frozen=True)
class _Function:
    call: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: variadic


#: The only functions an expression may call, with their arity.
FUNCTIONS: dict[str, _Function] = {
    "concat": _Function(_concat, 1, None),
    "join": _Function(_join, 2, None),
    "coalesce": _Function(_coalesce, 1, None),
    "if_blank": _Function(lambda value, default: default if is_blank(value) else py(value), 2, 2),
    "is_blank": _Function(is_blank, 1, 1),
    "round": _Function(_round, 1, 2),
    "abs": _Function(_abs, 1, 1),
    "unit_discount": _Function(_unit_discount, 2, 3),
    "discount_rounding_charge": _Function(_discount_rounding_charge, 2, 3),
    "line_discount": _Function(_line_discount, 2, 4),
    "noyes": _Function(_noyes, 1, 1),
    "is_yes": _Function(_is_yes, 1, 1),
    "upper": _Function(_blank_to_null(str.upper), 1, 1),
    "lower": _Function(_blank_to_null(str.lower), 1, 1),
    "trim": _Function(_blank_to_null(str.strip), 1, 1),
    "left": _Function(_left, 2, 2),
    "replace": _Function(_replace, 3, 3),
    "str": _Function(lambda value: None if is_blank(value) else _text(value), 1, 1),
    "int": _Function(_as_int, 1, 1),
    "decimal": _Function(_as_decimal, 1, 1),
    "date": _Function(_as_date, 1, 1),
    "fno_date": _Function(_fno_date, 1, 1),
    "datetime": _Function(_as_datetime, 1, 1),
}

_ARITHMETIC = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_ORDERING = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}

_Row = "Callable[[Mapping[str, Sequence[Any]], int], Any]"


def _truthy(value: Any) -> bool:
    value = py(value)
    if is_blank(value):
        return False
    if isinstance(value, str):
        try:
            return bool(to_bool(value))
        except ConversionError:
            return True
    return bool(value)


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """Bring two values to one type: booleans with booleans, numbers as decimals,
    everything else as text, so that ``flag == true`` works whether the column held
    ``True``, ``1`` or ``"true"``."""
    left, right = py(left), py(right)
    if isinstance(left, bool) or isinstance(right, bool):
        return to_bool(left), to_bool(right)
    if isinstance(left, (int, float, Decimal)) or isinstance(right, (int, float, Decimal)):
        try:
            return to_decimal(left), to_decimal(right)
        except ConversionError:
            return _text(left), _text(right)
    return left, right


def _equal(left: Any, right: Any) -> bool:
    if is_blank(left) or is_blank(right):
        return is_blank(left) and is_blank(right)
    try:
        a, b = _comparable(left, right)
    except ConversionError:
        return False
    return bool(a == b)


class Expression:
    """A checked expression, ready to evaluate column-wise over a frame.

    :param text: the expression source from the mapping file.
    :param environment: values reachable through ``env('dotted.path')``; resolved at
        compile time so an unknown path fails when the mapping loads.
    """

    def __init__(self, text: str, *, environment: Mapping[str, Any] | None = None) -> None:
        self.text = text
        self._environment = environment or {}
        self.names: set[str] = set()
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(f"cannot parse expression {text!r}: {exc.msg}") from exc
        self._root = self._compile(tree.body)

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    # -- compile ---------------------------------------------------------------------------
    def _compile(self, node: ast.AST) -> Callable[[Mapping[str, Sequence[Any]], int], Any]:
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, (str, int, float, bool, type(None))):
                raise ExpressionError(f"literal {node.value!r} not allowed in {self.text!r}")
            constant = Decimal(repr(node.value)) if isinstance(node.value, float) else node.value
            return lambda _cols, _i: constant
        if isinstance(node, ast.Name):
            if node.id in _CONSTANT_NAMES:
                literal = _CONSTANT_NAMES[node.id]
                return lambda _cols, _i: literal
            name = node.id
            self.names.add(name)
            return lambda cols, i: cols[name][i]
        if isinstance(node, ast.UnaryOp):
            operand = self._compile(node.operand)
            if isinstance(node.op, ast.USub):

                def negate(cols: Mapping[str, Sequence[Any]], i: int) -> Any:
                    number = to_decimal(operand(cols, i))
                    return None if number is None else -number

                return negate
            if isinstance(node.op, ast.Not):
                return lambda cols, i: not _truthy(operand(cols, i))
            raise ExpressionError(f"operator not allowed in {self.text!r}")
        if isinstance(node, ast.BinOp):
            op = _ARITHMETIC.get(type(node.op))
            if op is None:
                raise ExpressionError(f"only + - * / are allowed, in {self.text!r}")
            left, right = self._compile(node.left), self._compile(node.right)
            is_add = isinstance(node.op, ast.Add)

            def arithmetic(cols: Mapping[str, Sequence[Any]], i: int) -> Any:
                a, b = py(left(cols, i)), py(right(cols, i))
                if is_add and isinstance(a, str) and isinstance(b, str):
                    return a + b
                x, y = to_decimal(a), to_decimal(b)
                if x is None or y is None:
                    return None
                try:
                    return op(x, y)
                except (DivisionByZero, InvalidOperation):
                    return None

            return arithmetic
        if isinstance(node, ast.BoolOp):
            parts = [self._compile(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda cols, i: all(_truthy(p(cols, i)) for p in parts)
            return lambda cols, i: any(_truthy(p(cols, i)) for p in parts)
        if isinstance(node, ast.Compare):
            return self._compile_compare(node)
        if isinstance(node, ast.IfExp):
            test, body, orelse = (
                self._compile(node.test),
                self._compile(node.body),
                self._compile(node.orelse),
            )
            return lambda cols, i: body(cols, i) if _truthy(test(cols, i)) else orelse(cols, i)
        if isinstance(node, ast.Call):
            return self._compile_call(node)
        raise ExpressionError(f"{type(node).__name__} is not allowed in expression {self.text!r}")

    def _compile_compare(self, node: ast.Compare) -> Callable[[Mapping[str, Sequence[Any]], int], Any]:
        if len(node.ops) != 1:
            raise ExpressionError(f"chained comparisons are not allowed in {self.text!r}")
        op = node.ops[0]
        left = self._compile(node.left)
        target = node.comparators[0]
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(target, (ast.List, ast.Tuple)):
                raise ExpressionError(f"'in' needs a literal list, in {self.text!r}")
            members = [self._compile(e) for e in target.elts]
            negate = isinstance(op, ast.NotIn)

            def membership(cols: Mapping[str, Sequence[Any]], i: int) -> bool:
                value = left(cols, i)
                found = any(_equal(value, m(cols, i)) for m in members)
                return found != negate

            return membership
        right = self._compile(target)
        if isinstance(op, ast.Eq):
            return lambda cols, i: _equal(left(cols, i), right(cols, i))
        if isinstance(op, ast.NotEq):
            return lambda cols, i: not _equal(left(cols, i), right(cols, i))
        ordering = _ORDERING.get(type(op))
        if ordering is None:
            raise ExpressionError(f"comparison not allowed in {self.text!r}")

        def ordered(cols: Mapping[str, Sequence[Any]], i: int) -> bool:
            a, b = left(cols, i), right(cols, i)
            if is_blank(a) or is_blank(b):
                return False
            x, y = _comparable(a, b)
            return bool(ordering(x, y))

        return ordered

    def _compile_call(self, node: ast.Call) -> Callable[[Mapping[str, Sequence[Any]], int], Any]:
        if not isinstance(node.func, ast.Name):
            raise ExpressionError(f"only plain function calls are allowed, in {self.text!r}")
        if node.keywords:
            raise ExpressionError(f"keyword arguments are not allowed, in {self.text!r}")
        name = node.func.id
        if name == "env":
            if len(node.args) != 1 or not isinstance(node.args[0], ast.Constant):
                raise ExpressionError(f"env() takes one literal path, in {self.text!r}")
            value = lookup_path(self._environment, str(node.args[0].value))
            return lambda _cols, _i: value
        function = FUNCTIONS.get(name)
        if function is None:
            raise ExpressionError(
                f"unknown function {name}() in {self.text!r}; allowed: {', '.join(sorted(FUNCTIONS))}, env"
            )
        count = len(node.args)
        if count < function.min_args or (function.max_args is not None and count > function.max_args):
            raise ExpressionError(f"{name}() takes {function.min_args}..{function.max_args} arguments")
        arguments = [self._compile(a) for a in node.args]
        call = function.call
        return lambda cols, i: call(*(a(cols, i) for a in arguments))

    # -- evaluate --------------------------------------------------------------------------
    def evaluate(self, columns: Mapping[str, Sequence[Any]], length: int) -> tuple[list[Any], dict[int, str]]:
        """Evaluate for ``length`` rows; returns values and per-row error messages.

        A row whose evaluation fails gets None and an error message, so the caller can
        reject that row alone rather than abort the task. Every function an expression
        may call is pure, so the result depends on the values of :attr:`names` alone: an
        expression without names is evaluated once, and the others once per distinct
        combination of inputs while inputs repeat.
        """
        missing = self.names - set(columns)
        if missing:
            raise ExpressionError(f"expression {self.text!r} uses unknown column(s): {sorted(missing)}")
        root, text = self._root, self.text

        def at(index: int) -> tuple[Any, str | None]:
            try:
                return root(columns, index), None
            except (ConversionError, ArithmeticError, TypeError, ValueError) as exc:
                return None, f"expression {text!r} failed: {exc}"

        if not self.names:
            value, error = at(0) if length else (None, None)
            return [value] * length, ({row: error for row in range(length)} if error else {})
        inputs = [columns[name] for name in sorted(self.names)]
        if len(inputs) == 1:
            keys: list[Any] = [memo_key(value) for value in inputs[0][:length]]
        else:
            keys = [tuple(memo_key(value) for value in row) for row in zip(*inputs, strict=False)][:length]
        results: list[Any] = []
        errors: dict[int, str] = {}
        cache: dict[Any, tuple[Any, str | None]] | None = {}
        for index, key in enumerate(keys):
            if index == MEMO_PROBE_ROWS and cache is not None and len(cache) > MEMO_PROBE_ROWS // 2:
                cache = None  # mostly distinct inputs: remembering costs more than it saves
            outcome = None
            if cache is not None:
                try:
                    outcome = cache.get(key)
                    if outcome is None:
                        outcome = cache[key] = at(index)
                except TypeError:  # an unhashable input
                    outcome = None
            if outcome is None:
                outcome = at(index)
            results.append(outcome[0])
            if outcome[1] is not None:
                errors[index] = outcome[1]
        return results, errors

    def evaluate_one(self, row: Mapping[str, Any]) -> Any:
        """Evaluate against a single row (tests and previews)."""
        values, errors = self.evaluate({k: [v] for k, v in row.items()}, 1)
        if errors:
            raise ExpressionError(errors[0])
        return values[0]


def lookup_path(tree: Mapping[str, Any], path: str) -> Any:
    """``a.b.c`` in a nested mapping; a missing step is an error, not a silent null."""
    node: Any = tree
    for step in path.split("."):
        if not isinstance(node, dict) or step not in node:
            raise ExpressionError(f"environment has no value at {path!r}")
        node = node[step]
    return node
