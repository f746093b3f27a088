"""One meaning of "the same value" for both systems.

Dataverse and F&O disagree on how a value looks on the wire (``3.3300`` vs ``3.33``,
``2024-01-05T00:00:00Z`` vs ``2024-01-05``, ``null`` vs ``""``, NaN after pandas saw a
null in a numeric column). Every value the engine compares or writes passes through
:func:`normalize` first, so a row is "changed" only when the business value changed.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from prospect_to_cash.settings import bool_word

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pandas as pd

#: Field types a mapping may declare (``type:`` in the YAML).
FIELD_TYPES = ("string", "int", "decimal", "bool", "datetime", "date", "guid", "enum", "option")

#: Default decimal places per target system when a field gives no ``scale``. Dataverse
#: money columns default to two decimals; F&O stores amounts with more, so keep six.
DEFAULT_SCALE = {"dataverse": 2, "fno": 6}

#: F&O never stores null numbers or dates: it fills 0 or this sentinel instead.
FNO_EMPTY_DATETIME = "1900-01-01T12:00:00Z"

#: Fixed namespace for deterministic Dataverse primary keys (uuid5). Changing it would
#: make every row this package created look foreign, so it is a constant, not a setting.
DETERMINISTIC_NAMESPACE = uuid.UUID("6f1c3a52-8b7e-5d0a-9c41-2e6a0b7d9f13")
_NAMESPACE_BYTES = DETERMINISTIC_NAMESPACE.bytes
_CANONICAL_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ConversionError(ValueError):
    """A value that cannot be read as the declared type."""


def _pandas_missing() -> tuple[Any, ...]:
    """pandas' NA and NaT, imported on first need (mapping files load without pandas)."""
    global _PANDAS_MISSING
    if _PANDAS_MISSING is None:
        try:
            import pandas as pd

            _PANDAS_MISSING = (pd.NA, pd.NaT)
        except ImportError:  # pragma: no cover - pandas is a dependency
            _PANDAS_MISSING = ()
    return _PANDAS_MISSING


_PANDAS_MISSING: tuple[Any, ...] | None = None


def is_blank(value: Any) -> bool:
    """True for None, NaN, pandas NA/NaT and empty or whitespace-only strings.

    Called for nearly every cell, so the common classes are decided first without
    ``isinstance`` chains (``str.isspace`` is the whitespace ``str.strip`` removes).
    """
    if value is None:
        return True
    cls = value.__class__
    if cls is str:
        return not value or value.isspace()
    if cls is float:
        return value != value
    if cls is int or cls is bool:
        return False
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return value.strip() == ""
    return any(value is missing for missing in _pandas_missing())


def py(value: Any) -> Any:
    """Plain Python value from whatever pandas/pyarrow handed over; NaN/NA/NaT become None
    (strings, even empty ones, are returned unchanged)."""
    cls = value.__class__
    if cls is str or value is None or cls is int or cls is bool:
        return value
    if cls is float:
        return None if value != value else value
    if isinstance(value, str):
        return value
    if is_blank(value):
        return None
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, (bytes, Decimal)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    return value


def to_decimal(value: Any) -> Decimal | None:
    """Exact decimal of a number or numeric string; None for blanks."""
    value = py(value)
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, Decimal):
        return value
    try:
        if isinstance(value, float):
            return Decimal(repr(value))
        return Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ConversionError(f"{value!r} is not a number") from exc


def round_half_up(value: Decimal, scale: int) -> Decimal:
    """Commercial rounding (0.005 → 0.01), which is what both services display."""
    return value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)


def to_bool(value: Any) -> bool | None:
    value = py(value)
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)):
        return bool(value)
    word = bool_word(str(value))
    if word is None:
        raise ConversionError(f"{value!r} is not a boolean")
    return word


