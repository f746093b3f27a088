"""Sanity of the two emulator catalogues, and spot checks against the field reference."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from emulators.schema import dataverse, dataverse_columns, fno
from emulators.schema.model import Catalog, EdmType, Required, Table
from emulators.schema.validate import LOOKUP_ATTRIBUTE_TYPES

CATALOGS = {"dataverse": dataverse.CATALOG, "fno": fno.CATALOG}


def all_tables() -> list[tuple[str, Table]]:
    return [(service, table) for service, catalog in CATALOGS.items() for table in catalog.tables.values()]


TABLE_IDS = [f"{service}:{table.entity_set}" for service, table in all_tables()]


@pytest.mark.parametrize(("service", "table"), all_tables(), ids=TABLE_IDS)
class TestEveryTable:
    def test_key_fields_exist_and_are_not_nullable(self, service: str, table: Table) -> None:
        assert table.key
        for name in table.key:
            field = table.field(name)
            assert field is not None, name
            assert not field.nullable
            assert field.required is Required.SYSTEM

    def test_no_duplicate_fields(self, service: str, table: Table) -> None:
        duplicates = [name for name, count in Counter(table.field_names).items() if count > 1]
        assert duplicates == []

    def test_enum_fields_name_registered_enums(self, service: str, table: Table) -> None:
        catalog = CATALOGS[service]
        for field in table.fields:
            if field.type is EdmType.ENUM:
                assert field.enum_type in catalog.enums, field.name
                if field.default is not None:
                    assert field.default in catalog.enums[field.enum_type].members
            else:
                assert field.enum_type is None

    def test_primary_name_exists(self, service: str, table: Table) -> None:
        if table.primary_name is not None:
            assert table.field(table.primary_name) is not None


@pytest.mark.parametrize("table", dataverse.CATALOG.tables.values(), ids=lambda t: t.entity_set)
class TestDataverseTables:
    def test_guid_primary_key_named_after_the_table(self, table: Table) -> None:
        assert table.key == (f"{table.logical_name}id",)
        key = table.field(table.key[0])
        assert key is not None
        assert key.type is EdmType.GUID
        assert key.attribute_type == "Uniqueidentifier"

    def test_every_field_has_an_attribute_type(self, table: Table) -> None:
        assert all(field.attribute_type for field in table.fields)

    def test_lookups_point_at_existing_sets_and_columns(self, table: Table) -> None:
        lookup_columns = {lookup.column for lookup in table.lookups}
        for lookup in table.lookups:
            column = table.field(lookup.column)
            assert column is not None, lookup.column
            assert column.attribute_type in LOOKUP_ATTRIBUTE_TYPES
            assert column.type is EdmType.GUID
            for target in lookup.targets.values():
                assert target in dataverse.CATALOG.tables, target
            if column.attribute_type == "Customer":
                assert set(lookup.targets.values()) == {"accounts", "contacts"}
        # ...and no lookup-typed column lacks its navigation property.
        for field in table.fields:
            if field.attribute_type in LOOKUP_ATTRIBUTE_TYPES:
                assert field.name in lookup_columns, field.name

    def test_money_columns_have_read_only_base_twins(self, table: Table) -> None:
        for field in table.fields:
            if field.attribute_type == "Money" and not field.name.endswith("_base"):
                twin = table.field(f"{field.name}_base")
                assert twin is not None, field.name
                assert twin.read_only
        if any(field.attribute_type == "Money" for field in table.fields):
            rate = table.field("exchangerate")
            assert rate is not None
            assert rate.read_only

    def test_choice_columns_have_options(self, table: Table) -> None:
        for field in table.fields:
            if field.attribute_type in {"Picklist", "State", "Status"}:
                assert field.options, field.name
                if field.default is not None:
                    assert field.default in field.options

    def test_audit_columns_are_read_only(self, table: Table) -> None:
        for name in ("createdon", "modifiedon", "versionnumber"):
            field = table.field(name)
            assert field is not None
            assert field.read_only

    def test_metadata_id_is_uuid5_of_the_logical_name(self, table: Table) -> None:
        assert table.metadata_id == str(uuid.uuid5(dataverse_columns.METADATA_NAMESPACE, table.logical_name))

    def test_user_owned_tables_have_owner_columns(self, table: Table) -> None:
        if table.ownership != "UserOwned":
            assert table.field("ownerid") is None
            return
        owner = table.field("ownerid")
        assert owner is not None
        assert owner.attribute_type == "Owner"
        unit = table.field("owningbusinessunit")
        assert unit is not None
        assert unit.read_only


def test_dataverse_has_exactly_the_p2c_tables() -> None:
    assert set(dataverse.CATALOG.tables) == {
        "accounts", "contacts", "products", "pricelevels", "productpricelevels", "uoms", "uomschedules",
        "transactioncurrencies", "businessunits", "quotes", "quotedetails", "salesorders",
        "salesorderdetails", "invoices", "invoicedetails", "systemusers", "organizations",
    }  # fmt: skip


def test_dataverse_bulk_messages_excluded_for_account_and_contact() -> None:
    tables = dataverse.CATALOG.tables
    assert not tables["accounts"].supports_multiple
    assert not tables["contacts"].supports_multiple
    for name in ("products", "quotes", "quotedetails", "salesorders", "salesorderdetails", "invoices"):
        assert tables[name].supports_multiple, name


def test_only_contact_has_an_alternate_key() -> None:
    keyed = {t.entity_set: t.alternate_keys for t in dataverse.CATALOG.tables.values() if t.alternate_keys}
    assert set(keyed) == {"contacts"}
    (key,) = keyed["contacts"]
    assert key.name == "msdynce_ContactNumber"
    assert key.columns == ("msdynce_contactnumber",)


@pytest.mark.parametrize(
    ("entity_set", "column", "attribute_type", "max_length", "required"),
    [
        ("accounts", "name", "String", 160, Required.APPLICATION),
        ("accounts", "accountnumber", "String", 20, Required.APPLICATION),
        ("accounts", "description", "Memo", 2000, Required.NONE),
        ("accounts", "primarytwitterid", "String", 128, Required.NONE),
        ("accounts", "address1_postalcode", "String", 20, Required.NONE),
        ("accounts", "address2_line1", "String", 250, Required.NONE),
        ("contacts", "lastname", "String", 50, Required.APPLICATION),
        ("contacts", "msdynce_contactnumber", "String", 20, Required.APPLICATION),
        ("contacts", "address3_city", "String", 80, Required.NONE),
        ("products", "productnumber", "String", 100, Required.SYSTEM),
        ("transactioncurrencies", "isocurrencycode", "String", 5, Required.SYSTEM),
        ("quotes", "name", "String", 300, Required.APPLICATION),
        ("quotes", "quotenumber", "String", 100, Required.SYSTEM),
        ("quotes", "shipto_contactname", "String", 150, Required.NONE),
        ("quotedetails", "productdescription", "String", 500, Required.NONE),
        ("salesorders", "ordernumber", "String", 100, Required.SYSTEM),
        ("salesorderdetails", "msdynce_ordernumber", "String", 100, Required.NONE),
        ("invoices", "invoicenumber", "String", 100, Required.SYSTEM),
        ("invoicedetails", "msdynce_invoicenumber", "String", 100, Required.NONE),
        ("uomschedules", "name", "String", 200, Required.SYSTEM),
    ],
)
def test_dataverse_columns_match_the_reference(
    entity_set: str, column: str, attribute_type: str, max_length: int, required: Required
) -> None:
    field = dataverse.CATALOG.tables[entity_set].field(column)
    assert field is not None
    assert field.attribute_type == attribute_type
    assert field.max_length == max_length
    assert field.required is required


@pytest.mark.parametrize(
    ("entity_set", "column", "options"),
    [
        ("salesorders", "msdynce_processingstatus", {647390000: "Active", 647390011: "Draft"}),
        ("quotes", "statecode", {0: "Draft", 1: "Active", 2: "Won", 3: "Closed"}),
        ("invoices", "statuscode", {4: "Billed", 100001: "Complete"}),
        ("products", "producttypecode", {1: "Sales Inventory", 3: "Services"}),
        ("pricelevels", "statuscode", {100001: "Active", 100002: "Inactive"}),
        ("contacts", "gendercode", {1: "Male", 2: "Female"}),
    ],
)
def test_dataverse_choice_values(entity_set: str, column: str, options: dict[int, str]) -> None:
    field = dataverse.CATALOG.tables[entity_set].field(column)
    assert field is not None
    assert field.options is not None
    for value, label in options.items():
        assert field.options[value] == label


@pytest.mark.parametrize(
    ("entity_set", "column", "navigation", "target"),
    [
        ("contacts", "parentcustomerid", "parentcustomerid_account", "accounts"),
        ("contacts", "parentcustomerid", "parentcustomerid_contact", "contacts"),
        ("salesorders", "customerid", "customerid_account", "accounts"),
        ("quotes", "customerid", "customerid_contact", "contacts"),
        ("salesorderdetails", "quotedetailid", "QuoteDetailId", "quotedetails"),
        ("invoicedetails", "salesorderdetailid", "SalesOrderDetailId", "salesorderdetails"),
        ("invoices", "salesorderid", "salesorderid", "salesorders"),
        ("products", "defaultuomscheduleid", "defaultuomscheduleid", "uomschedules"),
        ("uoms", "baseuom", "baseuom", "uoms"),
        ("accounts", "ownerid", "ownerid", "systemusers"),
    ],
)
def test_dataverse_navigation_property_names(
    entity_set: str, column: str, navigation: str, target: str
) -> None:
    table = dataverse.CATALOG.tables[entity_set]
    lookups = {lookup.column: lookup for lookup in table.lookups}
    assert lookups[column].targets[navigation] == target


def test_dataverse_read_only_columns() -> None:
    tables = dataverse.CATALOG.tables
    for entity_set, column in [
        ("contacts", "fullname"),
        ("accounts", "creditlimit_base"),
        ("salesorders", "totalamount_base"),
        ("quotes", "owningbusinessunit"),
        ("quotedetails", "quotestatecode"),
        ("accounts", "address1_composite"),
    ]:
        field = tables[entity_set].field(column)
        assert field is not None, column
        assert field.read_only, column


def test_fno_has_the_p2c_entities() -> None:
    expected = {
        "CustomersV3", "CustomersV2", "CustomerGroups", "CDSContactPersons", "SellableReleasedProducts",
        "CDSSalesQuotationHeaders", "CDSSalesQuotationLines", "CDSSalesOrderHeaders", "CDSSalesOrderLines",
        "ExternallyMaintainedCustomerSalesInvoiceHeaders", "ExternallyMaintainedCustomerSalesInvoiceLines",
        "LegalEntities", "Currencies", "Units",
    }  # fmt: skip
    assert set(fno.CATALOG.tables) == expected


@pytest.mark.parametrize(
    ("entity_set", "key"),
    [
        ("CustomersV3", ("dataAreaId", "CustomerAccount")),
        ("CDSContactPersons", ("dataAreaId", "ContactPersonPartyNumber", "AssociatedPartyNumber")),
        ("CDSSalesQuotationLines", ("dataAreaId", "LineCreationSequenceNumber", "SalesQuotationNumber")),
        ("CDSSalesOrderLines", ("dataAreaId", "SalesOrderNumber", "LineCreationSequenceNumber")),
        (
            "ExternallyMaintainedCustomerSalesInvoiceHeaders",
            ("dataAreaId", "InvoiceNumber", "InvoiceDate", "LedgerVoucher"),
        ),
        (
            "ExternallyMaintainedCustomerSalesInvoiceLines",
            ("dataAreaId", "InvoiceNumber", "InvoiceDate", "LineCreationSequenceNumber", "LedgerVoucher"),
        ),
        ("LegalEntities", ("LegalEntityId",)),
    ],
)
def test_fno_key_order(entity_set: str, key: tuple[str, ...]) -> None:
    assert fno.CATALOG.tables[entity_set].key == key


@pytest.mark.parametrize(
    ("entity_set", "count"),
    [
        ("CDSSalesQuotationHeaders", 82),
        ("CDSSalesQuotationLines", 60),
        ("CDSSalesOrderHeaders", 92),
        ("CDSSalesOrderLines", 71),
        ("ExternallyMaintainedCustomerSalesInvoiceHeaders", 27),
        ("ExternallyMaintainedCustomerSalesInvoiceLines", 17),
        ("CDSContactPersons", 39),
        ("SellableReleasedProducts", 15),
        ("CustomerGroups", 13),
        ("LegalEntities", 17),
    ],
)
def test_fno_property_counts_match_the_reference(entity_set: str, count: int) -> None:
    assert len(fno.CATALOG.tables[entity_set].fields) == count


def test_fno_nullability_rule_and_lengths() -> None:
    for table in fno.CATALOG.tables.values():
        for field in table.fields:
            if field.name in table.key:
                assert not field.nullable
            elif field.type in (EdmType.STRING, EdmType.ENUM):
                assert field.nullable, field.name
            else:
                assert not field.nullable, field.name
                assert field.default is not None, field.name
            expected_length = 4 if field.name == "dataAreaId" else fno.MAX_LENGTHS.get(field.name)
            assert field.max_length == expected_length, field.name
        assert table.company_specific == (table.key[0] == "dataAreaId")


def test_fno_spelling_quirks_are_kept() -> None:
    headers = fno.CATALOG.tables["CDSSalesOrderHeaders"]
    assert headers.field("FormattedDelveryAddress") is not None
    assert headers.field("FormattedDeliveryAddress") is None
    assert fno.CATALOG.tables["CDSSalesOrderLines"].field("FormattedDeliveryAddress") is not None


@pytest.mark.parametrize(
    ("entity_set", "field", "enum"),
    [
        ("CustomersV3", "IsExternallyMaintained", "NoYes"),
        ("CDSSalesOrderHeaders", "SalesOrderProcessingStatus", "SalesOrderProcessingStatus"),
        ("CDSSalesOrderHeaders", "SalesOrderOriginType", "SalesOriginType"),
        ("CDSSalesOrderLines", "SalesOrderLineStatus", "SalesStatus"),
        ("SellableReleasedProducts", "ProductType", "EcoResProductType"),
        ("CDSContactPersons", "BirthMonth", "MonthsOfYear"),
        ("LegalEntities", "TimeZone", "Timezone"),
    ],
)
def test_fno_enum_fields(entity_set: str, field: str, enum: str) -> None:
    found = fno.CATALOG.tables[entity_set].field(field)
    assert found is not None
    assert found.type is EdmType.ENUM
    assert found.enum_type == enum


def test_fno_enum_members() -> None:
    enums = fno.CATALOG.enums
    assert enums["NoYes"].members == {"No": 0, "Yes": 1}
    assert enums["SalesOrderProcessingStatus"].members["Confirmed"] == 1
    assert enums["SalesOrderProcessingStatus"].members["DeliveredPartiallyInvoiced"] == 8
    assert enums["SalesOriginType"].members["WorkOrderIntegration"] == 2
    assert enums["EcoResProductType"].members == {"Item": 1, "Service": 2}
    assert enums["Timezone"].members["GMTPLUS0100_AMSTERDAM_BERLIN_BERN_ROME"] == 79
    assert enums["NoYes"].qualified_name == "Microsoft.Dynamics.DataEntities.NoYes"


#: References to a customer's party number instead of its key (contact persons attach to parties).
PARTY_REFERENCES = {("CDSContactPersons", ("AssociatedPartyNumber",))}


def _check_references(catalog: Catalog) -> None:
    for table in catalog.tables.values():
        for reference in table.references:
            target = catalog.tables[reference.entity_set]
            assert len(reference.fields) == len(reference.target_fields)
            for name in reference.fields:
                assert table.field(name) is not None, (table.entity_set, name)
            # A reference names the target's key (minus the implicit dataAreaId), except where F&O
            # relates to the customer's party (DirPartyTable) rather than to its account.
            target_key = tuple(k for k in target.key if k != "dataAreaId")
            if (table.entity_set, reference.fields) in PARTY_REFERENCES:
                target_key = ("PartyNumber",)
            assert set(reference.target_fields) == set(target_key), (table.entity_set, reference)


def test_fno_references_name_existing_entities_and_keys() -> None:
    _check_references(fno.CATALOG)


def test_fno_referential_checks_cover_the_p2c_rules() -> None:
    def targets(entity_set: str) -> dict[tuple[str, ...], str]:
        return {r.fields: r.entity_set for r in fno.CATALOG.tables[entity_set].references}

    assert targets("CustomersV3")[("CustomerGroupId",)] == "CustomerGroups"
    assert targets("CustomersV3")[("SalesCurrencyCode",)] == "Currencies"
    assert targets("CDSContactPersons")[("AssociatedPartyNumber",)] == "CustomersV3"
    assert targets("CDSSalesQuotationHeaders")[("RequestingCustomerAccountNumber",)] == "CustomersV3"
    assert targets("CDSSalesQuotationLines")[("ProductNumber",)] == "SellableReleasedProducts"
    assert targets("CDSSalesQuotationLines")[("SalesQuotationNumber",)] == "CDSSalesQuotationHeaders"
    assert targets("CDSSalesOrderHeaders")[("OrderingCustomerAccountNumber",)] == "CustomersV3"
    assert targets("CDSSalesOrderHeaders")[("InvoiceCustomerAccountNumber",)] == "CustomersV3"
    assert targets("CDSSalesOrderLines")[("SalesOrderNumber",)] == "CDSSalesOrderHeaders"
    assert targets("CDSSalesOrderLines")[("ProductNumber",)] == "SellableReleasedProducts"
    invoice_lines = targets("ExternallyMaintainedCustomerSalesInvoiceLines")
    assert invoice_lines[("InvoiceNumber", "InvoiceDate", "LedgerVoucher")] == (
        "ExternallyMaintainedCustomerSalesInvoiceHeaders"
    )


def test_customers_v2_lacks_the_v3_only_properties() -> None:
    v2 = fno.CATALOG.tables["CustomersV2"]
    v3 = fno.CATALOG.tables["CustomersV3"]
    for name in ("AddressStreetNumber", "DeliveryAddressStreetNumber", "InvoiceAddressStreetNumber"):
        assert v3.field(name) is not None
        assert v2.field(name) is None
    assert set(v2.field_names) < set(v3.field_names)


def test_catalogues_can_be_rebuilt_identically() -> None:
    assert dataverse.build_catalog().tables == dataverse.CATALOG.tables
    assert fno.build_catalog().tables == fno.CATALOG.tables
