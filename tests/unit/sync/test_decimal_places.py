"""The decimal places a Dataverse target keeps (`prospect_to_cash.sync.limits.dataverse_decimals`):
read from EntityDefinitions per ``PrecisionSource``, once per table per hook, and used instead
of the fixed default unless the mapping names a ``scale``."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from prospect_to_cash.hooks.errors import DynamicsAPIError, ServiceError
from prospect_to_cash.sync.limits import (
    CurrencyPlaces,
    Facets,
    dataverse_currencies,
    dataverse_currency_columns,
    dataverse_decimals,
    with_target_limits,
)
from prospect_to_cash.sync.mapping import load_template
from prospect_to_cash.sync.values import normalize, rounded_positions
from tests.unit.sync.builders import plan_for, task_of

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from prospect_to_cash.sync.mapping import Task

CURRENCIES = "transactioncurrencies?$select=transactioncurrencyid,currencyprecision,statecode"
BASE = "EntityDefinitions(LogicalName='productpricelevel')/Attributes/Microsoft.Dynamics.CRM."
ANSWERS: dict[str, list[dict[str, Any]]] = {
    f"{BASE}DecimalAttributeMetadata?$select=LogicalName,Precision": [
        {"LogicalName": "percentage", "Precision": 2},
        {"LogicalName": "exchangerate", "Precision": 10},
    ],
    f"{BASE}MoneyAttributeMetadata?$select=LogicalName,Precision,PrecisionSource": [
        {"LogicalName": "amount", "Precision": 2, "PrecisionSource": 1},
        {"LogicalName": "roundingoptionamount", "Precision": 3, "PrecisionSource": 0},
        {"LogicalName": "amount_base", "Precision": 2, "PrecisionSource": 2},
    ],
    "organizations?$select=pricingdecimalprecision": [{"pricingdecimalprecision": 4}],
    CURRENCIES: [
        {"transactioncurrencyid": "a", "currencyprecision": 2, "statecode": 0},
        {"transactioncurrencyid": "b", "currencyprecision": 3, "statecode": 0},
        {"transactioncurrencyid": "c", "currencyprecision": 4, "statecode": 1},
    ],
}


class _Session:
    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.asked: list[str] = []
        self.answers = ANSWERS

    def get_json_pages(self, url: str) -> list[dict[str, Any]]:
        self.asked.append(url)
        if self.refuse:
            raise DynamicsAPIError.from_error(ServiceError(403, "0x80040220", "no privilege"), url)
        return [{"value": self.answers[url]}]


class _Hook:
    """The two things :func:`dataverse_decimals` uses of a Dataverse hook."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.session = _Session(refuse)

    def entity_logical_name(self, entity_set: str) -> str | None:
        return {"productpricelevels": "productpricelevel"}.get(entity_set)


def test_each_precision_source_gives_its_places_once_per_table() -> None:
    hook = _Hook()
    wanted = ["amount", "roundingoptionamount", "amount_base", "percentage", "name"]
    assert dataverse_decimals(hook, "productpricelevels", wanted) == {
        "amount": 4,  # PrecisionSource 1: the organization's pricingdecimalprecision
        "roundingoptionamount": 3,  # 0: the column's Precision
        "amount_base": 3,  # 2: the currency's, the largest of the active ones (per row: below)
        "percentage": 2,  # a decimal column: its Precision
    }
    assert dataverse_currency_columns(hook, "productpricelevels", wanted) == {"amount_base"}
    asked = len(hook.session.asked)
    assert asked == 4
    assert dataverse_decimals(hook, "productpricelevels", ["amount"]) == {"amount": 4}
    assert len(hook.session.asked) == asked  # cached for this hook


def test_an_unreadable_precision_keeps_the_default_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    hook = _Hook(refuse=True)
    with caplog.at_level(logging.WARNING, logger="prospect_to_cash.sync.limits"):
        assert dataverse_decimals(hook, "productpricelevels", ["amount"]) == {}
    assert [r.getMessage() for r in caplog.records] == [
        "Cannot read the decimal places productpricelevels keeps from EntityDefinitions "
        "(DynamicsAPIError); its decimal fields are rounded to 2 places"
    ]
    assert dataverse_decimals(_Hook(), "unknown", ["amount"]) == {}


def test_the_kept_places_replace_the_default_unless_the_mapping_sets_a_scale() -> None:
    task = task_of("products", "price_list_items")
    facets = {"amount": Facets(type="Edm.Decimal", decimals=4)}
    amount = next(f for f in with_target_limits(task, facets).fields if f.target == "amount")
    assert amount.scale == 4
    assert normalize("12.345678", amount.type, scale=amount.scale, system="dataverse") == 12.3457
    assert normalize("12.345678", "decimal", system="dataverse") == 12.35  # the old fixed default

    fields = tuple(replace(f, scale=1) if f.target == "amount" else f for f in task.fields)
    with_scale = replace(task, fields=fields)
    amount = next(f for f in with_target_limits(with_scale, facets).fields if f.target == "amount")
    assert amount.scale == 1

    unstated = next(f for f in with_target_limits(task, {}).fields if f.target == "amount")
    assert unstated.scale is None


def test_rounded_positions_are_the_values_that_lost_places() -> None:
    before = [12.345678, 12.35, None, "7.125", 100, 3.0, "n/a", True]
    after = [12.35, 12.35, None, 7.13, 100.0, 3.0, None, 1.0]
    assert rounded_positions(before, after) == [0, 3]


