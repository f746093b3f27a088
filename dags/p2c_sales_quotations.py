"""
### Prospect to cash 4: Sales quotations (Sales -> Finance and Operations)

**Syncs** activated Sales quotes made only of externally maintained products into F&O
sales quotations: headers first (`quotes` -> `CDSSalesQuotationHeaders`, key
`quotenumber` = `SalesQuotationNumber`), then their lines (`quotedetails` ->
`CDSSalesQuotationLines`, key quotation number + line sequence number). Ship-to country
and unit go through the value maps (blank country -> `US`). F&O owns prices, charges and
tax; line discounts are synced.

**Needs first**: `p2c_accounts`, `p2c_products` and `p2c_contacts` for the same data
interval: a quote's customer (an account or a contact that is a customer) and its
products must already be in F&O.

**Reading the result**: drafts, won quotes and quotes with write-in products are not
selected (the `skipped` count). A quote whose customer or product is not in F&O is
*rejected* together with its lines (`rejected.parquet` of `quote_headers` and
`quote_lines`): never a header without its lines or lines without their header.
"""

from __future__ import annotations

# An Airflow DAG file: the prose of one template; its run book (steps, entity sets, upstream
# DAGs) is prospect_to_cash.dags.run_books, the DAG shape prospect_to_cash.dags.factory.
from prospect_to_cash.dags import RUN_BOOKS, template_dag

dag = template_dag(RUN_BOOKS["sales_quotations"], doc_md=__doc__)
