"""The in-memory services refuse what the emulators (and the services) refuse, in their words.

A lenient fake lets a mapping typo through every unit test; these pin each refusal of
`tests.unit.sync.memory_service` with the status, code and message the hooks would report.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from prospect_to_cash.hooks.errors import DynamicsAPIError
from prospect_to_cash.hooks.operations import WriteKind, WriteOperation, WriteOutcome
from tests.unit.sync.memory_service import MemoryService, MemoryTable

ACCOUNT = "5b0b6c1e-0d8e-4c55-9d27-1f0c2a4f7e01"
CURRENCY = "0a6f5d37-b0a3-4f73-9d0e-7a1c3b8f2e11"
FNO_QUERY = "The query specified in the URI is not valid. "


def fno_query_error(message: str) -> str:
    """F&O's query error as the hooks read it: the prefixed message, then the inner one."""
    return f"None: {FNO_QUERY}{message} — {message}"


def sales() -> MemoryService:
    return MemoryService(
        "dataverse",
        {
            "accounts": MemoryTable(
                key=("accountid",), rows=[{"accountid": ACCOUNT, "name": "Contoso", "statecode": 0}]
            ),
            "transactioncurrencies": MemoryTable(
                key=("transactioncurrencyid",),
                rows=[{"transactioncurrencyid": CURRENCY, "isocurrencycode": "USD"}],
            ),
        },
    )


def fno() -> MemoryService:
    return MemoryService(
        "fno",
        {
            "SellableReleasedProducts": MemoryTable(
                key=("dataAreaId", "ProductNumber"),
                rows=[
                    {"dataAreaId": "usmf", "ProductNumber": "P-1", "IsStockedProduct": "Yes"},
                    {"dataAreaId": "usmf", "ProductNumber": "P-2", "IsStockedProduct": "No"},
                ],
            ),
            "CustomersV3": MemoryTable(key=("dataAreaId", "CustomerAccount")),
        },
    )


def read(service: MemoryService, entity_set: str, select: list[str], filter: str | None = None) -> list[Any]:
    frames = list(service.iter_pages(entity_set, select=select, filter=filter))
    return [row for frame in frames for row in frame.to_dict("records")]


def refused_read(
    service: MemoryService, entity_set: str, select: list[str], filter: str | None = None
) -> str:
    with pytest.raises(DynamicsAPIError) as raised:
        read(service, entity_set, select, filter)
    assert raised.value.status == 400
    return f"{raised.value.code}: {raised.value.message}"


def write_one(service: MemoryService, operation: WriteOperation) -> WriteOutcome:
    (outcome,) = service.write([operation])
    return outcome


def refusal(outcome: WriteOutcome) -> tuple[bool, int, str | None, str | None]:
    return outcome.ok, outcome.status, outcome.error_code, outcome.message


# ---------------------------------------------------------------------------- reads


def test_unknown_select_column_is_refused() -> None:
    assert refused_read(sales(), "accounts", ["accountid", "nmae"]) == (
        "0x0: Could not find a property named 'nmae' on type 'Microsoft.Dynamics.CRM.account'."
    )
    assert refused_read(fno(), "SellableReleasedProducts", ["ProductNumbr"]) == fno_query_error(
        "Could not find a property named 'ProductNumbr' on type "
        "'Microsoft.Dynamics.DataEntities.SellableReleasedProduct'."
    )


def test_unknown_filter_property_is_refused_not_false() -> None:
    assert refused_read(sales(), "accounts", ["accountid"], "nmae eq 'Contoso'") == (
        "0x0: Could not find a property named 'nmae' on type 'Microsoft.Dynamics.CRM.account'."
    )


def test_lookup_column_is_read_as_its_value_property() -> None:
    assert refused_read(sales(), "accounts", ["transactioncurrencyid"]).startswith(
        "0x0: Could not find a property named 'transactioncurrencyid'"
    )
    assert read(sales(), "accounts", ["_transactioncurrencyid_value"]) == [
        {"_transactioncurrencyid_value": None}
    ]


def test_enum_order_comparison_is_refused() -> None:
    qualified = "IsStockedProduct gt Microsoft.Dynamics.DataEntities.NoYes'No'"
    assert refused_read(fno(), "SellableReleasedProducts", ["ProductNumber"], qualified) == fno_query_error(
        "The operator 'gt' is not supported for enum values; enums can only be compared with 'eq' and 'ne'."
    )


