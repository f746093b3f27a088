"""Tests of the emulators' OData query library: parser, type checks, SQL executed on SQLite."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.odata.errors import ODataError
from emulators.odata.filter_parse import (
    BinaryNode,
    EnumNode,
    LiteralNode,
    PropertyNode,
    UnaryNode,
    parse_filter,
    quote_string,
)
from emulators.odata.filter_sql import ColumnRef, compile_filter, like_pattern
from emulators.odata.query import (
    OrderItem,
    compile_orderby,
    compile_query,
    parse_orderby,
    parse_query_options,
    parse_select,
)
from emulators.schema.model import EdmType, EnumType, Field, Lookup, Table

# ---------------------------------------------------------------------------
# A small Dataverse-like table and an F&O-like entity, with resolvers the way the apps build them
# ---------------------------------------------------------------------------

ACCOUNT = Table(
    logical_name="account",
    entity_set="accounts",
    key=("accountid",),
    fields=(
        Field("accountid", EdmType.GUID),
        Field("name", EdmType.STRING, max_length=160),
        Field("revenue", EdmType.DECIMAL),
        Field("numberofemployees", EdmType.INT32),
        Field("creditonhold", EdmType.BOOLEAN),
        Field("createdon", EdmType.DATETIMEOFFSET),
        Field("validfrom", EdmType.DATE),
    ),
    lookups=(Lookup("primarycontactid", {"primarycontactid": "contacts"}),),
)

NOYES = EnumType("NoYes", {"No": 0, "Yes": 1})
BLOCKED = EnumType("CustVendorBlocked", {"No": 0, "Invoice": 1, "All": 2})
ENUMS = {"NoYes": NOYES, "CustVendorBlocked": BLOCKED}

CUSTOMER = Table(
    logical_name="CustomerV3",
    entity_set="CustomersV3",
    key=("dataAreaId", "CustomerAccount"),
    fields=(
        Field("dataAreaId", EdmType.STRING, nullable=False),
        Field("CustomerAccount", EdmType.STRING, nullable=False),
        Field("OrganizationName", EdmType.STRING),
        Field("CreditLimit", EdmType.DECIMAL, nullable=False),
        Field("PaymentTermsBaseDays", EdmType.INT32, nullable=False),
        Field("IsExternallyMaintained", EdmType.ENUM, enum_type="NoYes"),
        Field("OnHoldStatus", EdmType.ENUM, enum_type="CustVendorBlocked"),
    ),
    company_specific=True,
)


def dataverse_resolver(path: str) -> ColumnRef:
    field = ACCOUNT.field(path)
    if field is not None:
        return ColumnRef(f'"{field.name}"', field, field.type)
    for lookup in ACCOUNT.lookups:
        if path == lookup.value_property:
            return ColumnRef(f'"{lookup.column}"', None, EdmType.GUID)
    raise ODataError(
        400, "0x0", f"Could not find a property named '{path}' on type 'Microsoft.Dynamics.CRM.account'."
    )


def fno_resolver(path: str) -> ColumnRef:
    field = CUSTOMER.field(path)
    if field is None:
        raise ODataError(400, "", f"Could not find a property named '{path}' on type 'CustomerV3'.")
    return ColumnRef(f'"{field.name}"', field, field.type)


ACCOUNT_ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "accountid": "00000000-0000-0000-0000-000000000001",
        "name": "Contoso Ltd",
        "revenue": 100000.0,
        "numberofemployees": 50,
        "creditonhold": 0,
        "createdon": "2024-01-15T10:00:00Z",
        "validfrom": "2024-01-15",
        "primarycontactid": "aaaaaaaa-0000-0000-0000-000000000001",
    },
    {
        "id": 2,
        "accountid": "00000000-0000-0000-0000-000000000002",
        "name": "Fabrikam (sample)",
        "revenue": 2500.5,
        "numberofemployees": 5,
        "creditonhold": 1,
        "createdon": "2024-02-01T00:00:00Z",
        "validfrom": "2024-02-01",
        "primarycontactid": None,
    },
    {
        "id": 3,
        "accountid": "00000000-0000-0000-0000-000000000003",
        "name": "o'brian & sons 100%",
        "revenue": None,
        "numberofemployees": 2000,
        "creditonhold": None,
        "createdon": "2023-12-31T23:30:00Z",
        "validfrom": None,
        "primarycontactid": "aaaaaaaa-0000-0000-0000-000000000002",
    },
    {
        "id": 4,
        "accountid": "00000000-0000-0000-0000-0000000000ab",
        "name": None,
        "revenue": 0.0,
        "numberofemployees": None,
        "creditonhold": 0,
        "createdon": "2024-01-15T10:00:01Z",
        "validfrom": "2023-06-30",
        "primarycontactid": None,
    },
    {
        "id": 5,
        "accountid": "00000000-0000-0000-0000-000000000005",
        "name": "ADVENTURE works",
        "revenue": 75000.0,
        "numberofemployees": 120,
        "creditonhold": 1,
        "createdon": "2024-03-10T08:15:00Z",
        "validfrom": "2024-03-10",
        "primarycontactid": None,
    },
]

CUSTOMER_ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "dataAreaId": "usmf",
        "CustomerAccount": "US-001",
        "OrganizationName": "Contoso Retail",
        "CreditLimit": 5000.0,
        "PaymentTermsBaseDays": 30,
        "IsExternallyMaintained": 1,
        "OnHoldStatus": 0,
    },
    {
        "id": 2,
        "dataAreaId": "usmf",
        "CustomerAccount": "US-002",
        "OrganizationName": "Forest Wholesales",
        "CreditLimit": 0.0,
        "PaymentTermsBaseDays": 14,
        "IsExternallyMaintained": 0,
        "OnHoldStatus": 2,
    },
    {
        "id": 3,
        "dataAreaId": "demf",
        "CustomerAccount": "DE-001",
        "OrganizationName": "Retail 50% off_shop",
        "CreditLimit": 7.5,
        "PaymentTermsBaseDays": 45,
        "IsExternallyMaintained": 1,
        "OnHoldStatus": 1,
    },
    {
        "id": 4,
        "dataAreaId": "demf",
        "CustomerAccount": "DE-002",
        "OrganizationName": None,
        "CreditLimit": 120.0,
        "PaymentTermsBaseDays": 0,
        "IsExternallyMaintained": None,
        "OnHoldStatus": 0,
    },
]


def make_db(table: str, rows: list[dict[str, Any]]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    columns = list(rows[0])
    db.execute(f"CREATE TABLE {table} ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in columns)})")
    marks = ", ".join("?" for _ in columns)
    db.executemany(f"INSERT INTO {table} VALUES ({marks})", [tuple(r[c] for c in columns) for r in rows])
    return db


@pytest.fixture(scope="module")
def accounts_db() -> sqlite3.Connection:
    return make_db("accounts", ACCOUNT_ROWS)


@pytest.fixture(scope="module")
def customers_db() -> sqlite3.Connection:
    return make_db("customers", CUSTOMER_ROWS)


def dv_ids(db: sqlite3.Connection, text: str, **kwargs: Any) -> set[int]:
    where, params = compile_filter(text, dataverse_resolver, dialect="dataverse", **kwargs)
    return {row[0] for row in db.execute(f"SELECT id FROM accounts WHERE {where}", params)}


def fno_ids(db: sqlite3.Connection, text: str) -> set[int]:
    where, params = compile_filter(text, fno_resolver, dialect="fno", enums=ENUMS)
    return {row[0] for row in db.execute(f"SELECT id FROM customers WHERE {where}", params)}


def error_of(call: Any, *args: Any, **kwargs: Any) -> ODataError:
    with pytest.raises(ODataError) as info:
        call(*args, **kwargs)
    return info.value


# ---------------------------------------------------------------------------
# Parser: structure and precedence
# ---------------------------------------------------------------------------


def shape(node: Any) -> Any:
    """A compact, position-free view of an AST for structural assertions."""
    if isinstance(node, BinaryNode):
        return (node.op, shape(node.left), shape(node.right))
    if isinstance(node, UnaryNode):
        return (node.op, shape(node.operand))
    if isinstance(node, PropertyNode):
        return node.path
    if isinstance(node, LiteralNode):
        return node.value
    if isinstance(node, EnumNode):
        return f"{node.type_name}'{node.member}'"
    return type(node).__name__


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


# ---------------------------------------------------------------------------
# Dataverse filters executed on SQLite
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name eq 'Contoso Ltd'", {1}),
        ("name eq 'CONTOSO LTD'", {1}),  # string filters are case-insensitive
        ("name ne 'Contoso Ltd'", {2, 3, 5}),  # ne never matches null (SQL semantics)
        ("name eq null", {4}),
        ("name ne null", {1, 2, 3, 5}),
        ("null eq name", {4}),
        ("name gt 'b'", {1, 2, 3}),
        ("name lt 'B'", {5}),
        ("revenue gt 2500", {1, 2, 5}),
        ("revenue ge 2500.5 and revenue le 75000", {2, 5}),
        ("numberofemployees eq 2000", {3}),
        ("numberofemployees lt 100 or numberofemployees gt 1000", {1, 2, 3}),
        ("creditonhold eq true", {2, 5}),
        ("creditonhold eq false", {1, 4}),
        ("creditonhold", {2, 5}),
        ("not creditonhold", {1, 4}),
        ("creditonhold ne true", {1, 4}),
        ("accountid eq 00000000-0000-0000-0000-0000000000AB", {4}),
        ("_primarycontactid_value eq aaaaaaaa-0000-0000-0000-000000000002", {3}),
        ("_primarycontactid_value ne null", {1, 3}),
        ("createdon ge 2024-01-15T10:00:00Z and createdon lt 2024-02-01T00:00:00Z", {1, 4}),
        ("createdon eq 2024-01-15T12:00:00+02:00", {1}),  # offsets are normalized to UTC
        ("createdon lt 2024-01-01", {3}),  # a date literal against a DateTimeOffset column
        ("createdon gt 2024-01-15T10:00:00.5Z", {2, 4, 5}),
        ("createdon ge 2024-01-15T10:00:00.5Z", {2, 4, 5}),
        ("createdon le 2024-01-15T10:00:00.5Z", {1, 3}),
        ("createdon lt 2024-01-15T10:00:00.5Z", {1, 3}),
        ("createdon eq 2024-01-15T10:00:00.5Z", set()),
        ("validfrom ge 2024-01-01", {1, 2, 5}),
        ("validfrom lt 2024-01-15T10:00:00Z", {4}),
        ("contains(name,'(sample)')", {2}),
        ("contains(name,'WORKS')", {5}),
        ("not contains(name,'sample')", {1, 3, 5}),
        ("startswith(name,'con')", {1}),
        ("endswith(name,'%')", set(range(1, 6)) - {4}),  # Dataverse passes % through as a wildcard
        ("contains(name,'100%')", {3}),
        ("tolower(name) eq 'adventure works'", {5}),
        ("toupper(name) eq 'CONTOSO LTD'", {1}),
        ("name eq 'o''brian & sons 100%'", {3}),
        ("name eq @p1", {1}),
        ("name eq @unset", {4}),  # an alias without a value is null
        ("numberofemployees in (5, 50, 7)", {1, 2}),
        ("name in ('contoso ltd', 'nobody')", {1}),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='name',PropertyValues=['Contoso Ltd','ADVENTURE WORKS'])",
            {1, 5},
        ),
        (
            'Microsoft.Dynamics.CRM.NotIn(PropertyName=\'numberofemployees\',PropertyValues=["5","50"])',
            {3, 5},
        ),
        (
            'Microsoft.Dynamics.CRM.Between(PropertyName=\'numberofemployees\',PropertyValues=["5","2000"])',
            {1, 2, 3, 5},
        ),
        ("Microsoft.Dynamics.CRM.NotBetween(PropertyName='revenue',PropertyValues=['1','80000'])", {1, 4}),
        ("Microsoft.Dynamics.CRM.In(PropertyName=@p2,PropertyValues=@p3)", {3}),
        ("true or false", set(range(1, 6))),
        ("(name eq 'Contoso Ltd' or name eq 'Fabrikam (sample)') and creditonhold eq true", {2}),
    ],
)
def test_dataverse_filters_select_the_right_rows(
    accounts_db: sqlite3.Connection, text: str, expected: set[int]
) -> None:
    aliases = {
        "@p1": "'contoso ltd'",
        "@p2": "'name'",
        "@p3": '["OBrian","o\'brian & sons 100%"]',
    }
    assert dv_ids(accounts_db, text, aliases=aliases) == expected


@pytest.mark.parametrize("depth", [40, 300, 5000])
def test_deep_nesting_parses_or_fails_cleanly(accounts_db: sqlite3.Connection, depth: int) -> None:
    """Deep but sane nesting works; absurd nesting is a 400, never a RecursionError."""
    nested = "(" * depth + "creditonhold eq true" + ")" * depth
    negated = "not " * (depth * 2) + "creditonhold"
    if depth == 40:
        assert dv_ids(accounts_db, nested) == {2, 5}
        assert dv_ids(accounts_db, negated) == {2, 5}
        assert dv_ids(accounts_db, "not " + negated) == {1, 4}
        return
    for text in (nested, negated):
        with pytest.raises(ODataError, match=r"Recursion depth exceeded allowed limit\."):
            compile_filter(text, dataverse_resolver, dialect="dataverse")


def test_sql_nesting_stays_within_what_sqlite_parses(customers_db: sqlite3.Connection) -> None:
    """Constructs that do nest in SQL are refused cleanly before SQLite's parser would choke."""
    sane = "PaymentTermsBaseDays" + " add 1" * 40 + " eq 70"
    assert fno_ids(customers_db, sane) == {1}
    absurd = "PaymentTermsBaseDays" + " add 1" * 60 + " eq 90"
    with pytest.raises(ODataError, match=r"Recursion depth exceeded allowed limit\."):
        compile_filter(absurd, fno_resolver, dialect="fno", enums=ENUMS)

    def alternating(levels: int) -> str:
        return "not (" * levels + "dataAreaId eq 'usmf'" + " and PaymentTermsBaseDays gt 0)" * levels

    where, params = compile_filter(alternating(20), fno_resolver, dialect="fno", enums=ENUMS)
    customers_db.execute(f"SELECT id FROM customers WHERE {where}", params).fetchall()
    with pytest.raises(ODataError, match=r"Recursion depth exceeded allowed limit\."):
        compile_filter(alternating(30), fno_resolver, dialect="fno", enums=ENUMS)


