"""``$metadata`` (CSDL, EDMX 4.0 XML) of each emulated service, generated from its ``Catalog``.

Clients read ``$metadata`` to learn keys, types, lengths and enum members; generating it
from the same declarations that drive storage and validation means the document can
never disagree with what the emulator accepts.

Shapes follow the real documents:

* Dataverse: schema ``Microsoft.Dynamics.CRM`` alias ``mscrm``; every table is an
  ``EntityType`` named by its logical name deriving from the abstract
  ``mscrm.crmbaseentity``; a lookup column appears as an ``Edm.Guid`` property
  ``_<column>_value`` plus one ``NavigationProperty`` per target, each with its
  ``ReferentialConstraint``; alternate keys are ``OData.Community.Keys.V1.AlternateKeys``
  annotations; the container is ``System``. ``CreateMultiple``/``UpsertMultiple`` are
  declared as actions bound to the collections of the tables that support them (the real
  service binds them to ``crmbaseentity`` and answers per table through
  ``sdkmessagefilters``; per-table overloads say the same thing inside the document).
* F&O: schema ``Microsoft.Dynamics.DataEntities`` with ``EnumType`` elements, one
  ``EntityType`` per data entity (named by its logical name, e.g. ``CustomerV3``), keys in
  declared order, enum-typed properties, ``Nullable="false"`` where the model says so, and
  the container ``Resources``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

from emulators.schema.model import EdmType

if TYPE_CHECKING:
    from emulators.schema.model import Catalog, Field, Table

EDMX_NS = "http://docs.oasis-open.org/odata/ns/edmx"
EDM_NS = "http://docs.oasis-open.org/odata/ns/edm"
DATAVERSE_NAMESPACE = "Microsoft.Dynamics.CRM"
DATAVERSE_ALIAS = "mscrm"
FNO_NAMESPACE = "Microsoft.Dynamics.DataEntities"
KEYS_VOCABULARY = "OData.Community.Keys.V1"
DISPLAY_VOCABULARY = "OData.Community.Display.V1"
CAPABILITIES_VOCABULARY = "Org.OData.Capabilities.V1"

# Dataverse bulk messages declared for tables with ``supports_multiple``.
BULK_ACTIONS = ("CreateMultiple", "UpsertMultiple")


@dataclass
class _Element:
    """A minimal XML element; serialised by hand so namespace declarations sit where
    the real documents put them (``xmlns`` on ``Schema``, ``xmlns:edmx`` on the root)."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[_Element] = field(default_factory=list)
    text: str | None = None

    def add(self, tag: str, **attrs: str) -> _Element:
        child = _Element(tag, {key.rstrip("_"): value for key, value in attrs.items()})
        self.children.append(child)
        return child

    def render(self, out: list[str], depth: int = 0) -> None:
        pad = "  " * depth
        attrs = "".join(f" {name}={quoteattr(value)}" for name, value in self.attrs.items())
        if not self.children and self.text is None:
            out.append(f"{pad}<{self.tag}{attrs} />")
            return
        if not self.children:
            out.append(f"{pad}<{self.tag}{attrs}>{escape(self.text or '')}</{self.tag}>")
            return
        out.append(f"{pad}<{self.tag}{attrs}>")
        for child in self.children:
            child.render(out, depth + 1)
        out.append(f"{pad}</{self.tag}>")


def _document(root: _Element) -> str:
    lines = ['<?xml version="1.0" encoding="utf-8"?>']
    root.render(lines)
    return "\n".join(lines) + "\n"


def _edmx(references: tuple[tuple[str, str, str], ...] = ()) -> tuple[_Element, _Element]:
    """The ``edmx:Edmx`` root with vocabulary references, and its ``edmx:DataServices``."""
    root = _Element("edmx:Edmx", {"Version": "4.0", "xmlns:edmx": EDMX_NS})
    for uri, namespace, alias in references:
        reference = root.add("edmx:Reference", Uri=uri)
        reference.add("edmx:Include", Namespace=namespace, Alias=alias)
        reference.add("edmx:IncludeAnnotations", TermNamespace=namespace)
    return root, root.add("edmx:DataServices")


