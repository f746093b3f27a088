"""Decimal places the Web API keeps: a currency or decimal value is rounded when it is saved.

Dataverse does not refuse a currency value with more decimals than its column keeps; it stores
it rounded ("Decimal precision in currency and pricing": precision "affects rounding"; the
dual-write currency migration article calls the lost places data loss). How many places a
currency (Money) column keeps is its ``MoneyAttributeMetadata.PrecisionSource``: 0 the column's
``Precision``, 1 the organization's ``pricingdecimalprecision`` (0 to 4, the price columns), 2
the record's currency's ``currencyprecision`` (the default when unset). A Decimal column keeps
its ``Precision``. The organization row every environment has is made here on start (one per
environment, updatable with PATCH like the real one).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from emulators.schema.dataverse_columns import PRECISION_OF_CURRENCY, PRECISION_OF_PRICING

if TYPE_CHECKING:
    from emulators.schema.model import Field, Table
    from emulators.store import Store

ORGANIZATIONS = "organizations"
#: The organization's id (stable across restarts: the one row of ``organizations``).
ORGANIZATION_ID = "5e7a3c1d-2b4f-4e8a-9c60-0d1f2a3b4c5d"
#: ``pricingdecimalprecision`` of a new organization (System Settings, General: 2 places).
DEFAULT_PRICING_PRECISION = 2


def ensure_organization(store: Store, name: str) -> None:
    """The environment's organization row, when the store has none yet."""
    if store.get(ORGANIZATIONS, ORGANIZATION_ID) is None:
        row = {"organizationid": ORGANIZATION_ID, "name": name}
        store.insert(ORGANIZATIONS, {**row, "pricingdecimalprecision": DEFAULT_PRICING_PRECISION})


def _pricing_places(store: Store) -> int:
    row = store.get(ORGANIZATIONS, ORGANIZATION_ID, columns=["pricingdecimalprecision"])
    found = row.get("pricingdecimalprecision") if row else None
    return DEFAULT_PRICING_PRECISION if found is None else int(found)


def _currency_places(store: Store, currency_id: Any, fallback: int) -> int:
    if not currency_id:
        return fallback
    row = store.get("transactioncurrencies", currency_id, columns=["currencyprecision"])
    found = row.get("currencyprecision") if row else None
    return fallback if found is None else int(found)


def kept_places(store: Store, column: Field, merged: dict[str, Any]) -> int | None:
    """The decimal places ``column`` keeps for the row whose values are ``merged``."""
    if column.attribute_type == "Decimal":
        return column.precision
    if column.attribute_type != "Money":
        return None
    fallback = column.precision if column.precision is not None else DEFAULT_PRICING_PRECISION
    if column.precision_source == PRECISION_OF_PRICING:
        return _pricing_places(store)
    if column.precision_source == PRECISION_OF_CURRENCY:
        return _currency_places(store, merged.get("transactioncurrencyid"), fallback)
    return fallback


def round_kept(store: Store, table: Table, row: dict[str, Any], merged: dict[str, Any]) -> None:
    """Round the currency and decimal values of ``row`` (storage values) as the service saves them."""
    for name, value in row.items():
        column = table.field(name)
        if column is None or value is None or column.read_only:
            continue
        places = kept_places(store, column, merged)
        if places is not None:
            exact = Decimal(repr(float(value)))
            row[name] = float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