def test_long_or_chains_compile_flat(accounts_db: sqlite3.Connection) -> None:
    """Hundreds of keys in one filter must neither recurse deeply nor nest SQL past SQLite's limit."""
    terms = " or ".join(f"numberofemployees eq {n}" for n in range(3000))
    where, params = compile_filter(terms, dataverse_resolver, dialect="dataverse")
    assert params == list(range(3000))
    rows = accounts_db.execute(f"SELECT id FROM accounts WHERE {where}", params).fetchall()
    assert {row[0] for row in rows} == {1, 2, 3, 5}
    chained = " and ".join(["creditonhold ne false"] * 1500)
    assert dv_ids(accounts_db, chained) == {2, 5}


def test_literals_are_bound_never_interpolated() -> None:
    hostile = "x'); DROP TABLE accounts; --"
    where, params = compile_filter(
        f"name eq {quote_string(hostile)}", dataverse_resolver, dialect="dataverse"
    )
    assert hostile not in where
    assert "DROP" not in where
    assert params == [hostile]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name eq 5",
            "A binary operator with incompatible types was detected. Found operand types 'Edm.String' and "
            "'Edm.Int32' for operator kind 'Equal'.",
        ),
        (
            "accountid eq '00000000-0000-0000-0000-000000000001'",
            "A binary operator with incompatible types was detected. Found operand types 'Edm.Guid' and "
            "'Edm.String' for operator kind 'Equal'.",
        ),
        (
            "createdon gt '2024-01-01T00:00:00Z'",
            "A binary operator with incompatible types was detected. Found operand types "
            "'Edm.DateTimeOffset' and 'Edm.String' for operator kind 'GreaterThan'.",
        ),
        (
            "creditonhold eq 1",
            "A binary operator with incompatible types was detected. Found operand types 'Edm.Boolean' and "
            "'Edm.Int32' for operator kind 'Equal'.",
        ),
        (
            "name eq 'a' and revenue",
            "A binary operator with incompatible types was detected. Found operand types 'Edm.Boolean' and "
            "'Edm.Decimal' for operator kind 'And'.",
        ),
        (
            "revenue and name eq 'a' and creditonhold",
            "Found operand types 'Edm.Decimal' and 'Edm.Boolean' for operator kind 'And'.",
        ),
        ("creditonhold or revenue gt 1 or name", "Found operand types 'Edm.Boolean' and 'Edm.String'"),
        (
            "not name",
            "A unary operator with an incompatible type was detected. Found operand type 'Edm.String' for "
            "operator kind 'Not'.",
        ),
        ("not name eq 'a'", "Found operand type 'Edm.String' for operator kind 'Not'."),
        ("-name eq 'a'", "Found operand type 'Edm.String' for operator kind 'Negate'."),
        ("name", "The $filter expression must evaluate to a single boolean value."),
        ("revenue add 1 gt 5", "The arithmetic operator 'Add' is not supported."),
        (
            "contains(revenue,'1')",
            "No function signature for the function with name 'contains' matches the specified arguments. "
            "The function signatures considered are: "
            "contains(Edm.String Nullable=true, Edm.String Nullable=true).",
        ),
        ("tolower(name, 'x') eq 'a'", "No function signature for the function with name 'tolower'"),
        (
            "length(name) eq 3",
            "An unknown function with name 'length' was found. This may also be a function import or a key "
            "lookup on a navigation property, which is not allowed.",
        ),
        ("Microsoft.Dynamics.CRM.Today(PropertyName='createdon')", "An unknown function with name"),
        ("Microsoft.Dynamics.CRM.In(PropertyName='name')", "Could not find a function named"),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='numberofemployees',PropertyValues=['many'])",
            "The value 'many' is not valid for a property of type 'Edm.Int32'.",
        ),
        ("Name eq 'x'", "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.account'."),
        ("x has 1", "for operator kind 'Has'."),
        ("name eq Microsoft.Dynamics.DataEntities.NoYes'Yes'", "Unrecognized"),
    ],
)
def test_dataverse_type_errors(text: str, message: str) -> None:
    def resolver(path: str) -> ColumnRef:
        if path == "x":
            return ColumnRef('"x"', None, EdmType.INT32)
        return dataverse_resolver(path)

    error = error_of(compile_filter, text, resolver, dialect="dataverse")
    assert error.status == 400
    assert message in error.message


