"""Compare the mappings with the live ``$metadata`` of both services before writing.

A mapping names entity sets and fields by hand; a typo, a field missing in this F&O
version, or a Dataverse column the P2C solution did not install would otherwise surface
as a 400 on the first write (or, worse, as a silently empty column on read). This reads
each service's CSDL once through the hooks' ``get_metadata()`` and reports every mapped
entity, column, navigation property, type and enum member that does not exist.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prospect_to_cash.sync.errors import MetadataMismatch
from prospect_to_cash.sync.limits import Facets

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prospect_to_cash.sync.mapping import FieldMapping, Task, Template

_EDM = "http://docs.oasis-open.org/odata/ns/edm"

#: Which wire types a mapping type may be written to / read from.
COMPATIBLE: dict[str, tuple[str, ...]] = {
    "string": ("Edm.String",),
    "int": ("Edm.Int32", "Edm.Int64", "Edm.Int16", "Edm.Byte"),
    "option": ("Edm.Int32", "Edm.Int64", "Edm.Int16"),
    "decimal": ("Edm.Decimal", "Edm.Double", "Edm.Single", "Edm.Int32", "Edm.Int64"),
    "bool": ("Edm.Boolean",),
    "datetime": ("Edm.DateTimeOffset", "Edm.Date"),
    "date": ("Edm.Date", "Edm.DateTimeOffset"),
    "guid": ("Edm.Guid",),
}


@dataclass
class EntityShape:
    """What one entity set exposes: properties with types, navigation property names."""

    entity_set: str
    properties: dict[str, str] = field(default_factory=dict)
    navigation: set[str] = field(default_factory=set)
    facets: dict[str, Facets] = field(default_factory=dict)  # MaxLength, Precision, Scale


@dataclass
class ServiceMetadata:
    entity_sets: dict[str, EntityShape]
    enums: dict[str, set[str]]  # qualified enum type name -> member names


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _whole(text: str | None) -> int | None:
    """A numeric facet; None when absent or symbolic (``Scale="Variable"``, ``MaxLength="max"``)."""
    return int(text) if text is not None and text.isdigit() else None


def _facets(node: ET.Element) -> Facets:
    return Facets(
        node.get("Type", ""),
        max_length=_whole(node.get("MaxLength")),
        precision=_whole(node.get("Precision")),
        scale=_whole(node.get("Scale")),
    )


def parse_csdl(xml_text: str) -> ServiceMetadata:
    """Entity sets, their properties (with base types merged) and enum members."""
    root = ET.fromstring(xml_text)
    types: dict[str, dict[str, Any]] = {}
    enums: dict[str, set[str]] = {}
    sets: dict[str, str] = {}
    for schema in root.iter():
        if _local(schema.tag) != "Schema":
            continue
        namespace = schema.get("Namespace", "")
        alias = schema.get("Alias")
        for node in schema:
            kind = _local(node.tag)
            if kind == "EntityType":
                entry = {
                    "base": node.get("BaseType"),
                    "properties": {
                        p.get("Name", ""): p.get("Type", "") for p in node if _local(p.tag) == "Property"
                    },
                    "navigation": {p.get("Name", "") for p in node if _local(p.tag) == "NavigationProperty"},
                    "facets": {p.get("Name", ""): _facets(p) for p in node if _local(p.tag) == "Property"},
                }
                types[f"{namespace}.{node.get('Name')}"] = entry
                if alias:
                    types[f"{alias}.{node.get('Name')}"] = entry
            elif kind == "EnumType":
                members = {m.get("Name", "") for m in node if _local(m.tag) == "Member"}
                enums[f"{namespace}.{node.get('Name')}"] = members
                if alias:
                    enums[f"{alias}.{node.get('Name')}"] = members
            elif kind == "EntityContainer":
                for item in node:
                    if _local(item.tag) == "EntitySet":
                        sets[item.get("Name", "")] = item.get("EntityType", "")

    def collect(type_name: str, seen: set[str]) -> tuple[dict[str, str], set[str], dict[str, Facets]]:
        entry = types.get(type_name)
        if entry is None or type_name in seen:
            return {}, set(), {}
        seen.add(type_name)
        properties, navigation, facets = ({}, set(), {})
        if entry["base"]:
            properties, navigation, facets = collect(entry["base"], seen)
        return (
            {**properties, **entry["properties"]},
            navigation | entry["navigation"],
            {**facets, **entry["facets"]},
        )

    shapes = {}
    for name, type_name in sets.items():
        properties, navigation, facets = collect(type_name, set())
        shapes[name] = EntityShape(name, properties, navigation, facets)
    return ServiceMetadata(shapes, enums)


@dataclass(frozen=True)
class Problem:
    template: str
    task: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.template}.yaml: task {self.task!r}, {self.subject}: {self.message}"


class _Checker:
    def __init__(self, template: Template, metadata: dict[str, ServiceMetadata]) -> None:
        self.template = template
        self.metadata = metadata
        self.problems: list[Problem] = []

    def add(self, task: Task, subject: str, message: str) -> None:
        self.problems.append(Problem(self.template.name, task.name, subject, message))

    def shape(self, task: Task, system: str, entity_set: str, subject: str) -> EntityShape | None:
        found = self.metadata[system].entity_sets.get(entity_set)
        if found is None:
            self.add(task, subject, f"entity set {entity_set!r} does not exist in {system} $metadata")
        return found

    def columns(self, task: Task, shape: EntityShape, columns: Iterable[str], subject: str) -> None:
        for column in columns:
            if column not in shape.properties:
                self.add(task, f"{subject} {column!r}", f"{shape.entity_set} has no property {column!r}")

    def check_field(self, task: Task, shape: EntityShape, mapping: FieldMapping) -> None:
        subject = f"field {mapping.target!r}"
        system = task.target_system
        if mapping.is_bind:
            navigations = [mapping.bind.navigation] if mapping.bind else []
            if mapping.lookup is not None:
                navigations += [c.bind.navigation for c in mapping.lookup.candidates if c.bind]
            for navigation in navigations:
                if navigation not in shape.navigation:
                    self.add(task, subject, f"{shape.entity_set} has no navigation property {navigation!r}")
            if mapping.snapshot_column not in shape.properties:
                self.add(
                    task, subject, f"{shape.entity_set} has no lookup property {mapping.snapshot_column!r}"
                )
            return
        wire = shape.properties.get(mapping.target)
        if wire is None:
            self.add(task, subject, f"{shape.entity_set} has no property {mapping.target!r}")
            return
        if mapping.type == "enum":
            members = self.metadata[system].enums.get(wire)
            if members is None:
                self.add(task, subject, f"declared enum but {shape.entity_set}.{mapping.target} is {wire}")
                return
            candidates = [mapping.constant] if mapping.kind == "constant" else []
            if mapping.value_map is not None:
                candidates += list(mapping.value_map.entries.values())
            for value in candidates:
                if value is not None and str(value) not in members:
                    self.add(
                        task, subject, f"{value!r} is not a member of {wire} ({', '.join(sorted(members))})"
                    )
            return
        allowed = COMPATIBLE.get(mapping.type, ())
        if wire not in allowed:
            self.add(
                task, subject, f"mapped as {mapping.type} but {shape.entity_set}.{mapping.target} is {wire}"
            )

    def check_task(self, task: Task) -> None:
        source = self.shape(task, task.source_system, task.source.entity_set, "source")
        if source is not None:
            self.columns(task, source, task.source_columns, "source column")
        target = self.shape(task, task.target_system, task.target.entity_set, "target")
        if target is not None:
            for mapping in task.fields:
                if mapping.write:
                    self.check_field(task, target, mapping)
            self.columns(task, target, task.snapshot_columns, "snapshot column")
        for reference in task.references:
            system = task.source_system if reference.side == "source" else task.target_system
            shape = self.shape(task, system, reference.entity_set, f"reference {reference.name!r}")
            if shape is not None:
                self.columns(
                    task,
                    shape,
                    task.reference_columns(reference.name),
                    f"reference {reference.name!r} column",
                )


def fetch_metadata(hooks: Any, systems: Iterable[str]) -> dict[str, ServiceMetadata]:
    """Read and parse ``$metadata`` once per system through the hooks."""
    return {system: parse_csdl(hooks.for_system(system).get_metadata()) for system in set(systems)}


def check_template(
    template: Template,
    hooks: Any,
    *,
    metadata: dict[str, ServiceMetadata] | None = None,
    raise_on_problems: bool = False,
) -> list[Problem]:
    """Every mapped entity and field of ``template`` against the live metadata.

    :param hooks: an object with ``for_system(system)`` returning a hook with
        ``get_metadata()`` (``runner.SyncHooks``).
    :param raise_on_problems: raise :class:`MetadataMismatch` listing all problems.
    """
    metadata = metadata or fetch_metadata(hooks, (template.source_system, template.target_system))
    checker = _Checker(template, metadata)
    for task in template.tasks:
        checker.check_task(task)
    if checker.problems and raise_on_problems:
        raise MetadataMismatch(
            f"{Path(template.path).name} does not match the services' $metadata:\n"
            + "\n".join(str(p) for p in checker.problems)
        )
    return checker.problems


def check_templates(templates: Iterable[Template], hooks: Any) -> list[Problem]:
    """All templates, fetching each service's metadata only once."""
    templates = list(templates)
    metadata = fetch_metadata(hooks, {s for t in templates for s in (t.source_system, t.target_system)})
    problems: list[Problem] = []
    for template in templates:
        problems.extend(check_template(template, hooks, metadata=metadata))
    return problems
