"""
### Prospect to cash 2: Products (Finance and Operations -> Sales)

**Syncs** the sellable released products of each legal entity into Sales products
(`SellableReleasedProducts` -> `products`), marked *externally maintained* so Sales treats
them as read-only, then their price in the company's price list
(`SellableReleasedProducts` -> `productpricelevels`). Key: `ProductNumber` =
`productnumber`; the F&O sales unit becomes the Sales default unit through the
`units_fno_to_sales` value map (unit group `Default Unit`). New products are created
Active or Draft (`products.create_as` in `environment.yaml`).

**Needs first**: nothing; this DAG is first in the run order. Contacts, quotations,
orders and invoices wait for it. F&O has no change timestamp on this entity, so every run
reads all sellable products and writes only what differs.

**Reading the result**: a product whose unit symbol has no Sales unit is *rejected*
(`rejected.parquet` of `products`), and its price list item waits behind it. A currency
without a price list fails the `price_list_items` step loudly instead of leaving
products without a price.
"""

from __future__ import annotations

# An Airflow DAG file: the prose of one template; its run book (steps, entity sets, upstream
# DAGs) is prospect_to_cash.dags.run_books, the DAG shape prospect_to_cash.dags.factory.
from prospect_to_cash.dags import RUN_BOOKS, template_dag

dag = template_dag(RUN_BOOKS["products"], doc_md=__doc__)