def test_unqualified_enum_literal_is_refused() -> None:
    unqualified = "IsStockedProduct eq 'Yes'"
    assert refused_read(fno(), "SellableReleasedProducts", ["ProductNumber"], unqualified) == fno_query_error(
        "A binary operator with incompatible types was detected. Found operand types "
        "'Microsoft.Dynamics.DataEntities.NoYes' and 'Edm.String' for operator kind 'Equal'."
    )


def test_qualified_enum_literal_filters_exactly() -> None:
    rows = read(
        fno(),
        "SellableReleasedProducts",
        ["ProductNumber"],
        "IsStockedProduct eq Microsoft.Dynamics.DataEntities.NoYes'Yes'",
    )
    assert rows == [{"ProductNumber": "P-1"}]


# ---------------------------------------------------------------------------- writes


def test_misspelled_body_property_is_refused() -> None:
    dataverse = write_one(
        sales(), WriteOperation(WriteKind.UPDATE, "accounts", {"accountid": ACCOUNT}, {"nmae": "X"}, ref="a")
    )
    assert refusal(dataverse) == (
        False,
        400,
        "0x80048d19",
        "Error identified in Payload provided by the user for Entity :'accounts', For more information on "
        "this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293 ----> "
        "InnerException : Microsoft.OData.ODataException: The property 'nmae' does not exist on type "
        "'Microsoft.Dynamics.CRM.account'. Make sure to only use property names that are defined by the "
        "type or mark the type as open type.",
    )
    service = fno()
    key = {"dataAreaId": "usmf", "CustomerAccount": "C-1"}
    body = {"CustomerGroupId": "10", "OrganisationName": "X"}
    outcome = write_one(service, WriteOperation(WriteKind.CREATE, "CustomersV3", key, body, ref="c"))
    assert refusal(outcome) == (
        False,
        400,
        None,
        "An error has occurred. — The property 'OrganisationName' does not exist on type "
        "'Microsoft.Dynamics.DataEntities.CustomerV3'. Make sure to only use property names that are "
        "defined by the type or mark the type as open type.",
    )
    assert service.tables["CustomersV3"].rows == []


def test_missing_required_fno_field_is_refused() -> None:
    service = fno()
    key = {"dataAreaId": "usmf", "CustomerAccount": "C-1"}
    outcome = write_one(
        service, WriteOperation(WriteKind.CREATE, "CustomersV3", key, {"OrganizationName": "X"}, ref="c")
    )
    assert refusal(outcome) == (
        False,
        400,
        None,
        "An error has occurred. — Write failed for table row of type 'CustCustomerV3Entity'. Infolog: "
        "Warning: Field 'Customer group' must be filled in.; Warning: validateWrite failed on data source "
        "'CustTable (CustTable)'.",
    )
    assert service.tables["CustomersV3"].rows == []


def test_fno_update_of_a_missing_key_is_a_400() -> None:
    key = {"dataAreaId": "usmf", "CustomerAccount": "NOPE"}
    outcome = write_one(
        fno(), WriteOperation(WriteKind.UPDATE, "CustomersV3", key, {"OrganizationName": "X"}, ref="u")
    )
    assert refusal(outcome) == (
        False,
        400,
        None,
        "An error has occurred. — No resources were found when selecting for update.",
    )


def test_fno_create_of_an_existing_key_is_a_500() -> None:
    service = fno()
    key = {"dataAreaId": "usmf", "CustomerAccount": "C-1"}
    create = WriteOperation(WriteKind.CREATE, "CustomersV3", key, {"CustomerGroupId": "10"}, ref="c")
    assert refusal(write_one(service, create)) == (True, 201, None, None)
    outcome = write_one(service, create)
    assert (outcome.ok, outcome.status) == (False, 500)
    assert outcome.message == (
        "An error has occurred. — Write failed for table row of type 'CustCustomerV3Entity'. Infolog: Info: "
        "Cannot create a record in Customers (CustTable). Customer account: C-1. The record already exists."
    )
    assert service.tables["CustomersV3"].rows == [{**key, "CustomerGroupId": "10"}]


