"""A small Dataverse-like table and an F&O-like entity for the OData query library's tests,
with resolvers built the way the emulated apps build them, and SQLite helpers to run filters."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from emulators.odata.errors import ODataError
from emulators.odata.filter_parse import BinaryNode, EnumNode, LiteralNode, PropertyNode, UnaryNode
from emulators.odata.filter_sql import ColumnRef, compile_filter
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
