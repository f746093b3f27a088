"""The demo data tells exactly the story STORY.md promises.

Every count in STORY.md's machine-readable table is recomputed here from the generated
rows with the templates' own criteria (filters on flags, value maps, keys), not from the
generator's internals, so a drift on either side fails.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from emulators.schema.fno import CATALOG as FNO
from emulators.seed import generate

if TYPE_CHECKING:
    from collections.abc import Callable

STORY = Path(__file__).resolve().parents[2] / "emulators" / "seed" / "STORY.md"

# The value maps STORY.md tells the templates to configure.
KNOWN_COUNTRIES = {"United States", "Canada", "Germany", "France", "Netherlands", "United Kingdom"}
UNIT_MAP = {"ea": "Each", "hr": "Hour", "box": "Box"}
PROCESSING_ACTIVE, PROCESSING_DRAFT = 647390000, 647390011
INVOICED = FNO.enums["SalesStatus"].members["Invoiced"]
FNO_STATUS = {"Active": 0, "Confirmed": 1, "Delivered": 4, "Invoiced": 5, "PartiallyInvoiced": 6}
WORK_ORDER = 2


def story_table() -> dict[str, int]:
    text = STORY.read_text(encoding="utf-8")
    section = text.split("## Machine-readable summary", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([a-z_.]+) \| (\d+) \|$", section, flags=re.MULTILINE)
    assert rows, "STORY.md lost its summary table"
    return {check: int(count) for check, count in rows}


class World:
    """The demo rows, indexed the way a template would look them up."""

    def __init__(self) -> None:
        tables: dict[str, list[dict]] = defaultdict(list)
        for _service, entity_set, rows in generate("demo"):
            tables[entity_set].extend(rows)
        self.t = tables
        units = {row["businessunitid"]: row["name"] for row in tables["businessunits"]}
        self.company_of_unit = {
            uid: {"Contoso US": "usmf", "Contoso Europe": "demf"}.get(name) for uid, name in units.items()
        }
        self.customers = {(row["dataAreaId"], row["CustomerAccount"]): row for row in tables["CustomersV3"]}
        self.persons = {
            (row["dataAreaId"], row["ContactPersonPartyNumber"]): row for row in tables["CDSContactPersons"]
        }
        self.sales_products = {row["productnumber"]: row for row in tables["products"]}
        self.sales_products_by_id = {row["productid"]: row for row in tables["products"]}
        self.sales_orders_by_number = {row["ordernumber"]: row for row in tables["salesorders"]}

    def company(self, row: dict) -> str:
        return self.company_of_unit[row["owningbusinessunit"]]

    # .. accounts ..
    def accounts(self) -> list[dict]:
        return self.t["accounts"]

    def account_numbers(self) -> Counter:
        return Counter(
            (self.company(row), row["accountnumber"]) for row in self.accounts() if row["accountnumber"]
        )

    def account_reject(self, row: dict) -> str | None:
        if not row["accountnumber"]:
            return "no_number"
        if self.account_numbers()[self.company(row), row["accountnumber"]] > 1:
            return "duplicate_number"
        if row["address1_country"] and row["address1_country"] not in KNOWN_COUNTRIES:
            return "unknown_country"
        return None

    def synced_accounts(self) -> list[dict]:
        return [row for row in self.accounts() if self.account_reject(row) is None]

    # .. contacts ..
    def person_candidates(self) -> list[dict]:
        return [
            row
            for row in self.t["contacts"]
            if not row["msdynce_isactivecustomer"] and row["msdynce_iscompanyanaccount"]
        ]

    def customer_candidates(self) -> list[dict]:
        return [row for row in self.t["contacts"] if row["msdynce_isactivecustomer"]]

    # .. F&O orders ..
    def fno_order_skip(self, row: dict) -> str | None:
        if row["SalesOrderProcessingStatus"] == FNO_STATUS["Active"]:
            return "not_confirmed"
        if not row["AreTotalsUpdated"]:
            return "totals_not_calculated"
        if row["SalesOrderOriginType"] == WORK_ORDER:
            return "work_order"
        if not self.customers[row["dataAreaId"], row["OrderingCustomerAccountNumber"]][
            "IsExternallyMaintained"
        ]:
            return "ordering_customer_not_external"
        if not self.customers[row["dataAreaId"], row["InvoiceCustomerAccountNumber"]][
            "IsExternallyMaintained"
        ]:
            return "invoice_customer_not_external"
        return None

    # .. Sales orders ..
    def sales_order_lines(self, order: dict) -> list[dict]:
        return [line for line in self.t["salesorderdetails"] if line["salesorderid"] == order["salesorderid"]]

    def sales_order_skip(self, row: dict) -> str | None:
        if row["msdynce_processingstatus"] == PROCESSING_DRAFT:
            return "draft"
        if row["msdynce_processingstatus"] != PROCESSING_ACTIVE:
            return "from_fno"
        lines = self.sales_order_lines(row)
        if any(line["productid"] is None for line in lines):
            return "write_in"
        if any(
            not self.sales_products_by_id[line["productid"]]["msdynce_ismaintainedexternally"]
            for line in lines
        ):
            return "not_external_product"
        return None


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def count(rows: list[dict], predicate: Callable[[dict], bool]) -> int:
    return sum(1 for row in rows if predicate(row))


def checks(w: World) -> dict[str, int]:
    t = w.t
    synced_accounts = w.synced_accounts()
    fno_products = t["SellableReleasedProducts"]
    quotes_active = [q for q in t["quotes"] if q["statecode"] == 1]
    fno_orders = t["CDSSalesOrderHeaders"]
    fno_synced = [row for row in fno_orders if w.fno_order_skip(row) is None]
    fno_skips = Counter(w.fno_order_skip(row) for row in fno_orders)
    sales_skips = Counter(w.sales_order_skip(row) for row in t["salesorders"])
    invoice_lines = Counter(
        (row["dataAreaId"], row["InvoiceNumber"])
        for row in t["ExternallyMaintainedCustomerSalesInvoiceLines"]
    )
    order_lines = Counter((row["dataAreaId"], row["SalesOrderNumber"]) for row in t["CDSSalesOrderLines"])

    accounts_by_id = {row["accountid"]: row for row in t["accounts"]}
    fno_order_status = {
        (row["dataAreaId"], row["SalesOrderNumber"]): row["SalesOrderStatus"]
        for row in t["CDSSalesOrderHeaders"]
    }

    def of_new_account_same_day(row: dict) -> bool:
        parent = accounts_by_id[row["parentcustomerid"]]
        new_to_fno = (w.company(row), parent["accountnumber"]) not in w.customers
        same_day = parent["modifiedon"][:10] == row["modifiedon"][:10]
        return new_to_fno and same_day and parent["modifiedon"] <= row["modifiedon"]

    def of_new_account_day_before(row: dict) -> bool:
        """A child a day before its parent: the account's last change is the next day."""
        parent = accounts_by_id[row["parentcustomerid"]]
        new_to_fno = (w.company(row), parent["accountnumber"]) not in w.customers
        return (
            new_to_fno
            and parent["createdon"] <= row["modifiedon"]
            and parent["modifiedon"][:10] > row["modifiedon"][:10]
        )

    def persons_sync(row: dict) -> bool:
        return bool(row["msdynce_contactnumber"])

    def first_line_is_rounding_case(order: dict) -> bool:
        lines = sorted(w.sales_order_lines(order), key=lambda line: line["sequencenumber"])
        return lines[0]["quantity"] == 3 and lines[0]["manualdiscountamount"] == 10.0

    def phone_changed(row: dict) -> bool:
        customer = w.customers.get((w.company(row), row["accountnumber"]))
        return customer is not None and customer["PrimaryContactPhone"] != row["telephone1"]

    return {
        "accounts.total": len(w.accounts()),
        "accounts.sync": len(synced_accounts),
        "accounts.sync.existing_in_fno": count(
            synced_accounts, lambda r: (w.company(r), r["accountnumber"]) in w.customers
        ),
        "accounts.sync.phone_changed": count(synced_accounts, phone_changed),
        "accounts.sync.blank_country": count(synced_accounts, lambda r: not r["address1_country"]),
        "accounts.reject.no_number": count(w.accounts(), lambda r: w.account_reject(r) == "no_number"),
        "accounts.reject.duplicate_number": count(
            w.accounts(), lambda r: w.account_reject(r) == "duplicate_number"
        ),
        "accounts.reject.unknown_country": count(
            w.accounts(), lambda r: w.account_reject(r) == "unknown_country"
        ),
        "products.total": len(fno_products),
        "products.sync": count(fno_products, lambda r: r["SalesUnitSymbol"] in UNIT_MAP),
        "products.sync.existing_in_sales": count(
            fno_products,
            lambda r: r["SalesUnitSymbol"] in UNIT_MAP and r["ProductNumber"] in w.sales_products,
        ),
        "products.sync.price_changed": count(
            fno_products,
            lambda r: (
                r["ProductNumber"] in w.sales_products
                and w.sales_products[r["ProductNumber"]]["price"] != r["SalesPrice"]
            ),
        ),
        "products.reject.unknown_unit": count(fno_products, lambda r: r["SalesUnitSymbol"] not in UNIT_MAP),
        "contacts.total": len(t["contacts"]),
        "contacts.persons.sync": count(w.person_candidates(), persons_sync),
        "contacts.persons.sync.existing_in_fno": count(
            w.person_candidates(), lambda r: (w.company(r), r["msdynce_contactnumber"]) in w.persons
        ),
        "contacts.persons.reject.no_number": count(w.person_candidates(), lambda r: not persons_sync(r)),
        "contacts.persons.sync.new_account_same_day": count(
            w.person_candidates(), lambda r: persons_sync(r) and of_new_account_same_day(r)
        ),
        "contacts.persons.sync.new_account_day_before": count(
            w.person_candidates(), lambda r: persons_sync(r) and of_new_account_day_before(r)
        ),
        "contacts.customers.sync": count(w.customer_candidates(), persons_sync),
        "contacts.customers.sync.existing_in_fno": count(
            w.customer_candidates(), lambda r: (w.company(r), r["msdynce_contactnumber"]) in w.customers
        ),
        "contacts.customers.reject.no_number": count(w.customer_candidates(), lambda r: not persons_sync(r)),
        "contacts.skip.parent_is_contact": count(
            t["contacts"],
            lambda r: r["parentcustomerid__set"] == "contacts" and not r["msdynce_isactivecustomer"],
        ),
        "contacts.skip.prospect": count(
            t["contacts"],
            lambda r: (
                not r["msdynce_isactivecustomer"]
                and not r["msdynce_iscompanyanaccount"]
                and r["parentcustomerid"] is None
            ),
        ),
        "quotes.total": len(t["quotes"]),
        "quotes.sync": count(quotes_active, lambda r: r["msdynce_hasexternallymaintainedproductsonly"] == 1),
        "quotes.skip.draft": count(t["quotes"], lambda r: r["statecode"] == 0),
        "quotes.skip.write_in": count(
            quotes_active, lambda r: r["msdynce_hasexternallymaintainedproductsonly"] == 0
        ),
        "quotes.skip.not_active": count(t["quotes"], lambda r: r["statecode"] not in (0, 1)),
        "fno_orders.total": len(fno_orders),
        "fno_orders.sync": len(fno_synced),
        "fno_orders.sync.existing_in_sales": count(
            fno_synced, lambda r: r["SalesOrderNumber"] in w.sales_orders_by_number
        ),
        "fno_orders.sync.header_tax": count(fno_synced, lambda r: r["OrderHeaderTaxAmount"] > 0),
        "fno_orders.skip.not_confirmed": fno_skips["not_confirmed"],
        "fno_orders.skip.totals_not_calculated": fno_skips["totals_not_calculated"],
        "fno_orders.skip.work_order": fno_skips["work_order"],
        "fno_orders.skip.ordering_customer_not_external": fno_skips["ordering_customer_not_external"],
        "fno_orders.skip.invoice_customer_not_external": fno_skips["invoice_customer_not_external"],
        "sales_orders.total": len(t["salesorders"]),
        "sales_orders.sync": sales_skips[None],
        "sales_orders.sync.rounding_example": count(
            t["salesorders"], lambda r: w.sales_order_skip(r) is None and first_line_is_rounding_case(r)
        ),
        "sales_orders.skip.draft": sales_skips["draft"],
        "sales_orders.skip.write_in": sales_skips["write_in"],
        "sales_orders.skip.not_external_product": sales_skips["not_external_product"],
        "sales_orders.skip.from_fno": sales_skips["from_fno"],
        "invoices.total": len(t["ExternallyMaintainedCustomerSalesInvoiceHeaders"]),
        "invoices.sync": count(
            t["ExternallyMaintainedCustomerSalesInvoiceHeaders"],
            lambda r: (
                w.customers[r["dataAreaId"], r["InvoiceCustomerAccountNumber"]]["IsExternallyMaintained"] == 1
            ),
        ),
        "invoices.sync.partial": count(
            t["ExternallyMaintainedCustomerSalesInvoiceHeaders"],
            lambda r: (
                invoice_lines[r["dataAreaId"], r["InvoiceNumber"]]
                < order_lines[r["dataAreaId"], r["SalesOrderNumber"]]
            ),
        ),
        "invoices.close_order": count(
            t["ExternallyMaintainedCustomerSalesInvoiceHeaders"],
            lambda r: fno_order_status[r["dataAreaId"], r["SalesOrderNumber"]] == INVOICED,
        ),
        "fno_customers.total": len(t["CustomersV3"]),
        "fno_customers.fno_only": count(t["CustomersV3"], lambda r: r["IsExternallyMaintained"] == 0),
    }


