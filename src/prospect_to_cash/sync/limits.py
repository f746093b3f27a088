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
``Precision``, the organization's ``pricingdecimalprecision`` or the currency's
``currencyprecision``), which ``$metadata`` does not state. The snapshot reads it from
``EntityDefinitions`` (:func:`dataverse_decimals`) and the transform rounds to it, so a value
is sent as Sales will keep it and the next run finds it unchanged.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from prospect_to_cash.hooks.errors import DynamicsError
from prospect_to_cash.sync.values import DEFAULT_SCALE, to_decimal

if TYPE_CHECKING:
    from collections.abc import Collection

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


def with_target_limits(task: Task, facets: dict[str, Facets]) -> Task:
    """``task`` with every written field carrying its target limits (``FieldMapping.limits``)."""
    from prospect_to_cash.sync.metadata_check import EntityShape  # it imports Facets from here

    shape = EntityShape(entity_set=task.target.entity_set, facets=facets)
    fields = tuple(
        replace(
            mapping,
            limits=field_limits(shape, task.target_system, mapping.target),
            scale=_kept_scale(mapping, facets.get(mapping.target)),
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


#: ``target/facets.json``: the target entity set's property facets, staged by the snapshot.
FACETS = "facets"


def stage_target_facets(ctx: SyncContext) -> None:
    """Snapshot time: the target entity set's facets from its ``$metadata`` into staging,
    so the transform checks values against them without talking to a service (and every
    retry of it sees the same limits). Nothing is staged when the hook has no ``$metadata``
    (in-memory test services) or the set is missing (check_mapping names that first)."""
    metadata = target_metadata(ctx.hooks, ctx.task.target_system)
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
        kept = dataverse_decimals(ctx.hooks.for_system("dataverse"), ctx.task.target.entity_set, wanted)
        facets.update({name: replace(facets[name], decimals=places) for name, places in kept.items()})
        if kept:  # a value with more places is rounded to these before it is compared or sent
            log.info(
                "%s keeps %s decimal place(s) (EntityDefinitions); values are rounded to them",
                ctx.task.target.entity_set,
                ", ".join(f"{name}: {places}" for name, places in sorted(kept.items())),
            )
    ctx.staging.write_json("target", FACETS, {name: asdict(f) for name, f in facets.items()})


def staged_target_limits(ctx: SyncContext) -> Task:
    """The step's task with the limits its snapshot staged (unchanged when none were)."""
    if not ctx.staging.exists("target", FACETS, ".json"):
        return ctx.task
    staged = ctx.staging.read_json("target", FACETS)
    return with_target_limits(ctx.task, {name: Facets(**value) for name, value in staged.items()})


log = logging.getLogger(__name__)

_CACHE: weakref.WeakKeyDictionary[Any, ServiceMetadata] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def target_metadata(hooks: Any, system: str) -> ServiceMetadata | None:
    """The parsed ``$metadata`` of ``system``, read once per hook (a task's hooks, or the
    hooks a whole run shares); None when the hook cannot give it (in-memory test services)."""
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
_DECIMALS: weakref.WeakKeyDictionary[Any, dict[str, dict[str, int]]] = weakref.WeakKeyDictionary()


def dataverse_decimals(hook: Any, entity_set: str, columns: Collection[str]) -> dict[str, int]:
    """The decimal places Dataverse keeps for each of ``columns`` of ``entity_set`` (money and
    decimal columns; others are left out), read once per table per hook.

    Empty when the hook cannot tell (no ``EntityDefinitions``, a refused read): the fields then
    keep the default of :data:`~prospect_to_cash.sync.values.DEFAULT_SCALE`, and the log says so.
    """
    if not columns or not hasattr(hook, "session"):
        return {}
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
            known = {}
        with _CACHE_LOCK:
            _DECIMALS[hook][entity_set] = known
    return {name: known[name] for name in columns if name in known}


def _rows(hook: Any, url: str) -> list[dict[str, Any]]:
    return [row for page in hook.session.get_json_pages(url) for row in page["value"]]


def _table_decimals(hook: Any, entity_set: str) -> dict[str, int]:
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
    sources = {row.get("PrecisionSource", PRECISION_OF_PRICING) for row in money}
    pricing = _pricing_precision(hook) if PRECISION_OF_PRICING in sources else None
    currency = _currency_precision(hook) if PRECISION_OF_CURRENCY in sources else None
    for row in money:
        # an unset PrecisionSource means 2 (MoneyAttributeMetadata.PrecisionSource remarks)
        source = row.get("PrecisionSource")
        source = PRECISION_OF_CURRENCY if source is None else int(source)
        places[row["LogicalName"]] = {PRECISION_OF_PRICING: pricing, PRECISION_OF_CURRENCY: currency}.get(
            source, int(row["Precision"])
        )
    return {name: value for name, value in places.items() if value is not None}


def _pricing_precision(hook: Any) -> int:
    """The organization's ``pricingdecimalprecision`` (one organization per environment)."""
    rows = _rows(hook, "organizations?$select=pricingdecimalprecision")
    return int(rows[0]["pricingdecimalprecision"])


def _currency_precision(hook: Any) -> int:
    """The places of a column whose precision is the record's currency's: the largest
    ``currencyprecision`` of the active currencies, so that no row loses a place its own
    currency keeps (one value per field; a currency with fewer places is rounded by Sales)."""
    rows = _rows(hook, "transactioncurrencies?$select=currencyprecision&$filter=statecode eq 0")
    places = {int(row["currencyprecision"]) for row in rows}
    if len(places) > 1:
        log.info(
            "Active currencies keep %s decimal places; currency columns use %d", sorted(places), max(places)
        )
    return max(places)
