"""Support for the seven Prospect-to-cash DAG files in ``dags/``.

The DAG files only declare their template's run book (steps, entity sets, upstream DAGs,
documentation) and call :func:`template_dag`; everything they share lives here:
``params`` (run-time Params), ``assets`` (one Asset per entity set), ``run_order`` (the
sensor that keeps accounts and products before contacts, quotations and orders, and
orders before invoices), ``steps`` (what each task does) and ``factory`` (the DAG shape).
"""

from __future__ import annotations

from prospect_to_cash.dags.assets import entity_asset, entity_uri
from prospect_to_cash.dags.factory import DEFAULT_SCHEDULE, START_DATE, shared_schedule, template_dag
from prospect_to_cash.dags.params import sync_params
from prospect_to_cash.dags.run_order import RunOrderSensor
from prospect_to_cash.dags.steps import SyncStep, TemplateSpec

__all__ = [
    "DEFAULT_SCHEDULE",
    "START_DATE",
    "RunOrderSensor",
    "SyncStep",
    "TemplateSpec",
    "entity_asset",
    "entity_uri",
    "shared_schedule",
    "sync_params",
    "template_dag",
]
