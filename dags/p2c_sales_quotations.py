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

# An Airflow DAG file: the run book of one template; the DAG shape is prospect_to_cash.dags.factory.
from prospect_to_cash.dags import SyncStep, template_dag

dag = template_dag(
    dag_id="p2c_sales_quotations",
    template="sales_quotations",
    title="Sales quotations (Sales to Fin and Ops)",
    source_system="dataverse",
    target_system="fno",
    steps=[
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
    ],
    upstream=["p2c_accounts", "p2c_products", "p2c_contacts"],
    doc_md=__doc__,
)