def _property(parent: _Element, column: Field, type_name: str, *, nullable: bool | None = None) -> None:
    attrs = {"Name": column.name, "Type": type_name}
    is_nullable = column.nullable if nullable is None else nullable
    if not is_nullable:
        attrs["Nullable"] = "false"
    if column.type == EdmType.STRING and column.max_length is not None:
        attrs["MaxLength"] = str(column.max_length)
    if column.precision is not None:
        attrs["Precision"] = str(column.precision)
    if column.scale is not None:
        attrs["Scale"] = str(column.scale)
    parent.children.append(_Element("Property", attrs))


def _key(entity: _Element, table: Table) -> None:
    key = entity.add("Key")
    for name in table.key:
        if table.field(name) is None:
            raise ValueError(f"{table.entity_set}: key property {name!r} is not a declared field")
        key.add("PropertyRef", Name=name)


def _unique_logical_names(catalog: Catalog) -> None:
    seen: set[str] = set()
    for table in catalog.tables.values():
        if table.logical_name in seen:
            raise ValueError(f"two tables share the logical name {table.logical_name!r}")
        seen.add(table.logical_name)


# ---------------------------------------------------------------------------
# Dataverse
# ---------------------------------------------------------------------------


def dataverse_csdl(catalog: Catalog, *, annotations: bool = False) -> str:
    """The Dataverse Web API ``$metadata`` document for ``catalog``.

    With ``annotations`` (``$metadata?annotations=true``), entity sets of tables with change
    tracking carry ``Org.OData.Capabilities.V1.ChangeTracking`` ``Supported=true``
    (use-change-tracking-synchronize-data-external-systems.md).
    """
    _unique_logical_names(catalog)
    references = [
        (f"http://vocabularies.odata.org/{KEYS_VOCABULARY}.xml", KEYS_VOCABULARY, "Keys"),
        (f"http://vocabularies.odata.org/{DISPLAY_VOCABULARY}.xml", DISPLAY_VOCABULARY, "Display"),
    ]
    if annotations:
        references.append(
            (
                f"http://vocabularies.odata.org/{CAPABILITIES_VOCABULARY}.xml",
                CAPABILITIES_VOCABULARY,
                "Capabilities",
            )
        )
    root, services = _edmx(tuple(references))
    schema = services.add("Schema", Namespace=DATAVERSE_NAMESPACE, Alias=DATAVERSE_ALIAS, xmlns=EDM_NS)
    schema.add("EntityType", Name="crmbaseentity", Abstract="true")
    for table in catalog.tables.values():
        _dataverse_entity_type(schema, table, catalog)
    bulk_tables = [table for table in catalog.tables.values() if table.supports_multiple]
    if bulk_tables:
        for action in BULK_ACTIONS:
            response = schema.add("ComplexType", Name=f"{action}Response")
            response.add("Property", Name="Ids", Type="Collection(Edm.Guid)", Nullable="false")
        for action in BULK_ACTIONS:
            for table in bulk_tables:
                element = schema.add("Action", Name=action, IsBound="true")
                element.add(
                    "Parameter",
                    Name="entityset",
                    Type=f"Collection({DATAVERSE_ALIAS}.{table.logical_name})",
                    Nullable="false",
                )
                element.add(
                    "Parameter",
                    Name="Targets",
                    Type=f"Collection({DATAVERSE_ALIAS}.crmbaseentity)",
                    Nullable="false",
                )
                element.add("ReturnType", Type=f"{DATAVERSE_ALIAS}.{action}Response", Nullable="false")
    container = schema.add("EntityContainer", Name="System")
    for table in catalog.tables.values():
        entity_set = container.add(
            "EntitySet", Name=table.entity_set, EntityType=f"{DATAVERSE_NAMESPACE}.{table.logical_name}"
        )
        if annotations and table.change_tracking:
            tracking = entity_set.add("Annotation", Term=f"{CAPABILITIES_VOCABULARY}.ChangeTracking")
            tracking.add("Record").add("PropertyValue", Property="Supported", Bool="true")
        for lookup in table.lookups:
            for navigation, target_set in lookup.targets.items():
                if target_set in catalog.tables:
                    entity_set.add("NavigationPropertyBinding", Path=navigation, Target=target_set)
    return _document(root)