def to_datetime(value: Any) -> datetime | None:
    """UTC datetime from a datetime, date, pandas Timestamp or ISO 8601 text."""
    value = py(value)
    if is_blank(value):
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ConversionError(f"{value!r} is not an ISO 8601 date/time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def normalize(value: Any, field_type: str, *, scale: int | None = None, system: str | None = None) -> Any:
    """The canonical form of ``value`` for comparing and writing.

    :param field_type: one of :data:`FIELD_TYPES`.
    :param scale: decimal places for ``decimal`` (defaults per ``system``).
    :param system: ``"fno"`` turns blank numbers into 0 and blank dates into F&O's
        sentinel, because F&O reads them back that way and a null would otherwise look
        like a change on every run.
    """
    value = py(value)
    if field_type == "string":
        if is_blank(value):
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    if field_type in ("int", "option"):
        if is_blank(value):
            return 0 if system == "fno" and field_type == "int" else None
        number = to_decimal(value)
        assert number is not None
        if number != number.to_integral_value():
            raise ConversionError(f"{value!r} is not a whole number")
        return int(number)
    if field_type == "decimal":
        number = to_decimal(value)
        if number is None:
            return 0.0 if system == "fno" else None
        places = scale if scale is not None else DEFAULT_SCALE.get(system or "", 6)
        return float(round_half_up(number, places))
    if field_type == "bool":
        return to_bool(value)
    if field_type == "datetime":
        moment = to_datetime(value)
        if moment is None:
            return FNO_EMPTY_DATETIME if system == "fno" else None
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if field_type == "date":
        if isinstance(value, str) and len(value.strip()) == 10:
            try:
                return date.fromisoformat(value.strip()).isoformat()
            except ValueError as exc:
                raise ConversionError(f"{value!r} is not a date") from exc
        moment = to_datetime(value)
        if moment is None:
            return None
        return moment.date().isoformat()
    if field_type == "guid":
        if value.__class__ is str and _CANONICAL_GUID.fullmatch(value):
            return value  # what the conversion below would give back
        if is_blank(value):
            return None
        try:
            return str(uuid.UUID(str(value).strip("{} ")))
        except ValueError as exc:
            raise ConversionError(f"{value!r} is not a GUID") from exc
    if field_type == "enum":
        return None if is_blank(value) else str(value)
    raise ConversionError(f"unknown field type {field_type!r}")


def values_equal(left: Any, right: Any) -> bool:
    """Equality of two normalized values (None equals None, floats compare exactly
    because both sides were rounded to the same scale)."""
    if left is None or right is None:
        return left is None and right is None
    return bool(left == right)


def natural_key(values: Sequence[Any]) -> str:
    """A row's natural key as one string: the reference echoed through the hooks and
    the name hashed into deterministic GUIDs. ``|`` cannot occur in Dynamics keys we
    map (account numbers, order numbers), and blanks become empty parts."""
    parts = []
    for value in values:
        if value.__class__ is str:
            parts.append("" if not value or value.isspace() else value)
            continue
        value = py(value)
        if is_blank(value):
            parts.append("")
        elif isinstance(value, float) and value.is_integer():
            parts.append(str(int(value)))
        else:
            parts.append(str(value))
    return "|".join(parts)


def deterministic_id(entity_set: str, key: str) -> str:
    """The primary key GUID this package gives the row of ``entity_set`` whose natural
    key is ``key``: a repeated create then hits the same row instead of a second one.

    ``uuid.uuid5(DETERMINISTIC_NAMESPACE, f"{entity_set}|{key}")``, spelled out (SHA-1 of
    namespace and name, version 5, RFC 4122 variant) because a plan computes one per row
    and two ``UUID`` objects per call cost twenty times the hash.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{entity_set}|{key}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def column_values(frame: pd.DataFrame, column: str) -> list[Any]:
    """A column as plain Python values (NaN/NA/NaT spelled None)."""
    return [py(v) for v in frame[column].tolist()]


#: Rows looked at before :func:`map_values` decides whether remembering results pays.
MEMO_PROBE_ROWS = 2048
_MISSING = object()


def memo_key(value: Any) -> Any:
    """A dict key that tells values apart by class as well as equality (``True``, ``1``
    and ``1.0`` are one dict key but normalize differently). Text, the common case, is
    its own key: no tuple of it can be equal to a string."""
    return value if value.__class__ is str else (value.__class__, value)


def map_values(values: Sequence[Any], function: Callable[[Any], Any]) -> list[Any]:
    """``[function(v) for v in values]`` for a pure ``function``, computed once per
    distinct value (:func:`memo_key`).

    Most columns repeat a handful of values (codes, flags, units, currencies), so the
    per-cell work of normalizing or mapping is paid per distinct value instead. When the
    first :data:`MEMO_PROBE_ROWS` rows are mostly distinct (names, numbers) the memo is
    dropped, so it never costs more than it saves.
    """
    results: list[Any] = []
    append = results.append
    cache: dict[Any, Any] = {}
    probe = min(len(values), MEMO_PROBE_ROWS)
    for value in values[:probe] if probe < len(values) else values:
        key = value if value.__class__ is str else (value.__class__, value)
        try:
            hit = cache.get(key, _MISSING)
        except TypeError:  # unhashable: compute it
            append(function(value))
            continue
        if hit is _MISSING:
            hit = cache[key] = function(value)
        append(hit)
    if probe == len(values):
        return results
    if len(cache) > probe // 2:  # mostly distinct: remembering costs more than it saves
        results.extend(function(value) for value in values[probe:])
        return results
    for value in values[probe:]:
        key = value if value.__class__ is str else (value.__class__, value)
        try:
            hit = cache.get(key, _MISSING)
        except TypeError:
            append(function(value))
            continue
        if hit is _MISSING:
            hit = cache[key] = function(value)
        append(hit)
    return results


def normalize_column(
    values: Sequence[Any],
    field_type: str,
    *,
    scale: int | None = None,
    system: str | None = None,
    keep_unconvertible: bool = False,
) -> tuple[list[Any], dict[int, str]]:
    """:func:`normalize` over a whole column, once per distinct value.

    :param keep_unconvertible: give a value that cannot be read as ``field_type`` back
        as it is (a snapshot shows what the target holds) instead of None.
    :returns: the values and, per row that failed, the conversion message.
    """

    def one(value: Any) -> tuple[Any, str | None]:
        try:
            return normalize(value, field_type, scale=scale, system=system), None
        except ConversionError as exc:
            return (py(value) if keep_unconvertible else None), str(exc)

    pairs = map_values(values, one)
    errors = {row: message for row, (_, message) in enumerate(pairs) if message is not None}
    return [value for value, _ in pairs], errors


def rounded_positions(before: Sequence[Any], after: Sequence[Any]) -> list[int]:
    """Positions whose number lost decimal places on the way from ``before`` (the source's
    values) to ``after`` (normalized to the target's places): what a summary reports as
    rounded. Blanks and values that did not convert are not rounding. Decided once per
    distinct pair of values, as the finisher is."""
    positions: list[int] = []
    decided: dict[tuple[str, str], bool] = {}
    for position, (value, kept) in enumerate(zip(before, after, strict=True)):
        if kept is None or is_blank(value) or isinstance(value, bool):
            continue
        pair = (str(py(value)), repr(kept))
        lost = decided.get(pair)
        if lost is None:
            try:
                lost = Decimal(pair[0]) != Decimal(pair[1])
            except (InvalidOperation, ValueError):
                lost = False
            decided[pair] = lost
        if lost:
            positions.append(position)
    return positions
