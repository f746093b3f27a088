"""All seven templates on the emulators' demo world (emulators/seed/STORY.md), in run
order for both company pairs, through in-memory services that check writes against the
emulator catalogs. The counts are the story's; then a full rerun must write nothing."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
from airflow.sdk import ObjectStoragePath

from prospect_to_cash.sync.mapping import TEMPLATES
from prospect_to_cash.sync.runner import SyncHooks, run_template
from prospect_to_cash.sync.staging import TaskStaging
from tests.unit.sync.seeded import seeded_services

if TYPE_CHECKING:
    from tests.unit.sync.memory_service import MemoryService

pytestmark = pytest.mark.slow

COMPANIES = ("usmf", "demf")


class World:
    def __init__(self, root: ObjectStoragePath) -> None:
        self.root = root
        self.sales, self.fno = seeded_services()
        self.results: dict[tuple[str, str], dict[str, Any]] = {}
        self.rerun: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes_after_first_run = 0

    def run(self, run_id: str, into: dict[tuple[str, str], dict[str, Any]]) -> None:
        hooks = SyncHooks(self.sales, self.fno)
        for template in TEMPLATES:
            for company in COMPANIES:
                into[(template, company)] = run_template(
                    template,
                    legal_entity=company,
                    run_id=run_id,
                    staging_root=self.root,
                    hooks=hooks,
                    check_metadata=False,
                )

    def total(self, template: str, task: str, *names: str) -> int:
        return sum(self.results[(template, c)]["tasks"][task]["counts"][n] for c in COMPANIES for n in names)

    def synced(self, template: str, task: str) -> int:
        return self.total(template, task, "created", "updated", "unchanged")

    def plan(self, template: str, task: str, name: str) -> pd.DataFrame:
        frames = [
            TaskStaging(self.root, template, "first", c, task).read_frame("plan", name) for c in COMPANIES
        ]
        return pd.concat(frames, ignore_index=True)

    def rows(self, service: MemoryService, entity_set: str) -> list[dict[str, Any]]:
        return service.tables[entity_set].rows


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    logging.getLogger("prospect_to_cash").setLevel(logging.ERROR)
    root = ObjectStoragePath(f"file://{tmp_path_factory.mktemp('story')}")
    world = World(root)
    world.run("first", world.results)
    world.writes_after_first_run = len(world.sales.writes) + len(world.fno.writes)
    world.run("again", world.rerun)
    return world


def test_accounts(world: World) -> None:
    assert world.synced("accounts", "customers") == 72
    assert world.total("accounts", "customers", "rejected") == 8
    assert world.total("accounts", "customers", "updated", "unchanged") == 20
    updates = world.plan("accounts", "customers", "updates")
    assert sum("PrimaryContactPhone" in list(c) for c in updates["__changed"]) == 2
    reasons = list(world.plan("accounts", "customers", "planned")["reason"].dropna())
    assert sum("source key accountnumber is empty" in r for r in reasons) == 2
    assert sum("duplicate source key" in r for r in reasons) == 4
    assert sum("value 'Atlantis'" in r for r in reasons) == 2


def test_products_and_price_list_items(world: World) -> None:
    assert world.synced("products", "products") == 58
    assert world.total("products", "products", "updated", "unchanged") == 30
    updates = world.plan("products", "products", "updates")
    assert sum("price" in list(c) for c in updates["__changed"]) == 4
    assert world.total("products", "products", "rejected") == 2
    assert world.synced("products", "price_list_items") == 58
    by_number = {r["productnumber"]: r for r in world.rows(world.sales, "products")}
    lists = {r["pricelevelid"]: r["name"] for r in world.rows(world.sales, "pricelevels")}
    items = {
        r["_productid_value"]: lists[r["_pricelevelid_value"]]
        for r in world.rows(world.sales, "productpricelevels")
    }
    assert items[by_number["DEMF-P00030"]["productid"]] == "CRM Service Europe (sample)"
    assert items[by_number["USMF-P00030"]["productid"]] == "CRM Service USA (sample)"


def test_contacts(world: World) -> None:
    assert world.synced("contacts", "contact_persons") == 36
    assert world.total("contacts", "contact_persons", "updated", "unchanged") == 6
    assert world.total("contacts", "contact_persons", "rejected") == 2
    assert world.synced("contacts", "contact_customers") == 16
    assert world.total("contacts", "contact_customers", "updated", "unchanged") == 4
    assert world.total("contacts", "contact_customers", "rejected") == 2
    # 60 contacts: 38 + 2 rejected-or-synced persons, the rest are the other route or skipped
    persons = world.total("contacts", "contact_persons", "skipped")
    customers = world.total("contacts", "contact_customers", "skipped")
    assert (persons, customers) == (60 - 38, 60 - 18)


def test_quotations(world: World) -> None:
    assert world.synced("sales_quotations", "quote_headers") == 12
    synced_quotes = {r["SalesQuotationNumber"] for r in world.rows(world.fno, "CDSSalesQuotationHeaders")}
    assert len(synced_quotes) == 12
    quote_ids = {q["quoteid"] for q in world.rows(world.sales, "quotes") if q["quotenumber"] in synced_quotes}
    expected_lines = sum(
        1 for line in world.rows(world.sales, "quotedetails") if line["_quoteid_value"] in quote_ids
    )
    assert world.synced("sales_quotations", "quote_lines") == expected_lines
    assert world.total("sales_quotations", "quote_lines", "rejected") == 0


def test_orders_from_fno(world: World) -> None:
    template = "sales_orders_fno_to_sales"
    assert world.synced(template, "order_headers") == 18
    assert world.total(template, "order_headers", "updated", "unchanged") == 2
    assert world.synced(template, "order_freight_tax") == 4
    tax_lines = [
        r
        for r in world.rows(world.sales, "salesorderdetails")
        if r.get("productdescription") == "Freight Tax"
    ]
    assert sorted(r["priceperunit"] for r in tax_lines) == [9.8, 9.8, 12.5, 12.5]
    assert world.total(template, "order_lines", "rejected", "failed") == 0


def test_orders_to_fno_keep_the_rounding_rule(world: World) -> None:
    assert world.synced("sales_orders_sales_to_fno", "order_headers") == 14
    firsts = [
        r
        for r in world.rows(world.fno, "CDSSalesOrderLines")
        if r["SalesOrderNumber"].startswith(("ORD-01000-", "ORD-01001-"))
        and r["LineCreationSequenceNumber"] == 1
    ]
    assert len(firsts) == 2
    for line in firsts:
        assert (line["OrderedSalesQuantity"], line["LineDiscountAmount"], line["FixedPriceCharges"]) == (
            3.0,
            3.33,
            -0.01,
        )


def test_invoices_link_orders_and_mark_fully_invoiced_ones_invoiced(world: World) -> None:
    assert world.synced("sales_invoices", "invoice_headers") == 6
    assert world.total("sales_invoices", "invoice_lines", "rejected", "failed") == 0
    # *-SO000007..8 in both companies are fully invoiced; *-SO000006 only partly: it stays Active
    assert world.total("sales_invoices", "orders_invoiced", "updated") == 4
    assert world.total("sales_invoices", "orders_invoiced", "skipped") == 2
    invoiced = {r["ordernumber"] for r in world.rows(world.sales, "salesorders") if r.get("statecode") == 4}
    linked = {r["_salesorderid_value"] for r in world.rows(world.sales, "invoices")}
    orders = {r["salesorderid"]: r["ordernumber"] for r in world.rows(world.sales, "salesorders")}
    linked_numbers = {orders[i] for i in linked}
    assert invoiced == {n for n in linked_numbers if not n.endswith("SO000006")}
    assert len(invoiced) == 4
    assert {n[-8:] for n in linked_numbers - invoiced} == {"SO000006"}


def test_everything_is_idempotent(world: World) -> None:
    assert len(world.sales.writes) + len(world.fno.writes) == world.writes_after_first_run
    for (template, company), result in world.rerun.items():
        counts = result["counts"]
        assert counts["created"] == counts["updated"] == counts["failed"] == 0, (template, company, counts)