def test_every_story_count_matches_the_data(world: World) -> None:
    promised = story_table()
    actual = checks(world)
    assert set(promised) == set(actual)
    mismatches = {
        check: (promised[check], actual[check]) for check in promised if promised[check] != actual[check]
    }
    assert mismatches == {}


def test_each_skip_and_reject_kind_occurs_in_both_companies(world: World) -> None:
    by_company: dict[str, set[str]] = defaultdict(set)
    for row in world.accounts():
        reason = world.account_reject(row)
        if reason:
            by_company[reason].add(world.company(row))
    for row in world.t["CDSSalesOrderHeaders"]:
        reason = world.fno_order_skip(row)
        if reason:
            by_company[reason].add(row["dataAreaId"])
    for row in world.t["salesorders"]:
        reason = world.sales_order_skip(row)
        if reason:
            by_company[reason].add(world.company(row))
    assert len(by_company) == 3 + 5 + 4
    assert all(companies == {"usmf", "demf"} for companies in by_company.values()), dict(by_company)


def test_copies_of_fno_orders_in_sales_lack_the_last_line(world: World) -> None:
    lines = Counter((row["dataAreaId"], row["SalesOrderNumber"]) for row in world.t["CDSSalesOrderLines"])
    copies = [row for row in world.t["salesorders"] if row["msdynce_ismaintainedexternally"]]
    assert len(copies) == 2
    for copy in copies:
        company = world.company(copy)
        assert len(world.sales_order_lines(copy)) == lines[company, copy["ordernumber"]] - 1


