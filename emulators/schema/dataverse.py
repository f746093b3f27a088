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
"""

from __future__ import annotations

from emulators.schema.dataverse_columns import (
    APP,
    FREIGHT_TERMS,
    NONE,
    SYSTEM,
    boolean,
    date_only,
    datetime_,
    decimal,
    integer,
    lookup_column,
    memo,
    money,
    money_with_base,
    party_address,
    picklist,
    sales_address,
    state,
    status,
    string,
    table,
)
from emulators.schema.model import AlternateKey, Catalog, EdmType, Field, Lookup, Table

# --- choice sets -----------------------------------------------------------------------

PAYMENT_TERMS = {1: "Net 30", 2: "2% 10, Net 30", 3: "Net 45", 4: "Net 60"}
SHIPPING_METHOD = {
    1: "Airborne",
    2: "DHL",
    3: "FedEx",
    4: "UPS",
    5: "Postal Mail",
    6: "Full Load",
    7: "Will Call",
}
LINE_PRODUCT_TYPE = {
    1: "Product",
    2: "Bundle",
    3: "Required Bundle Product",
    4: "Optional Bundle Product",
    5: "Project-based Service",
}
PROPERTY_CONFIGURATION_STATUS = {0: "Edit", 1: "Rectify", 2: "Not Configured"}
ACTIVE_INACTIVE_STATE = {0: "Active", 1: "Inactive"}
ACTIVE_INACTIVE_STATUS = {1: "Active", 2: "Inactive"}

#: msdynce_processingstatus (P2C solution): F&O order processing status as seen in Sales.
PROCESSING_STATUS = {
    647390000: "Active",
    647390001: "Confirmed",
    647390002: "Packing Slip",
    647390003: "Invoiced",
    647390004: "Picked",
    647390005: "Partially Picked",
    647390006: "Partially Packed",
    647390007: "Shipped",
    647390008: "Partially Shipped",
    647390009: "Partially Invoiced",
    647390010: "Cancelled",
    647390011: "Draft",
}

QUOTE_STATE = {0: "Draft", 1: "Active", 2: "Won", 3: "Closed"}
QUOTE_STATUS = {
    1: "In Progress",
    2: "In Progress",
    3: "Open",
    4: "Won",
    5: "Lost",
    6: "Canceled",
    7: "Revised",
}
ORDER_STATE = {0: "Active", 1: "Submitted", 2: "Canceled", 3: "Fulfilled", 4: "Invoiced"}
ORDER_STATUS = {
    1: "New",
    2: "Pending",
    3: "In Progress",
    4: "No Money",
    100001: "Complete",
    100002: "Partial",
    100003: "Invoiced",
}
INVOICE_STATE = {0: "Active", 1: "Closed (deprecated)", 2: "Paid", 3: "Canceled"}
INVOICE_STATUS = {
    1: "New",
    2: "Partially Shipped",
    4: "Billed",
    5: "Booked (applies to services)",
    6: "Installed (applies to services)",
    3: "Canceled (deprecated)",
    7: "Paid in Full (deprecated)",
    100001: "Complete",
    100002: "Partial",
    100003: "Canceled",
}

#: Which status values belong to which state (the Web API refuses other combinations).
STATE_STATUS: dict[str, dict[int, tuple[int, ...]]] = {
    "account": {0: (1,), 1: (2,)},
    "contact": {0: (1,), 1: (2,)},
    "product": {0: (1,), 1: (2,), 2: (0,), 3: (3,)},
    "pricelevel": {0: (100001,), 1: (100002,)},
    "uomschedule": {0: (1,), 1: (2,)},
    "transactioncurrency": {0: (1,), 1: (2,)},
    "quote": {0: (1,), 1: (2, 3), 2: (4,), 3: (5, 6, 7)},
    "salesorder": {0: (1, 2), 1: (3,), 2: (4,), 3: (100001, 100002), 4: (100003,)},
    "invoice": {0: (1, 2, 4, 5, 6), 1: (3, 7), 2: (100001, 100002), 3: (100003,)},
}


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
        state(ACTIVE_INACTIVE_STATE),
        status({1: "Active", 2: "Inactive"}, 1),
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
        state(ACTIVE_INACTIVE_STATE),
        status({1: "Active", 2: "Inactive"}, 1),
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
        state({0: "Active", 1: "Retired", 2: "Draft", 3: "Under Revision"}),
        status({0: "Draft", 1: "Active", 2: "Retired", 3: "Under Revision"}, 1),
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
        state(ACTIVE_INACTIVE_STATE),
        status({100001: "Active", 100002: "Inactive"}, 100001),
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
        state(ACTIVE_INACTIVE_STATE),
        status(ACTIVE_INACTIVE_STATUS, 1),
    ]
    return table("uomschedule", "uomschedules", "name", fields, [], ownership="OrganizationOwned")


def _transactioncurrency() -> Table:
    fields = [
        string("isocurrencycode", 5, SYSTEM),
        string("currencyname", 100, SYSTEM),
        string("currencysymbol", 10, SYSTEM),
        integer("currencyprecision", SYSTEM, default=2),
        decimal("exchangerate", SYSTEM, precision=10),
        state(ACTIVE_INACTIVE_STATE),
        status(ACTIVE_INACTIVE_STATUS, 1),
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


_HEADER_TOTALS = (
    "discountamount",
    "freightamount",
    "totalamount",
    "totalamountlessfreight",
    "totaldiscountamount",
    "totallineitemamount",
    "totallineitemdiscountamount",
    "totaltax",
)


def _sales_header_common() -> list[Field]:
    return [
        memo("description"),
        string("emailaddress", 100),
        *money_with_base(*_HEADER_TOTALS),
        decimal("exchangerate", precision=10, read_only=True),
        decimal("discountpercentage"),
        *sales_address("billto_"),
        *sales_address("shipto_"),
        picklist("paymenttermscode", PAYMENT_TERMS),
        picklist("freighttermscode", FREIGHT_TERMS),
        picklist("shippingmethodcode", SHIPPING_METHOD),
        boolean("willcall", default=False),
        boolean("msdynce_hasexternallymaintainedproductsonly"),
        boolean("msdynce_ismaintainedexternally"),
    ]


def _sales_header_lookups(*, price_level_required: bool) -> tuple[list[Field], list[Lookup]]:
    req = APP if price_level_required else NONE
    fields = [
        lookup_column("customerid", APP, kind="Customer"),
        lookup_column("pricelevelid", req),
        lookup_column("transactioncurrencyid", APP),
    ]
    lookups = [
        Lookup("customerid", {"customerid_account": "accounts", "customerid_contact": "contacts"}, APP),
        Lookup("pricelevelid", {"pricelevelid": "pricelevels"}, req),
        Lookup("transactioncurrencyid", {"transactioncurrencyid": "transactioncurrencies"}, APP),
        # opportunityid / campaignid are left out: P2C never sets them and those tables are not emulated.
    ]
    return fields, lookups


def _line_common() -> list[Field]:
    return [
        string("productdescription", 500),
        string("productname", 500),
        memo("description"),
        boolean("isproductoverridden", default=False),
        boolean("ispriceoverridden", default=False),
        decimal("quantity", APP, precision=5),
        *money_with_base("priceperunit", "baseamount", "extendedamount", "manualdiscountamount"),
        *money_with_base("volumediscountamount", "tax"),
        decimal("exchangerate", precision=10, read_only=True),
        integer("sequencenumber"),
        integer("lineitemnumber"),
        datetime_("requestdeliveryby"),
        *sales_address("shipto_", composite=False),
        boolean("willcall", default=False),
        picklist("producttypecode", LINE_PRODUCT_TYPE, default=1),
        picklist("propertyconfigurationstatus", PROPERTY_CONFIGURATION_STATUS, default=2),
        boolean("msdynce_ismaintainedexternally"),
    ]


def _line_lookups(parent: str, parent_set: str) -> tuple[list[Field], list[Lookup]]:
    fields = [
        lookup_column(parent, SYSTEM),
        lookup_column("productid"),
        lookup_column("uomid"),
        lookup_column("transactioncurrencyid"),
        lookup_column("salesrepid"),
    ]
    lookups = [
        Lookup(parent, {parent: parent_set}, SYSTEM),
        Lookup("productid", {"productid": "products"}),
        Lookup("uomid", {"uomid": "uoms"}),
        Lookup("transactioncurrencyid", {"transactioncurrencyid": "transactioncurrencies"}),
        Lookup("salesrepid", {"salesrepid": "systemusers"}),
    ]
    return fields, lookups


def _quote() -> Table:
    lookup_fields, lookups = _sales_header_lookups(price_level_required=True)
    fields = [
        string("name", 300, APP),
        string("quotenumber", 100, SYSTEM, auto_number="QUO-{SEQNUM:5}-{RANDSTRING:6}"),
        integer("revisionnumber", SYSTEM, default=0),
        datetime_("effectivefrom"),
        datetime_("effectiveto"),
        datetime_("expireson"),
        datetime_("closedon"),
        datetime_("requestdeliveryby"),
        *_sales_header_common(),
        state(QUOTE_STATE),
        status(QUOTE_STATUS, 1),
        *lookup_fields,
    ]
    return table("quote", "quotes", "name", fields, lookups, ownership="UserOwned")


def _quotedetail() -> Table:
    lookup_fields, lookups = _line_lookups("quoteid", "quotes")
    fields = [
        string("quotedetailname", 100),
        *_line_common(),
        Field("quotestatecode", EdmType.INT32, attribute_type="State", options=QUOTE_STATE, read_only=True),
        boolean("msdynce_quotehasexternalmaintainedproductsonly"),
        integer("msdynce_quoterevisionnumber"),
        *lookup_fields,
    ]
    return table(
        "quotedetail",
        "quotedetails",
        "quotedetailname",
        fields,
        lookups,
        ownership="UserOwned",
        owner_parent="quoteid",
    )


def _salesorder() -> Table:
    lookup_fields, lookups = _sales_header_lookups(price_level_required=True)
    fields = [
        string("name", 300, APP),
        string("ordernumber", 100, SYSTEM, auto_number="ORD-{SEQNUM:5}-{RANDSTRING:6}"),
        boolean("ispricelocked", APP, default=False),
        datetime_("datefulfilled"),
        datetime_("submitdate"),
        datetime_("requestdeliveryby"),
        datetime_("lastbackofficesubmit"),
        integer("submitstatus"),
        memo("submitstatusdescription"),
        *_sales_header_common(),
        picklist("prioritycode", {1: "Default Value"}, default=1),
        state(ORDER_STATE),
        status(ORDER_STATUS, 1),
        picklist("msdynce_processingstatus", PROCESSING_STATUS),
        *money_with_base("msdynce_misctax"),
        *lookup_fields,
        lookup_column("quoteid"),
    ]
    lookups = [*lookups, Lookup("quoteid", {"quoteid": "quotes"})]
    return table("salesorder", "salesorders", "name", fields, lookups, ownership="UserOwned")


def _salesorderdetail() -> Table:
    lookup_fields, lookups = _line_lookups("salesorderid", "salesorders")
    fields = [
        string("salesorderdetailname", 100),
        *_line_common(),
        decimal("quantityshipped", precision=5),
        decimal("quantitybackordered", precision=5),
        decimal("quantitycancelled", precision=5),
        boolean("iscopied", default=False),
        boolean("salesorderispricelocked", read_only=True),
        Field(
            "salesorderstatecode", EdmType.INT32, attribute_type="State", options=ORDER_STATE, read_only=True
        ),
        picklist("ordercreationmethod", {776160000: "Unknown", 776160001: "Win Quote"}),
        boolean("msdynce_ismisctax"),
        boolean("msdynce_orderhasexternalmaintainedproductsonly"),
        boolean("msdynce_orderissubmitted"),
        string("msdynce_ordernumber", 100),
        *lookup_fields,
        lookup_column("quotedetailid"),
    ]
    # The real navigation property is PascalCase: QuoteDetailId.
    lookups = [*lookups, Lookup("quotedetailid", {"QuoteDetailId": "quotedetails"})]
    return table(
        "salesorderdetail",
        "salesorderdetails",
        "salesorderdetailname",
        fields,
        lookups,
        ownership="UserOwned",
        owner_parent="salesorderid",
    )


def _invoice() -> Table:
    lookup_fields, lookups = _sales_header_lookups(price_level_required=True)
    fields = [
        string("name", 300, APP),
        string("invoicenumber", 100, SYSTEM, auto_number="INV-{SEQNUM:5}-{RANDSTRING:6}"),
        boolean("ispricelocked", APP, default=False),
        datetime_("datedelivered"),
        datetime_("duedate"),
        *_sales_header_common(),
        state(INVOICE_STATE),
        status(INVOICE_STATUS, 1),
        date_only("msdynce_invoicedate"),
        *money_with_base("msdynce_misctax"),
        *lookup_fields,
        lookup_column("salesorderid"),
    ]
    lookups = [*lookups, Lookup("salesorderid", {"salesorderid": "salesorders"})]
    return table("invoice", "invoices", "name", fields, lookups, ownership="UserOwned")


def _invoicedetail() -> Table:
    lookup_fields, lookups = _line_lookups("invoiceid", "invoices")
    fields = [
        string("invoicedetailname", 100),
        *_line_common(),
        decimal("quantityshipped", precision=5),
        decimal("quantitybackordered", precision=5),
        decimal("quantitycancelled", precision=5),
        datetime_("actualdeliveryon"),
        string("shippingtrackingnumber", 100),
        boolean("invoiceispricelocked", read_only=True),
        Field(
            "invoicestatecode", EdmType.INT32, attribute_type="State", options=INVOICE_STATE, read_only=True
        ),
        date_only("msdynce_invoicedate"),
        string("msdynce_invoicenumber", 100),
        boolean("msdynce_ismisctax"),
        *lookup_fields,
        lookup_column("salesorderdetailid"),
    ]
    # The real navigation property is PascalCase: SalesOrderDetailId.
    lookups = [*lookups, Lookup("salesorderdetailid", {"SalesOrderDetailId": "salesorderdetails"})]
    return table(
        "invoicedetail",
        "invoicedetails",
        "invoicedetailname",
        fields,
        lookups,
        ownership="UserOwned",
        owner_parent="invoiceid",
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
        _quote,
        _quotedetail,
        _salesorder,
        _salesorderdetail,
        _invoice,
        _invoicedetail,
    ):
        catalog.add(build())
    return catalog


CATALOG: Catalog = build_catalog()
