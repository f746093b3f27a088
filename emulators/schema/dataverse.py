"""Dataverse (Dynamics 365 Sales) tables the Prospect-to-cash templates read and write.

Declared from the field reference (`/work/shared/reference/entities.md` §2: CDM Sales
schemas, the P2C solution `msdynce_ProspectToCashIntegration` 15.0.0.1 and Microsoft's
entity reference pages), so the emulator refuses what the real Web API refuses.

Conventions used below:

* A lookup column is declared twice: as a `Field` whose `attribute_type` is `Lookup`,
  `Customer` or `Owner` (what `EntityDefinitions` lists and the store column the GUID
  lives in) and as a `Lookup` (its navigation properties for `@odata.bind` / `$expand`).
  On the wire the column only appears as `_<column>_value`.
* Money columns of transactional tables have a read-only `<column>_base` twin in the
  organization's base currency plus a read-only `exchangerate`.
* `metadata_id` is uuid5 of the logical name, so `EntityDefinitions` ids are stable.

The sales documents (quotes, orders, invoices and their lines) are declared in
:mod:`emulators.schema.dataverse_documents`; this module holds the master and system
tables and assembles the catalogue.
"""

from __future__ import annotations

from emulators.schema.dataverse_columns import (
    APP,
    PAYMENT_TERMS,
    SYSTEM,
    boolean,
    datetime_,
    decimal,
    integer,
    lookup_column,
    memo,
    money,
    money_with_base,
    party_address,
    picklist,
    state_and_status,
    string,
    table,
)
from emulators.schema.dataverse_documents import sales_document_tables
from emulators.schema.model import AlternateKey, Catalog, EdmType, Field, Lookup, Table

# --- choice sets -----------------------------------------------------------------------

# State and status reason pairs, ``value: (label, DefaultStatus)`` and ``value: (label,
# State)``, as the "StateCode/StatusCode Choices/Options" tables of the entity reference
# pages list them (powerapps-docs account, contact, transactioncurrency; customer-engagement
# product, pricelevel, uomschedule; entities.md §2).
ACTIVE_INACTIVE_STATES = {0: ("Active", 1), 1: ("Inactive", 2)}
ACTIVE_INACTIVE_STATUSES = {1: ("Active", 0), 2: ("Inactive", 1)}
PRODUCT_STATES = {0: ("Active", 1), 1: ("Retired", 2), 2: ("Draft", 0), 3: ("Under Revision", 3)}
PRODUCT_STATUSES = {0: ("Draft", 2), 1: ("Active", 0), 2: ("Retired", 1), 3: ("Under Revision", 3)}
PRICE_LIST_STATES = {0: ("Active", 100001), 1: ("Inactive", 100002)}
PRICE_LIST_STATUSES = {100001: ("Active", 0), 100002: ("Inactive", 1)}


def _account() -> Table:
    fields = [
        string("name", 160, APP),
        # The P2C plug-in fills it on create (pre-create step), pattern ACC-01000-BVRCPS.
        string("accountnumber", 20, APP, auto_number="ACC-{SEQNUM:5}-{RANDSTRING:6}"),
        memo("description"),
        string("emailaddress1", 100),
        string("telephone1", 50),
        string("fax", 50),
        string("websiteurl", 200),
        string("primarytwitterid", 128),
        integer("numberofemployees"),
        *money_with_base("creditlimit"),
        decimal("exchangerate", precision=10, read_only=True),
        boolean("creditonhold", default=False),
        picklist(
            "customertypecode",
            {
                1: "Competitor",
                2: "Consultant",
                3: "Customer",
                4: "Investor",
                5: "Partner",
                6: "Influencer",
                7: "Press",
                8: "Prospect",
                9: "Reseller",
                10: "Supplier",
                11: "Vendor",
                12: "Other",
            },
        ),
        picklist("accountcategorycode", {1: "Preferred Customer", 2: "Standard"}),
        picklist("paymenttermscode", PAYMENT_TERMS),
        *party_address(1),
        *party_address(2),
        *state_and_status(ACTIVE_INACTIVE_STATES, ACTIVE_INACTIVE_STATUSES),
        lookup_column("transactioncurrencyid"),
        lookup_column("primarycontactid"),
        lookup_column("parentaccountid"),
        lookup_column("defaultpricelevelid"),
    ]
    lookups = [
        Lookup("transactioncurrencyid", {"transactioncurrencyid": "transactioncurrencies"}),
        Lookup("primarycontactid", {"primarycontactid": "contacts"}),
        Lookup("parentaccountid", {"parentaccountid": "accounts"}),
        Lookup("defaultpricelevelid", {"defaultpricelevelid": "pricelevels"}),
    ]
    return table(
        "account",
        "accounts",
        "name",
        fields,
        lookups,
        ownership="UserOwned",
        # Microsoft names account as a table without CreateMultiple/UpsertMultiple.
        supports_multiple=False,
    )


