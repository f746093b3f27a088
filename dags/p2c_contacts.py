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
not in F&O yet, are *rejected* (`rejected.parquet` of each step) and come back once their
account is synced and they change again (or with a full refresh).
"""

from __future__ import annotations

# An Airflow DAG file: the run book of one template; the DAG shape is prospect_to_cash.dags.factory.
from prospect_to_cash.dags import SyncStep, template_dag

dag = template_dag(
    dag_id="p2c_contacts",
    template="contacts",
    title="Contacts (Sales to Fin and Ops)",
    source_system="dataverse",
    target_system="fno",
    steps=[
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
    ],
    upstream=["p2c_accounts", "p2c_products"],
    doc_md=__doc__,
)