# ---------------------------------------------------------------------------
# F&O filters executed on SQLite
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dataAreaId eq 'usmf'", {1, 2}),
        ("dataAreaId eq 'USMF'", {1, 2}),
        ("OrganizationName eq '*retail*'", {1, 3}),  # F&O's documented contains
        ("OrganizationName eq 'contoso*'", {1}),
        ("OrganizationName eq '*shop'", {3}),
        ("OrganizationName ne '*retail*'", {2}),  # null never matches
        ("OrganizationName eq '*50%*'", {3}),  # % is literal in F&O wildcards
        ("OrganizationName eq '*_*'", {3}),  # and so is _
        ("OrganizationName eq '*'", {1, 2, 3}),
        ("'*wholesales' eq OrganizationName", {2}),
        ("IsExternallyMaintained eq Microsoft.Dynamics.DataEntities.NoYes'Yes'", {1, 3}),
        ("IsExternallyMaintained ne Microsoft.Dynamics.DataEntities.NoYes'Yes'", {2}),
        ("IsExternallyMaintained eq null", {4}),
        ("OnHoldStatus eq Microsoft.Dynamics.DataEntities.CustVendorBlocked'All'", {2}),
        ("PaymentTermsBaseDays add 15 eq 45", {1}),
        ("PaymentTermsBaseDays sub 14 eq 0", {2}),
        ("PaymentTermsBaseDays mul 2 gt 60", {3}),
        ("PaymentTermsBaseDays div 4 eq 7", {1}),  # integer division, like C#
        ("PaymentTermsBaseDays mod 7 eq 3", {3}),
        ("CreditLimit divby 2 eq 3.75", {3}),
        ("CreditLimit mod 2 eq 1.5", {3}),  # decimal modulo keeps the fraction
        ("-CreditLimit lt -100", {1, 4}),
        ("CreditLimit gt 100 and not (dataAreaId eq 'demf')", {1}),
        ("(CreditLimit eq 0 or PaymentTermsBaseDays eq 0) and dataAreaId ne 'usmf'", {4}),
    ],
)
def test_fno_filters_select_the_right_rows(
    customers_db: sqlite3.Connection, text: str, expected: set[int]
) -> None:
    assert fno_ids(customers_db, text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "OnHoldStatus eq 'All'",
            "A binary operator with incompatible types was detected. Found operand types "
            "'Microsoft.Dynamics.DataEntities.CustVendorBlocked' and 'Edm.String' for operator kind 'Equal'.",
        ),
        (
            "OnHoldStatus eq Microsoft.Dynamics.DataEntities.NoYes'Yes'",
            "Found operand types 'Microsoft.Dynamics.DataEntities.CustVendorBlocked' and "
            "'Microsoft.Dynamics.DataEntities.NoYes' for operator kind 'Equal'.",
        ),
        (
            "OnHoldStatus gt Microsoft.Dynamics.DataEntities.CustVendorBlocked'No'",
            "only be compared with 'eq' and 'ne'",
        ),
        (
            "IsExternallyMaintained eq Microsoft.Dynamics.DataEntities.NoYes'Maybe'",
            "The string 'Microsoft.Dynamics.DataEntities.NoYes'Maybe'' is not a valid enumeration "
            "type constant.",
        ),
        (
            "IsExternallyMaintained eq Microsoft.Dynamics.DataEntities.Colour'Red'",
            "is not defined in the model",
        ),
        ("IsExternallyMaintained eq Other.Namespace.NoYes'Yes'", "Unrecognized"),
        (
            "contains(OrganizationName,'x')",
            "Function 'contains' is not allowed. To allow it, set the 'AllowedFunctions' property on "
            "EnableQueryAttribute or QueryValidationSettings.",
        ),
        ("startswith(OrganizationName,'SO')", "Function 'startswith' is not allowed."),
        ("OrganizationName add 1 eq 2", "for operator kind 'Add'."),
        ("Missing eq 1", "Could not find a property named 'Missing' on type 'CustomerV3'."),
    ],
)
def test_fno_refusals(text: str, message: str) -> None:
    error = error_of(compile_filter, text, fno_resolver, dialect="fno", enums=ENUMS)
    assert error.status == 400
    assert message in error.message


