"""Orphan scopes: the shipped file covers every task of the shipped mappings, and overrides."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import yaml

from prospect_to_cash.reconcile.scope import SCOPES_VARIABLE, load_scopes, scope_for
from prospect_to_cash.sync.errors import MappingError
from prospect_to_cash.sync.mapping import load_all

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCOPES_VARIABLE, raising=False)


def test_every_shipped_task_is_either_checked_or_says_why() -> None:
    scopes = load_scopes()
    for name, template in load_all().items():
        for task in template.tasks:
            scope = scope_for(scopes, name, task)
            assert scope.checked or scope.reason, (name, task.name)
            assert (name, task.name) in scopes or "create" not in task.target.operations, (name, task.name)


def test_externally_maintained_markers_are_the_scopes() -> None:
    scopes = load_scopes()
    assert "IsExternallyMaintained" in (scopes[("accounts", "customers")].filter or "")
    assert "'Organization'" in (scopes[("accounts", "customers")].filter or "")
    assert "'Person'" in (scopes[("contacts", "contact_customers")].filter or "")
    assert scopes[("sales_orders_fno_to_sales", "order_lines")].parent == "salesorderid"
    narrower = scopes[("sales_orders_fno_to_sales", "order_freight_tax")]
    assert narrower.specificity > scopes[("sales_orders_fno_to_sales", "order_lines")].specificity


def test_update_only_tasks_never_have_orphans() -> None:
    template = load_all()["sales_invoices"]
    scope = scope_for(load_scopes(), "sales_invoices", template.task("orders_invoiced"))
    assert not scope.checked
    assert "only updates" in (scope.reason or "")


def test_an_override_replaces_single_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "scopes.yaml"
    path.write_text(
        yaml.safe_dump({"sales_quotations": {"quote_headers": {"filter": "SalesQuotationNumber ne ''"}}})
    )
    monkeypatch.setenv(SCOPES_VARIABLE, str(path))
    scopes = load_scopes()
    assert scopes[("sales_quotations", "quote_headers")].checked
    assert scopes[("accounts", "customers")].checked  # the rest stays as shipped


@pytest.mark.parametrize(
    "content",
    [
        "accounts: [customers]",
        "accounts: {customers: {where: {a: 1}}}",
        "- a list",
        "accounts: {customers: {filter: 'x'}",
    ],
)
def test_malformed_scope_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "scopes.yaml"
    path.write_text(content)
    with pytest.raises(MappingError):
        load_scopes(path)


def test_parent_scope_needs_a_line_task(tmp_path: Path) -> None:
    path = tmp_path / "scopes.yaml"
    path.write_text(yaml.safe_dump({"accounts": {"customers": {"parent": "CustomerAccount"}}}))
    template = load_all()["accounts"]
    with pytest.raises(MappingError, match="needs a task with a parent"):
        scope_for(load_scopes(path), "accounts", template.task("customers"))
