"""Column builders and shared column groups for the emulated Dataverse tables.

Each builder returns a :class:`Field` shaped like what Dataverse's ``EntityDefinitions``
reports for that attribute type (lengths, precision, required level, read-only), so the
table declarations in :mod:`emulators.schema.dataverse` and
:mod:`emulators.schema.dataverse_documents` read like the field reference.
"""

from __future__ import annotations

import uuid

from emulators.schema.model import (
    AlternateKey,
    EdmType,
    Field,
    Lookup,
    Required,
    Table,
)

#: Namespace of the emulator's metadata ids (uuid5 of a fixed URL, never changes).
METADATA_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/prospect-to-cash/emulators/dataverse")

NONE = Required.NONE
APP = Required.APPLICATION
SYSTEM = Required.SYSTEM


def metadata_id(logical_name: str) -> str:
    """Stable `MetadataId` of a table (uuid5, so it survives restarts and reseeding)."""
    return str(uuid.uuid5(METADATA_NAMESPACE, logical_name))


# Choice sets of the shared columns and of columns in both table modules (the rest sit
# beside their tables).
ADDRESS_TYPE = {1: "Bill To", 2: "Ship To", 3: "Primary", 4: "Other"}
FREIGHT_TERMS = {1: "FOB", 2: "No Charge"}
PAYMENT_TERMS = {1: "Net 30", 2: "2% 10, Net 30", 3: "Net 45", 4: "Net 60"}


# --- column builders -------------------------------------------------------------------


def string(
    name: str, length: int, required: Required = NONE, *, read_only: bool = False, **kw: object
) -> Field:
    return Field(
        name,
        EdmType.STRING,
        max_length=length,
        required=required,
        attribute_type="String",
        read_only=read_only,
        **kw,
    )


def memo(name: str, length: int = 2000, required: Required = NONE) -> Field:
    return Field(name, EdmType.STRING, max_length=length, required=required, attribute_type="Memo")


#: ``MoneyAttributeMetadata.PrecisionSource``: the column's Precision, the organization's
#: ``pricingdecimalprecision``, the record currency's ``currencyprecision`` (the default when
#: unset, per the property's remarks).
PRECISION_OF_COLUMN, PRECISION_OF_PRICING, PRECISION_OF_CURRENCY = 0, 1, 2

#: Price columns that follow the organization's pricing decimal precision ("Decimal precision in
#: currency and pricing": product list price, standard and current cost; price list item amount
#: and rounding amount; price per unit of opportunity, quote, order and invoice products).
PRICING_COLUMNS = frozenset(
    {"price", "standardcost", "currentcost", "amount", "roundingoptionamount", "priceperunit"}
)


def money(name: str, required: Required = NONE, *, read_only: bool = False) -> Field:
    """A currency column; a price column's places follow the organization's pricing precision,
    every other one's its record currency's (its ``_base`` twin's the base currency's)."""
    stem = name.removesuffix("_base")
    return Field(
        name,
        EdmType.DECIMAL,
        required=required,
        attribute_type="Money",
        precision=2,
        precision_source=PRECISION_OF_PRICING if stem in PRICING_COLUMNS else PRECISION_OF_CURRENCY,
        read_only=read_only,
    )


def decimal(name: str, required: Required = NONE, *, precision: int = 2, read_only: bool = False) -> Field:
    return Field(
        name,
        EdmType.DECIMAL,
        required=required,
        attribute_type="Decimal",
        precision=precision,
        read_only=read_only,
    )


def double(name: str) -> Field:
    return Field(name, EdmType.DOUBLE, attribute_type="Double", precision=5)


def integer(
    name: str, required: Required = NONE, *, read_only: bool = False, default: object = None
) -> Field:
    return Field(
        name, EdmType.INT32, required=required, attribute_type="Integer", read_only=read_only, default=default
    )


def boolean(
    name: str, required: Required = NONE, *, default: object = None, read_only: bool = False
) -> Field:
    return Field(
        name,
        EdmType.BOOLEAN,
        required=required,
        attribute_type="Boolean",
        options={0: "No", 1: "Yes"},
        default=default,
        read_only=read_only,
    )


def datetime_(name: str, *, read_only: bool = False) -> Field:
    return Field(name, EdmType.DATETIMEOFFSET, attribute_type="DateTime", read_only=read_only)


def date_only(name: str) -> Field:
    """A DateTime column with the DateOnly format/behaviour: the Web API shows `Edm.Date`."""
    return Field(name, EdmType.DATE, attribute_type="DateTime")


def picklist(
    name: str, options: dict[int, str], required: Required = NONE, *, default: object = None
) -> Field:
    return Field(
        name, EdmType.INT32, required=required, attribute_type="Picklist", options=options, default=default
    )


#: A state choice set, ``value: (label, DefaultStatus)``, and a status reason choice set,
#: ``value: (label, State)``: the two option lists of a table's entity reference page.
StateOptions = dict[int, tuple[str, int]]
StatusOptions = dict[int, tuple[str, int]]


def labels(options: StateOptions | StatusOptions) -> dict[int, str]:
    """The labels of a state or status choice set (e.g. for a line's read-only copy of the state)."""
    return {value: label for value, (label, _) in options.items()}