def test_like_pattern_escapes_sql_wildcards() -> None:
    assert like_pattern("*50%_off\\*") == "%50\\%\\_off\\\\%"


# ---------------------------------------------------------------------------
# Query options
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["$skip", "$search", "$format", "$Select", "$filters", "$levels"])
def test_dataverse_refuses_unsupported_options(option: str) -> None:
    error = error_of(parse_query_options, [(option, "1")], "dataverse")
    assert (error.status, error.code) == (400, "0x0")
    assert error.message == f"The query parameter {option} is not supported"


def test_fno_accepts_skip_and_format_but_not_unknown_options() -> None:
    options = parse_query_options({"$skip": "20", "$top": "10", "$format": "json"}, "fno")
    assert (options.skip, options.top, options.format) == (20, 10, "json")
    error = error_of(parse_query_options, [("$search", "x")], "fno")
    assert (
        error.message
        == "The query specified in the URI is not valid. The query parameter '$search' is not supported."
    )
    assert error.inner is not None
    assert error.inner["message"] == "The query parameter '$search' is not supported."


def test_full_option_set_is_parsed() -> None:
    options = parse_query_options(
        [
            ("$select", "name, revenue,name"),
            ("$filter", "revenue gt @p1"),
            ("$orderby", "name desc,revenue"),
            ("$top", "3"),
            ("$count", "true"),
            ("$expand", "primarycontactid($select=fullname)"),
            ("$skiptoken", "<cookie/>"),
            ("@p1", "100"),
            ("tag", "sync-run-7"),
        ],
        "dataverse",
    )
    assert options.select == ("name", "revenue")
    assert options.filter_text == "revenue gt @p1"
    assert shape(options.filter) == ("gt", "revenue", 100)
    assert options.orderby == (OrderItem("name", True), OrderItem("revenue", False))
    assert (options.top, options.count, options.skip) == (3, True, None)
    assert options.expand == "primarycontactid($select=fullname)"
    assert options.skiptoken == "<cookie/>"
    assert options.aliases == {"@p1": "100"}
    assert options.custom == {"tag": "sync-run-7"}