def test_dataverse_create_of_an_existing_id_is_a_412() -> None:
    create = WriteOperation(WriteKind.CREATE, "accounts", {"accountid": ACCOUNT}, {"name": "Again"}, ref="a")
    assert refusal(write_one(sales(), create)) == (
        False,
        412,
        "0x80040237",
        "A record with matching key values already exists.",
    )


def test_dataverse_update_of_a_missing_id_is_a_404() -> None:
    missing = str(uuid.UUID(int=7))
    update = WriteOperation(WriteKind.UPDATE, "accounts", {"accountid": missing}, {"name": "X"}, ref="a")
    assert refusal(write_one(sales(), update)) == (
        False,
        404,
        "0x80040217",
        f"account With Id = {missing} Does Not Exist",
    )


def test_dataverse_status_reason_of_another_state_is_refused_and_a_lone_state_gets_its_default() -> None:
    service = sales()
    mismatch = {"statecode": 0, "statuscode": 2}  # Inactive (2) is the Inactive state's reason
    update = WriteOperation(WriteKind.UPDATE, "accounts", {"accountid": ACCOUNT}, mismatch, ref="a")
    assert refusal(write_one(service, update)) == (
        False,
        400,
        "0x80048408",
        "State code is invalid or state code is valid but status code is invalid for a specified state code.",
    )
    deactivate = WriteOperation(
        WriteKind.UPDATE, "accounts", {"accountid": ACCOUNT}, {"statecode": 1}, ref="d"
    )
    assert refusal(write_one(service, deactivate)) == (True, 204, None, None)
    row = service.tables["accounts"].rows[0]
    assert (row["statecode"], row["statuscode"]) == (1, 2)


INVOICED, ACTIVE = str(uuid.UUID(int=41)), str(uuid.UUID(int=42))
LINE, USER, UNIT = str(uuid.UUID(int=43)), str(uuid.UUID(int=44)), str(uuid.UUID(int=45))
READ_ONLY = (False, 400, "0x8004022e", "The object cannot be updated because it is read-only.")


def orders() -> MemoryService:
    """An invoiced order (state 4, read-only) with a line, an active order, and a user to assign."""
    return MemoryService(
        "dataverse",
        {
            "salesorders": MemoryTable(
                key=("salesorderid",),
                rows=[
                    {"salesorderid": INVOICED, "name": "Invoiced", "statecode": 4, "statuscode": 100003},
                    {"salesorderid": ACTIVE, "name": "Active", "statecode": 0, "statuscode": 1},
                ],
            ),
            "salesorderdetails": MemoryTable(
                key=("salesorderdetailid",),
                rows=[{"salesorderdetailid": LINE, "_salesorderid_value": INVOICED, "quantity": 1}],
            ),
            "systemusers": MemoryTable(
                key=("systemuserid",), rows=[{"systemuserid": USER, "_businessunitid_value": UNIT}]
            ),
        },
    )


def update(entity_set: str, key: dict[str, Any], body: dict[str, Any]) -> WriteOperation:
    return WriteOperation(WriteKind.UPDATE, entity_set, key, body, ref="w")


