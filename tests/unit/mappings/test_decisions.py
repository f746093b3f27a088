"""Decisions the shipped mappings take for what a real tenant needs (issue 11): who owns the rows
created in Sales, where a contact person finds its customer's party, the sales origin of orders
sent to F&O, what F&O computes and is therefore neither sent nor compared, and when an order
counts as invoiced. The demo checks (tests/support/story_checks.py) see the same over HTTPS."""

from __future__ import annotations

import pytest

from prospect_to_cash.sync.environment import load_environment
from prospect_to_cash.sync.mapping import load_template

COMPANIES = ("usmf", "demf")

#: What F&O computes on an order sent from Sales (totals batch, prices, tax).
FNO_COMPUTED_HEADER = {
    "OrderTotalAmount",
    "OrderTotalChargesAmount",
    "OrderTotalDiscountAmount",
    "OrderTotalTaxAmount",
    "TotalDiscountAmount",
    "OrderHeaderTaxAmount",
}
FNO_COMPUTED_LINE = {"LineAmount", "LineTotalTaxAmount", "LineTotalDiscountAmount"}


@pytest.mark.parametrize("company", COMPANIES)
def test_rows_created_in_sales_belong_to_the_company_pairs_owner(company: str) -> None:
    pair = load_environment().company_pair(company)
    assert pair.owner is not None
    assert pair.owner.startswith("/systemusers(")
    for template, task in (
        ("sales_orders_fno_to_sales", "order_headers"),
        ("sales_invoices", "invoice_headers"),
    ):
        assert load_template(template, legal_entity=company).task(task).target.company_scope == "owner"
    # Lines take their header's owner (Dataverse parental ownership): they carry none.
    for template, task in (("sales_orders_fno_to_sales", "order_lines"), ("sales_invoices", "invoice_lines")):
        assert load_template(template, legal_entity=company).task(task).target.company_scope != "owner"


def test_owners_differ_per_company() -> None:
    environment = load_environment()
    assert len({environment.company_pair(c).owner for c in COMPANIES}) == len(COMPANIES)


def test_contact_persons_name_their_customers_party_read_from_fno() -> None:
    task = load_template("contacts").task("contact_persons")
    mapping = task.field("AssociatedPartyNumber")
    assert mapping is not None
    assert mapping.lookup is not None
    (candidate,) = mapping.lookup.candidates
    assert task.reference(candidate.reference).entity_set == "CustomersV3"
    assert task.reference(candidate.reference).side == "target"
    assert candidate.returns == "PartyNumber"


@pytest.mark.parametrize(("company", "origin"), [("usmf", "CRM"), ("demf", "CRM-DE")])
def test_orders_sent_to_fno_carry_the_companys_sales_origin(company: str, origin: str) -> None:
    task = load_template("sales_orders_sales_to_fno", legal_entity=company).task("order_headers")
    code, kind = task.field("SalesOrderOriginCode"), task.field("SalesOrderOriginType")
    assert code is not None
    assert kind is not None
    assert (code.constant, code.required, code.write_on) == (origin, True, "always")
    assert (kind.constant, kind.type, kind.write_on) == ("SalesOrderIntegration", "enum", "always")


def test_fno_computed_amounts_are_neither_sent_nor_compared() -> None:
    template = load_template("sales_orders_sales_to_fno")
    for task_name, computed in (("order_headers", FNO_COMPUTED_HEADER), ("order_lines", FNO_COMPUTED_LINE)):
        task = template.task(task_name)
        assert not computed & {m.target for m in task.fields}, task_name
        assert not computed & set(task.snapshot_columns), task_name


def test_only_fully_invoiced_orders_are_closed_in_sales() -> None:
    task = load_template("sales_invoices").task("orders_invoiced")
    assert task.route is not None
    assert task.route.names == {"order_status"}
    status = task.field("order_status")
    assert status is not None
    assert status.lookup is not None
    (candidate,) = status.lookup.candidates
    assert task.reference(candidate.reference).entity_set == "CDSSalesOrderHeaders"
    assert candidate.returns == "SalesOrderStatus"