def test_fno_custom_options_pass_through() -> None:
    options = parse_query_options({"cross-company": "true", "$filter": "dataAreaId eq 'usmf'"}, "fno")
    assert options.custom == {"cross-company": "true"}
    assert options.aliases == {}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("$top", "1"), ("$top", "2")], "Query option '$top' was specified more than once"),
        ([("$top", "-1")], "Invalid value '-1' for $top query option found."),
        ([("$top", "ten")], "The $top query option requires a non-negative integer value."),
        (
            [("$count", "yes")],
            "Invalid value 'yes' for $count query option found. Valid values are 'true, false'.",
        ),
        ([("$select", "name,,revenue")], "Term '' is not valid in a $select or $expand expression."),
        ([("$select", "primarycontactid/fullname")], "Term 'primarycontactid/fullname' is not valid"),
        ([("$orderby", "name sideways")], "Syntax error at position 5 in 'name sideways'."),
        ([("$orderby", "name,")], "Expression expected at position 5 in 'name,'."),
        ([("$filter", "name eq")], "Expression expected at position 7"),
    ],
)
def test_option_value_errors(pairs: list[tuple[str, str]], message: str) -> None:
    assert message in error_of(parse_query_options, pairs, "dataverse").message


def test_select_star_means_everything() -> None:
    assert parse_select("*", "dataverse") is None
    assert parse_select(" name ,_primarycontactid_value", "dataverse") == ("name", "_primarycontactid_value")


