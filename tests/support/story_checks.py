"""What the demo story's sync must leave in the targets, derived from the source rows.

Shared by the two tests that sync the demo world: ``tests/dags/test_dags_emulators.py``
(the seven DAGs through ``dag.test()``) and ``tests/e2e/test_demo_e2e.py`` (``make demo``
through a real scheduler). Each check derives what its template must have written from
the rows read *before* the sync with the template's documented rules (p2c-templates.md),
written out here without the package's transform, and compares with the rows read after.
The counts at the end of each check are the facts of ``emulators/seed/STORY.md``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.world import ENVIRONMENT, value_map

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.world import ODataReader

COMPANIES = ("usmf", "demf")


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def same_text(a: Any, b: Any) -> bool:
    return (a or "") == (b or "")


@dataclass
class Snapshot:
    sales: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fno: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


SALES_READS = {
    "accounts": [
        "accountid",
        "accountnumber",
        "name",
        "telephone1",
        "address1_country",
        "address2_country",
        "paymenttermscode",
        "statecode",
        "_owningbusinessunit_value",
    ],
    "contacts": [
        "contactid",
        "msdynce_contactnumber",
        "lastname",
        "msdynce_isactivecustomer",
        "msdynce_iscompanyanaccount",
        "_parentcustomerid_value",
        "statecode",
        "_owningbusinessunit_value",
    ],
    "quotes": [
        "quoteid",
        "quotenumber",
        "statecode",
        "msdynce_hasexternallymaintainedproductsonly",
        "_owningbusinessunit_value",
    ],
    "quotedetails": ["_quoteid_value", "sequencenumber"],
    "salesorders": [
        "salesorderid",
        "ordernumber",
        "statecode",
        "msdynce_processingstatus",
        "msdynce_hasexternallymaintainedproductsonly",
        "msdynce_ismaintainedexternally",
        "_owningbusinessunit_value",
    ],
    "salesorderdetails": [
        "_salesorderid_value",
        "sequencenumber",
        "quantity",
        "manualdiscountamount",
        "_owningbusinessunit_value",
    ],
    "products": ["productid", "productnumber", "name", "price", "msdynce_ismaintainedexternally"],
    "productpricelevels": ["_productid_value", "amount"],
    "invoices": ["invoiceid", "invoicenumber", "_owningbusinessunit_value"],
    "invoicedetails": ["_invoiceid_value", "sequencenumber", "_owningbusinessunit_value"],
}
FNO_READS = {
    "CustomersV3": [
        "dataAreaId",
        "CustomerAccount",
        "OrganizationName",
        "PrimaryContactPhone",
        "IsExternallyMaintained",
        "PartyType",
        "PersonLastName",
        "PartyNumber",
    ],
    "CDSContactPersons": ["dataAreaId", "ContactPersonPartyNumber", "AssociatedPartyNumber", "LastName"],
    "SellableReleasedProducts": [
        "dataAreaId",
        "ProductNumber",
        "ProductName",
        "SalesPrice",
        "SalesUnitSymbol",
    ],
    "CDSSalesQuotationHeaders": ["dataAreaId", "SalesQuotationNumber"],
    "CDSSalesQuotationLines": ["dataAreaId", "SalesQuotationNumber", "LineCreationSequenceNumber"],
    "CDSSalesOrderHeaders": [
        "dataAreaId",
        "SalesOrderNumber",
        "OrderingCustomerIsExternallyMaintained",
        "InvoiceCustomerIsExternallyMaintained",
        "SalesOrderProcessingStatus",
        "AreTotalsUpdated",
        "SalesOrderOriginType",
        "SalesOrderOriginCode",
        "SalesOrderStatus",
        "OrderHeaderTaxAmount",
    ],
    "CDSSalesOrderLines": [
        "dataAreaId",
        "SalesOrderNumber",
        "LineCreationSequenceNumber",
        "LineDiscountAmount",
    ],
    "ExternallyMaintainedCustomerSalesInvoiceHeaders": ["dataAreaId", "InvoiceNumber", "SalesOrderNumber"],
    "ExternallyMaintainedCustomerSalesInvoiceLines": [
        "dataAreaId",
        "InvoiceNumber",
        "LineCreationSequenceNumber",
    ],
}


def snapshot(reader: ODataReader) -> Snapshot:
    return Snapshot(
        sales={name: reader.rows("dataverse", name, columns) for name, columns in SALES_READS.items()},
        fno={name: reader.rows("fno", name, columns) for name, columns in FNO_READS.items()},
    )


@dataclass
class StoryState:
    """Both services read before and after a sync of the demo world."""

    before: Snapshot
    after: Snapshot
    companies: dict[str, str]  # business unit id -> legal entity


def by_company(synced: StoryState, rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        company = synced.companies.get(row.get("_owningbusinessunit_value"))
        if company:
            grouped[company].append(row)
    return grouped


def company_setting(company: str, name: str) -> Any:
    """A default of environment.yaml as ``company`` sees it (its pair's defaults win)."""
    pair = next(p for p in ENVIRONMENT["company_pairs"] if p["legal_entity"] == company)
    return (pair.get("defaults") or {}).get(name, ENVIRONMENT["defaults"][name])


def country_ok(value: Any) -> bool:
    return blank(value) or str(value).casefold() in value_map("country_to_iso")


def expected_accounts(accounts: list[dict[str, Any]], companies: dict[str, str]) -> dict[str, Any]:
    """Per company: the accounts the template must sync (active, with an account number no
    other active account of the company shares, known country and payment terms codes),
    and the numbers shared by several accounts (rejected, never merged)."""
    terms = value_map("payment_terms")
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for account in accounts:
        company = companies.get(account["_owningbusinessunit_value"])
        if company and account["statecode"] == 0:
            grouped[company].append(account)
    result = {}
    for company, active in grouped.items():
        numbers: dict[str, int] = defaultdict(int)
        for account in active:
            if not blank(account["accountnumber"]):
                numbers[account["accountnumber"]] += 1
        synced = [
            a
            for a in active
            if not blank(a["accountnumber"])
            and numbers[a["accountnumber"]] == 1
            and country_ok(a["address1_country"])
            and country_ok(a["address2_country"])
            and (a["paymenttermscode"] is None or str(a["paymenttermscode"]) in terms)
        ]
        result[company] = {"synced": synced, "shared": {n for n, c in numbers.items() if c > 1}}
    return result


def accounts_become_externally_maintained_customers(synced: StoryState) -> None:
    customers = {(c["dataAreaId"], c["CustomerAccount"]): c for c in synced.after.fno["CustomersV3"]}
    existed = {(c["dataAreaId"], c["CustomerAccount"]) for c in synced.before.fno["CustomersV3"]}
    expected = expected_accounts(synced.before.sales["accounts"], synced.companies)
    assert set(expected) == set(COMPANIES)
    for company, wanted in expected.items():
        assert wanted["synced"], company
        for account in wanted["synced"]:
            customer = customers.get((company, account["accountnumber"]))
            assert customer is not None, f"{company}: {account['accountnumber']} not in CustomersV3"
            assert customer["OrganizationName"] == account["name"]
            assert same_text(customer["PrimaryContactPhone"], account["telephone1"])
            assert customer["IsExternallyMaintained"] == "Yes"
            if (company, account["accountnumber"]) not in existed:
                # F&O's party number sequence numbered the new customer's party.
                assert not blank(customer["PartyNumber"]), account["accountnumber"]
                assert customer["PartyNumber"] != account["accountnumber"]
        for number in wanted["shared"]:
            if (company, number) not in existed:
                assert (company, number) not in customers, f"duplicate number {number} was merged"
    assert sum(len(w["synced"]) for w in expected.values()) == 72  # emulators/seed/STORY.md
    parties = [c["PartyNumber"] for c in synced.after.fno["CustomersV3"] if not blank(c["PartyNumber"])]
    assert len(parties) == len(set(parties)), "two customers share a party"


def products_become_externally_maintained_sales_products_with_prices(synced: StoryState) -> None:
    units = value_map("units_fno_to_sales")
    products = {p["productnumber"]: p for p in synced.after.sales["products"]}
    prices = defaultdict(list)
    for item in synced.after.sales["productpricelevels"]:
        prices[item["_productid_value"]].append(float(item["amount"]))
    expected = defaultdict(list)
    for product in synced.before.fno["SellableReleasedProducts"]:
        known_unit = str(product["SalesUnitSymbol"]).casefold() in units
        if known_unit:
            expected[product["dataAreaId"]].append(product)
        elif product["ProductNumber"] not in {p["productnumber"] for p in synced.before.sales["products"]}:
            assert product["ProductNumber"] not in products, "a product with an unknown unit was created"
    assert set(expected) == set(COMPANIES)
    for rows in expected.values():
        for product in rows:
            target = products.get(product["ProductNumber"])
            assert target is not None, product["ProductNumber"]
            assert target["name"] == (product["ProductName"] or product["ProductNumber"])
            assert target["msdynce_ismaintainedexternally"] is True
            assert float(target["price"]) == pytest.approx(float(product["SalesPrice"]))
            assert float(product["SalesPrice"]) in [pytest.approx(p) for p in prices[target["productid"]]]
    assert sum(len(rows) for rows in expected.values()) == 58  # STORY.md: products.sync


def contacts_become_contact_persons_or_person_customers(synced: StoryState) -> None:
    accounts = {a["accountid"]: a for a in synced.before.sales["accounts"]}
    persons = {
        (p["dataAreaId"], p["ContactPersonPartyNumber"]): p for p in synced.after.fno["CDSContactPersons"]
    }
    customers = {(c["dataAreaId"], c["CustomerAccount"]): c for c in synced.after.fno["CustomersV3"]}
    existed = {(c["dataAreaId"], c["CustomerAccount"]) for c in synced.before.fno["CustomersV3"]}
    counts = {"persons": 0, "customers": 0, "persons_of_new_customers": 0}
    for company, contacts in by_company(synced, synced.before.sales["contacts"]).items():
        for contact in contacts:
            number = contact["msdynce_contactnumber"]
            if contact["statecode"] != 0 or blank(number):
                continue
            if contact["msdynce_isactivecustomer"]:
                customer = customers.get((company, number))
                assert customer is not None, f"{company}: contact customer {number}"
                assert customer["PartyType"] == "Person"
                assert customer["PersonLastName"] == contact["lastname"]
                counts["customers"] += 1
            elif contact["msdynce_iscompanyanaccount"]:
                parent = accounts.get(contact["_parentcustomerid_value"])
                assert parent is not None
                person = persons.get((company, number))
                assert person is not None, f"{company}: contact person {number}"
                parent_customer = customers[(company, parent["accountnumber"])]
                # The contact person attaches to its customer's party, whatever numbered it.
                assert person["AssociatedPartyNumber"] == parent_customer["PartyNumber"]
                assert person["LastName"] == contact["lastname"]
                counts["persons"] += 1
                counts["persons_of_new_customers"] += (company, parent["accountnumber"]) not in existed
            else:
                assert (company, number) not in persons
                assert (company, number) not in customers
    assert counts == {"persons": 36, "customers": 16, "persons_of_new_customers": 2}  # STORY.md


def activated_quotes_with_their_lines(synced: StoryState) -> None:
    headers = {
        (h["dataAreaId"], h["SalesQuotationNumber"]) for h in synced.after.fno["CDSSalesQuotationHeaders"]
    }
    lines = defaultdict(set)
    for line in synced.after.fno["CDSSalesQuotationLines"]:
        lines[(line["dataAreaId"], line["SalesQuotationNumber"])].add(int(line["LineCreationSequenceNumber"]))
    source_lines = defaultdict(set)
    for line in synced.before.sales["quotedetails"]:
        source_lines[line["_quoteid_value"]].add(int(line["sequencenumber"]))
    sent = 0
    for company, quotes in by_company(synced, synced.before.sales["quotes"]).items():
        for quote in quotes:
            key = (company, quote["quotenumber"])
            if quote["statecode"] == 1 and quote["msdynce_hasexternallymaintainedproductsonly"]:
                assert key in headers, key
                assert lines[key] == source_lines[quote["quoteid"]], key
                sent += 1
            else:
                assert key not in headers, f"{key} is not an activated quote of external products"
    assert sent == 12  # STORY.md: quotes.sync


def fno_orders_become_sales_orders_with_lines_and_freight_tax(synced: StoryState) -> None:
    sales_orders = {o["ordernumber"]: o for o in synced.after.sales["salesorders"]}
    details = defaultdict(set)
    for line in synced.after.sales["salesorderdetails"]:
        details[line["_salesorderid_value"]].add(int(line["sequencenumber"]))
    fno_lines = defaultdict(set)
    for line in synced.before.fno["CDSSalesOrderLines"]:
        fno_lines[(line["dataAreaId"], line["SalesOrderNumber"])].add(int(line["LineCreationSequenceNumber"]))
    before_numbers = {o["ordernumber"] for o in synced.before.sales["salesorders"]}
    synced_orders = 0
    for order in synced.before.fno["CDSSalesOrderHeaders"]:
        qualifies = (
            order["OrderingCustomerIsExternallyMaintained"] == "Yes"
            and order["InvoiceCustomerIsExternallyMaintained"] == "Yes"
            and order["SalesOrderProcessingStatus"] != "Active"
            and order["AreTotalsUpdated"] == "Yes"
            and order["SalesOrderOriginType"] != "WorkOrderIntegration"
        )
        target = sales_orders.get(order["SalesOrderNumber"])
        if not qualifies:
            if order["SalesOrderNumber"] not in before_numbers:
                assert target is None, f"{order['SalesOrderNumber']} should have been filtered out"
            continue
        synced_orders += 1
        assert target is not None, order["SalesOrderNumber"]
        wanted = set(fno_lines[(order["dataAreaId"], order["SalesOrderNumber"])])
        got = details[target["salesorderid"]]
        assert wanted <= got, order["SalesOrderNumber"]
        extra_lines = got - wanted
        assert len(extra_lines) == (1 if float(order["OrderHeaderTaxAmount"] or 0) else 0), (
            f"{order['SalesOrderNumber']}: freight tax line"
        )
    assert synced_orders == 18  # STORY.md: fno_orders.sync


def sales_orders_reach_fno_with_lines_and_unit_discounts(synced: StoryState) -> None:
    headers = {(h["dataAreaId"], h["SalesOrderNumber"]) for h in synced.after.fno["CDSSalesOrderHeaders"]}
    origins = {
        (h["dataAreaId"], h["SalesOrderNumber"]): (h["SalesOrderOriginType"], h["SalesOrderOriginCode"])
        for h in synced.after.fno["CDSSalesOrderHeaders"]
    }
    native = {(h["dataAreaId"], h["SalesOrderNumber"]) for h in synced.before.fno["CDSSalesOrderHeaders"]}
    fno_lines = {
        (line["dataAreaId"], line["SalesOrderNumber"], int(line["LineCreationSequenceNumber"])): line
        for line in synced.after.fno["CDSSalesOrderLines"]
    }
    source_lines = defaultdict(list)
    for line in synced.before.sales["salesorderdetails"]:
        source_lines[line["_salesorderid_value"]].append(line)
    sent = 0
    rounding_cases = 0
    for company, orders in by_company(synced, synced.before.sales["salesorders"]).items():
        for order in orders:
            key = (company, order["ordernumber"])
            qualifies = (
                order["statecode"] == 0
                and order["msdynce_processingstatus"] == 647390000
                and order["msdynce_hasexternallymaintainedproductsonly"] is True
                and order["msdynce_ismaintainedexternally"] is not True
            )
            if not qualifies:
                assert key in native or key not in headers, f"{key} should have been filtered out"
                continue
            sent += 1
            assert key in headers, key
            assert origins[key] == ("SalesOrderIntegration", company_setting(company, "sales_origin")), key
            for line in source_lines[order["salesorderid"]]:
                target = fno_lines.get((*key, int(line["sequencenumber"])))
                assert target is not None, (key, line["sequencenumber"])
                discount = float(line["manualdiscountamount"] or 0)
                if discount:
                    per_unit = round(discount / float(line["quantity"]), 2)
                    assert float(target["LineDiscountAmount"]) == pytest.approx(per_unit)
                    rounding_cases += round(per_unit * float(line["quantity"]), 2) != discount
    assert sent == 14  # STORY.md: sales_orders.sync
    assert rounding_cases >= 2  # the 3 x 3.33 example, once per business unit


def invoices_reach_sales_and_mark_their_orders_invoiced(synced: StoryState) -> None:
    invoices = {i["invoicenumber"]: i for i in synced.after.sales["invoices"]}
    details = defaultdict(set)
    for line in synced.after.sales["invoicedetails"]:
        details[line["_invoiceid_value"]].add(int(line["sequencenumber"]))
    fno_lines = defaultdict(set)
    for line in synced.before.fno["ExternallyMaintainedCustomerSalesInvoiceLines"]:
        fno_lines[line["InvoiceNumber"]].add(int(line["LineCreationSequenceNumber"]))
    orders = {o["ordernumber"]: o for o in synced.after.sales["salesorders"]}
    headers = synced.before.fno["ExternallyMaintainedCustomerSalesInvoiceHeaders"]
    assert {h["dataAreaId"] for h in headers} == set(COMPANIES)
    status = {o["SalesOrderNumber"]: o["SalesOrderStatus"] for o in synced.before.fno["CDSSalesOrderHeaders"]}
    partial = 0
    for header in headers:
        target = invoices.get(header["InvoiceNumber"])
        assert target is not None, header["InvoiceNumber"]
        assert details[target["invoiceid"]] == fno_lines[header["InvoiceNumber"]]
        if blank(header["SalesOrderNumber"]):
            continue
        order = orders[header["SalesOrderNumber"]]
        if status[header["SalesOrderNumber"]] == "Invoiced":
            assert order["statecode"] == 4, f"{header['SalesOrderNumber']} not marked Invoiced"
        else:  # partly invoiced in F&O: stays Active so template 5 keeps updating it
            assert order["statecode"] == 0, f"{header['SalesOrderNumber']} closed after a partial invoice"
            partial += 1
    assert len(headers) == 6  # STORY.md: invoices.sync
    assert partial == 2  # STORY.md: invoices.sync.partial


def rows_created_in_sales_belong_to_their_company(synced: StoryState) -> None:
    """Orders and invoices the F&O-to-Sales templates created, and their lines, are owned in
    their company's business unit (the pair's owner), not in the integration user's root unit."""
    units = {company: unit for unit, company in synced.companies.items()}
    company_of_order = {
        o["SalesOrderNumber"]: o["dataAreaId"] for o in synced.before.fno["CDSSalesOrderHeaders"]
    }
    company_of_invoice = {
        h["InvoiceNumber"]: h["dataAreaId"]
        for h in synced.before.fno["ExternallyMaintainedCustomerSalesInvoiceHeaders"]
    }
    checked = {"orders": 0, "order lines": 0, "invoices": 0, "invoice lines": 0}
    for kind, rows, key, number, owner_of in (
        ("orders", "salesorders", "salesorderid", "ordernumber", company_of_order),
        ("invoices", "invoices", "invoiceid", "invoicenumber", company_of_invoice),
    ):
        existed = {row[key] for row in synced.before.sales[rows]}
        created = {
            row[key]: units[owner_of[row[number]]]
            for row in synced.after.sales[rows]
            if row[key] not in existed and row[number] in owner_of
        }
        for row in synced.after.sales[rows]:
            if row[key] in created:
                assert row["_owningbusinessunit_value"] == created[row[key]], (kind, row[number])
                checked[kind] += 1
        parent = f"_{key}_value"
        lines = "salesorderdetails" if rows == "salesorders" else "invoicedetails"
        for line in synced.after.sales[lines]:
            if line[parent] in created:
                assert line["_owningbusinessunit_value"] == created[line[parent]], (kind, line[parent])
                checked[f"{kind[:-1]} lines"] += 1
    # STORY.md: 16 of the 18 synced F&O orders are new to Sales, and all 6 invoices.
    assert (checked["orders"], checked["invoices"]) == (16, 6)
    assert checked["order lines"] > checked["orders"]
    assert checked["invoice lines"] >= checked["invoices"]


#: Every check, in run order of the templates (a test parametrizes over these).
CHECKS: tuple[Callable[[StoryState], None], ...] = (
    accounts_become_externally_maintained_customers,
    products_become_externally_maintained_sales_products_with_prices,
    contacts_become_contact_persons_or_person_customers,
    activated_quotes_with_their_lines,
    fno_orders_become_sales_orders_with_lines_and_freight_tax,
    sales_orders_reach_fno_with_lines_and_unit_discounts,
    invoices_reach_sales_and_mark_their_orders_invoiced,
    rows_created_in_sales_belong_to_their_company,
)
