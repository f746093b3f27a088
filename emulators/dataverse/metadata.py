"""Metadata the Web API serves about itself: ``EntityDefinitions`` and the SDK message tables.

Clients discover tables through ``EntityDefinitions`` (Microsoft's Python SDK resolves a
table's entity set and primary id there, and reads picklist options through the
``PicklistAttributeMetadata`` cast) and check bulk-message availability through
``sdkmessagefilters`` (bulk-operations.md, "Availability with standard tables"). Both are
generated from the same catalogue that drives storage and validation, so what the
metadata says is what the emulator accepts.

The SDK message tables live in a small in-memory store of their own (they are read-only
system data, rebuilt on every start) so ``$filter``, ``$select`` and navigation paths
such as ``sdkmessageid/name`` go through the very same query code as business tables.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from emulators.schema.model import AlternateKey, Catalog, EdmType, Field, Lookup, Required, Table
from emulators.store import Store

if TYPE_CHECKING:
    from emulators.schema.model import Field as FieldType

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/prospect-to-cash/emulators/dataverse/metadata")
LANGUAGE_CODE = 1033

#: Messages every table supports, and the bulk ones only `supports_multiple` tables have.
STANDARD_MESSAGES = ("Create", "Retrieve", "RetrieveMultiple", "Update", "Delete", "Upsert")
BULK_MESSAGES = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")

_METADATA_TYPES = {
    "String": ("StringAttributeMetadata", "StringType"),
    "Memo": ("MemoAttributeMetadata", "MemoType"),
    "Money": ("MoneyAttributeMetadata", "MoneyType"),
    "Decimal": ("DecimalAttributeMetadata", "DecimalType"),
    "Double": ("DoubleAttributeMetadata", "DoubleType"),
    "Integer": ("IntegerAttributeMetadata", "IntegerType"),
    "BigInt": ("BigIntAttributeMetadata", "BigIntType"),
    "Boolean": ("BooleanAttributeMetadata", "BooleanType"),
    "DateTime": ("DateTimeAttributeMetadata", "DateTimeType"),
    "Picklist": ("PicklistAttributeMetadata", "PicklistType"),
    "State": ("StateAttributeMetadata", "StateType"),
    "Status": ("StatusAttributeMetadata", "StatusType"),
    "Uniqueidentifier": ("UniqueIdentifierAttributeMetadata", "UniqueidentifierType"),
    "Lookup": ("LookupAttributeMetadata", "LookupType"),
    "Customer": ("LookupAttributeMetadata", "CustomerType"),
    "Owner": ("LookupAttributeMetadata", "OwnerType"),
}
#: Attribute types that carry an `OptionSet` (what the derived-type casts expand).
OPTION_TYPES = ("Picklist", "State", "Status", "Boolean")


def stable_id(*parts: str) -> str:
    """A GUID that never changes for the same names (metadata ids survive restarts)."""
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def label(text: str) -> dict[str, Any]:
    localized = {"Label": text, "LanguageCode": LANGUAGE_CODE, "IsManaged": True, "HasChanged": None}
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def display_name(name: str) -> str:
    return name.replace("_", " ").title()


# --- system tables ---------------------------------------------------------------------


def system_catalog() -> Catalog:
    """``sdkmessage``/``sdkmessagefilter`` as tables, for querying with the normal code."""
    catalog = Catalog(service="dataverse")
    catalog.add(
        Table(
            logical_name="sdkmessage",
            entity_set="sdkmessages",
            key=("sdkmessageid",),
            fields=(
                Field("sdkmessageid", EdmType.GUID, attribute_type="Uniqueidentifier", nullable=False),
                Field("name", EdmType.STRING, max_length=256, attribute_type="String"),
                Field("categoryname", EdmType.STRING, max_length=25, attribute_type="String"),
                Field("isprivate", EdmType.BOOLEAN, attribute_type="Boolean"),
            ),
            primary_name="name",
            ownership="OrganizationOwned",
            metadata_id=stable_id("entity", "sdkmessage"),
        )
    )
    catalog.add(
        Table(
            logical_name="sdkmessagefilter",
            entity_set="sdkmessagefilters",
            key=("sdkmessagefilterid",),
            fields=(
                Field("sdkmessagefilterid", EdmType.GUID, attribute_type="Uniqueidentifier", nullable=False),
                Field("name", EdmType.STRING, max_length=256, attribute_type="String"),
                Field("primaryobjecttypecode", EdmType.STRING, max_length=128, attribute_type="EntityName"),
                Field("secondaryobjecttypecode", EdmType.STRING, max_length=128, attribute_type="EntityName"),
                Field("availability", EdmType.INT32, attribute_type="Integer"),
                Field("iscustomprocessingstepallowed", EdmType.BOOLEAN, attribute_type="Boolean"),
                Field("isvisible", EdmType.BOOLEAN, attribute_type="Boolean"),
                Field("sdkmessageid", EdmType.GUID, required=Required.SYSTEM, attribute_type="Lookup"),
            ),
            lookups=(Lookup("sdkmessageid", {"sdkmessageid": "sdkmessages"}, Required.SYSTEM),),
            primary_name="name",
            ownership="OrganizationOwned",
            metadata_id=stable_id("entity", "sdkmessagefilter"),
        )
    )
    return catalog


def build_system_store(catalog: Catalog) -> Store:
    """The in-memory store of SDK messages and their per-table filters."""
    system = system_catalog()
    store = Store(":memory:", system)
    messages = {name: stable_id("sdkmessage", name) for name in (*STANDARD_MESSAGES, *BULK_MESSAGES)}
    store.insert_many(
        "sdkmessages",
        [
            {"sdkmessageid": message_id, "name": name, "categoryname": "", "isprivate": False}
            for name, message_id in messages.items()
        ],
    )
    filters = []
    for table in catalog.tables.values():
        names = STANDARD_MESSAGES + (BULK_MESSAGES if table.supports_multiple else ())
        for name in names:
            filters.append(
                {
                    "sdkmessagefilterid": stable_id("sdkmessagefilter", name, table.logical_name),
                    "name": name,
                    "primaryobjecttypecode": table.logical_name,
                    "secondaryobjecttypecode": "none",
                    "availability": 2,
                    "iscustomprocessingstepallowed": True,
                    "isvisible": True,
                    "sdkmessageid": messages[name],
                }
            )
    store.insert_many("sdkmessagefilters", filters)
    return store


def csdl_catalog(catalog: Catalog, system: Catalog) -> Catalog:
    """Business tables plus the queryable system tables, for `$metadata`."""
    merged = Catalog(service="dataverse", tables=dict(catalog.tables), enums=dict(catalog.enums))
    for table in system.tables.values():
        merged.tables.setdefault(table.entity_set, table)
    return merged


# --- EntityDefinitions -----------------------------------------------------------------

#: Scalar EntityMetadata properties, filterable and selectable.
ENTITY_PROPERTIES = (
    Field("MetadataId", EdmType.GUID, nullable=False),
    Field("LogicalName", EdmType.STRING),
    Field("SchemaName", EdmType.STRING),
    Field("EntitySetName", EdmType.STRING),
    Field("LogicalCollectionName", EdmType.STRING),
    Field("PrimaryIdAttribute", EdmType.STRING),
    Field("PrimaryNameAttribute", EdmType.STRING),
    Field("OwnershipType", EdmType.STRING),
    Field("ObjectTypeCode", EdmType.INT32),
    Field("ChangeTrackingEnabled", EdmType.BOOLEAN),
    Field("IsOptimisticConcurrencyEnabled", EdmType.BOOLEAN),
    Field("IsCustomEntity", EdmType.BOOLEAN),
    Field("IsActivity", EdmType.BOOLEAN),
    Field("TableType", EdmType.STRING),
)


def entity_definitions_table() -> Table:
    """EntityMetadata as a table, so `$filter` on EntityDefinitions uses the query library."""
    return Table(
        logical_name="EntityMetadata",
        entity_set="EntityDefinitions",
        key=("MetadataId",),
        fields=ENTITY_PROPERTIES,
        metadata_id=stable_id("entity", "EntityMetadata"),
    )


def entity_row(table: Table, object_type_code: int) -> dict[str, Any]:
    """The scalar properties of one table's EntityMetadata."""
    return {
        "MetadataId": table.metadata_id or stable_id("entity", table.logical_name),
        "LogicalName": table.logical_name,
        "SchemaName": schema_name(table.logical_name),
        "EntitySetName": table.entity_set,
        "LogicalCollectionName": table.entity_set,
        "PrimaryIdAttribute": table.key[0],
        "PrimaryNameAttribute": table.primary_name,
        "OwnershipType": table.ownership,
        "ObjectTypeCode": object_type_code,
        "ChangeTrackingEnabled": table.change_tracking,
        "IsOptimisticConcurrencyEnabled": True,
        "IsCustomEntity": False,
        "IsActivity": False,
        "TableType": "Standard",
    }


