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
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from prospect_to_cash.sync.values import to_decimal

if TYPE_CHECKING:
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
        replace(mapping, limits=field_limits(shape, task.target_system, mapping.target))
        if mapping.write and not mapping.is_bind
        else mapping
        for mapping in task.fields
    )
    return replace(task, fields=fields)


#: ``target/facets.json``: the target entity set's property facets, staged by the snapshot.
FACETS = "facets"


def stage_target_facets(ctx: SyncContext) -> None:
    """Snapshot time: the target entity set's facets from its ``$metadata`` into staging,
    so the transform checks values against them without talking to a service (and every
    retry of it sees the same limits). Nothing is staged when the hook has no ``$metadata``
    (in-memory test services) or the set is missing (check_mapping names that first)."""
    metadata = target_metadata(ctx.hooks, ctx.task.target_system)
    shape = metadata.entity_sets.get(ctx.task.target.entity_set) if metadata is not None else None
    if shape is not None:
        ctx.staging.write_json("target", FACETS, {name: asdict(f) for name, f in shape.facets.items()})


def staged_target_limits(ctx: SyncContext) -> Task:
    """The step's task with the limits its snapshot staged (unchanged when none were)."""
    if not ctx.staging.exists("target", FACETS, ".json"):
        return ctx.task
    staged = ctx.staging.read_json("target", FACETS)
    return with_target_limits(ctx.task, {name: Facets(**value) for name, value in staged.items()})


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
