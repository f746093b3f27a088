"""What the target accepts, from its ``$metadata``: checked per value before sending.

A value the target cannot store (text longer than ``MaxLength``, a number with more digits
than ``Precision``/``Scale`` allow or outside ``Edm.Int32``, a date before F&O's
1900-01-01) would otherwise travel to the service and come back as a refusal for the
whole row, after the rest of the run was planned around it. Checked here, it is a
*reject* with a reason a person can act on, and the row never leaves.

The facets come from the target's CSDL (:func:`~prospect_to_cash.sync.metadata_check.parse_csdl`):
F&O publishes ``MaxLength``, ``Precision`` and ``Scale``; Dataverse's Web API publishes
``Scale="Variable"`` on decimals, so a Dataverse decimal is held to the documented currency
range instead (:data:`DATAVERSE_LARGEST`); lengths apply wherever ``MaxLength`` is stated. The
date ranges are the services' documented ones: F&O ``utcdatetime`` runs from
``DateTimeUtil::minValue()`` (1900-01-01) to ``maxValue()`` (2154-12-31); Dataverse date and
time columns from 1753-01-01 to 9999-12-31.

Decimal places are not refused but kept: Dataverse rounds a currency or decimal value to the
column's effective precision (``MoneyAttributeMetadata.PrecisionSource``: the column's own
``Precision``, the organization's ``pricingdecimalprecision`` or the record currency's
``currencyprecision``), which ``$metadata`` does not state. The snapshot reads it from
``EntityDefinitions`` (:func:`dataverse_decimals`) and the currencies' places
(:func:`dataverse_currencies`), and the transform rounds each row to it (a column that follows
the record currency by the row's own ``transactioncurrencyid``), so a value is sent as Sales
will keep it and the next run finds it unchanged.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from prospect_to_cash.hooks.errors import DynamicsError
from prospect_to_cash.sync.values import DEFAULT_SCALE, is_blank, to_decimal

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from prospect_to_cash.sync.context import SyncContext
    from prospect_to_cash.sync.mapping import FieldMapping, Task
    from prospect_to_cash.sync.metadata_check import EntityShape, ServiceMetadata

#: Inclusive ranges of the integer types the mappings write.
INT_RANGES: dict[str, tuple[int, int]] = {
    "Edm.Byte": (0, 255),
    "Edm.Int16": (-(2**15), 2**15 - 1),
    "Edm.Int32": (-(2**31), 2**31 - 1),
    "Edm.Int64": (-(2**63), 2**63 - 1),
}

#: The largest magnitude a Dataverse decimal column holds: a currency (Money) column's
#: documented range, -922,337,203,685,477 to 922,337,203,685,477; Decimal columns stay within
#: it too. Dataverse's ``$metadata`` states no Precision (``Scale="Variable"``), so this is
#: the check for a Dataverse target.
DATAVERSE_LARGEST = Decimal("922337203685477")

#: Documented date ranges per target system (UTC, inclusive).
DATE_RANGES: dict[str, tuple[datetime, datetime]] = {
    "fno": (
        datetime(1900, 1, 1, tzinfo=timezone.utc),
        datetime(2154, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
    ),
    "dataverse": (
        datetime(1753, 1, 1, tzinfo=timezone.utc),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
    ),
}


@dataclass(frozen=True)
class Facets:
    """One property's type and facets as the CSDL states them (None: not stated)."""

    type: str
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    decimals: int | None = None  # places Dataverse keeps (EntityDefinitions), not a CSDL facet
    by_currency: bool = False  # a Dataverse currency column whose places are its record currency's


#: The column a Dataverse record holds its currency in: "all money properties in a record share
#: the same transaction currency" (Dataverse, "Transaction Currency (currency) table").
RECORD_CURRENCY = "transactioncurrencyid"


