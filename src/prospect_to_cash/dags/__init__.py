"""Support for the seven Prospect-to-cash DAG files in ``dags/``.

The DAG files hold their template's prose (``doc_md``) and call :func:`template_dag` with
its run book; everything they share lives here: ``run_books`` (the seven templates' steps,
entity sets and upstream DAGs), ``params`` (run-time Params), ``assets`` (one Asset per
entity set), ``steps`` (the run book's types, the preflight and the report) and
``factory`` (the DAG shape). The tasks
that move data are the provider's operators (``prospect_to_cash.operators``), the run
order is its sensor (``prospect_to_cash.sensors``).
"""

from __future__ import annotations

from prospect_to_cash.dags.assets import entity_asset, entity_uri
from prospect_to_cash.dags.factory import DEFAULT_SCHEDULE, START_DATE, shared_schedule, template_dag
from prospect_to_cash.dags.params import sync_params
from prospect_to_cash.dags.run_books import RUN_BOOKS
from prospect_to_cash.dags.steps import SyncStep, TemplateSpec
from prospect_to_cash.sensors.run_order import RunOrderSensor

__all__ = [
    "DEFAULT_SCHEDULE",
    "RUN_BOOKS",
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