def test_a_closed_order_and_its_lines_refuse_writes_but_set_state_and_assign() -> None:
    service = orders()
    invoiced, active = {"salesorderid": INVOICED}, {"salesorderid": ACTIVE}
    assert refusal(write_one(service, update("salesorders", invoiced, {"name": "Edited"}))) == READ_ONLY
    # a state change may not carry other columns onto a closed row
    sneaked = {"statecode": 0, "statuscode": 1, "name": "Edited"}
    assert refusal(write_one(service, update("salesorders", invoiced, sneaked))) == READ_ONLY
    line = {"salesorderdetailid": LINE}
    assert refusal(write_one(service, update("salesorderdetails", line, {"quantity": 2}))) == READ_ONLY
    new_line = WriteOperation(
        WriteKind.CREATE,
        "salesorderdetails",
        {"salesorderdetailid": str(uuid.UUID(int=46))},
        {"salesorderid@odata.bind": f"/salesorders({INVOICED})", "quantity": 1},
        ref="c",
    )
    assert refusal(write_one(service, new_line)) == READ_ONLY
    # nor may a line move from an active order onto the closed one
    moved = {"salesorderid@odata.bind": f"/salesorders({INVOICED})"}
    service.tables["salesorderdetails"].rows[0]["_salesorderid_value"] = ACTIVE
    assert refusal(write_one(service, update("salesorderdetails", line, moved))) == READ_ONLY
    service.tables["salesorderdetails"].rows[0]["_salesorderid_value"] = INVOICED
    assert service.tables["salesorderdetails"].rows == [
        {"salesorderdetailid": LINE, "_salesorderid_value": INVOICED, "quantity": 1}
    ]

    assign = {"ownerid@odata.bind": f"/systemusers({USER})"}
    assert refusal(write_one(service, update("salesorders", invoiced, assign))) == (True, 204, None, None)
    set_state = {"statecode": 3, "statuscode": 100002}
    assert refusal(write_one(service, update("salesorders", invoiced, set_state))) == (True, 204, None, None)
    assert refusal(write_one(service, update("salesorders", active, {"name": "Edited"}))) == (
        True,
        204,
        None,
        None,
    )
    assert service.tables["salesorders"].rows == [
        {
            "salesorderid": INVOICED,
            "name": "Invoiced",
            "statecode": 3,
            "statuscode": 100002,
            "_ownerid_value": USER,
            "_owningbusinessunit_value": UNIT,
        },
        {"salesorderid": ACTIVE, "name": "Edited", "statecode": 0, "statuscode": 1},
    ]


def test_bind_must_name_an_existing_row_of_the_target_set() -> None:
    service = sales()
    bind = "transactioncurrencyid@odata.bind"
    wrong_set = {bind: f"/accounts({ACCOUNT})"}
    update = WriteOperation(WriteKind.UPDATE, "accounts", {"accountid": ACCOUNT}, wrong_set, ref="a")
    outcome = write_one(service, update)
    assert (outcome.ok, outcome.status, outcome.error_code) == (False, 400, "0x80048d19")
    assert outcome.message == (
        "Error identified in Payload provided by the user for Entity :'accounts', For more information on "
        "this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293 ----> "
        "InnerException : Microsoft.OData.ODataException: The navigation property 'transactioncurrencyid' "
        "expects a reference to an entity of set "
        "'transactioncurrencies', but the reference addresses 'accounts'."
    )
    missing = str(uuid.UUID(int=9))
    update = WriteOperation(
        WriteKind.UPDATE,
        "accounts",
        {"accountid": ACCOUNT},
        {bind: f"/transactioncurrencies({missing})"},
        ref="a",
    )
    assert refusal(write_one(service, update)) == (
        False,
        404,
        "0x80040217",
        f"transactioncurrency With Id = {missing} Does Not Exist",
    )
    update = WriteOperation(
        WriteKind.UPDATE,
        "accounts",
        {"accountid": ACCOUNT},
        {bind: f"/transactioncurrencies({CURRENCY})"},
        ref="a",
    )
    assert refusal(write_one(service, update)) == (True, 204, None, None)
    assert service.tables["accounts"].rows == [
        {"accountid": ACCOUNT, "name": "Contoso", "statecode": 0, "_transactioncurrencyid_value": CURRENCY}
    ]


def test_tables_must_be_catalog_entity_sets_with_the_catalog_key() -> None:
    with pytest.raises(ValueError, match="'acounts' is not an entity set of the dataverse catalog"):
        MemoryService("dataverse", {"acounts": MemoryTable(key=("accountid",))})
    with pytest.raises(ValueError, match=r"CustomersV3 has the key \('dataAreaId', 'CustomerAccount'\)"):
        MemoryService("fno", {"CustomersV3": MemoryTable(key=("CustomerAccount",))})


def test_fno_wildcard_equality_matches_like_fno() -> None:
    service = fno()
    assert read(service, "SellableReleasedProducts", ["ProductNumber"], "ProductNumber eq 'p-*'") == [
        {"ProductNumber": "P-1"},
        {"ProductNumber": "P-2"},
    ]
    assert read(service, "SellableReleasedProducts", ["ProductNumber"], "ProductNumber ne '*2'") == [
        {"ProductNumber": "P-1"}
    ]
