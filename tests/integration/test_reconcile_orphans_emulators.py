"""Orphans of the two templates whose F&O rows used to be "not checked": sales quotations
and Sales-to-F&O orders, over HTTPS against the emulators with the demo world.

F&O gets, behind the engine's back, a quotation marked as created from Sales
(``SalesQuotationHeaderCreationMethod`` Dynamics365Sales, which the quotations mapping
writes on create) and an order of origin type "Sales order integration" (which the orders
mapping writes), each with a line and with a number no Sales row has: those four rows are
orphans. A quotation and an order entered in F&O itself (SCM / NotSpecified), with their
lines, are not the integration's and are not reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import ObjectStoragePath

from devstack.airflow_stack import connection_env
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.hooks.operations import WriteKind, WriteOperation
from prospect_to_cash.reconcile import reconcile
from prospect_to_cash.reconcile.report import rows_of, validate
from prospect_to_cash.sync.runner import SyncHooks
from tests.conftest import TEST_CONFIG
from tests.support.emulators import start_emulators

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_orphans_it_dataverse", "fno": "p2c_orphans_it_fno"}
TEMPLATES = {
    "sales_quotations": ("CDSSalesQuotationHeaders", "CDSSalesQuotationLines", "SalesQuotationNumber"),
    "sales_orders_sales_to_fno": ("CDSSalesOrderHeaders", "CDSSalesOrderLines", "SalesOrderNumber"),
}
MARKED = {
    "sales_quotations": {"SalesQuotationHeaderCreationMethod": "Dynamics365Sales"},
    "sales_orders_sales_to_fno": {"SalesOrderOriginType": "SalesOrderIntegration"},
}
NATIVE = {
    "sales_quotations": {"SalesQuotationHeaderCreationMethod": "SCM"},
    "sales_orders_sales_to_fno": {"SalesOrderOriginType": "NotSpecified"},
}


def one(hook: FinanceOperationsHook, entity_set: str, column: str) -> str:
    page = next(hook.iter_pages(entity_set, select=[column], companies=["usmf"], page_size=1))
    return str(page[column].iloc[0])


def documents(customer: str, product: str) -> list[WriteOperation]:
    """A header and its line per template and origin (four documents)."""
    operations = []
    for template, (headers, lines, number_field) in TEMPLATES.items():
        customer_field = (
            "RequestingCustomerAccountNumber"
            if template == "sales_quotations"
            else "OrderingCustomerAccountNumber"
        )
        for origin, marker in (("ORPHAN", MARKED[template]), ("NATIVE", NATIVE[template])):
            number = f"{template[:8].upper()}-{origin}"
            key = {"dataAreaId": "usmf", number_field: number}
            body = {**key, customer_field: customer, "CurrencyCode": "USD", **marker}
            operations.append(WriteOperation(WriteKind.CREATE, headers, key, body, f"{number}-h"))
            line_key = {**key, "LineCreationSequenceNumber": 1}
            line = {**line_key, "ProductNumber": product, "CurrencyCode": "USD"}
            operations.append(WriteOperation(WriteKind.CREATE, lines, line_key, line, f"{number}-l"))
    return operations


def test_quotation_and_order_orphans_are_found_and_fno_own_documents_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = start_emulators(tmp_path / "state", "--seed", "demo", config=TEST_CONFIG)
    try:
        for name, value in connection_env(running.endpoints, conn_ids=CONN).items():
            monkeypatch.setenv(name, value)
        hooks = SyncHooks(
            dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
            fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
            dataverse_conn_id=CONN["dataverse"],
            fno_conn_id=CONN["fno"],
        )
        customer = one(hooks.fno, "CustomersV3", "CustomerAccount")
        product = one(hooks.fno, "SellableReleasedProducts", "ProductNumber")
        operations = documents(customer, product)
        headers = [op for op in operations if op.ref.endswith("-h")]
        lines = [op for op in operations if op.ref.endswith("-l")]
        for batch in (headers, lines):  # lines name their header: after it, in a call of their own
            outcomes = list(hooks.fno.write(batch))
            assert all(o.ok for o in outcomes), [(o.ref, o.status, o.message) for o in outcomes]

        document = reconcile(
            list(TEMPLATES),
            ["usmf"],
            staging_root=ObjectStoragePath(f"file://{tmp_path / 'staging'}"),
            hooks=hooks,
            run_id="orphans",
        )
    finally:
        running.stop()
    validate(document)
    assert document["errors"] == []
    orphans: dict[tuple[str, str], list[Any]] = {}
    for template, _company, task, row in rows_of(document):
        if row["status"] == "orphaned":
            orphans.setdefault((template, task), []).append(row["key"])
    assert {k: sorted(v) for k, v in orphans.items()} == {
        ("sales_quotations", "quote_headers"): ["SALES_QU-ORPHAN"],
        ("sales_quotations", "quote_lines"): ["1|SALES_QU-ORPHAN"],
        ("sales_orders_sales_to_fno", "order_headers"): ["SALES_OR-ORPHAN"],
        ("sales_orders_sales_to_fno", "order_lines"): ["SALES_OR-ORPHAN|1"],
    }
    notes = [
        note
        for template in document["templates"]
        for section in template["sections"]
        for task in section["tasks"]
        for note in task.get("notes", [])
    ]
    assert not [note for note in notes if "orphans not checked" in note]
