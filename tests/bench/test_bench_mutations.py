"""`python -m bench daily`'s plan, without services: which templates run in which order,
and which source rows each template's changes touch. Fast; the end-to-end run is
test_bench_daily_smoke.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bench import daily
from bench.mutations import MUTATIONS, Mutation, _key_value, _plan
from prospect_to_cash.hooks.operations import WriteKind
from prospect_to_cash.sync.mapping import load_template

if TYPE_CHECKING:
    from pathlib import Path

SEVEN = [
    "accounts",
    "products",
    "contacts",
    "sales_quotations",
    "sales_orders_fno_to_sales",
    "sales_orders_sales_to_fno",
    "sales_invoices",
]


def test_every_template_has_changes_and_a_world() -> None:
    assert set(MUTATIONS) == set(daily.STREAMS) == set(SEVEN)


@pytest.mark.parametrize(
    ("asked", "order"),
    [
        (SEVEN, SEVEN),
        # invoices wait for both order templates (and what they wait for), not for quotations
        (["sales_invoices"], [name for name in SEVEN if name != "sales_quotations"]),
        (["contacts"], ["accounts", "products", "contacts"]),
        (["products"], ["products"]),
        (["sales_quotations"], ["accounts", "products", "contacts", "sales_quotations"]),
    ],
)
def test_run_order_loads_what_a_template_waits_for_first(asked: list[str], order: list[str]) -> None:
    assert daily.run_order(asked) == order


@pytest.mark.parametrize("template", SEVEN)
def test_each_change_is_on_a_field_the_mapping_carries(template: str) -> None:
    """A change on an unmapped field would reach no target: the daily run would compare
    it away and the benchmark would measure nothing."""
    tasks = {task.name: task for task in load_template(template).tasks}
    for mutation in MUTATIONS[template]:
        task = tasks[mutation.task]
        carried = {f.source for f in task.fields if f.source and f.write}
        assert mutation.field in carried, (template, mutation.task, mutation.field)


def test_the_plan_changes_every_100th_row_and_deletes_every_1000th_once() -> None:
    rows = [{"dataAreaId": "usmf", "SalesOrderNumber": f"SO-{i}", "SalesPrice": 10.0} for i in range(2_101)]
    key = ("dataAreaId", "SalesOrderNumber")
    operations = _plan(rows, key, Mutation("order_lines", "SalesPrice", None), "CDSSalesOrderLines")
    deletes = [op.ref for op in operations if op.kind == WriteKind.DELETE]
    updates = {op.ref: op for op in operations if op.kind == WriteKind.UPDATE}
    assert deletes == ["d500", "d1500"]
    assert sorted(updates, key=lambda r: int(r[1:])) == [
        f"u{i}" for i in range(0, 2_101, 100) if i not in (500, 1500)
    ]
    assert updates["u100"].key == {"dataAreaId": "usmf", "SalesOrderNumber": "SO-100"}
    assert updates["u100"].body == {"SalesPrice": 11.0}  # a number grows by one
    headers = _plan(rows, key, Mutation("order_headers", "Email", "x@example.com", deletes=False), "H")
    assert [op.kind for op in headers] == [WriteKind.UPDATE] * 22  # no deletes where off
    assert headers[5].body == {"Email": "x@example.com 500"}


def test_a_datetime_key_goes_into_the_url_as_a_datetime() -> None:
    moment = _key_value("2026-11-03T00:00:00Z")
    assert (moment.isoformat(), _key_value("SO-1"), _key_value(7)) == ("2026-11-03T00:00:00+00:00", "SO-1", 7)


def test_the_incremental_export_world_names_a_data_project_per_task_and_company(tmp_path: Path) -> None:
    """`--fno-incremental-export`: the F&O emulator gets one data project per F&O-sourced task
    and company, and an environment override names each in its company pair's defaults."""
    tasks = daily.export_tasks(["accounts", "products"])
    assert tasks == {
        "products": {"products": "SellableReleasedProducts", "price_list_items": "SellableReleasedProducts"}
    }
    config, override = daily._export_setup(tasks, tmp_path)
    assert config == {
        "fno": {
            "dmf": {
                "projects": {
                    "P2C-PRODUCTS-PRODUCTS-USMF": "SellableReleasedProducts",
                    "P2C-PRODUCTS-PRODUCTS-DEMF": "SellableReleasedProducts",
                    "P2C-PRODUCTS-PRICE_LIST_ITEMS-USMF": "SellableReleasedProducts",
                    "P2C-PRODUCTS-PRICE_LIST_ITEMS-DEMF": "SellableReleasedProducts",
                }
            }
        }
    }
    demf = load_template("products", environment_file=override, legal_entity="demf")
    assert demf.task("price_list_items").source.incremental_export is not None
    assert demf.task("price_list_items").source.incremental_export.definition_group == (
        "P2C-PRODUCTS-PRICE_LIST_ITEMS-DEMF"
    )
