"""
### Prospect to cash 3: Contacts (Sales -> Finance and Operations)

**Syncs** Sales contacts of each business unit in two steps, routed by the contact's flags:

* `contact_persons`: contacts that are *not* active customers and whose company is an
  account become F&O contact persons on that account's customer (`contacts` ->
  `CDSContactPersons`), externally maintained;
* `contact_customers`: contacts that *are* active customers
  (`msdynce_isactivecustomer`) become F&O customers of party type Person (`contacts` ->
  `CustomersV3`).

Key: Sales `msdynce_contactnumber`.

**Needs first**: `p2c_accounts` and `p2c_products` for the same data interval. A contact
person created before its account's customer exists would be a duplicate in F&O, so
the run waits for the accounts run (Param `wait_for_upstream`).

**Reading the result**: contacts without a contact number, or whose account's customer is
not in F&O yet, are *rejected* (`rejected.parquet` of each step) and kept in the pending
ledger: the first run after their account is synced lands them, changed or not.
"""

from __future__ import annotations

# An Airflow DAG file: the prose of one template; its run book (steps, entity sets, upstream
# DAGs) is prospect_to_cash.dags.run_books, the DAG shape prospect_to_cash.dags.factory.
from prospect_to_cash.dags import RUN_BOOKS, template_dag

dag = template_dag(RUN_BOOKS["contacts"], doc_md=__doc__)