def test_orderby_runs_case_insensitively_on_sqlite(accounts_db: sqlite3.Connection) -> None:
    order = compile_orderby(parse_orderby("name asc", "dataverse"), dataverse_resolver)
    names = [row[0] for row in accounts_db.execute(f"SELECT name FROM accounts ORDER BY {order}")]
    assert names == [None, "ADVENTURE works", "Contoso Ltd", "Fabrikam (sample)", "o'brian & sons 100%"]
    order = compile_orderby(
        parse_orderby("creditonhold desc,numberofemployees desc", "dataverse"), dataverse_resolver
    )
    ids = [row[0] for row in accounts_db.execute(f"SELECT id FROM accounts ORDER BY {order}")]
    assert ids == [5, 2, 1, 4, 3]


def test_orderby_alias_and_bad_alias() -> None:
    assert parse_orderby("@p1 desc", "dataverse", aliases={"@p1": "revenue"}) == (OrderItem("revenue", True),)
    error = error_of(parse_orderby, "@p1", "dataverse", aliases={"@p1": "'text'"})
    assert "single value of primitive type" in error.message


def test_compile_query_resolves_everything(accounts_db: sqlite3.Connection) -> None:
    options = parse_query_options(
        {"$select": "name,_primarycontactid_value", "$filter": "revenue gt 1000", "$orderby": "revenue desc"},
        "dataverse",
    )
    compiled = compile_query(options, dataverse_resolver, dialect="dataverse")
    assert compiled.columns is not None
    columns = ", ".join(c.sql for c in compiled.columns)
    sql = f"SELECT {columns} FROM accounts WHERE {compiled.where} ORDER BY {compiled.order_by}"
    rows = accounts_db.execute(sql, compiled.params).fetchall()
    assert rows == [
        ("Contoso Ltd", "aaaaaaaa-0000-0000-0000-000000000001"),
        ("ADVENTURE works", None),
        ("Fabrikam (sample)", None),
    ]
    bad = parse_query_options({"$select": "Name"}, "dataverse")
    assert (
        "Could not find a property named 'Name'"
        in error_of(compile_query, bad, dataverse_resolver, dialect="dataverse").message
    )


