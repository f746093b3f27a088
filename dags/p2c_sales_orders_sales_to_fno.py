"""
### Prospect to cash 6: Sales orders (Sales -> Finance and Operations)

**Syncs** Sales orders that were activated (processing status Active) and are made only
of externally maintained products into F&O sales orders: headers (`salesorders` ->
`CDSSalesOrderHeaders`, key `ordernumber` = `SalesOrderNumber`) then lines
(`salesorderdetails` -> `CDSSalesOrderLines`). A line discount is sent per unit, with
the rounding rest as a charge (3 x 3.33 with a -0.01 charge = 10.00); blank ship-to
countries become `US`. Orders that came from F&O are never sent back.

**Needs first**: `p2c_accounts`, `p2c_products` and `p2c_contacts` for the same data
interval: the ordering customer must already be an F&O customer. `p2c_sales_invoices`
waits for this DAG. F&O needs a manual number sequence for sales orders so Sales'
numbers are kept.

**Reading the result**: an order whose customer is not in F&O yet is *rejected* as a
dangling lookup (`rejected.parquet` of `order_headers`) and its lines are held back
behind it (`rejected.parquet` of `order_lines`): it is never written half-done. Once the
accounts DAG has created the customer, the next run lands the order with its lines
(both are in the pending ledger, read again by key whether they changed or not).
"""

from __future__ import annotations

# An Airflow DAG file: the prose of one template; its run book (steps, entity sets, upstream
# DAGs) is prospect_to_cash.dags.run_books, the DAG shape prospect_to_cash.dags.factory.
from prospect_to_cash.dags import RUN_BOOKS, template_dag

dag = template_dag(RUN_BOOKS["sales_orders_sales_to_fno"], doc_md=__doc__)