def _contact() -> Table:
    fields = [
        string("firstname", 50),
        string("middlename", 50),
        string("lastname", 50, APP),
        string("fullname", 160, read_only=True),
        string("jobtitle", 100),
        string("department", 100),
        string("salutation", 100),
        string("governmentid", 50),
        string("spousesname", 100),
        memo("description"),
        string("emailaddress1", 100),
        string("telephone1", 50),
        string("mobilephone", 50),
        string("fax", 50),
        string("websiteurl", 200),
        picklist("gendercode", {1: "Male", 2: "Female"}),
        picklist("familystatuscode", {1: "Single", 2: "Married", 3: "Divorced", 4: "Widowed"}),
        picklist("accountrolecode", {1: "Decision Maker", 2: "Employee", 3: "Influencer"}),
        boolean("donotemail", default=False),
        *party_address(1),
        *party_address(2),
        *party_address(3),
        *state_and_status(ACTIVE_INACTIVE_STATES, ACTIVE_INACTIVE_STATUSES),
        # P2C solution columns; the plug-in numbers contacts CON-01000-BVRCPS.
        string("msdynce_contactnumber", 20, APP, auto_number="CON-{SEQNUM:5}-{RANDSTRING:6}"),
        boolean("msdynce_isactivecustomer", default=False),
        boolean("msdynce_iscompanyanaccount", default=False),
        lookup_column("parentcustomerid", kind="Customer"),
        lookup_column("transactioncurrencyid"),
    ]
    lookups = [
        Lookup(
            "parentcustomerid",
            {"parentcustomerid_account": "accounts", "parentcustomerid_contact": "contacts"},
        ),
        Lookup("transactioncurrencyid", {"transactioncurrencyid": "transactioncurrencies"}),
    ]
    return table(
        "contact",
        "contacts",
        "fullname",
        fields,
        lookups,
        ownership="UserOwned",
        alternate_keys=(AlternateKey("msdynce_ContactNumber", ("msdynce_contactnumber",)),),
        # Microsoft names contact as a table without CreateMultiple/UpsertMultiple.
        supports_multiple=False,
    )


