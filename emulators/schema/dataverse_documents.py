"""Dataverse sales documents: quotes, orders and invoices, with their lines.

The six tables share their header and line column groups and their document choice sets,
so they are declared together here; :mod:`emulators.schema.dataverse` adds them to its
catalogue after the master data (customers, products, price lists) they refer to.
"""

from __future__ import annotations

from emulators.schema.dataverse_columns import (
    APP,
    FREIGHT_TERMS,
    NONE,
    PAYMENT_TERMS,
    SYSTEM,
    boolean,
    date_only,
    datetime_,
    decimal,
    integer,
    labels,
    lookup_column,
    memo,
    money_with_base,
    picklist,
    sales_address,
    state_and_status,
    string,
    table,
)
from emulators.schema.model import EdmType, Field, Lookup, Table

# --- choice sets -----------------------------------------------------------------------

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

# State and status reason pairs from the customer-engagement entity reference pages
# (quote.md, salesorder.md, invoice.md, "StateCode/StatusCode Choices/Options"):
# ``value: (label, DefaultStatus)`` and ``value: (label, State)``.
QUOTE_STATES = {0: ("Draft", 1), 1: ("Active", 2), 2: ("Won", 4), 3: ("Closed", 7)}
QUOTE_STATUSES = {
    1: ("In Progress", 0),
    2: ("In Progress", 1),
    3: ("Open", 1),
    4: ("Won", 2),
    5: ("Lost", 3),
    6: ("Canceled", 3),
    7: ("Revised", 3),
}
ORDER_STATES = {
    0: ("Active", 1),
    1: ("Submitted", 3),
    2: ("Canceled", 4),
    3: ("Fulfilled", 100001),
    4: ("Invoiced", 100003),
}
ORDER_STATUSES = {
    1: ("New", 0),
    2: ("Pending", 0),
    3: ("In Progress", 1),
    4: ("No Money", 2),
    100001: ("Complete", 3),
    100002: ("Partial", 3),
    100003: ("Invoiced", 4),
}
# invoice.md gives the deprecated Closed state DefaultStatus 100003 although that status
# reason belongs to Canceled; kept as published.
INVOICE_STATES = {
    0: ("Active", 1),
    1: ("Closed (deprecated)", 100003),
    2: ("Paid", 100001),
    3: ("Canceled", 100003),
}
INVOICE_STATUSES = {
    1: ("New", 0),
    2: ("Partially Shipped", 0),
    4: ("Billed", 0),
    5: ("Booked (applies to services)", 0),
    6: ("Installed (applies to services)", 0),
    3: ("Canceled (deprecated)", 1),
    7: ("Paid in Full (deprecated)", 1),
    100001: ("Complete", 2),
    100002: ("Partial", 2),
    100003: ("Canceled", 3),
}


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
        *state_and_status(QUOTE_STATES, QUOTE_STATUSES),
        *lookup_fields,
    ]
    # "Shows whether the quote is draft, active, won, or closed. Only draft quotes can be edited."
    return table(
        "quote",
        "quotes",
        "name",
        fields,
        lookups,
        ownership="UserOwned",
        read_only_states=frozenset({1, 2, 3}),
    )


def _quotedetail() -> Table:
    lookup_fields, lookups = _line_lookups("quoteid", "quotes")
    fields = [
        string("quotedetailname", 100),
        *_line_common(),
        Field(
            "quotestatecode",
            EdmType.INT32,
            attribute_type="State",
            options=labels(QUOTE_STATES),
            read_only=True,
        ),
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
        *state_and_status(ORDER_STATES, ORDER_STATUSES),
        picklist("msdynce_processingstatus", PROCESSING_STATUS),
        *money_with_base("msdynce_misctax"),
        *lookup_fields,
        lookup_column("quoteid"),
    ]
    lookups = [*lookups, Lookup("quoteid", {"quoteid": "quotes"})]
    # "Shows whether the order is active, submitted, fulfilled, canceled, or invoiced. Only active
    # orders can be edited."
    return table(
        "salesorder",
        "salesorders",
        "name",
        fields,
        lookups,
        ownership="UserOwned",
        read_only_states=frozenset({1, 2, 3, 4}),
    )


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
            "salesorderstatecode",
            EdmType.INT32,
            attribute_type="State",
            options=labels(ORDER_STATES),
            read_only=True,
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
        *state_and_status(INVOICE_STATES, INVOICE_STATUSES),
        date_only("msdynce_invoicedate"),
        *money_with_base("msdynce_misctax"),
        *lookup_fields,
        lookup_column("salesorderid"),
    ]
    lookups = [*lookups, Lookup("salesorderid", {"salesorderid": "salesorders"})]
    # "Shows whether the invoice is active, paid, or canceled. Paid and canceled invoices are
    # read-only and can't be edited unless they are reactivated."
    return table(
        "invoice",
        "invoices",
        "name",
        fields,
        lookups,
        ownership="UserOwned",
        read_only_states=frozenset({2, 3}),
    )


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
            "invoicestatecode",
            EdmType.INT32,
            attribute_type="State",
            options=labels(INVOICE_STATES),
            read_only=True,
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


def sales_document_tables() -> list[Table]:
    """The six tables, headers before their lines (the order of the catalogue)."""
    return [_quote(), _quotedetail(), _salesorder(), _salesorderdetail(), _invoice(), _invoicedetail()]
