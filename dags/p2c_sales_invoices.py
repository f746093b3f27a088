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

# An Airflow DAG file: the prose of one template; its run book (steps, entity sets, upstream
# DAGs) is prospect_to_cash.dags.run_books, the DAG shape prospect_to_cash.dags.factory.
from prospect_to_cash.dags import RUN_BOOKS, template_dag

dag = template_dag(RUN_BOOKS["sales_invoices"], doc_md=__doc__)
