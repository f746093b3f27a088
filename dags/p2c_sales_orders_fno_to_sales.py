"""
### Prospect to cash 5: Sales orders (Finance and Operations -> Sales)

**Syncs** confirmed (or later) F&O sales orders of externally maintained customers, whose
totals are calculated and that did not come from a Field Service work order, into Sales
orders: headers (`CDSSalesOrderHeaders` -> `salesorders`, key `SalesOrderNumber` =
`ordernumber`), lines (`CDSSalesOrderLines` -> `salesorderdetails`, order number + line
sequence number) and the header tax as a write-in line "Freight Tax". Orders stay
Active in Sales so later F&O changes keep updating them; price lists come from the
currency through the `price_list_by_currency` value map.

**Needs first**: `p2c_accounts`, `p2c_products` and `p2c_contacts` for the same data
interval: the order's customer and every line's product must be in Sales.
`p2c_sales_invoices` waits for this DAG.

**Reading the result**: F&O has no change timestamp on orders, so each run reads every
qualifying order and writes only what differs. An order whose customer or product is not
in Sales is *rejected* with its lines (dangling lookup, `rejected.parquet` of each step)
and lands on a later run once the parent is there.
"""

from __future__ import annotations

# An Airflow DAG file: the prose of one template; its run book (steps, entity sets, upstream
# DAGs) is prospect_to_cash.dags.run_books, the DAG shape prospect_to_cash.dags.factory.
from prospect_to_cash.dags import RUN_BOOKS, template_dag

dag = template_dag(RUN_BOOKS["sales_orders_fno_to_sales"], doc_md=__doc__)