USD_ID, JPY_ID, OLD_ID = (str(uuid.UUID(int=n)) for n in (1, 2, 3))
#: USD keeps 2 places, JPY 0; a deactivated currency with 4 does not raise the fallback.
CURRENCY_ROWS = [
    {"transactioncurrencyid": USD_ID, "currencyprecision": 2, "statecode": 0},
    {"transactioncurrencyid": JPY_ID.upper(), "currencyprecision": 0, "statecode": 0},
    {"transactioncurrencyid": OLD_ID, "currencyprecision": 4, "statecode": 1},
]
YEN = CurrencyPlaces(places=((USD_ID, 2), (JPY_ID, 0), (OLD_ID, 4)), fallback=2)


def test_the_currencies_places_are_read_once_per_hook_with_the_active_ones_largest_as_fallback() -> None:
    hook = _Hook()
    hook.session.answers = {**ANSWERS, CURRENCIES: CURRENCY_ROWS}
    assert dataverse_currencies(hook) == YEN
    assert dataverse_currencies(hook) is dataverse_currencies(hook)
    assert hook.session.asked == [CURRENCIES]
    assert (YEN.of(JPY_ID.upper()), YEN.of(USD_ID), YEN.of(None), YEN.of("")) == (0, 2, None, None)


def _orders_task(tmp_path: Path) -> Task:
    """F&O -> Sales order headers with a yen price list, their totals following the record
    currency as Sales states it (``PrecisionSource`` 2; 2 places the largest active)."""
    override = tmp_path / "yen.yaml"
    override.write_text("value_maps:\n  price_list_by_currency:\n    entries: {JPY: Yen prices}\n")
    task = load_template("sales_orders_fno_to_sales", environment_file=override).task("order_headers")
    money = Facets(type="Edm.Decimal", decimals=2, by_currency=True)
    return with_target_limits(task, {"totalamount": money, "totaltax": money}, YEN)


def _order(number: str, currency: str, total: str, tax: str | None) -> dict[str, Any]:
    return {
        "SalesOrderNumber": number,
        "OrderingCustomerAccountNumber": "C-1",
        "CurrencyCode": currency,
        "OrderTotalAmount": total,
        "OrderTotalTaxAmount": tax,
    }


ORDER_REFERENCES = {
    "tgt_accounts": [{"accountnumber": "C-1", "accountid": str(uuid.UUID(int=10))}],
    "tgt_currencies": [
        {"isocurrencycode": "USD", "transactioncurrencyid": USD_ID},
        {"isocurrencycode": "JPY", "transactioncurrencyid": JPY_ID},
    ],
    "tgt_price_lists": [
        {"name": "CRM Service USA (sample)", "pricelevelid": str(uuid.UUID(int=20))},
        {"name": "Yen prices", "pricelevelid": str(uuid.UUID(int=21))},
    ],
}


def test_each_row_is_rounded_to_its_own_currencys_places(tmp_path: Path) -> None:
    task = _orders_task(tmp_path)
    total = next(f for f in task.fields if f.target == "totalamount")
    assert (total.scale, total.currency_places) == (2, YEN)
    source = [
        _order("SO-USD", "USD", "1234.567", "10.004"),
        _order("SO-JPY", "JPY", "1234.567", "10.495"),
        _order("SO-JPY-WHOLE", "JPY", "1234", None),
    ]
    plan = plan_for(task, source, references=ORDER_REFERENCES)
    created = {
        row["ordernumber"]: (row["totalamount"], row["totaltax"]) for row in plan.creates.to_dict("records")
    }
    assert created == {
        "SO-USD": (1234.57, 10.0),
        "SO-JPY": (1235.0, 10.0),  # from the source value: 10.495, not the 10.50 of 2 places
        "SO-JPY-WHOLE": (1234.0, None),
    }
    # a yen value that lost its decimals counts as rounded; a whole yen amount does not
    assert plan.rounded == {"totalamount": 2, "totaltax": 2}

    # the target holds what Sales kept (the values sent): nothing to update
    written = [f for f in task.fields if f.write]
    snapshot = [
        {"salesorderid": str(uuid.uuid4()), **{f.snapshot_column: row[f.target] for f in written}}
        for row in plan.creates.to_dict("records")
    ]
    again = plan_for(task, source, snapshot=snapshot, references=ORDER_REFERENCES)
    assert (len(again.creates), len(again.updates), len(again.unchanged)) == (0, 0, 3)


def test_a_row_whose_currency_is_unknown_keeps_the_largest_places_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    task = _orders_task(tmp_path)
    # the staged places know USD only (JPY came later): yen rows keep the fallback's 3 places
    usd_only = CurrencyPlaces(places=((USD_ID, 2),), fallback=3)
    fields = tuple(
        replace(f, currency_places=usd_only, scale=3) if f.currency_places else f for f in task.fields
    )
    source = [
        _order("SO-USD", "USD", "1234.5678", None),
        _order("SO-JPY", "JPY", "1234.5678", "1.23456"),
        _order("SO-JPY-2", "JPY", "7.0001", None),
    ]
    with caplog.at_level(logging.WARNING, logger="prospect_to_cash.sync"):
        plan = plan_for(replace(task, fields=fields), source, references=ORDER_REFERENCES, chunk_rows=1)
    created = {r["ordernumber"]: (r["totalamount"], r["totaltax"]) for r in plan.creates.to_dict("records")}
    assert created == {"SO-USD": (1234.57, None), "SO-JPY": (1234.568, 1.235), "SO-JPY-2": (7.0, None)}
    assert [r.getMessage() for r in caplog.records if "no known currency" in r.getMessage()] == [
        "salesorders: a row with a value in totalamount has no known currency (transactioncurrencyid "
        "not mapped or not among the Sales currencies); such values are rounded to 3 places, the most "
        "an active currency keeps, and Sales may round them further"
    ]
