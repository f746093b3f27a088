"""Field-level checks and wire/storage conversion shared by both emulated services.

The service apps call `validate_record` on every write body (already JSON-decoded) and
render the returned `Problem`s in their own error shape; nothing here knows HTTP.

Required-level semantics follow the real services:

* Dataverse enforces only `SystemRequired` on create; `ApplicationRequired` and
  `Recommended` are form-level rules that the Web API does not enforce (Microsoft's
  support article "Dataverse records are created without required fields" shows a
  record created through the Web API without its required columns). System-required
  columns the platform fills itself are exempt: the primary key, columns with a
  `default` or `auto_number`, and `ownerid` (the caller becomes owner). Clearing a
  system-required column with null is refused on create and on update.
* F&O enforces key fields and the mandatory fields of an entity (`Required.SYSTEM`).
  `dataAreaId` is exempt: an omitted company comes from the request's company
  context, which the F&O app fills in before it stores the row.

Storage representation (docs/design.md): strings TEXT, Int32/Int64 INTEGER,
Decimal/Double REAL, Boolean 0/1, DateTimeOffset TEXT `YYYY-MM-DDTHH:MM:SSZ` (UTC),
Edm.Date TEXT `YYYY-MM-DD`, Guid lowercase TEXT, F&O enums INTEGER member value.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Literal

from emulators.schema.model import EdmType, Field, Required

if TYPE_CHECKING:
    from emulators.schema.model import Catalog, Table

ProblemKind = Literal[
    "unknown_property",
    "wrong_type",
    "too_long",
    "invalid_option",
    "missing_required",
    "read_only",
    "invalid_enum",
]

LOOKUP_ATTRIBUTE_TYPES = frozenset({"Lookup", "Customer", "Owner"})

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: OData instance annotations and control information a client may send in a body.
_BIND_SUFFIX = "@odata.bind"

_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one property of a write body.

    `field` is the property as the client sent it (`name`, `_x_value`,
    `nav@odata.bind`); `detail` is a human sentence for the error message.
    """

    kind: ProblemKind
    field: str
    detail: str


# --- single values ---------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_datetime(text: str) -> datetime | None:
    """Parse an ISO 8601 timestamp with an offset (OData DateTimeOffset) into UTC."""
    if not _DATETIME_RE.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc)


def _parse_date(text: str) -> date | None:
    if not _DATE_RE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    # uuid.UUID also accepts braces/urn forms; OData Edm.Guid is the bare 8-4-4-4-12 form.
    return len(text) == 36


def validate_value(field: Field, value: object, *, catalog: Catalog) -> Problem | None:
    """Check one wire value against its field's type, length, choice options or enum.

    Null is a type error only for non-nullable fields; whether a null may clear a
    required field is `validate_record`'s business.
    """
    name = field.name
    if value is None:
        if not field.nullable:
            return Problem("wrong_type", name, f"Property '{name}' does not accept null.")
        return None
    edm = field.type
    if edm is EdmType.STRING:
        if not isinstance(value, str):
            return Problem("wrong_type", name, f"Property '{name}' expects a string.")
        if field.max_length is not None and len(value) > field.max_length:
            return Problem(
                "too_long",
                name,
                f"A value of length {len(value)} exceeds the maximum length {field.max_length} of '{name}'.",
            )
        return None
    if edm in (EdmType.INT32, EdmType.INT64):
        low, high = (INT32_MIN, INT32_MAX) if edm is EdmType.INT32 else (INT64_MIN, INT64_MAX)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return Problem("wrong_type", name, f"Property '{name}' expects an {edm.value} value.")
        if field.options is not None and value not in field.options:
            return Problem("invalid_option", name, f"{value} is not a valid option for '{name}'.")
        return None
    if edm in (EdmType.DECIMAL, EdmType.DOUBLE):
        if not _is_number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
            return Problem("wrong_type", name, f"Property '{name}' expects a number.")
        return None
    if edm is EdmType.BOOLEAN:
        if not isinstance(value, bool):
            return Problem("wrong_type", name, f"Property '{name}' expects true or false.")
        return None
    if edm is EdmType.DATETIMEOFFSET:
        if not isinstance(value, str) or _parse_datetime(value) is None:
            return Problem("wrong_type", name, f"Property '{name}' expects an ISO 8601 date and time.")
        return None
    if edm is EdmType.DATE:
        if not isinstance(value, str) or _parse_date(value) is None:
            return Problem("wrong_type", name, f"Property '{name}' expects a date (YYYY-MM-DD).")
        return None
    if edm is EdmType.GUID:
        if not isinstance(value, str) or not _is_guid(value):
            return Problem("wrong_type", name, f"Property '{name}' expects a GUID.")
        return None
    if edm is EdmType.ENUM:
        enum = catalog.enums.get(field.enum_type or "")
        if enum is None:  # a catalogue bug, not a client error
            raise KeyError(f"enum type {field.enum_type!r} of {name} is not registered")
        if not isinstance(value, str):
            return Problem("wrong_type", name, f"Property '{name}' expects a member name of {enum.name}.")
        if value not in enum.members:
            return Problem(
                "invalid_enum", name, f"'{value}' is not a member of {enum.qualified_name} ('{name}')."
            )
        return None
    raise AssertionError(f"unhandled type {edm}")  # pragma: no cover