@dataclass(frozen=True)
class CurrencyPlaces:
    """The decimal places each Sales currency keeps (``transactioncurrencies.currencyprecision``),
    for the columns whose ``PrecisionSource`` is the record currency: a row is rounded to its
    own currency's places, so Sales keeps exactly what is sent (a yen amount whole, a dollar
    amount in cents) and the next run finds it unchanged.

    :param places: ``(transactioncurrencyid, currencyprecision)`` of every currency, active or
        not (a row may still carry a deactivated one); ids lowercase.
    :param fallback: the largest ``currencyprecision`` of the active currencies, for a row whose
        currency is not known (not mapped, or not among them): no place its currency keeps is lost.
    """

    places: tuple[tuple[str, int], ...]
    fallback: int

    @cached_property
    def _by_id(self) -> dict[str, int]:
        return dict(self.places)

    def of(self, currency: Any) -> int | None:
        """The places of the currency whose id is ``currency`` (None: not known)."""
        if not isinstance(currency, str) or not currency:
            return None
        return self._by_id.get(currency.lower())


@dataclass(frozen=True)
class FieldLimits:
    """What one target field accepts; :meth:`problem` says why a value does not fit."""

    where: str  # "CustomersV3.CreditLimit", for the reason
    type: str
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    earliest: datetime | None = None
    latest: datetime | None = None
    largest: Decimal | None = None  # magnitude, when the system documents one

    def problem(self, value: Any) -> str | None:
        """A reason a person understands, or None when ``value`` (already normalized for
        writing) fits."""
        if value is None:
            return None
        if self.type == "Edm.String":
            return self._text(value)
        if self.type in INT_RANGES:
            return self._integer(value)
        if self.type == "Edm.Decimal":
            return self._decimal(value)
        if self.type in ("Edm.DateTimeOffset", "Edm.Date"):
            return self._moment(value)
        return None

    def _text(self, value: Any) -> str | None:
        if self.max_length is not None and isinstance(value, str) and len(value) > self.max_length:
            return f"{self.where} takes at most {self.max_length} characters; the value has {len(value)}"
        return None

    def _integer(self, value: Any) -> str | None:
        low, high = INT_RANGES[self.type]
        number = to_decimal(value)
        if number is not None and not low <= number <= high:
            return f"{self.where} is {self.type} ({low} to {high}); {number} is out of range"
        return None

    def _decimal(self, value: Any) -> str | None:
        number = to_decimal(value)
        if number is None:
            return None
        if self.largest is not None and abs(number) > self.largest:
            return f"{self.where} holds -{self.largest} to {self.largest}; {number} is out of range"
        if self.precision is None:
            return None
        scale = self.scale or 0
        whole = max(self.precision - scale, 0)
        digits = number.adjusted() + 1 if number and abs(number) >= 1 else 0
        if digits > whole:
            return (
                f"{self.where} holds {whole} digit(s) before the decimal point "
                f"(Precision {self.precision}, Scale {scale}); {number} has {digits}"
            )
        exponent = number.normalize().as_tuple().exponent
        if self.scale is not None and isinstance(exponent, int) and -exponent > self.scale:
            return f"{self.where} keeps {self.scale} decimal place(s) (Scale); {number} has more"
        return None

    def _moment(self, value: Any) -> str | None:
        moment = _as_datetime(value)
        if moment is None:
            return None
        if self.earliest is not None and moment < self.earliest:
            return f"{self.where} accepts dates from {self.earliest:%Y-%m-%d}; {moment:%Y-%m-%d} is earlier"
        if self.latest is not None and moment > self.latest:
            return f"{self.where} accepts dates up to {self.latest:%Y-%m-%d}; {moment:%Y-%m-%d} is later"
        return None


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return _as_datetime(date.fromisoformat(text))
            return _as_datetime(datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text))
        except ValueError:
            return None
    return None


def text_limit(mapping: FieldMapping) -> int | None:
    """The longest text a field takes: the mapping's ``max_length`` or the target's
    ``MaxLength``, whichever is shorter."""
    found = [n for n in (mapping.max_length, mapping.limits and mapping.limits.max_length) if n is not None]
    return min(found) if found else None


def field_limits(shape: EntityShape, system: str, name: str) -> FieldLimits | None:
    """The limits of property ``name`` of ``shape`` (None when it does not exist)."""
    facets = shape.facets.get(name)
    if facets is None:
        return None
    earliest, latest = DATE_RANGES.get(system, (None, None))
    dated = facets.type in ("Edm.DateTimeOffset", "Edm.Date")
    dataverse_number = system == "dataverse" and facets.type == "Edm.Decimal"
    return FieldLimits(
        where=f"{shape.entity_set}.{name}",
        type=facets.type,
        max_length=facets.max_length,
        # Dataverse's decimal facets are not OData's (the column's decimal places at most)
        precision=None if dataverse_number else facets.precision,
        scale=None if dataverse_number else facets.scale,
        earliest=earliest if dated else None,
        latest=latest if dated else None,
        largest=DATAVERSE_LARGEST if dataverse_number else None,
    )