def test_rounding_example_is_the_documented_case(world: World) -> None:
    cases = [
        line
        for line in world.t["salesorderdetails"]
        if line["quantity"] == 3 and line["manualdiscountamount"] == 10.0 and line["sequencenumber"] == 1
    ]
    assert len(cases) == 2  # once per business unit (STORY.md)
    for line in cases:
        assert line["extendedamount"] == pytest.approx(3 * line["priceperunit"] - 10.0)


def test_unit_and_country_value_maps_cover_everything_but_the_planted_misses(world: World) -> None:
    symbols = {row["UnitSymbol"] for row in world.t["Units"]}
    assert symbols - set(UNIT_MAP) == {"kg"}
    sales_units = {row["name"] for row in world.t["uoms"]}
    assert set(UNIT_MAP.values()) <= sales_units
    countries = {row["address1_country"] for row in world.accounts()} | {
        row["address1_country"] for row in world.t["contacts"]
    }
    assert countries - KNOWN_COUNTRIES == {None, "Atlantis"}


def test_price_lists_and_the_first_active_usd_list(world: World) -> None:
    currencies = {
        row["transactioncurrencyid"]: row["isocurrencycode"] for row in world.t["transactioncurrencies"]
    }
    lists = {row["name"]: currencies[row["transactioncurrencyid"]] for row in world.t["pricelevels"]}
    assert lists == {
        "CRM Service USA (sample)": "USD",
        "CRM Service Europe (sample)": "EUR",
        "standard": "USD",
    }
    assert sorted(name for name, code in lists.items() if code == "USD")[0] == "CRM Service USA (sample)"
