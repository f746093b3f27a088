"""The data model every emulator table is declared in.

One declaration drives storage (SQLite columns), validation (types, lengths, options,
required fields, lookups), `$metadata` CSDL and Dataverse `EntityDefinitions`, so the
three can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property


class EdmType(str, Enum):
    """Wire types used by both services (OData v4 primitive types plus F&O enums)."""

    STRING = "Edm.String"
    INT32 = "Edm.Int32"
    INT64 = "Edm.Int64"
    DECIMAL = "Edm.Decimal"
    DOUBLE = "Edm.Double"
    BOOLEAN = "Edm.Boolean"
    DATETIMEOFFSET = "Edm.DateTimeOffset"
    DATE = "Edm.Date"
    GUID = "Edm.Guid"
    ENUM = "Enum"  # F&O enum: `enum_type` names the type, JSON carries the member name


class Required(str, Enum):
    """Dataverse required levels; F&O uses NONE or SYSTEM (key / mandatory fields)."""

    NONE = "None"
    RECOMMENDED = "Recommended"
    APPLICATION = "ApplicationRequired"
    SYSTEM = "SystemRequired"


@dataclass(frozen=True)
class Field:
    """One column (Dataverse) or property (F&O).

    `options` lists the allowed integer values of a Dataverse choice column (Picklist,
    State, Status) with their labels. `attribute_type` is the Dataverse attribute type
    name (String, Memo, Money, Picklist, ...), used for EntityDefinitions; F&O leaves it
    empty. `read_only` columns are computed or system-set and refused on write; `create_only`
    ones are accepted on create and refused on update (Dataverse IsValidForUpdate false).
    `default` is the wire value the service fills in on create when the request omits
    the field (Dataverse `statecode`, F&O zero decimals); `auto_number` is a Dataverse
    `AutoNumberFormat` (e.g. `QUO-{SEQNUM:5}-{RANDSTRING:6}`) the service uses to fill
    an omitted number column. Either makes a required field optional in requests.
    `option_states` (a Dataverse Status column) names the state each status reason belongs
    to (``StatusOptionMetadata.State``); `default_statuses` (a State column) the status a
    state gets when a write sets only the state (``StateOptionMetadata.DefaultStatus``).
    """

    name: str
    type: EdmType
    max_length: int | None = None
    required: Required = Required.NONE
    nullable: bool = True
    options: dict[int, str] | None = None
    enum_type: str | None = None
    attribute_type: str = ""
    read_only: bool = False
    create_only: bool = False
    precision: int | None = None
    precision_source: int | None = None  # Dataverse money: MoneyAttributeMetadata.PrecisionSource
    scale: int | None = None
    description: str = ""
    default: object = None
    auto_number: str | None = None
    option_states: dict[int, int] | None = None
    default_statuses: dict[int, int] | None = None


@dataclass(frozen=True)
class Lookup:
    """A Dataverse single-valued lookup column.

    The column itself is not an entity property: reads expose `_<column>_value`, writes
    go through `<navigation>@odata.bind`. A customer-type lookup has one navigation
    property per target (`customerid_account`, `customerid_contact`), hence the mapping
    from navigation property name to target entity set.
    """

    column: str
    targets: dict[str, str]  # navigation property -> target entity set
    required: Required = Required.NONE

    @property
    def value_property(self) -> str:
        return f"_{self.column}_value"


@dataclass(frozen=True)
class AlternateKey:
    """A Dataverse alternate key (`/<set>(col='v')`), or an F&O secondary index."""

    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class EnumType:
    """An F&O enum (namespace Microsoft.Dynamics.DataEntities); members are Int32-backed."""

    name: str
    members: dict[str, int]

    @property
    def qualified_name(self) -> str:
        return f"Microsoft.Dynamics.DataEntities.{self.name}"


@dataclass(frozen=True)
class Table:
    """A Dataverse table or an F&O data entity.

    `key` is the primary key: one GUID column on Dataverse, the ordered composite key
    (starting with `dataAreaId` where company-specific) on F&O. `references` lists F&O
    referential checks: field (or fields) that must match an existing row's key of
    another entity, the way a real F&O rejects a sales order for an unknown customer.
    """

    logical_name: str
    entity_set: str
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    primary_name: str | None = None
    lookups: tuple[Lookup, ...] = ()
    alternate_keys: tuple[AlternateKey, ...] = ()
    references: tuple[Reference, ...] = ()
    company_specific: bool = False
    supports_multiple: bool = False  # Dataverse CreateMultiple / UpsertMultiple
    change_tracking: bool = False
    ownership: str = "UserOwned"
    metadata_id: str = ""  # stable GUID for EntityDefinitions
    description: str = ""
    #: Dataverse lines (parental ownership): the lookup to the parent whose owner the row takes.
    owner_parent: str | None = None
    #: Dataverse documents: the states (``statecode``) in which the row is read-only ("Only
    #: active orders can be edited"); its lines (``owner_parent``) are then read-only too.
    read_only_states: frozenset[int] = frozenset()

    def field(self, name: str) -> Field | None:
        return self._fields_by_name.get(name)

    @cached_property
    def _fields_by_name(self) -> dict[str, Field]:
        """The first field of each name: asked per property of every row written or read."""
        found: dict[str, Field] = {}
        for candidate in self.fields:
            found.setdefault(candidate.name, candidate)
        return found

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


@dataclass(frozen=True)
class Reference:
    """An F&O referential check: `fields` of this entity must name a row of `entity_set`.

    `target_fields` are the matching key fields of the target (same order); `dataAreaId`
    is matched implicitly for company-specific targets. Empty / null values are allowed
    unless the field is itself required.
    """

    fields: tuple[str, ...]
    entity_set: str
    target_fields: tuple[str, ...]
    message: str = ""


@dataclass
class Catalog:
    """All tables of one service, addressable by entity set (case-sensitive)."""

    service: str  # "dataverse" or "fno"
    tables: dict[str, Table] = field(default_factory=dict)
    enums: dict[str, EnumType] = field(default_factory=dict)

    def add(self, table: Table) -> Table:
        if table.entity_set in self.tables:
            raise ValueError(f"duplicate entity set {table.entity_set}")
        self.tables[table.entity_set] = table
        return table

    def by_logical_name(self, logical_name: str) -> Table | None:
        for table in self.tables.values():
            if table.logical_name == logical_name:
                return table
        return None
