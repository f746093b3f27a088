"""
### Prospect to cash 7: Sales invoices (Finance and Operations -> Sales)

**Syncs** F&O sales invoices of externally maintained customers into read-only Sales
invoices: headers (`ExternallyMaintainedCustomerSalesInvoiceHeaders` -> `invoices`; F&O
key company + invoice number + date + voucher, in Sales `msdynce_invoicenumber` /
`msdynce_invoicedate`), lines (`...Lines` -> `invoicedetails`), then marks the Sales
order of each invoice as Invoiced (`orders_invoiced`: invoice headers -> `salesorders`).
Line tax is synced, header charge tax is not.

**Needs first**: `p2c_accounts`, `p2c_products`, `p2c_contacts` and both order DAGs
(`p2c_sales_orders_fno_to_sales`, `p2c_sales_orders_sales_to_fno`) for the same data
interval: the invoice's customer, products and sales order must be in Sales.

**Reading the result**: an invoice whose order, customer or product is not in Sales is
*rejected* with its lines (`rejected.parquet` of each step) and lands on a later run.
F&O has no change timestamp on invoices: each run reads them all and writes only what
differs, so a rerun writes nothing.
"""

from __future__ import annotations

# An Airflow DAG file: the run book of one template; the DAG shape is prospect_to_cash.dags.factory.
from prospect_to_cash.dags import SyncStep, template_dag

dag = template_dag(
    dag_id="p2c_sales_invoices",
    template="sales_invoices",
    title="Sales invoices (Fin and Ops to Sales)",
    source_system="fno",
    target_system="dataverse",
    steps=[
        SyncStep(
            "invoice_headers",
            source="ExternallyMaintainedCustomerSalesInvoiceHeaders",
            target="invoices",
            target_lookups=("accounts", "contacts", "pricelevels", "salesorders", "transactioncurrencies"),
        ),
        SyncStep(
            "invoice_lines",
            source="ExternallyMaintainedCustomerSalesInvoiceLines",
            target="invoicedetails",
            target_lookups=("invoices", "products", "transactioncurrencies", "uoms", "uomschedules"),
        ),
        SyncStep(
            "orders_invoiced", source="ExternallyMaintainedCustomerSalesInvoiceHeaders", target="salesorders"
        ),
    ],
    upstream=[
        "p2c_accounts",
        "p2c_products",
        "p2c_contacts",
        "p2c_sales_orders_fno_to_sales",
        "p2c_sales_orders_sales_to_fno",
    ],
    doc_md=__doc__,
)