# ---------------------------------------------------------------------------
# Property-based tests
# ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40))
def test_string_literal_escaping_round_trips(value: str) -> None:
    node = parse_filter(f"name eq {quote_string(value)}", "dataverse")
    assert isinstance(node, BinaryNode)
    assert isinstance(node.right, LiteralNode)
    assert node.right.value == value
    _, params = compile_filter(node, dataverse_resolver, dialect="dataverse")
    assert params == [value]


# A random table and random boolean trees, evaluated by SQLite and by a Python model of
# SQL's three-valued logic; the two must select the same rows.
_NAMES = ["alpha", "Alpha", "beta", "GAMMA", "delta", None]
_ROW = st.fixed_dictionaries(
    {
        "s": st.sampled_from(_NAMES),
        "n": st.one_of(st.none(), st.integers(-3, 3)),
        "b": st.one_of(st.none(), st.booleans()),
    }
)
_TREE_RESOLVER = {
    "s": ColumnRef('"s"', None, EdmType.STRING),
    "n": ColumnRef('"n"', None, EdmType.INT32),
    "b": ColumnRef('"b"', None, EdmType.BOOLEAN),
}
_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def _leaf() -> st.SearchStrategy[tuple[str, Any]]:
    string_leaf = st.tuples(st.just("s"), st.sampled_from(list(_OPS)), st.sampled_from(_NAMES))
    number_leaf = st.tuples(
        st.just("n"), st.sampled_from(list(_OPS)), st.one_of(st.none(), st.integers(-3, 3))
    )
    bool_leaf = st.tuples(st.just("b"), st.sampled_from(["eq", "ne"]), st.one_of(st.none(), st.booleans()))
    return st.one_of(string_leaf, number_leaf, bool_leaf).map(lambda t: ("leaf", t))


