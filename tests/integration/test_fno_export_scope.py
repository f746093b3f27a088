"""Reads beside an F&O incremental export stay O(changes), over HTTPS against the emulators
(the export set-up of test_fno_export_sync.py, for the F&O-to-Sales orders and invoices):
after one line of a 4-line order changes, the daily run reads that one line again through
OData (by order number and line number), not the order's four; after one invoice changes,
the order-status task reads the one F&O order header that invoice names, not all of them.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from devstack.airflow_stack import connection_env
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.hooks.odata import entity_path
from prospect_to_cash.sync.contracts import SyncHooks, Window
from prospect_to_cash.sync.environment import load_environment
from prospect_to_cash.sync.mapping import load_template
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.runner import run_template
from prospect_to_cash.sync.staging import TaskStaging
from tests.conftest import TEST_CONFIG
from tests.support.emulators import Oracle, start_emulators

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_export_scope_dataverse", "fno": "p2c_export_scope_fno"}
#: a data project per task (usmf), with the entity it exports
PROJECTS = {
    "sales_orders_fno_to_sales": {
        "order_headers": ("P2C-Orders-USMF", "CDSSalesOrderHeaders"),
        "order_lines": ("P2C-OrderLines-USMF", "CDSSalesOrderLines"),
        "order_freight_tax": ("P2C-OrderTax-USMF", "CDSSalesOrderHeaders"),
    },
    "sales_invoices": {
        "invoice_headers": ("P2C-Invoices-USMF", "ExternallyMaintainedCustomerSalesInvoiceHeaders"),
        "invoice_lines": ("P2C-InvoiceLines-USMF", "ExternallyMaintainedCustomerSalesInvoiceLines"),
        "orders_invoiced": ("P2C-OrdersInvoiced-USMF", "ExternallyMaintainedCustomerSalesInvoiceHeaders"),
    },
}
LINE = "LineCreationSequenceNumber"
LINES, HEADERS, INVOICES = (
    "CDSSalesOrderLines",
    "CDSSalesOrderHeaders",
    "ExternallyMaintainedCustomerSalesInvoiceHeaders",
)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulators]:
    logging.getLogger("prospect_to_cash").setLevel(logging.WARNING)
    base = tmp_path_factory.mktemp("export-scope")
    config = copy.deepcopy(TEST_CONFIG)
    projects = {name: entity for tasks in PROJECTS.values() for name, entity in tasks.values()}
    config["fno"]["dmf"] = {"projects": projects, "execution_seconds": 0.2}
    # a small generated world (40 rows per large table): every invoice's order lands in Sales
    started = start_emulators(base / "state", "--seed", "40", config=config)
    override = base / "exports.yaml"
    names = {
        template: {task: name for task, (name, _) in tasks.items()} for template, tasks in PROJECTS.items()
    }
    # the shipped usmf pair (its owner: F&O orders and invoices land in its business unit)
    (pair,) = [p for p in load_environment().data["company_pairs"] if p["legal_entity"] == "usmf"]
    pair = {**copy.deepcopy(pair), "defaults": {"incremental_exports": names}}
    override.write_text(yaml.safe_dump({"company_pairs": [pair]}))
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in connection_env(started.endpoints, conn_ids=CONN).items():
                patch.setenv(name, value)
            patch.setenv("P2C_ENVIRONMENT_FILE", str(override))
            yield started
    finally:
        started.stop()


def _sync(template: str, root: ObjectStoragePath, run_id: str, window: Window) -> Any:
    """One usmf run of ``template`` with fresh hooks, as a new Airflow task has."""
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
    )
    return run_template(
        template,
        legal_entity="usmf",
        run_id=run_id,
        staging_root=root,
        hooks=hooks,
        window=window,
        max_rejected="100%",
    )


def _daily() -> Window:
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
    return Window.of(start, start + timedelta(hours=1))


def _reads(running: RunningEmulators) -> dict[str, int]:
    """Rows read per F&O entity set since the last reset (``<set> (export)``: exported)."""
    with running.admin("fno") as admin:
        by_set = dict(admin.counters()["rows_read_by_set"])
        admin.reset_counters()
    return by_set


def _patch(running: RunningEmulators, path: str, body: dict[str, Any]) -> None:
    fno = Oracle(running.endpoints, "fno")
    try:
        response = fno.client.patch(fno.root + path, json=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 204, response.text
    finally:
        fno.close()


def _prerequisites(root: ObjectStoragePath, *templates: str) -> None:
    for template in templates:
        _sync(template, root, "prerequisites", Window(full_refresh=True))


def _initial_and_first_push(template: str, root: ObjectStoragePath) -> None:
    """The initial load, then the projects' first export (a full push) in a daily run."""
    _sync(template, root, "initial", Window(full_refresh=True))
    _sync(template, root, "daily-0", _daily())


