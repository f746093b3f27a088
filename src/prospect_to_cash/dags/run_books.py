"""The seven templates' run books: which mapping tasks each DAG runs, in which order, reading
and writing which entity sets, after which DAGs. One place for what the DAG files, the
reconciliation DAG (its inlets) and the tests need to know at parse time, when no mapping
file may be read; a test checks every entry against its mapping file.
"""

from __future__ import annotations

from prospect_to_cash.dags.steps import SyncStep, TemplateSpec

RUN_BOOKS: dict[str, TemplateSpec] = {
    spec.template: spec
    for spec in (
        TemplateSpec(
            dag_id="p2c_accounts",
            template="accounts",
            title="Accounts (Sales to Fin and Ops)",
            source_system="dataverse",
            target_system="fno",
            steps=(
                SyncStep(
                    "customers",
                    source="accounts",
                    target="CustomersV3",
                    source_lookups=("accounts", "transactioncurrencies"),
                    target_lookups=("CustomersV3",),
                ),
            ),
            upstream=(),
        ),
        TemplateSpec(
            dag_id="p2c_products",
            template="products",
            title="Products (Fin and Ops to Sales)",
            source_system="fno",
            target_system="dataverse",
            steps=(
                SyncStep(
                    "products",
                    source="SellableReleasedProducts",
                    target="products",
                    target_lookups=("pricelevels", "transactioncurrencies", "uoms", "uomschedules"),
                ),
                SyncStep(
                    "price_list_items",
                    source="SellableReleasedProducts",
                    target="productpricelevels",
                    target_lookups=(
                        "pricelevels",
                        "products",
                        "transactioncurrencies",
                        "uoms",
                        "uomschedules",
                    ),
                ),
            ),
            upstream=(),
        ),
        TemplateSpec(
            dag_id="p2c_contacts",
            template="contacts",
            title="Contacts (Sales to Fin and Ops)",
            source_system="dataverse",
            target_system="fno",
            steps=(
                SyncStep(
                    "contact_persons",
                    source="contacts",
                    target="CDSContactPersons",
                    source_lookups=("accounts",),
                    target_lookups=("CustomersV3",),
                ),
                SyncStep(
                    "contact_customers",
                    source="contacts",
                    target="CustomersV3",
                    source_lookups=("transactioncurrencies",),
                ),
            ),
            upstream=("p2c_accounts", "p2c_products"),
        ),
        TemplateSpec(
            dag_id="p2c_sales_quotations",
            template="sales_quotations",
            title="Sales quotations (Sales to Fin and Ops)",
            source_system="dataverse",
            target_system="fno",
            steps=(
                SyncStep(
                    "quote_headers",
                    source="quotes",
                    target="CDSSalesQuotationHeaders",
                    source_lookups=("accounts", "contacts", "transactioncurrencies"),
                    target_lookups=("CustomersV3",),
                ),
                SyncStep(
                    "quote_lines",
                    source="quotedetails",
                    target="CDSSalesQuotationLines",
                    source_lookups=("products", "quotes", "uoms"),
                    target_lookups=("CDSSalesQuotationHeaders", "SellableReleasedProducts"),
                ),
            ),
            upstream=("p2c_accounts", "p2c_products", "p2c_contacts"),
        ),
        TemplateSpec(
            dag_id="p2c_sales_orders_fno_to_sales",
            template="sales_orders_fno_to_sales",
            title="Sales orders (Fin and Ops to Sales)",
            source_system="fno",
            target_system="dataverse",
            steps=(
                SyncStep(
                    "order_headers",
                    source="CDSSalesOrderHeaders",
                    target="salesorders",
                    target_lookups=("accounts", "contacts", "pricelevels", "transactioncurrencies"),
                ),
                SyncStep(
                    "order_lines",
                    source="CDSSalesOrderLines",
                    target="salesorderdetails",
                    target_lookups=(
                        "products",
                        "salesorders",
                        "transactioncurrencies",
                        "uoms",
                        "uomschedules",
                    ),
                ),
                SyncStep(
                    "order_freight_tax",
                    source="CDSSalesOrderHeaders",
                    target="salesorderdetails",
                    target_lookups=("salesorders", "transactioncurrencies"),
                ),
            ),
            upstream=("p2c_accounts", "p2c_products", "p2c_contacts"),
        ),
        TemplateSpec(
            dag_id="p2c_sales_orders_sales_to_fno",
            template="sales_orders_sales_to_fno",
            title="Sales orders (Sales to Fin and Ops)",
            source_system="dataverse",
            target_system="fno",
            steps=(
                SyncStep(
                    "order_headers",
                    source="salesorders",
                    target="CDSSalesOrderHeaders",
                    source_lookups=("accounts", "contacts", "transactioncurrencies"),
                    target_lookups=("CustomersV3",),
                ),
                SyncStep(
                    "order_lines",
                    source="salesorderdetails",
                    target="CDSSalesOrderLines",
                    source_lookups=("products", "salesorders", "uoms"),
                    target_lookups=("CDSSalesOrderHeaders", "SellableReleasedProducts"),
                ),
            ),
            upstream=("p2c_accounts", "p2c_products", "p2c_contacts"),
        ),
        TemplateSpec(
            dag_id="p2c_sales_invoices",
            template="sales_invoices",
            title="Sales invoices (Fin and Ops to Sales)",
            source_system="fno",
            target_system="dataverse",
            steps=(
                SyncStep(
                    "invoice_headers",
                    source="ExternallyMaintainedCustomerSalesInvoiceHeaders",
                    target="invoices",
                    target_lookups=(
                        "accounts",
                        "contacts",
                        "pricelevels",
                        "salesorders",
                        "transactioncurrencies",
                    ),
                ),
                SyncStep(
                    "invoice_lines",
                    source="ExternallyMaintainedCustomerSalesInvoiceLines",
                    target="invoicedetails",
                    target_lookups=("invoices", "products", "transactioncurrencies", "uoms", "uomschedules"),
                ),
                SyncStep(
                    "orders_invoiced",
                    source="ExternallyMaintainedCustomerSalesInvoiceHeaders",
                    target="salesorders",
                    source_lookups=("CDSSalesOrderHeaders",),
                ),
            ),
            upstream=(
                "p2c_accounts",
                "p2c_products",
                "p2c_contacts",
                "p2c_sales_orders_fno_to_sales",
                "p2c_sales_orders_sales_to_fno",
            ),
        ),
    )
}
