"""Rows on the wire: what a Dataverse table looks like in JSON, and what a write body means.

Reads: every column is a property under its logical name except lookups, which read as
``_<column>_value`` (a GUID) and carry, when asked, the target's primary name as
``FormattedValue``, the target table as ``lookuplogicalname`` and the navigation property
as ``associatednavigationproperty``. Choice and yes/no columns get their label as
``FormattedValue``, whole numbers their grouped form.

Writes: a body is checked by `emulators.schema.validate.validate_record`, each problem
rendered as the error Dataverse gives for it (`emulators.dataverse.errors`); lookups are
set through ``<navigation>@odata.bind`` with an entity URL, never through the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emulators.dataverse import errors
from emulators.dataverse.prefer import (
    ASSOCIATED_NAVIGATION,
    FORMATTED_VALUE,
    LOOKUP_LOGICAL_NAME,
    Preferences,
)
from emulators.schema.model import EdmType
from emulators.schema.validate import LOOKUP_ATTRIBUTE_TYPES, from_storage, validate_record

if TYPE_CHECKING:
    from collections.abc import Callable

    from emulators.odata.errors import ODataError
    from emulators.schema.model import Catalog, Field, Lookup, Table
    from emulators.schema.validate import Problem

BIND_SUFFIX = "@odata.bind"
CRM_TYPE_PREFIX = "Microsoft.Dynamics.CRM."


@dataclass(frozen=True)
class Property:
    """A wire property and where it lives in storage."""

    name: str  # wire name: `name`, `_customerid_value`
    column: str  # storage column
    field: Field | None
    lookup: Lookup | None = None

    @property
    def kind(self) -> EdmType:
        return (
            EdmType.GUID if self.lookup is not None else (self.field.type if self.field else EdmType.STRING)
        )


def is_lookup_field(field: Field) -> bool:
    return field.attribute_type in LOOKUP_ATTRIBUTE_TYPES


def wire_properties(table: Table) -> list[Property]:
    """Every property a row of ``table`` has on the wire, in catalogue order."""
    lookups = {lookup.column: lookup for lookup in table.lookups}
    props: list[Property] = []
    seen: set[str] = set()
    for field in table.fields:
        lookup = lookups.get(field.name)
        if lookup is not None or is_lookup_field(field):
            if lookup is None:
                continue  # a lookup column without navigation: not exposed
            props.append(Property(lookup.value_property, field.name, field, lookup))
        else:
            props.append(Property(field.name, field.name, field))
        seen.add(field.name)
    for lookup in table.lookups:  # lookups the catalogue did not also declare as fields
        if lookup.column not in seen:
            props.append(Property(lookup.value_property, lookup.column, None, lookup))
    return props


def property_map(table: Table) -> dict[str, Property]:
    return {prop.name: prop for prop in wire_properties(table)}


def set_column(lookup: Lookup) -> str | None:
    """The storage column holding a polymorphic lookup's target entity set."""
    return f"{lookup.column}__set" if len(set(lookup.targets.values())) > 1 else None


def lookup_target(lookup: Lookup, row: dict[str, Any]) -> tuple[str, str] | None:
    """(navigation property, target entity set) of a lookup value in a stored row."""
    if len(lookup.targets) == 1:
        return next(iter(lookup.targets.items()))
    target_set = row.get(f"{lookup.column}__set")
    for navigation, entity_set in lookup.targets.items():
        if entity_set == target_set:
            return navigation, entity_set
    return None


def storage_columns(table: Table, props: list[Property]) -> list[str]:
    """Storage columns needed to render ``props`` (lookups also need their target set)."""
    columns: list[str] = []
    for prop in props:
        columns.append(prop.column)
        if prop.lookup is not None and (extra := set_column(prop.lookup)):
            columns.append(extra)
    if table.field("versionnumber") is not None:
        columns.append("versionnumber")
    columns.append(table.key[0])
    return list(dict.fromkeys(columns))


def etag(row: dict[str, Any]) -> str | None:
    version = row.get("versionnumber")
    return None if version is None else f'W/"{version}"'


def format_value(field: Field, value: Any) -> str | None:
    """The FormattedValue of a non-lookup column, where the emulator knows one."""
    if value is None:
        return None
    if field.options is not None:
        key = int(value) if isinstance(value, bool) else value
        text = field.options.get(key)
        return None if text is None else text
    if field.type in (EdmType.INT32, EdmType.INT64) and isinstance(value, int):
        return f"{value:,}"
    return None