def with_target_limits(
    task: Task, facets: dict[str, Facets], currencies: CurrencyPlaces | None = None
) -> Task:
    """``task`` with every written field carrying its target limits (``FieldMapping.limits``),
    and the currency columns whose places are the record currency's the ``currencies``
    (``FieldMapping.currency_places``: the transform rounds each row by its own currency)."""
    from prospect_to_cash.sync.metadata_check import EntityShape  # it imports Facets from here

    shape = EntityShape(entity_set=task.target.entity_set, facets=facets)
    fields = tuple(
        replace(
            mapping,
            limits=field_limits(shape, task.target_system, mapping.target),
            scale=_kept_scale(mapping, facets.get(mapping.target)),
            currency_places=_currency_places(mapping, facets.get(mapping.target), currencies),
        )
        if mapping.write and not mapping.is_bind
        else mapping
        for mapping in task.fields
    )
    return replace(task, fields=fields)


def _kept_scale(mapping: FieldMapping, facets: Facets | None) -> int | None:
    """A decimal field's places: the mapping's ``scale`` wins, then what the target keeps."""
    if mapping.type != "decimal" or mapping.scale is not None or facets is None:
        return mapping.scale
    return facets.decimals


def _currency_places(
    mapping: FieldMapping, facets: Facets | None, currencies: CurrencyPlaces | None
) -> CurrencyPlaces | None:
    """Per-row places for a decimal field whose target column follows the record currency,
    unless the mapping names its own ``scale``."""
    if mapping.type != "decimal" or mapping.scale is not None or facets is None or not facets.by_currency:
        return None
    return currencies


def rows_by_places(
    mapping: FieldMapping, record: Sequence[Any] | None, values: Sequence[Any]
) -> tuple[dict[int, list[int]], int]:
    """For a column that follows the record currency (``mapping.currency_places``): the rows
    whose currency (``record``, the rows' ``transactioncurrencyid``) keeps other places than
    ``mapping.scale``, grouped by those places, and how many rows with a value have no known
    currency (they keep ``mapping.scale``, the most an active currency keeps)."""
    places = mapping.currency_places
    groups: dict[int, list[int]] = {}
    unknown = 0
    for row, value in enumerate(values):
        kept = places.of(record[row]) if places is not None and record is not None else None
        if kept is None:
            unknown += not is_blank(value)
        elif kept != mapping.scale:
            groups.setdefault(kept, []).append(row)
    return groups, unknown


def unknown_currency_warning(entity_set: str, mapping: FieldMapping) -> None:
    """Said once per task: Sales rounds such a row by its currency, which may differ."""
    log.warning(
        "%s: a row with a value in %s has no known currency (%s not mapped or not among the Sales "
        "currencies); such values are rounded to %s places, the most an active currency keeps, "
        "and Sales may round them further",
        entity_set,
        mapping.target,
        RECORD_CURRENCY,
        mapping.scale,
    )


#: ``target/facets.json``: the target entity set's property facets, staged by the snapshot.
FACETS = "facets"
#: ``target/currency_places.json``: the Sales currencies' places, staged beside the facets when
#: a mapped column follows the record currency.
CURRENCY_PLACES = "currency_places"


