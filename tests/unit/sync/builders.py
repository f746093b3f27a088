"""Builders for engine tests: staged-looking frames (text columns, as staging writes them)
for transform tests; the accounts world over the memory services (Sales accounts with their
currency, an empty F&O customer table), a template run over such services, and the accounts
run and load step the runner tests share."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pandas as pd

from prospect_to_cash.sync import runner
from prospect_to_cash.sync.mapping import Task, load_template
from prospect_to_cash.sync.planner import Plan, TransformInputs, build_plan
from prospect_to_cash.sync.runner import SyncHooks, run_template
from prospect_to_cash.sync.staging import TaskStaging, to_text
from tests.unit.sync.conftest import SHIPPED
from tests.unit.sync.memory_service import MemoryService, MemoryTable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import ObjectStoragePath
    from typing_extensions import Unpack

    from prospect_to_cash.sync.contracts import SyncArgs, TemplateRunResult, Window

#: The Sales currency the accounts world's rows carry (and F&O knows as ``USD``).
USD = str(uuid.uuid4())
#: The data interval of the runner tests' windowed runs (the accounts' ``modifiedon`` day).
WINDOW = {"data_interval_start": "2024-01-01T00:00:00Z", "data_interval_end": "2024-01-02T00:00:00Z"}


def staged(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """Rows as the extract step stages them: exactly the selected columns (others are not
    read, as with ``$select``), as text."""
    return pd.DataFrame(
        {c: [to_text(r.get(c)) for r in rows] for c in columns}, columns=list(columns), dtype=object
    )


def task_of(template: str, task: str, mappings_dir: Any = SHIPPED) -> Task:
    return load_template(template, mappings_dir=mappings_dir).task(task)


def plan_for(
    task: Task,
    source: Sequence[dict[str, Any]],
    *,
    snapshot: Sequence[dict[str, Any]] = (),
    references: dict[str, Sequence[dict[str, Any]]] | None = None,
    upstream: dict[str, pd.DataFrame] | None = None,
    legal_entity: str = "usmf",
    chunk_rows: int | None = None,
) -> Plan:
    references = references or {}
    staged_refs = {
        r.name: staged(references.get(r.name, []), task.reference_columns(r.name)) for r in task.references
    }
    return build_plan(
        task,
        TransformInputs(
            source=staged(source, task.source_columns),
            snapshot=staged(snapshot, task.snapshot_columns),
            references=staged_refs,
            legal_entity=legal_entity,
            upstream=upstream or {},
        ),
        chunk_rows=chunk_rows,
    )


def by_ref(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["__ref"]: row for row in frame.to_dict("records")}


def reasons(plan: Plan) -> dict[str, str]:
    return {(r["__ref"] or r["__source_key"]): r["__reason"] for r in plan.rejects.to_dict("records")}


def account(number: str | None, name: str, **extra: Any) -> dict[str, Any]:
    """An active Sales account in :data:`USD`, modified on 2024-01-01 (``extra`` overrides)."""
    return {
        "accountid": str(uuid.uuid4()),
        "accountnumber": number,
        "name": name,
        "statecode": 0,
        "modifiedon": "2024-01-01T08:00:00Z",
        "_transactioncurrencyid_value": USD,
        **extra,
    }


def accounts_services(rows: list[dict[str, Any]], **fno_options: Any) -> tuple[MemoryService, MemoryService]:
    """Sales with ``rows`` as its accounts and :data:`USD` as its currency; F&O with no
    customers yet (``fno_options``: the memory service's, such as ``outage``)."""
    sales = MemoryService(
        "dataverse",
        {
            "accounts": MemoryTable(key=("accountid",), rows=rows),
            "transactioncurrencies": MemoryTable(
                key=("transactioncurrencyid",),
                rows=[{"transactioncurrencyid": USD, "isocurrencycode": "USD"}],
            ),
        },
    )
    fno = MemoryService(
        "fno", {"CustomersV3": MemoryTable(key=("dataAreaId", "CustomerAccount"))}, **fno_options
    )
    return sales, fno


def run_in_memory(
    template: str,
    sales: Any,
    fno: MemoryService,
    root: ObjectStoragePath,
    run_id: str,
    *,
    window: Window | None = None,
    **given: Unpack[SyncArgs],
) -> TemplateRunResult:
    """``run_template`` for usmf over memory services (``sales``: one, or a stand-in that
    delegates to one), staging under ``root``; no ``$metadata`` check (the memory services
    publish none)."""
    return run_template(
        template,
        legal_entity="usmf",
        run_id=run_id,
        staging_root=root,
        hooks=SyncHooks(sales, fno),
        check_metadata=False,
        window=window,
        **given,
    )


def customers_staging(root: ObjectStoragePath, run_id: str = "run-1") -> TaskStaging:
    """The staging of the accounts template's ``customers`` task for usmf in run ``run_id``."""
    return TaskStaging(root, "accounts", run_id, "usmf", "customers")


def load_accounts(
    sales: MemoryService, fno: MemoryService, root: ObjectStoragePath, run_id: str, **kw: Any
) -> dict:
    """The load step alone (Airflow retrying the load task of the same run)."""
    return runner.load(
        "accounts",
        "customers",
        legal_entity="usmf",
        run_id=run_id,
        staging_root=root,
        hooks=SyncHooks(sales, fno),
        **kw,
    )


def run_accounts(
    sales: MemoryService, fno: MemoryService, root: ObjectStoragePath, run_id: str, **kw: Any
) -> dict:
    """A run whose rows are few and mostly awkward: no error threshold (test_pending has those)."""
    kw.setdefault("max_rejected", "100%")
    kw.setdefault("max_failed", "100%")
    return run_in_memory("accounts", sales, fno, root, run_id, **WINDOW, **kw)


def product_services(**sales_options: Any) -> tuple[MemoryService, MemoryService]:
    """F&O with three released products for usmf; Sales with their currency, unit group,
    unit and USD price list, and no products yet (``sales_options``: the memory service's)."""
    group, unit, price_list = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    fno = MemoryService(
        "fno",
        {
            "SellableReleasedProducts": MemoryTable(
                key=("dataAreaId", "ProductNumber"),
                rows=[
                    {
                        "dataAreaId": "usmf",
                        "ProductNumber": f"P-{i}",
                        "ProductName": f"Product {i}",
                        "ProductType": "Item",
                        "SalesPrice": 10.0 + i,
                        "CurrencyCode": "USD",
                        "SalesUnitSymbol": "ea",
                        "IsStockedProduct": "Yes",
                    }
                    for i in range(1, 4)
                ],
            )
        },
    )
    sales = MemoryService(
        "dataverse",
        {
            "products": MemoryTable(
                key=("productid",),
            ),
            "productpricelevels": MemoryTable(
                key=("productpricelevelid",),
            ),
            "transactioncurrencies": MemoryTable(
                key=("transactioncurrencyid",),
                rows=[{"transactioncurrencyid": USD, "isocurrencycode": "USD"}],
            ),
            "uomschedules": MemoryTable(
                key=("uomscheduleid",), rows=[{"uomscheduleid": group, "name": "Default Unit"}]
            ),
            "uoms": MemoryTable(
                key=("uomid",), rows=[{"uomid": unit, "name": "Each", "_uomscheduleid_value": group}]
            ),
            "pricelevels": MemoryTable(
                key=("pricelevelid",),
                rows=[
                    {
                        "pricelevelid": price_list,
                        "name": "USD list",
                        "_transactioncurrencyid_value": USD,
                        "statecode": 0,
                    }
                ],
            ),
        },
        **sales_options,
    )
    return sales, fno
