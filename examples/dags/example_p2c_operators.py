"""
### Example: your own DAG from the Prospect-to-cash operators

Two things the seven templates do not do, built only from the provider's operators:

1. **Export** F&O `CustomersV3` of legal entity `usmf` to a Parquet file
   (`DynamicsExtractOperator`), e.g. for a data lake;
2. **Credit limits from F&O to Sales** with a mapping of your own
   (`examples/mappings/credit_limits.yaml`): `MappingExtractOperator` stages the F&O
   customers and a snapshot of the Sales accounts, `MappingTransformOperator` plans
   (only accounts whose credit limit differs are updated), `MappingLoadOperator` writes
   and publishes an asset event with the counts.

Connections: `dynamics_fno_default` and `dynamics_dataverse_default`. Files go under
`P2C_STAGING_ROOT` (a local folder by default; `abfs://...` in production).
See `docs/operators.md`.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from airflow.sdk import DAG, Asset

from prospect_to_cash.operators import (
    DynamicsExtractOperator,
    MappingExtractOperator,
    MappingLoadOperator,
    MappingTransformOperator,
)

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"
STAGING = os.environ.get("P2C_STAGING_ROOT", f"file://{Path.home()}/p2c-staging")
SALES_ACCOUNTS = Asset(name="dataverse://dynamics_dataverse_default/accounts", group="prospect_to_cash")

with DAG(
    dag_id="example_p2c_operators",
    dag_display_name="Example: F&O customers to Parquet, credit limits to Sales",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["prospect-to-cash", "example"],
    doc_md=__doc__,
):
    export = DynamicsExtractOperator(
        task_id="export_customers",
        conn_id="dynamics_fno_default",
        entity_set="CustomersV3",
        select=["dataAreaId", "CustomerAccount", "OrganizationName", "CustomerGroupId", "CreditLimit"],
        companies=["usmf"],
        output_path=STAGING + "/exports/{{ run_id | replace(':', '_') }}/customers_usmf.parquet",
    )

    step = {
        "template": "credit_limits",
        "mapping_task": "credit_limits",
        "mappings_dir": str(MAPPINGS),
    }
    extract = MappingExtractOperator(task_id="extract", company="usmf", **step)
    transform = MappingTransformOperator(task_id="transform", extracted=extract.output, **step)
    load = MappingLoadOperator(task_id="load", transformed=transform.output, outlets=[SALES_ACCOUNTS], **step)
