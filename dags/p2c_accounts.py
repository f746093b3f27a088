"""
### Prospect to cash 1: Accounts (Sales -> Finance and Operations)

**Syncs** the active accounts of each Sales business unit into F&O customers
(`accounts` -> `CustomersV3`) of the paired legal entity. Integration key: Sales
`accountnumber` = F&O `CustomerAccount` within one company. New customers are created
*externally maintained* (Sales owns them) with the defaults of `environment.yaml`
(customer group, site, warehouse, language). A parent account becomes the customer's
invoice account in a second pass, once every customer of the run exists.

**Needs first**: nothing; this DAG is first in the run order. Contacts, quotations,
orders and invoices wait for it. Both connections (`dynamics_dataverse_default`,
`dynamics_fno_default`) and the company pairs in `environment.yaml` must be set up.

**Reading the result**: accounts without an account number, sharing an account number
with another account, or with a code the value maps do not know (payment terms,
country, ...) are *rejected*, not merged or guessed: see `rejected.parquet` of the
`customers` step and in the pending ledger. Fix them in Sales: every later run reads the
ledger's rows again, so the first run after the fix lands them.
"""

from __future__ import annotations

# An Airflow DAG file: the prose of one template; its run book (steps, entity sets, upstream
# DAGs) is prospect_to_cash.dags.run_books, the DAG shape prospect_to_cash.dags.factory.
from prospect_to_cash.dags import RUN_BOOKS, template_dag

dag = template_dag(RUN_BOOKS["accounts"], doc_md=__doc__)
