"""$filter compiled to SQL and executed on SQLite, for both dialects."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from emulators.odata.errors import ODataError
from emulators.odata.filter_parse import (
    quote_string,
)
from emulators.odata.filter_sql import ColumnRef, compile_filter, like_pattern
from emulators.schema.model import EdmType
from tests.support.odata_tables import ENUMS, dataverse_resolver, dv_ids, error_of, fno_ids, fno_resolver

if TYPE_CHECKING:
    import sqlite3

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
