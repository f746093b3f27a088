"""The OData query library's $filter parser: structure, precedence, literals and refusals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from emulators.odata.filter_parse import (
    BinaryNode,
    LiteralNode,
    parse_filter,
)
from emulators.schema.model import EdmType
from tests.support.odata_tables import error_of, shape

# ---------------------------------------------------------------------------
# Parser: structure and precedence
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a eq 1 or b eq 2 and c eq 3", ("or", ("eq", "a", 1), ("and", ("eq", "b", 2), ("eq", "c", 3)))),
        ("(a eq 1 or b eq 2) and c eq 3", ("and", ("or", ("eq", "a", 1), ("eq", "b", 2)), ("eq", "c", 3))),
        ("a eq 1 and b eq 2 and c eq 3", ("and", ("and", ("eq", "a", 1), ("eq", "b", 2)), ("eq", "c", 3))),
        # ODL binds `not` tighter than comparisons: `not a eq b` is `(not a) eq b`.
        ("not a eq b", ("eq", ("not", "a"), "b")),
        ("not (a eq b)", ("not", ("eq", "a", "b"))),
        ("a add b mul c gt 1", ("gt", ("add", "a", ("mul", "b", "c")), 1)),
        ("a sub b sub c eq 0", ("eq", ("sub", ("sub", "a", "b"), "c"), 0)),
        ("a mod 2 eq 1", ("eq", ("mod", "a", 2), 1)),
        ("a divby 2 ge 1.5", ("ge", ("divby", "a", 2), Decimal("1.5"))),
        ("-a lt -3", ("lt", ("negate", "a"), -3)),
        ("  a   eq\t'x'  ", ("eq", "a", "x")),
        ("nav/name eq 'x'", ("eq", "nav/name", "x")),
    ],
)
def test_precedence_and_associativity(text: str, expected: Any) -> None:
    assert shape(parse_filter(text, "fno")) == expected


@pytest.mark.parametrize(
    ("literal", "kind", "value"),
    [
        ("'it''s'", EdmType.STRING, "it's"),
        ("''", EdmType.STRING, ""),
        ("''''", EdmType.STRING, "'"),
        ("42", EdmType.INT32, 42),
        ("-7", EdmType.INT32, -7),
        ("2147483648", EdmType.INT64, 2147483648),
        ("5L", EdmType.INT64, 5),
        ("1.25", EdmType.DECIMAL, Decimal("1.25")),
        ("3m", EdmType.DECIMAL, Decimal(3)),
        ("1e3", EdmType.DOUBLE, 1000.0),
        ("2.5d", EdmType.DOUBLE, 2.5),
        ("true", EdmType.BOOLEAN, True),
        ("false", EdmType.BOOLEAN, False),
        ("null", None, None),
        ("AB2F1C3D-0000-4000-8000-00000000000A", EdmType.GUID, "ab2f1c3d-0000-4000-8000-00000000000a"),
        ("12345678-aaaa-bbbb-cccc-1234567890ab", EdmType.GUID, "12345678-aaaa-bbbb-cccc-1234567890ab"),
    ],
)
def test_literals(literal: str, kind: EdmType | None, value: Any) -> None:
    node = parse_filter(f"x eq {literal}", "dataverse")
    assert isinstance(node, BinaryNode)
    right = node.right
    assert isinstance(right, LiteralNode)
    assert right.kind == kind
    assert right.value == value


def test_temporal_and_enum_literals() -> None:
    node = parse_filter("d gt 2024-01-15T12:30:00+02:00 and e eq 2024-02-29", "dataverse")
    assert isinstance(node, BinaryNode)
    stamp = node.left.right  # type: ignore[union-attr]
    day = node.right.right  # type: ignore[union-attr]
    assert stamp.kind == EdmType.DATETIMEOFFSET
    assert stamp.value.utcoffset().total_seconds() == 7200
    assert day.kind == EdmType.DATE
    assert day.value.isoformat() == "2024-02-29"
    enum = parse_filter("IsExternallyMaintained eq Microsoft.Dynamics.DataEntities.NoYes'Yes'", "fno")
    assert shape(enum) == ("eq", "IsExternallyMaintained", "Microsoft.Dynamics.DataEntities.NoYes'Yes'")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Microsoft's documented example of a missing doubled quote (filter-rows.md).
        (
            "lastname eq 'O'Bryan'",
            "There is an unterminated literal at position 21 in 'lastname eq 'O'Bryan''.",
        ),
        ("name eq 'abc", "There is an unterminated string literal at position 12 in 'name eq 'abc'."),
        ("name eq #1", "Syntax error: character '#' is not valid at position 8 in 'name eq #1'."),
        ("(name eq 'a'", "')' or operator expected at position 12 in '(name eq 'a''."),
        ("name eq 'a' 'b'", "Syntax error at position 12 in 'name eq 'a' 'b''."),
        ("name eq", "Expression expected at position 7 in 'name eq'."),
        ("", "Expression expected at position 0 in ''."),
        ("contains(name 'a')", "')' or ',' expected at position 14 in 'contains(name 'a')'."),
        ("n eq 12abc", "Syntax error at position 7 in 'n eq 12abc'."),
        (
            "d eq 2024-13-01T00:00:00Z",
            "Unrecognized 'Edm.DateTimeOffset' literal '2024-13-01T00:00:00Z' at '5'",
        ),
        ("d eq 2024-02-30", "Unrecognized 'Edm.Date' literal '2024-02-30' at '5'"),
        ("(" * 200 + "a eq 1" + ")" * 200, "Recursion depth exceeded allowed limit."),
    ],
)
def test_syntax_errors_use_odl_wording(text: str, message: str) -> None:
    error = error_of(parse_filter, text, "dataverse")
    assert error.status == 400
    assert error.code == "0x0"
    assert error.message.startswith(message)


def test_fno_errors_have_the_web_api_shape() -> None:
    error = error_of(parse_filter, "name eq 'abc", "fno")
    assert error.status == 400
    assert error.code == ""
    inner = "There is an unterminated string literal at position 12 in 'name eq 'abc'."
    assert error.message == f"The query specified in the URI is not valid. {inner}"
    assert error.inner == {"message": inner, "type": "Microsoft.OData.ODataException", "stacktrace": ""}


@pytest.mark.parametrize(
    ("text", "dialect", "fragment"),
    [
        ("Name in ('a','b')", "fno", "The operator 'in' is not supported."),
        (
            "Flags has Microsoft.Dynamics.DataEntities.NoYes'Yes'",
            "fno",
            "The operator 'has' is not supported.",
        ),
        ("a divby 2 eq 1", "dataverse", "Syntax error at position 2"),
        ("name eq @p1", "fno", "Syntax error at position 8"),
    ],
)
def test_dialect_refusals_at_parse_time(text: str, dialect: Any, fragment: str) -> None:
    assert fragment in error_of(parse_filter, text, dialect).message


def test_unknown_dialect_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="dialect"):
        parse_filter("a eq 1", "sql")  # type: ignore[arg-type]