_TREES = st.recursive(
    _leaf(),
    lambda children: st.one_of(
        st.tuples(st.sampled_from(["and", "or"]), children, children),
        st.tuples(st.just("not"), children),
    ),
    max_leaves=12,
)


def _render(tree: Any) -> str:
    if tree[0] == "leaf":
        column, op, value = tree[1]
        if value is None:
            literal = "null"
        elif isinstance(value, bool):
            literal = "true" if value else "false"
        elif isinstance(value, str):
            literal = quote_string(value)
        else:
            literal = str(value)
        return f"{column} {op} {literal}"
    if tree[0] == "not":
        return f"not ({_render(tree[1])})"
    return f"({_render(tree[1])}) {tree[0]} ({_render(tree[2])})"


def _evaluate(tree: Any, row: dict[str, Any]) -> bool | None:
    kind = tree[0]
    if kind == "leaf":
        column, op, value = tree[1]
        actual = row[column]
        if value is None and op in ("eq", "ne"):
            return (actual is None) == (op == "eq")
        if actual is None or value is None:
            return None
        if column == "s":
            actual, value = actual.lower(), value.lower()
        return _OPS[op](actual, value)
    if kind == "not":
        inner = _evaluate(tree[1], row)
        return None if inner is None else not inner
    left, right = _evaluate(tree[1], row), _evaluate(tree[2], row)
    if kind == "and":
        if left is False or right is False:
            return False
        return None if None in (left, right) else True
    if left is True or right is True:
        return True
    return None if None in (left, right) else False


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(_ROW, min_size=1, max_size=8), tree=_TREES)
def test_random_boolean_trees_match_a_python_model(rows: list[dict[str, Any]], tree: Any) -> None:
    db = sqlite3.connect(":memory:")
    db.execute('CREATE TABLE t (id INTEGER, "s" TEXT, "n" INTEGER, "b" INTEGER)')
    db.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        [(i, r["s"], r["n"], None if r["b"] is None else int(r["b"])) for i, r in enumerate(rows)],
    )
    where, params = compile_filter(_render(tree), _TREE_RESOLVER.__getitem__, dialect="dataverse")
    from_sql = {row[0] for row in db.execute(f"SELECT id FROM t WHERE {where}", params)}
    expected = {i for i, r in enumerate(rows) if _evaluate(tree, r) is True}
    assert from_sql == expected