def schema_name(logical_name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in logical_name.split("_")) or logical_name


def entity_metadata(table: Table, object_type_code: int) -> dict[str, Any]:
    """Full EntityMetadata of a table (scalar properties plus labels)."""
    row = entity_row(table, object_type_code)
    return {
        **row,
        "DisplayName": label(display_name(table.logical_name)),
        "DisplayCollectionName": label(display_name(table.entity_set)),
        "Description": label(table.description or display_name(table.logical_name)),
    }


def attribute_metadata(
    catalog: Catalog, table: Table, column: FieldType, *, with_options: bool = False
) -> dict[str, Any]:
    """AttributeMetadata of one column, typed by its `@odata.type` like the real service."""
    kind = column.attribute_type or "String"
    odata_type, type_name = _METADATA_TYPES.get(kind, ("AttributeMetadata", f"{kind}Type"))
    lookup = next((lk for lk in table.lookups if lk.column == column.name), None)
    is_key = column.name in table.key
    data: dict[str, Any] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{odata_type}",
        "MetadataId": stable_id("attribute", table.logical_name, column.name),
        "LogicalName": column.name,
        "SchemaName": schema_name(column.name),
        "EntityLogicalName": table.logical_name,
        "AttributeType": kind,
        "AttributeTypeName": {"Value": type_name},
        "IsPrimaryId": is_key,
        "IsPrimaryName": column.name == table.primary_name,
        "IsValidForCreate": not column.read_only,
        "IsValidForUpdate": not column.read_only and not column.create_only and not is_key,
        "IsValidForRead": True,
        "IsCustomAttribute": column.name.startswith("msdynce_"),
        "RequiredLevel": {
            "Value": column.required.value,
            "CanBeChanged": column.required is not Required.SYSTEM,
            "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
        },
        "DisplayName": label(display_name(column.name)),
        "Description": label(column.description or display_name(column.name)),
    }
    if column.max_length is not None:
        data["MaxLength"] = column.max_length
    if column.precision is not None:
        data["Precision"] = column.precision
    if column.precision_source is not None:
        data["PrecisionSource"] = column.precision_source
    if kind == "Integer":
        data["MinValue"], data["MaxValue"] = -2147483648, 2147483647
    if column.auto_number:
        data["AutoNumberFormat"] = column.auto_number
    if lookup is not None:
        data["Targets"] = sorted(
            {
                target.logical_name if (target := catalog.tables.get(entity_set)) else entity_set
                for entity_set in lookup.targets.values()
            }
        )
    if column.name.endswith("_base") and table.field(column.name[: -len("_base")]) is not None:
        data["AttributeOf"] = column.name[: -len("_base")]
    if with_options and kind in OPTION_TYPES:
        data["OptionSet"] = option_set(table, column)
    return data