class Renderer:
    """Turns stored rows into JSON entities for one response.

    :param names: callback ``(entity_set, ids) -> {id: primary name}`` used for lookup
        FormattedValues (called once per target table and page, not per row).
    """

    def __init__(
        self,
        catalog: Catalog,
        table: Table,
        props: list[Property],
        prefs: Preferences,
        names: Callable[[str, list[str]], dict[str, Any]],
    ) -> None:
        self.catalog = catalog
        self.table = table
        self.props = props
        self.prefs = prefs
        self.names = names
        self.formatted = prefs.wants(FORMATTED_VALUE)
        self.logical = prefs.wants(LOOKUP_LOGICAL_NAME)
        self.navigation = prefs.wants(ASSOCIATED_NAVIGATION)

    def render(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        lookup_names = self._lookup_names(rows) if self.formatted else {}
        return [self._entity(row, lookup_names) for row in rows]

    def _lookup_names(self, rows: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        wanted: dict[str, set[str]] = {}
        for prop in self.props:
            if prop.lookup is None:
                continue
            for row in rows:
                value = row.get(prop.column)
                target = lookup_target(prop.lookup, row) if value else None
                if target is not None:
                    wanted.setdefault(target[1], set()).add(value)  # type: ignore[arg-type]
        found: dict[tuple[str, str], Any] = {}
        for entity_set, ids in wanted.items():
            for row_id, name in self.names(entity_set, sorted(ids)).items():
                found[(entity_set, row_id)] = name
        return found

    def _entity(self, row: dict[str, Any], lookup_names: dict[tuple[str, str], Any]) -> dict[str, Any]:
        entity: dict[str, Any] = {}
        tag = etag(row)
        if tag is not None:
            entity["@odata.etag"] = tag
        for prop in self.props:
            value = row.get(prop.column)
            if prop.lookup is not None:
                target = lookup_target(prop.lookup, row) if value is not None else None
                if target is not None:
                    navigation, entity_set = target
                    if self.formatted and (entity_set, value) in lookup_names:
                        entity[f"{prop.name}@{FORMATTED_VALUE}"] = lookup_names[(entity_set, value)]
                    if self.navigation:
                        entity[f"{prop.name}@{ASSOCIATED_NAVIGATION}"] = navigation
                    if self.logical:
                        target_table = self.catalog.tables.get(entity_set)
                        logical = target_table.logical_name if target_table else entity_set
                        entity[f"{prop.name}@{LOOKUP_LOGICAL_NAME}"] = logical
                entity[prop.name] = value
                continue
            assert prop.field is not None
            wire = from_storage(self.table, prop.field, value, catalog=self.catalog)
            if self.formatted and (text := format_value(prop.field, wire)) is not None:
                entity[f"{prop.name}@{FORMATTED_VALUE}"] = text
            entity[prop.name] = wire
        return entity


# --- write bodies ----------------------------------------------------------------------


def problem_error(table: Table, body: dict[str, Any], problem: Problem) -> ODataError:
    """The Dataverse error for one validation problem."""
    entity_set, logical = table.entity_set, table.logical_name
    name = problem.field
    if problem.kind == "unknown_property":
        if name.endswith(BIND_SUFFIX):
            return errors.undeclared_navigation(entity_set, name[: -len(BIND_SUFFIX)])
        return errors.property_does_not_exist(entity_set, logical, name)
    field = table.field(name)
    if problem.kind == "too_long" and field is not None and field.max_length is not None:
        return errors.string_too_long(logical, name, field.max_length)
    if problem.kind == "invalid_option" and field is not None:
        return errors.option_out_of_range(logical, name, body.get(name), sorted(field.options or {}))
    if problem.kind == "wrong_type":
        if name.endswith(BIND_SUFFIX):
            return errors.bind_not_a_reference(entity_set, name[: -len(BIND_SUFFIX)], body.get(name))
        edm = field.type.value if field is not None else "Edm.String"
        return errors.cannot_convert(entity_set, body.get(name), edm)
    if problem.kind == "missing_required":
        return errors.required_missing(logical, name)
    if problem.kind == "read_only":
        return errors.read_only(logical, name, problem.detail)
    return errors.payload_error(entity_set, problem.detail)


def check_body(table: Table, body: Any, catalog: Catalog, *, for_create: bool) -> dict[str, Any]:
    """Validate a write body; raise the first problem as Dataverse's error."""
    if not isinstance(body, dict):
        raise errors.payload_error(
            table.entity_set,
            "A node of type 'StartArray' was read from the JSON reader when trying to read "
            "the start of an entry. A 'StartObject' node was expected.",
        )
    odata_type = body.get("@odata.type")
    if odata_type is not None:
        expected = f"{CRM_TYPE_PREFIX}{table.logical_name}"
        if not isinstance(odata_type, str) or odata_type.lstrip("#") != expected:
            raise errors.payload_error(
                table.entity_set,
                f"A resource with type '{str(odata_type).lstrip('#')}' was found, but it is not assignable "
                f"to the expected type '{expected}'. The type specified in the resource must be equal to "
                "either the expected type or a derived type.",
            )
    problems = validate_record(table, body, catalog=catalog, for_create=for_create)
    if problems:
        raise problem_error(table, body, problems[0])
    return body