# --- whole bodies ----------------------------------------------------------------------


def _is_annotation(key: str) -> bool:
    """Instance annotations (`@odata.type`, `x@OData.Community...`) are not properties."""
    return key.startswith("@") or ("@" in key and not key.endswith(_BIND_SUFFIX))


def _required_on_create(table: Table, field: Field, service: str) -> bool:
    if field.required is not Required.SYSTEM or field.read_only:
        return False
    if field.default is not None or field.auto_number is not None:
        return False
    if service == "dataverse":
        return field.name not in table.key and field.attribute_type != "Owner"
    return field.name != "dataAreaId"


def _validate_bind(table: Table, key: str, value: object) -> list[Problem]:
    navigation = key[: -len(_BIND_SUFFIX)]
    for lookup in table.lookups:
        if navigation in lookup.targets:
            column = table.field(lookup.column)
            if column is not None and column.read_only:
                return [Problem("read_only", key, f"'{lookup.column}' is set by the system.")]
            if value is None:
                return []  # null unbinds
            if not isinstance(value, str) or not value.strip():
                return [Problem("wrong_type", key, f"'{key}' expects an entity reference URL.")]
            return []
    return [
        Problem(
            "unknown_property",
            key,
            f"An undeclared navigation property '{navigation}' was found on '{table.logical_name}'.",
        )
    ]


def _lookup_column_for(table: Table, key: str) -> Field | None:
    """The lookup column behind a `_<column>_value` property, if `key` is one."""
    if key.startswith("_") and key.endswith("_value"):
        column = table.field(key[1:-6])
        if column is not None and column.attribute_type in LOOKUP_ATTRIBUTE_TYPES:
            return column
    return None