def option_set(table: Table, column: FieldType) -> dict[str, Any]:
    """The OptionSet of a choice column (Boolean ones have TrueOption/FalseOption)."""
    options = column.options or {}
    metadata_id = stable_id("optionset", table.logical_name, column.name)
    if column.attribute_type == "Boolean":
        return {
            "MetadataId": metadata_id,
            "Name": f"{table.logical_name}_{column.name}",
            "OptionSetType": "Boolean",
            "TrueOption": {"Value": 1, "Label": label(options.get(1, "Yes"))},
            "FalseOption": {"Value": 0, "Label": label(options.get(0, "No"))},
        }
    option_type = {"State": "State", "Status": "Status"}.get(column.attribute_type, "Picklist")
    return {
        "MetadataId": metadata_id,
        "Name": f"{table.logical_name}_{column.name}",
        "IsGlobal": False,
        "OptionSetType": option_type,
        "Options": [_option(column, value, text) for value, text in options.items()],
    }


def _option(column: FieldType, value: int, text: str) -> dict[str, Any]:
    """One option; a state's carries its DefaultStatus (StateOptionMetadata), a status
    reason's the State it belongs to (StatusOptionMetadata)."""
    option: dict[str, Any] = {"Value": value, "Label": label(text)}
    if column.default_statuses is not None:
        option["DefaultStatus"] = column.default_statuses[value]
    if column.option_states is not None:
        option["State"] = column.option_states[value]
    return option


def key_metadata(table: Table, key: AlternateKey) -> dict[str, Any]:
    return {
        "MetadataId": stable_id("key", table.logical_name, key.name),
        "LogicalName": key.name.lower(),
        "SchemaName": key.name,
        "EntityLogicalName": table.logical_name,
        "KeyAttributes": list(key.columns),
        "EntityKeyIndexStatus": "Active",
        "DisplayName": label(display_name(key.name)),
    }