def _dataverse_entity_type(schema: _Element, table: Table, catalog: Catalog) -> None:
    if len(table.key) != 1:
        raise ValueError(f"{table.entity_set}: a Dataverse table has exactly one primary key column")
    entity = schema.add("EntityType", Name=table.logical_name, BaseType=f"{DATAVERSE_ALIAS}.crmbaseentity")
    _key(entity, table)
    lookup_columns = {lookup.column for lookup in table.lookups}
    for column in table.fields:
        if column.name in lookup_columns:
            continue  # a lookup column is only visible as _<column>_value
        if column.type == EdmType.ENUM:
            raise ValueError(f"{table.entity_set}.{column.name}: Dataverse has no enum-typed properties")
        # The primary key is never null; other Dataverse columns are declared nullable.
        _property(entity, column, column.type.value, nullable=column.name not in table.key)
    for lookup in table.lookups:
        entity.add("Property", Name=lookup.value_property, Type=EdmType.GUID.value)
    for lookup in table.lookups:
        for navigation, target_set in lookup.targets.items():
            target = catalog.tables.get(target_set)
            target_type = target.logical_name if target is not None else "crmbaseentity"
            nav = entity.add("NavigationProperty", Name=navigation, Type=f"{DATAVERSE_ALIAS}.{target_type}")
            if target is not None:
                nav.add(
                    "ReferentialConstraint", Property=lookup.value_property, ReferencedProperty=target.key[0]
                )
    if table.alternate_keys:
        _alternate_keys(entity, table)


def _alternate_keys(entity: _Element, table: Table) -> None:
    annotation = entity.add("Annotation", Term=f"{KEYS_VOCABULARY}.AlternateKeys")
    keys = annotation.add("Collection")
    for alternate in table.alternate_keys:
        record = keys.add("Record", Type=f"{KEYS_VOCABULARY}.AlternateKey")
        value = record.add("PropertyValue", Property="Key")
        parts = value.add("Collection")
        for column in alternate.columns:
            ref = parts.add("Record", Type=f"{KEYS_VOCABULARY}.PropertyRef")
            ref.add("PropertyValue", Property="Alias", String=column)
            ref.add("PropertyValue", Property="Name", PropertyPath=column)


# ---------------------------------------------------------------------------
# Finance and Operations
# ---------------------------------------------------------------------------


def fno_csdl(catalog: Catalog) -> str:
    """The F&O OData ``$metadata`` document for ``catalog``."""
    _unique_logical_names(catalog)
    root, services = _edmx()
    schema = services.add("Schema", Namespace=FNO_NAMESPACE, xmlns=EDM_NS)
    for table in catalog.tables.values():
        entity = schema.add("EntityType", Name=table.logical_name)
        _key(entity, table)
        for column in table.fields:
            if column.type == EdmType.ENUM:
                if not column.enum_type or column.enum_type not in catalog.enums:
                    raise ValueError(
                        f"{table.entity_set}.{column.name}: enum type {column.enum_type!r} "
                        "is not in the catalogue"
                    )
                type_name = f"{FNO_NAMESPACE}.{column.enum_type}"
            else:
                type_name = column.type.value
            _property(entity, column, type_name)
    for enum in catalog.enums.values():
        element = schema.add("EnumType", Name=enum.name)
        for member, value in sorted(enum.members.items(), key=lambda item: item[1]):
            element.add("Member", Name=member, Value=str(value))
    container = schema.add("EntityContainer", Name="Resources")
    for table in catalog.tables.values():
        container.add("EntitySet", Name=table.entity_set, EntityType=f"{FNO_NAMESPACE}.{table.logical_name}")
    return _document(root)


def build_csdl(catalog: Catalog, *, annotations: bool = False) -> str:
    """``$metadata`` for a catalogue of either service (chosen by ``catalog.service``);
    ``annotations`` adds Dataverse's capability annotations."""
    if catalog.service == "dataverse":
        return dataverse_csdl(catalog, annotations=annotations)
    if catalog.service == "fno":
        return fno_csdl(catalog)
    raise ValueError(f"unknown service {catalog.service!r}")