def validate_record(table: Table, body: dict, *, catalog: Catalog, for_create: bool) -> list[Problem]:
    """Every problem of a create (`for_create`) or update body, in body order.

    Dataverse bodies set lookups through `<nav>@odata.bind`; the lookup column and its
    `_<column>_value` read property are not writable.
    """
    service = catalog.service
    problems: list[Problem] = []
    bound_columns: set[str] = set()
    for key, value in body.items():
        if key.endswith(_BIND_SUFFIX) and service == "dataverse":
            found = _validate_bind(table, key, value)
            problems.extend(found)
            navigation = key[: -len(_BIND_SUFFIX)]
            bound_columns.update(
                lookup.column
                for lookup in table.lookups
                if navigation in lookup.targets and value is not None
            )
            continue
        if _is_annotation(key):
            continue
        field = table.field(key)
        if field is None or (service == "dataverse" and field.attribute_type in LOOKUP_ATTRIBUTE_TYPES):
            column = _lookup_column_for(table, key) if service == "dataverse" else None
            if column is not None:
                problems.append(
                    Problem("read_only", key, f"Set '{column.name}' through its navigation property.")
                )
            else:
                problems.append(
                    Problem(
                        "unknown_property",
                        key,
                        f"The property '{key}' does not exist on type '{table.logical_name}'.",
                    )
                )
            continue
        if field.read_only:
            problems.append(Problem("read_only", key, f"'{key}' is computed by the system."))
            continue
        if field.create_only and not for_create:
            problems.append(Problem("read_only", key, f"'{key}' can only be set on create."))
            continue
        problem = validate_value(field, value, catalog=catalog)
        if problem is not None:
            problems.append(problem)
            continue
        if value is None and field.required is Required.SYSTEM and field.name not in table.key:
            problems.append(Problem("missing_required", key, f"'{key}' is required and cannot be null."))
    if for_create:
        for field in table.fields:
            if not _required_on_create(table, field, service):
                continue
            if field.attribute_type in LOOKUP_ATTRIBUTE_TYPES:
                if field.name not in bound_columns:
                    problems.append(
                        Problem("missing_required", field.name, f"'{field.name}' is required on create.")
                    )
            elif body.get(field.name) is None and field.name not in {p.field for p in problems}:
                problems.append(
                    Problem("missing_required", field.name, f"'{field.name}' is required on create.")
                )
    return problems


# --- wire <-> storage ------------------------------------------------------------------


def _resolve(table: Table, field: Field | str) -> Field:
    if isinstance(field, Field):
        return field
    found = table.field(field)
    if found is None:
        raise KeyError(f"{table.entity_set} has no field {field!r}")
    return found


def _enum_catalog(catalog: Catalog | None) -> Catalog:
    if catalog is not None:
        return catalog
    from emulators.schema.fno import CATALOG  # local: fno imports nothing from here

    return CATALOG


def format_datetime(moment: datetime) -> str:
    """The one stored (and served) timestamp form: UTC, second precision, `Z`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_storage(table: Table, field: Field | str, value: object, *, catalog: Catalog | None = None) -> object:
    """Convert a validated wire value to its SQLite representation.

    Sub-second precision is dropped (both services return whole seconds). `catalog`
    resolves F&O enum names; it defaults to the F&O catalogue.
    """
    field = _resolve(table, field)
    if value is None:
        return None
    edm = field.type
    if edm is EdmType.BOOLEAN:
        return 1 if value else 0
    if edm is EdmType.DATETIMEOFFSET:
        parsed = _parse_datetime(str(value))
        if parsed is None:
            raise ValueError(f"{field.name}: not a DateTimeOffset: {value!r}")
        return format_datetime(parsed)
    if edm is EdmType.GUID:
        return str(uuid.UUID(str(value)))
    if edm is EdmType.ENUM:
        enum = _enum_catalog(catalog).enums[field.enum_type or ""]
        return enum.members[str(value)]
    if edm in (EdmType.DECIMAL, EdmType.DOUBLE):
        return float(value)  # type: ignore[arg-type]
    if edm in (EdmType.INT32, EdmType.INT64):
        return int(value)  # type: ignore[call-overload]
    return value


def from_storage(
    table: Table, field: Field | str, value: object, *, catalog: Catalog | None = None
) -> object:
    """Convert a stored value back to its JSON wire form.

    Whole-number decimals come back as ints only if they were stored as such; REAL
    columns return floats, which JSON renders the way both services do (`12.5`).
    """
    field = _resolve(table, field)
    if value is None:
        return None
    edm = field.type
    if edm is EdmType.BOOLEAN:
        return bool(value)
    if edm is EdmType.ENUM:
        enum = _enum_catalog(catalog).enums[field.enum_type or ""]
        for member, number in enum.members.items():
            if number == value:
                return member
        raise ValueError(f"{field.name}: {value!r} is not a value of {enum.name}")
    if edm in (EdmType.DECIMAL, EdmType.DOUBLE):
        return float(value)  # type: ignore[arg-type]
    return value
