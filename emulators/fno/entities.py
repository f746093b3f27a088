"""How each F&O entity set maps onto stored rows, and the names F&O uses in its messages.

A real data entity is an updatable view over application tables, so several entity sets
can show the same rows through different lenses. The emulator keeps that shape:

* `CustomersV2` and `CustomersV3` are two views of the customer table (`CustTable`): both
  read and write the store's `CustomersV3` rows, each with its own property list.
* `SellableReleasedProducts` only shows released products that pass the "sellable"
  validation. Which checks that validation runs is not public; the emulator uses the one
  the entity itself exposes, a product stopped for sales (`IsSalesStopped = Yes`) is not
  sellable *(inferred)*.
* `ExternallyMaintainedCustomerSalesInvoiceHeaders/Lines` only show invoices whose invoice
  account is a customer with `IsExternallyMaintained = Yes` in the same company (a join to
  the customers, evaluated at read time, so flipping the flag hides or shows the invoices).
* Sales order headers and lines compute `OrderingCustomerIsExternallyMaintained` and
  `InvoiceCustomerIsExternallyMaintained` from the customers' current flags (the
  catalogue marks them read-only for that reason).

Messages name entities by their AOT name (`CustCustomerV3Entity`), tables by label and
name (`Customer groups (CustGroup)`) and fields by label (`Customer group`), as in the
captured F&O errors quoted in `emulators/fno/errors.py`. AOT names and labels not seen
in a capture are marked *(inferred)* below; unknown field labels fall back to the
property name split into words (`OrganizationName` -> `Organization name`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from emulators.store import ROWID, quote

if TYPE_CHECKING:
    from emulators.schema.model import Catalog, Field, Table

#: Entity sets whose rows live in another entity set's store table.
SHARED_STORAGE = {"CustomersV2": "CustomersV3"}


@dataclass(frozen=True)
class TableNames:
    """What F&O calls an entity in messages: AOT entity, backing table label and name."""

    aot_name: str
    table_label: str
    table_name: str


# Seen in captured F&O errors: CustCustomerV3Entity, CustCustomerGroupEntity,
# "Customer groups (CustGroup)", UnitOfMeasureEntity. The rest follow F&O's naming
# conventions (inferred).
ENTITY_NAMES: dict[str, TableNames] = {
    "CustomersV3": TableNames("CustCustomerV3Entity", "Customers", "CustTable"),
    "CustomersV2": TableNames("CustCustomerV2Entity", "Customers", "CustTable"),
    "CustomerGroups": TableNames("CustCustomerGroupEntity", "Customer groups", "CustGroup"),
    "CDSContactPersons": TableNames("SmmContactPersonCDSEntity", "Contact persons", "ContactPerson"),
    "SellableReleasedProducts": TableNames(
        "EcoResSellableReleasedProductEntity", "Released products", "InventTable"
    ),
    "CDSSalesQuotationHeaders": TableNames(
        "SalesQuotationHeaderCDSEntity", "Sales quotations", "SalesQuotationTable"
    ),
    "CDSSalesQuotationLines": TableNames(
        "SalesQuotationLineCDSEntity", "Sales quotation lines", "SalesQuotationLine"
    ),
    "CDSSalesOrderHeaders": TableNames("SalesOrderHeaderCDSEntity", "Sales orders", "SalesTable"),
    "CDSSalesOrderLines": TableNames("SalesOrderLineCDSEntity", "Sales order lines", "SalesLine"),
    "ExternallyMaintainedCustomerSalesInvoiceHeaders": TableNames(
        "SalesInvoiceHeaderExternallyMaintainedCustomerEntity", "Customer invoice journal", "CustInvoiceJour"
    ),
    "ExternallyMaintainedCustomerSalesInvoiceLines": TableNames(
        "SalesInvoiceLineExternallyMaintainedCustomerEntity", "Customer invoice lines", "CustInvoiceTrans"
    ),
    "LegalEntities": TableNames("OMLegalEntity", "Legal entities", "CompanyInfo"),
    "Currencies": TableNames("CurrencyEntity", "Currency", "Currency"),
    "Units": TableNames("UnitOfMeasureEntity", "Units", "UnitOfMeasure"),
}

FIELD_LABELS: dict[str, str] = {
    "dataAreaId": "Company",
    "LegalEntityId": "Company",
    "CustomerAccount": "Customer account",
    "CustomerGroupId": "Customer group",
    "SalesCurrencyCode": "Currency",
    "CurrencyCode": "Currency",
    "RequestingCustomerAccountNumber": "Customer account",
    "OrderingCustomerAccountNumber": "Customer account",
    "InvoiceCustomerAccountNumber": "Invoice account",
    "ProductNumber": "Item number",
    "SalesUnitSymbol": "Unit",
    "InventoryUnitSymbol": "Unit",
    "UnitSymbol": "Unit",
    "SalesQuotationNumber": "Quotation",
    "SalesOrderNumber": "Sales order",
    "AssociatedPartyNumber": "Associated party",
    "ContactPersonPartyNumber": "Party number",
    "LineCreationSequenceNumber": "Line number",
    "InvoiceNumber": "Invoice",
    "InvoiceDate": "Date",
    "LedgerVoucher": "Voucher",
}

_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def field_label(name: str) -> str:
    """The label F&O would show for a property (known labels, else its words)."""
    if name in FIELD_LABELS:
        return FIELD_LABELS[name]
    words = _CAMEL_RE.split(name)
    return " ".join([words[0], *(w if w.isupper() else w.lower() for w in words[1:])])


@dataclass(frozen=True)
class EntityView:
    """One entity set as clients see it.

    :param table: the entity's declared shape (properties, key, references) from the catalogue.
    :param storage: the store table holding its rows (another entity set's for shared views).
    :param predicate: SQL every visible row must pass, written against `storage` with
        qualified column names (it sits next to the client's unqualified `$filter`).
    :param computed: properties F&O computes at read time, as SQL over `storage`; they
        ignore what is stored and are read-only.
    """

    table: Table
    storage: str
    names: TableNames
    predicate: str = ""
    computed: dict[str, str] = field(default_factory=dict)

    @property
    def entity_set(self) -> str:
        return self.table.entity_set

    @property
    def company_specific(self) -> bool:
        return self.table.company_specific

    @property
    def type_name(self) -> str:
        return f"Microsoft.Dynamics.DataEntities.{self.table.logical_name}"

    def field(self, name: str) -> Field | None:
        return self.table.field(name)

    def column_sql(self, name: str) -> str:
        """SQL for a property of a visible row (computed ones included)."""
        return self.computed.get(name) or quote(name)

    @cached_property
    def projection_sql(self) -> str:
        """The select list of every property plus the row id (built once: ~150 columns)."""
        columns = [f"{self.column_sql(f.name)} AS {quote(f.name)}" for f in self.table.fields]
        return ", ".join([*columns, f"{quote(ROWID)} AS {quote(ROWID)}"])


def _column(table: str, column: str) -> str:
    return f"{quote(table)}.{quote(column)}"


def _externally_maintained(table: str, account_column: str, alias: str = "__customer") -> str:
    """SQL: the row's invoice account is an externally maintained customer of its company."""
    customer = quote(alias)
    return (
        f"EXISTS (SELECT 1 FROM {quote('CustomersV3')} AS {customer} "
        f"WHERE {customer}.{quote('dataAreaId')} = {_column(table, 'dataAreaId')} "
        f"AND {customer}.{quote('CustomerAccount')} = {_column(table, account_column)} "
        f"AND {customer}.{quote('IsExternallyMaintained')} = 1)"
    )


def _invoice_lines_predicate() -> str:
    lines = "ExternallyMaintainedCustomerSalesInvoiceLines"
    header = quote("__header")
    match = " AND ".join(
        f"{header}.{quote(c)} = {_column(lines, c)}"
        for c in ("dataAreaId", "InvoiceNumber", "InvoiceDate", "LedgerVoucher")
    )
    customer = quote("__customer")
    return (
        f"EXISTS (SELECT 1 FROM {quote('ExternallyMaintainedCustomerSalesInvoiceHeaders')} AS {header} "
        f"JOIN {quote('CustomersV3')} AS {customer} "
        f"ON {customer}.{quote('dataAreaId')} = {header}.{quote('dataAreaId')} "
        f"AND {customer}.{quote('CustomerAccount')} = {header}.{quote('InvoiceCustomerAccountNumber')} "
        f"WHERE {match} AND {customer}.{quote('IsExternallyMaintained')} = 1)"
    )


def _customer_flag(account_sql: str, company_sql: str) -> str:
    customer = quote("__flag_customer")
    return (
        f"COALESCE((SELECT {customer}.{quote('IsExternallyMaintained')} "
        f"FROM {quote('CustomersV3')} AS {customer} "
        f"WHERE {customer}.{quote('dataAreaId')} = {company_sql} "
        f"AND {customer}.{quote('CustomerAccount')} = {account_sql}), 0)"
    )


def _order_flags(entity_set: str) -> dict[str, str]:
    """`Ordering/InvoiceCustomerIsExternallyMaintained`: computed from the customers' flags.

    The invoice account defaults to the ordering customer when the order leaves it empty.
    """
    if entity_set == "CDSSalesOrderHeaders":
        ordering = _column(entity_set, "OrderingCustomerAccountNumber")
        invoice = f"COALESCE(NULLIF({_column(entity_set, 'InvoiceCustomerAccountNumber')}, ''), {ordering})"
        company = _column(entity_set, "dataAreaId")
        return {
            "OrderingCustomerIsExternallyMaintained": _customer_flag(ordering, company),
            "InvoiceCustomerIsExternallyMaintained": _customer_flag(invoice, company),
        }
    if entity_set == "CDSSalesOrderLines":
        header = quote("__flag_header")
        ordering = f"{header}.{quote('OrderingCustomerAccountNumber')}"
        invoice = f"COALESCE(NULLIF({header}.{quote('InvoiceCustomerAccountNumber')}, ''), {ordering})"
        company = f"{header}.{quote('dataAreaId')}"

        def through_header(account: str) -> str:
            return (
                f"COALESCE((SELECT {_customer_flag(account, company)} FROM {quote('CDSSalesOrderHeaders')} "
                f"AS {header} WHERE {header}.{quote('dataAreaId')} = {_column(entity_set, 'dataAreaId')} "
                f"AND {header}.{quote('SalesOrderNumber')} = {_column(entity_set, 'SalesOrderNumber')}), 0)"
            )

        return {
            "OrderingCustomerIsExternallyMaintained": through_header(ordering),
            "InvoiceCustomerIsExternallyMaintained": through_header(invoice),
        }
    return {}


def _predicate(entity_set: str) -> str:
    if entity_set == "SellableReleasedProducts":
        return f"COALESCE({_column(entity_set, 'IsSalesStopped')}, 0) = 0"
    if entity_set == "ExternallyMaintainedCustomerSalesInvoiceHeaders":
        return _externally_maintained(entity_set, "InvoiceCustomerAccountNumber")
    if entity_set == "ExternallyMaintainedCustomerSalesInvoiceLines":
        return _invoice_lines_predicate()
    return ""


def build_views(catalog: Catalog) -> dict[str, EntityView]:
    """Every entity set of the catalogue as a view (case-sensitive names, as F&O's)."""
    views: dict[str, EntityView] = {}
    for entity_set, table in catalog.tables.items():
        storage = SHARED_STORAGE.get(entity_set, entity_set)
        names = ENTITY_NAMES.get(entity_set) or TableNames(
            f"{table.logical_name}Entity", field_label(entity_set), table.logical_name
        )
        views[entity_set] = EntityView(
            table=table,
            storage=storage,
            names=names,
            predicate=_predicate(storage),
            computed=_order_flags(storage),
        )
    return views