def test_a_changed_order_line_is_read_again_alone(running: RunningEmulators, tmp_path: Path) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    template = "sales_orders_fno_to_sales"
    _prerequisites(root, "accounts")  # orders find their customers
    _initial_and_first_push(template, root)
    within = load_template(template).task("order_lines").source.filter
    fno = Oracle(running.endpoints, "fno")
    try:
        lines = fno.rows(
            f"{LINES}?$select=SalesOrderNumber,LineCreationSequenceNumber,SalesPrice"
            f"&$filter=dataAreaId eq 'usmf' and ({within})"
        )
    finally:
        fno.close()
    per_order: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        per_order.setdefault(line["SalesOrderNumber"], []).append(line)
    order = min(number for number, found in per_order.items() if len(found) == 4)
    line = sorted(per_order[order], key=lambda r: r["LineCreationSequenceNumber"])[1]
    key = {
        "dataAreaId": "usmf",
        "SalesOrderNumber": order,
        LINE: line[LINE],
    }
    _patch(running, entity_path(LINES, key), {"SalesPrice": line["SalesPrice"] + 1})
    _reads(running)

    tasks = _sync(template, root, "daily-1", _daily())["tasks"]
    reads = _reads(running)
    assert reads.get(f"{LINES} (export)") == 1
    assert reads.get(LINES) == 1  # the changed line again, with the filter: not its order's 4
    staged = TaskStaging(root, template, "daily-1", "usmf", "order_lines").read_frame("source", "rows")
    assert [(str(o), str(n)) for o, n in zip(staged["SalesOrderNumber"], staged[LINE], strict=True)] == [
        (order, str(key[LINE]))
    ]
    assert (tasks["order_lines"]["counts"]["updated"], tasks["order_lines"]["counts"]["created"]) == (1, 0)
    assert reads.get(f"{HEADERS} (export)", 0) == 0
    assert reads.get(HEADERS, 0) == 0


def test_the_order_status_task_reads_only_the_order_header_a_changed_invoice_names(
    running: RunningEmulators, tmp_path: Path
) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    _prerequisites(root, "accounts", "sales_orders_fno_to_sales")  # invoices find customers and orders
    _initial_and_first_push("sales_invoices", root)
    fno = Oracle(running.endpoints, "fno")
    try:
        invoices = fno.rows(
            f"{INVOICES}?$select=InvoiceNumber,InvoiceDate,LedgerVoucher,SalesOrderNumber"
            "&$filter=dataAreaId eq 'usmf' and SalesOrderNumber ne ''&$orderby=InvoiceNumber"
        )
    finally:
        fno.close()
    invoice = invoices[0]
    key = {
        "dataAreaId": "usmf",
        "InvoiceNumber": invoice["InvoiceNumber"],
        "InvoiceDate": datetime.fromisoformat(invoice["InvoiceDate"].replace("Z", "+00:00")),
        "LedgerVoucher": invoice["LedgerVoucher"],
    }
    _patch(
        running, entity_path(INVOICES, key), {"CustomersOrderReference": "changed by the export scope test"}
    )
    _reads(running)

    tasks = _sync("sales_invoices", root, "daily-1", _daily())["tasks"]
    reads = _reads(running)
    assert reads.get(f"{INVOICES} (export)") == 2  # the changed invoice, for each header task
    assert tasks["invoice_headers"]["counts"]["updated"] == 1
    # the order-status task reads the F&O headers of the changed invoice and of the invoices
    # its pending ledger re-reads (the demo world's orders Sales lacks), not all of them
    order_of = {r["InvoiceNumber"]: r["SalesOrderNumber"] for r in invoices}
    waiting = PendingLedger(root, "sales_invoices", "usmf", "orders_invoiced").key_values(3)
    named = {invoice["SalesOrderNumber"], *(order_of[key[0]] for key in waiting)}
    staging = TaskStaging(root, "sales_invoices", "daily-1", "usmf", "orders_invoiced")
    assert set(staging.read_frame("source", "ref-src_orders")["SalesOrderNumber"]) == named
    assert reads.get(HEADERS) == len(named)
    assert len(named) < len(set(order_of.values()))