def state_and_status(states: StateOptions, statuses: StatusOptions, default_state: int = 0) -> list[Field]:
    """``statecode`` and ``statuscode``, declared together so their pairing is one declaration:
    the emulator refuses a status reason of another state, and fills a state's DefaultStatus
    (`emulators.dataverse.states`). A create without either gets the default state and its
    DefaultStatus."""
    for value, (_, state) in statuses.items():
        if state not in states:
            raise ValueError(f"status {value} names the unknown state {state}")
    return [
        Field(
            "statecode",
            EdmType.INT32,
            required=SYSTEM,
            attribute_type="State",
            options=labels(states),
            default=default_state,
            default_statuses={value: default for value, (_, default) in states.items()},
        ),
        Field(
            "statuscode",
            EdmType.INT32,
            attribute_type="Status",
            options=labels(statuses),
            default=states[default_state][1],
            option_states={value: state for value, (_, state) in statuses.items()},
        ),
    ]


def primary_key(name: str) -> Field:
    """The GUID primary key: clients may supply it on create, the service makes one otherwise."""
    return Field(name, EdmType.GUID, required=SYSTEM, nullable=False, attribute_type="Uniqueidentifier")


def lookup_column(
    name: str, required: Required = NONE, *, kind: str = "Lookup", read_only: bool = False
) -> Field:
    return Field(name, EdmType.GUID, required=required, attribute_type=kind, read_only=read_only)


# --- shared column groups --------------------------------------------------------------


def audit_columns() -> list[Field]:
    """Audit columns of every table. `overriddencreatedon` ("Date and time that the record was
    migrated", valid for create only): a create that sets it gets that value as `createdon`,
    and the column keeps the actual time of the create."""
    return [
        datetime_("createdon", read_only=True),
        Field("overriddencreatedon", EdmType.DATETIMEOFFSET, attribute_type="DateTime", create_only=True),
        datetime_("modifiedon", read_only=True),
        Field("versionnumber", EdmType.INT64, attribute_type="BigInt", read_only=True),
    ]


def owner_columns(*, owner_writable: bool = True) -> tuple[list[Field], list[Lookup]]:
    """`ownerid` (defaults to the caller) and the read-only owning user / business unit, which
    follow the owner. A line's owner is its parent's (not writable: the entity references of
    salesorderdetail & co. leave OwnerId out of the writable columns)."""
    fields = [
        lookup_column("ownerid", SYSTEM, kind="Owner", read_only=not owner_writable),
        lookup_column("owninguser", read_only=True),
        lookup_column("owningbusinessunit", read_only=True),
    ]
    lookups = [
        Lookup("ownerid", {"ownerid": "systemusers"}, SYSTEM),
        Lookup("owninguser", {"owninguser": "systemusers"}),
        Lookup("owningbusinessunit", {"owningbusinessunit": "businessunits"}),
    ]
    return fields, lookups


def money_with_base(*names: str) -> list[Field]:
    """Money columns plus their read-only base-currency twins."""
    fields: list[Field] = []
    for name in names:
        fields.append(money(name))
        fields.append(money(f"{name}_base", read_only=True))
    return fields


def party_address(n: int) -> list[Field]:
    """`address1_` .. `address3_` block of account and contact."""
    p = f"address{n}_"
    return [
        string(p + "name", 200),
        string(p + "line1", 250),
        string(p + "line2", 250),
        string(p + "line3", 250),
        string(p + "city", 80),
        string(p + "stateorprovince", 50),
        string(p + "county", 50),
        string(p + "country", 80),
        string(p + "postalcode", 20),
        string(p + "postofficebox", 20),
        string(p + "telephone1", 50),
        string(p + "fax", 50),
        string(p + "composite", 1000, read_only=True),
        double(p + "latitude"),
        double(p + "longitude"),
        picklist(p + "addresstypecode", ADDRESS_TYPE),
    ]


def sales_address(prefix: str, *, composite: bool = True) -> list[Field]:
    """`billto_` / `shipto_` block of quote, order, invoice and (shipto_) their lines."""
    fields = [
        string(prefix + "name", 200),
        string(prefix + "line1", 250),
        string(prefix + "line2", 250),
        string(prefix + "line3", 250),
        string(prefix + "city", 80),
        string(prefix + "stateorprovince", 50),
        string(prefix + "country", 80),
        string(prefix + "postalcode", 20),
        string(prefix + "telephone", 50),
        string(prefix + "fax", 50),
        string(prefix + "contactname", 150),
    ]
    if composite:
        fields.append(string(prefix + "composite", 1000, read_only=True))
    if prefix == "shipto_":
        fields.append(picklist("shipto_freighttermscode", FREIGHT_TERMS))
    return fields


def table(
    logical_name: str,
    entity_set: str,
    primary_name: str,
    fields: list[Field],
    lookups: list[Lookup],
    *,
    ownership: str,
    alternate_keys: tuple[AlternateKey, ...] = (),
    supports_multiple: bool = True,
    change_tracking: bool = True,
    description: str = "",
    owner_parent: str | None = None,
    read_only_states: frozenset[int] = frozenset(),
) -> Table:
    """A table with its primary key, audit columns and (user-owned) owner columns added."""
    key = f"{logical_name}id"
    all_fields = [primary_key(key), *fields, *audit_columns()]
    all_lookups = list(lookups)
    if ownership == "UserOwned":
        owner_fields, owner_lookups = owner_columns(owner_writable=owner_parent is None)
        all_fields.extend(owner_fields)
        all_lookups.extend(owner_lookups)
    return Table(
        logical_name=logical_name,
        entity_set=entity_set,
        key=(key,),
        fields=tuple(all_fields),
        primary_name=primary_name,
        lookups=tuple(all_lookups),
        alternate_keys=alternate_keys,
        supports_multiple=supports_multiple,
        change_tracking=change_tracking,
        ownership=ownership,
        metadata_id=metadata_id(logical_name),
        description=description,
        owner_parent=owner_parent,
        read_only_states=read_only_states,
    )