def stage_target_facets(ctx: SyncContext) -> None:
    """Snapshot time: the target entity set's facets from its ``$metadata`` into staging,
    so the transform checks values against them without talking to a service (and every
    retry of it sees the same limits). Nothing is staged when the hook has no ``$metadata``
    (in-memory test services) or the set is missing (check_mapping names that first)."""
    metadata = service_metadata(ctx.hooks, ctx.task.target_system)
    shape = metadata.entity_sets.get(ctx.task.target.entity_set) if metadata is not None else None
    if shape is None:
        return
    facets = dict(shape.facets)
    if ctx.task.target_system == "dataverse":
        wanted = [
            f.target
            for f in ctx.task.fields
            if f.write and not f.is_bind and f.type == "decimal" and f.scale is None and f.target in facets
        ]
        hook = ctx.hooks.for_system("dataverse")
        kept = dataverse_decimals(hook, ctx.task.target.entity_set, wanted)
        by_currency = dataverse_currency_columns(hook, ctx.task.target.entity_set, wanted)
        facets.update(
            {
                name: replace(facets[name], decimals=places, by_currency=name in by_currency)
                for name, places in kept.items()
            }
        )
        if kept:  # a value with more places is rounded to these before it is compared or sent
            log.info(
                "%s keeps %s decimal place(s) (EntityDefinitions); values are rounded to them",
                ctx.task.target.entity_set,
                ", ".join(
                    f"{name}: {'its currency' if name in by_currency else places}"
                    for name, places in sorted(kept.items())
                ),
            )
        currencies = dataverse_currencies(hook) if by_currency else None
        if currencies is not None:
            ctx.staging.write_json("target", CURRENCY_PLACES, asdict(currencies))
    ctx.staging.write_json("target", FACETS, {name: asdict(f) for name, f in facets.items()})


def staged_target_limits(ctx: SyncContext) -> Task:
    """The step's task with the limits its snapshot staged (unchanged when none were)."""
    if not ctx.staging.exists("target", FACETS, ".json"):
        return ctx.task
    staged = ctx.staging.read_json("target", FACETS)
    currencies = None
    if ctx.staging.exists("target", CURRENCY_PLACES, ".json"):
        found = ctx.staging.read_json("target", CURRENCY_PLACES)
        places = tuple((str(currency), int(n)) for currency, n in found["places"])
        currencies = CurrencyPlaces(places=places, fallback=int(found["fallback"]))
    facets = {name: Facets(**value) for name, value in staged.items()}
    return with_target_limits(ctx.task, facets, currencies)


log = logging.getLogger(__name__)

_CACHE: weakref.WeakKeyDictionary[Any, ServiceMetadata] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def service_metadata(hooks: Any, system: str) -> ServiceMetadata | None:
    """The parsed ``$metadata`` of ``system``, read once per hook (a task's hooks, or the
    hooks a whole run shares): the target's facets here, an exported F&O source's key types
    in `exports`; None when the hook cannot give it (in-memory test services)."""
    from prospect_to_cash.sync.metadata_check import parse_csdl

    hook = hooks.for_system(system)
    getter = getattr(hook, "get_metadata", None)
    if getter is None:
        return None
    with _CACHE_LOCK:
        found = _CACHE.get(hook)
    if found is None:
        found = parse_csdl(getter())
        with _CACHE_LOCK:
            _CACHE[hook] = found
    return found


# -- Dataverse: the decimal places a currency or decimal column keeps ---------------------------

#: ``MoneyAttributeMetadata.PrecisionSource``: the column's ``Precision``, the organization's
#: ``pricingdecimalprecision``, or the record's currency's ``currencyprecision``.
PRECISION_OF_COLUMN, PRECISION_OF_PRICING, PRECISION_OF_CURRENCY = 0, 1, 2

_METADATA_CAST = "Microsoft.Dynamics.CRM"


@dataclass(frozen=True)
class _TableDecimals:
    """What one table's columns keep: places per column (a currency-following column: the
    largest of the active currencies) and which columns follow the record currency."""

    places: dict[str, int]
    by_currency: frozenset[str] = frozenset()


_DECIMALS: weakref.WeakKeyDictionary[Any, dict[str, _TableDecimals]] = weakref.WeakKeyDictionary()
_CURRENCIES: weakref.WeakKeyDictionary[Any, CurrencyPlaces] = weakref.WeakKeyDictionary()


def dataverse_decimals(hook: Any, entity_set: str, columns: Collection[str]) -> dict[str, int]:
    """The decimal places Dataverse keeps for each of ``columns`` of ``entity_set`` (money and
    decimal columns; others are left out), read once per table per hook. A column that follows
    the record currency gets the largest places of the active currencies (the fallback of a
    row whose currency is not known; :func:`dataverse_currency_columns` names such columns).

    Empty when the hook cannot tell (no ``EntityDefinitions``, a refused read): the fields then
    keep the default of :data:`~prospect_to_cash.sync.values.DEFAULT_SCALE`, and the log says so.
    """
    known = _table_decimals_cached(hook, entity_set, columns)
    return {name: known.places[name] for name in columns if name in known.places}


