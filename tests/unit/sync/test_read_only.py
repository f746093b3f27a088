"""Closed documents in Sales (`sync.read_only`): a write to a read-only order (or a line of
one) is rejected as closed and parked, unchanged rows stay unchanged, a closed header holds no
line back, and the mapping loader checks ``target.read_only_when``."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import yaml

from prospect_to_cash.sync.errors import MappingError
from prospect_to_cash.sync.mapping import load_template
from prospect_to_cash.sync.pending import self_rejected
from prospect_to_cash.sync.read_only import HeaderState, ReadOnlyWhen
from tests.unit.sync.builders import by_ref, plan_for, reasons, task_of
from tests.unit.sync.conftest import write_template

if TYPE_CHECKING:
    from pathlib import Path

    from prospect_to_cash.sync.mapping import Task
    from prospect_to_cash.sync.planner import Plan

USD, ACCOUNT = str(uuid.uuid4()), str(uuid.uuid4())
ORDER_STATES = ((1, "Submitted"), (2, "Canceled"), (3, "Fulfilled"), (4, "Invoiced"))
HEADER_REFS = {
    "tgt_accounts": [{"accountid": ACCOUNT, "accountnumber": "ACC-1"}],
    "tgt_contacts": [],
    "tgt_currencies": [{"transactioncurrencyid": USD, "isocurrencycode": "USD"}],
    "tgt_price_lists": [{"pricelevelid": str(uuid.uuid4()), "name": "CRM Service USA (sample)"}],
}


def header(number: str, email: str) -> dict[str, Any]:
    return {
        "SalesOrderNumber": number,
        "OrderingCustomerAccountNumber": "ACC-1",
        "CurrencyCode": "USD",
        "SalesOrderProcessingStatus": "Confirmed",
        "Email": email,
        "dataAreaId": "usmf",
    }


def as_snapshot(task: Task, plan: Plan, states: dict[str, int]) -> list[dict[str, Any]]:
    """The rows a plan creates, read back from the target with the given states."""
    rows = []
    for ref, row in by_ref(plan.creates).items():
        read = {f.snapshot_column: row[f.target] for f in task.fields if f.write}
        rows.append({**read, task.target.primary_id: row["__id"], "statecode": states[ref]})
    return rows


def test_the_shipped_order_templates_declare_the_documented_read_only_states() -> None:
    headers = task_of("sales_orders_fno_to_sales", "order_headers").target.read_only_when
    lines = task_of("sales_orders_fno_to_sales", "order_lines").target.read_only_when
    tax = task_of("sales_orders_fno_to_sales", "order_freight_tax").target.read_only_when
    assert headers == ReadOnlyWhen("statecode", ORDER_STATES)
    assert lines == tax == ReadOnlyWhen("statecode", ORDER_STATES, HeaderState("tgt_orders", "salesorderid"))
    invoices = task_of("sales_invoices", "invoice_headers").target.read_only_when
    assert invoices == ReadOnlyWhen("statecode", ((2, "Paid"), (3, "Canceled")))
    assert task_of("sales_invoices", "orders_invoiced").target.read_only_when is None  # it closes orders
    assert "statecode" in task_of("sales_orders_fno_to_sales", "order_headers").snapshot_columns
    assert "statecode" in task_of("sales_orders_fno_to_sales", "order_lines").reference_columns("tgt_orders")


def test_a_changed_closed_order_is_rejected_as_closed_and_an_unchanged_one_stays_unchanged() -> None:
    task = task_of("sales_orders_fno_to_sales", "order_headers")
    first = plan_for(
        task, [header(n, "a@contoso.com") for n in ("SO-1", "SO-2", "SO-3")], references=HEADER_REFS
    )
    snapshot = as_snapshot(task, first, {"SO-1": 4, "SO-2": 0, "SO-3": 3})
    plan = plan_for(
        task,
        [
            header("SO-1", "new@contoso.com"),
            header("SO-2", "new@contoso.com"),
            header("SO-3", "a@contoso.com"),
        ],
        snapshot=snapshot,
        references=HEADER_REFS,
    )
    assert reasons(plan) == {"SO-1": "closed in Sales: Invoiced"}
    assert list(plan.updates["__ref"]) == ["SO-2"]
    assert list(plan.unchanged["__ref"]) == ["SO-3"]
    assert plan.creates.empty
    assert self_rejected("rejected", reasons(plan)["SO-1"]) is True  # parked: final while closed


def line(number: str, sequence: int) -> dict[str, Any]:
    return {
        "SalesOrderNumber": number,
        "LineCreationSequenceNumber": str(sequence),
        "ProductNumber": "P-1",
        "OrderedSalesQuantity": "1",
        "SalesPrice": "10",
        "SalesUnitSymbol": "ea",
        "CurrencyCode": "USD",
        "dataAreaId": "usmf",
    }


def test_lines_under_a_closed_order_are_rejected_as_closed_and_not_held_back() -> None:
    invoiced, active = str(uuid.uuid4()), str(uuid.uuid4())
    group, unit, product = (str(uuid.uuid4()) for _ in range(3))
    # the header task rejected SO-1 as closed in this run: that holds no line back
    headers = pd.DataFrame(
        {
            "__ref": ["SO-1", "SO-2"],
            "status": ["rejected", "unchanged"],
            "reason": ["closed in Sales: Invoiced", None],
            "id": [invoiced, active],
            "__source_key": ["SO-1", "SO-2"],
        }
    )
    plan = plan_for(
        task_of("sales_orders_fno_to_sales", "order_lines"),
        [line("SO-1", 1), line("SO-2", 1)],
        references={
            "tgt_orders": [
                {"salesorderid": invoiced, "ordernumber": "SO-1", "statecode": "4"},
                {"salesorderid": active, "ordernumber": "SO-2", "statecode": "0"},
            ],
            "tgt_products": [{"productid": product, "productnumber": "P-1"}],
            "tgt_unit_groups": [{"uomscheduleid": group, "name": "Default Unit"}],
            "tgt_units": [{"uomid": unit, "name": "Each", "_uomscheduleid_value": group}],
            "tgt_currencies": HEADER_REFS["tgt_currencies"],
        },
        upstream={"order_headers": headers},
    )
    assert reasons(plan) == {f"{invoiced}|1": "closed in Sales: order SO-1 is Invoiced"}
    assert list(plan.creates["__ref"]) == [f"{active}|1"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"states": {"Invoiced": 4}}, "does not match"),
        ({"header": {"reference": "tgt_orders", "field": "sequencenumber"}}, "is not a written lookup field"),
        ({"header": {"reference": "tgt_products", "field": "salesorderid"}}, "does not look up reference"),
    ],
)
def test_the_loader_names_a_wrong_read_only_when(
    mappings_dir: Path, change: dict[str, Any], problem: str
) -> None:
    path = mappings_dir / "sales_orders_fno_to_sales.yaml"
    document = yaml.safe_load(path.read_text())
    target = document["tasks"][1]["target"]
    target["read_only_when"] = {**target["read_only_when"], **change}
    write_template(mappings_dir, document)
    with pytest.raises(MappingError) as caught:
        load_template("sales_orders_fno_to_sales", mappings_dir=mappings_dir)
    assert "sales_orders_fno_to_sales.yaml" in str(caught.value)
    assert problem in str(caught.value)


def test_read_only_when_is_for_sales_targets(mappings_dir: Path) -> None:
    path = mappings_dir / "accounts.yaml"
    document = yaml.safe_load(path.read_text())
    document["tasks"][0]["target"]["read_only_when"] = {"column": "OnHoldStatus", "states": {1: "All"}}
    write_template(mappings_dir, document)
    with pytest.raises(MappingError, match="read_only_when is for Dataverse targets"):
        load_template("accounts", mappings_dir=mappings_dir)