def _product() -> Table:
    fields = [
        string("name", 100, APP),
        string("productnumber", 100, SYSTEM),
        memo("description"),
        picklist(
            "producttypecode",
            {1: "Sales Inventory", 2: "Miscellaneous Charges", 3: "Services", 4: "Flat Fees"},
            default=1,
        ),
        picklist("productstructure", {1: "Product", 2: "Product Family", 3: "Product Bundle"}, default=1),
        *money_with_base("price", "currentcost", "standardcost"),
        decimal("exchangerate", precision=10, read_only=True),
        boolean("isstockitem", default=False),
        integer("quantitydecimal", APP),
        decimal("quantityonhand"),
        datetime_("validfromdate"),
        datetime_("validtodate"),
        *state_and_status(PRODUCT_STATES, PRODUCT_STATUSES),
        boolean("msdynce_ismaintainedexternally"),
        lookup_column("defaultuomid"),
        lookup_column("defaultuomscheduleid"),
        lookup_column("pricelevelid"),
        lookup_column("transactioncurrencyid"),
        lookup_column("parentproductid"),
    ]
    lookups = [
        Lookup("defaultuomid", {"defaultuomid": "uoms"}),
        Lookup("defaultuomscheduleid", {"defaultuomscheduleid": "uomschedules"}),
        Lookup("pricelevelid", {"pricelevelid": "pricelevels"}),
        Lookup("transactioncurrencyid", {"transactioncurrencyid": "transactioncurrencies"}),
        Lookup("parentproductid", {"parentproductid": "products"}),
    ]
    return table("product", "products", "name", fields, lookups, ownership="OrganizationOwned")


def _pricelevel() -> Table:
    fields = [
        string("name", 100, SYSTEM),
        datetime_("begindate"),
        datetime_("enddate"),
        memo("description"),
        picklist("freighttermscode", {1: "Default Value"}),
        picklist("paymentmethodcode", {1: "Default Value"}),
        picklist("shippingmethodcode", {1: "Default Value"}),
        *state_and_status(PRICE_LIST_STATES, PRICE_LIST_STATUSES),
        lookup_column("transactioncurrencyid", APP),
    ]
    lookups = [Lookup("transactioncurrencyid", {"transactioncurrencyid": "transactioncurrencies"}, APP)]
    return table("pricelevel", "pricelevels", "name", fields, lookups, ownership="OrganizationOwned")


def _productpricelevel() -> Table:
    fields = [
        money("amount", APP),
        money("amount_base", read_only=True),
        decimal("exchangerate", precision=10, read_only=True),
        decimal("percentage"),
        picklist(
            "pricingmethodcode",
            {
                1: "Currency Amount",
                2: "Percent of List",
                3: "Percent Markup - Current Cost",
                4: "Percent Margin - Current Cost",
                5: "Percent Markup - Standard Cost",
                6: "Percent Margin - Standard Cost",
            },
            default=1,
        ),
        picklist("quantitysellingcode", {1: "No Control", 2: "Whole", 3: "Whole and Fractional"}, default=1),
        picklist("roundingpolicycode", {1: "None", 2: "Up", 3: "Down", 4: "To Nearest"}),
        picklist("roundingoptioncode", {1: "Ends in", 2: "Multiple of"}),
        *money_with_base("roundingoptionamount"),
        string("productnumber", 100, read_only=True),
        # Primary name column: the product's name, maintained by the platform.
        string("productidname", 100, read_only=True),
        lookup_column("pricelevelid", SYSTEM),
        lookup_column("productid", SYSTEM),
        lookup_column("uomid", APP),
        lookup_column("uomscheduleid"),
        lookup_column("transactioncurrencyid"),
    ]
    lookups = [
        Lookup("pricelevelid", {"pricelevelid": "pricelevels"}, SYSTEM),
        Lookup("productid", {"productid": "products"}, SYSTEM),
        Lookup("uomid", {"uomid": "uoms"}, APP),
        Lookup("uomscheduleid", {"uomscheduleid": "uomschedules"}),
        Lookup("transactioncurrencyid", {"transactioncurrencyid": "transactioncurrencies"}),
        # discounttypeid (discount lists) is left out: P2C never sets it and the table is not emulated.
    ]
    return table(
        "productpricelevel", "productpricelevels", "productidname", fields, lookups, ownership="None"
    )