def dataverse_currency_columns(hook: Any, entity_set: str, columns: Collection[str]) -> frozenset[str]:
    """Those of ``columns`` whose places are the record currency's (``PrecisionSource`` 2)."""
    return frozenset(_table_decimals_cached(hook, entity_set, columns).by_currency & set(columns))


def _table_decimals_cached(hook: Any, entity_set: str, columns: Collection[str]) -> _TableDecimals:
    if not columns or not hasattr(hook, "session"):
        return _TableDecimals({})
    with _CACHE_LOCK:
        known = _DECIMALS.setdefault(hook, {}).get(entity_set)
    if known is None:
        try:
            known = _table_decimals(hook, entity_set)
        except (DynamicsError, IndexError, KeyError, TypeError, ValueError) as exc:
            log.warning(
                "Cannot read the decimal places %s keeps from EntityDefinitions (%s); its decimal "
                "fields are rounded to %d places",
                entity_set,
                type(exc).__name__,
                DEFAULT_SCALE["dataverse"],
            )
            known = _TableDecimals({})
        with _CACHE_LOCK:
            _DECIMALS[hook][entity_set] = known
    return known


def _rows(hook: Any, url: str) -> list[dict[str, Any]]:
    return [row for page in hook.session.get_json_pages(url) for row in page["value"]]


def _table_decimals(hook: Any, entity_set: str) -> _TableDecimals:
    """Every money and decimal column of the table behind ``entity_set`` with its places."""
    logical = hook.entity_logical_name(entity_set)
    if logical is None:
        raise KeyError(entity_set)
    base = f"EntityDefinitions(LogicalName='{logical}')/Attributes/{_METADATA_CAST}"
    places = {
        row["LogicalName"]: int(row["Precision"])
        for row in _rows(hook, f"{base}.DecimalAttributeMetadata?$select=LogicalName,Precision")
    }
    money = _rows(hook, f"{base}.MoneyAttributeMetadata?$select=LogicalName,Precision,PrecisionSource")
    # an unset PrecisionSource means 2 (MoneyAttributeMetadata.PrecisionSource remarks)
    sources = {
        row["LogicalName"]: PRECISION_OF_CURRENCY
        if row.get("PrecisionSource") is None
        else int(row["PrecisionSource"])
        for row in money
    }
    pricing = _pricing_precision(hook) if PRECISION_OF_PRICING in sources.values() else None
    currency = dataverse_currencies(hook).fallback if PRECISION_OF_CURRENCY in sources.values() else None
    for row in money:
        source = sources[row["LogicalName"]]
        places[row["LogicalName"]] = {PRECISION_OF_PRICING: pricing, PRECISION_OF_CURRENCY: currency}.get(
            source, int(row["Precision"])
        )
    by_currency = frozenset(name for name, source in sources.items() if source == PRECISION_OF_CURRENCY)
    return _TableDecimals({name: value for name, value in places.items() if value is not None}, by_currency)


def _pricing_precision(hook: Any) -> int:
    """The organization's ``pricingdecimalprecision`` (one organization per environment)."""
    rows = _rows(hook, "organizations?$select=pricingdecimalprecision")
    return int(rows[0]["pricingdecimalprecision"])


def dataverse_currencies(hook: Any) -> CurrencyPlaces:
    """Every Sales currency with the places it keeps (``currencyprecision``, 0 to 10), read once
    per hook: a small reference table. Deactivated ones are kept (a row may still carry one);
    the fallback is the largest of the active ones."""
    with _CACHE_LOCK:
        found = _CURRENCIES.get(hook)
    if found is not None:
        return found
    rows = _rows(hook, "transactioncurrencies?$select=transactioncurrencyid,currencyprecision,statecode")
    places = tuple(
        sorted((str(r["transactioncurrencyid"]).lower(), int(r["currencyprecision"])) for r in rows)
    )
    active = {int(r["currencyprecision"]) for r in rows if r.get("statecode", 0) == 0}
    found = CurrencyPlaces(places=places, fallback=max(active or {p for _, p in places}))
    if len({p for _, p in places}) > 1:
        log.info(
            "Sales currencies keep %s decimal places; currency columns are rounded per row by the "
            "record's currency (%d places when it is not known)",
            sorted({p for _, p in places}),
            found.fallback,
        )
    with _CACHE_LOCK:
        _CURRENCIES[hook] = found
    return found
