"""The decimal places a Dataverse target keeps (`prospect_to_cash.sync.limits.dataverse_decimals`):
read from EntityDefinitions per ``PrecisionSource``, once per table per hook, and used instead
of the fixed default unless the mapping names a ``scale``."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from prospect_to_cash.hooks.errors import DynamicsAPIError, ServiceError
from prospect_to_cash.sync.limits import Facets, dataverse_decimals, with_target_limits
from prospect_to_cash.sync.values import normalize
from tests.unit.sync.builders import task_of

if TYPE_CHECKING:
    import pytest

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
    "transactioncurrencies?$select=currencyprecision&$filter=statecode eq 0": [
        {"currencyprecision": 2},
        {"currencyprecision": 3},
    ],
}


class _Session:
    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.asked: list[str] = []

    def get_json_pages(self, url: str) -> list[dict[str, Any]]:
        self.asked.append(url)
        if self.refuse:
            raise DynamicsAPIError.from_error(ServiceError(403, "0x80040220", "no privilege"), url)
        return [{"value": ANSWERS[url]}]


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
        "amount_base": 3,  # 2: the currency's, the largest of the active ones
        "percentage": 2,  # a decimal column: its Precision
    }
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