def _uom() -> Table:
    fields = [
        string("name", 100, SYSTEM),
        decimal("quantity", APP, precision=5),
        boolean("isschedulebaseuom", default=False, read_only=True),
        lookup_column("uomscheduleid", SYSTEM),
        lookup_column("baseuom"),
    ]
    lookups = [
        Lookup("uomscheduleid", {"uomscheduleid": "uomschedules"}, SYSTEM),
        Lookup("baseuom", {"baseuom": "uoms"}),
    ]
    return table("uom", "uoms", "name", fields, lookups, ownership="None")


def _uomschedule() -> Table:
    fields = [
        string("name", 200, SYSTEM),
        string("baseuomname", 100, SYSTEM),
        memo("description"),
        *state_and_status(ACTIVE_INACTIVE_STATES, ACTIVE_INACTIVE_STATUSES),
    ]
    return table("uomschedule", "uomschedules", "name", fields, [], ownership="OrganizationOwned")


def _transactioncurrency() -> Table:
    fields = [
        string("isocurrencycode", 5, SYSTEM),
        string("currencyname", 100, SYSTEM),
        string("currencysymbol", 10, SYSTEM),
        integer("currencyprecision", SYSTEM, default=2),
        decimal("exchangerate", SYSTEM, precision=10),
        *state_and_status(ACTIVE_INACTIVE_STATES, ACTIVE_INACTIVE_STATUSES),
    ]
    return table(
        "transactioncurrency",
        "transactioncurrencies",
        "currencyname",
        fields,
        [],
        ownership="OrganizationOwned",
    )


def _organization() -> Table:
    """The environment's one organization row: its pricing decimal precision (0 to 4)."""
    fields = [string("name", 160, SYSTEM), integer("pricingdecimalprecision", SYSTEM, default=2)]
    return table("organization", "organizations", "name", fields, [], ownership="None", change_tracking=False)


def _businessunit() -> Table:
    fields = [
        string("name", 160, SYSTEM),
        string("divisionname", 100),
        string("costcenter", 100),
        boolean("isdisabled", default=False, read_only=True),
        lookup_column("parentbusinessunitid", SYSTEM),
        lookup_column("transactioncurrencyid"),
    ]
    lookups = [
        # SystemRequired, but the root business unit has none (the organization owns it).
        Lookup("parentbusinessunitid", {"parentbusinessunitid": "businessunits"}, SYSTEM),
        Lookup("transactioncurrencyid", {"transactioncurrencyid": "transactioncurrencies"}),
    ]
    return table(
        "businessunit",
        "businessunits",
        "name",
        fields,
        lookups,
        ownership="BusinessOwned",
        # Emulator choice: system tables are written by administrators, not by bulk loads.
        supports_multiple=False,
        change_tracking=False,
    )


def _systemuser() -> Table:
    fields = [
        string("firstname", 256),
        string("lastname", 256),
        string("fullname", 200, read_only=True),
        string("domainname", 1024, SYSTEM),
        string("internalemailaddress", 100),
        boolean("isdisabled", default=False, read_only=True),
        Field("azureactivedirectoryobjectid", EdmType.GUID, attribute_type="Uniqueidentifier"),
        lookup_column("businessunitid", SYSTEM),
    ]
    lookups = [Lookup("businessunitid", {"businessunitid": "businessunits"}, SYSTEM)]
    return table(
        "systemuser",
        "systemusers",
        "fullname",
        fields,
        lookups,
        ownership="BusinessOwned",
        # Emulator choice, as for businessunit; only here so records have owners.
        supports_multiple=False,
    )


def build_catalog() -> Catalog:
    """A fresh catalogue (tests build their own to mutate without touching `CATALOG`)."""
    catalog = Catalog(service="dataverse")
    for build in (
        _organization,
        _businessunit,
        _systemuser,
        _transactioncurrency,
        _uomschedule,
        _uom,
        _pricelevel,
        _product,
        _productpricelevel,
        _account,
        _contact,
    ):
        catalog.add(build())
    for document_table in sales_document_tables():
        catalog.add(document_table)
    return catalog


CATALOG: Catalog = build_catalog()
