"""Tests of the emulators' $metadata generator: parse the produced CSDL and check its content."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from emulators.odata.csdl import build_csdl, dataverse_csdl, fno_csdl
from emulators.schema.model import AlternateKey, Catalog, EdmType, EnumType, Field, Lookup, Table

EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


def dataverse_catalog() -> Catalog:
    catalog = Catalog("dataverse")
    catalog.add(
        Table(
            logical_name="account",
            entity_set="accounts",
            key=("accountid",),
            fields=(
                Field("accountid", EdmType.GUID),
                Field("name", EdmType.STRING, max_length=160),
                Field("creditlimit", EdmType.DECIMAL, precision=23, scale=4),
                Field("numberofemployees", EdmType.INT32),
                Field("creditonhold", EdmType.BOOLEAN),
                Field("createdon", EdmType.DATETIMEOFFSET, read_only=True),
                Field("primarycontactid", EdmType.GUID, attribute_type="Lookup"),
                Field("ownerid", EdmType.GUID, attribute_type="Owner"),
            ),
            lookups=(
                Lookup("primarycontactid", {"primarycontactid": "contacts"}),
                Lookup("ownerid", {"ownerid": "systemusers"}),  # not in this catalogue
            ),
            supports_multiple=False,
        )
    )
    catalog.add(
        Table(
            logical_name="contact",
            entity_set="contacts",
            key=("contactid",),
            fields=(
                Field("contactid", EdmType.GUID),
                Field("lastname", EdmType.STRING, max_length=50),
                Field("msdynce_contactnumber", EdmType.STRING, max_length=20),
                Field("parentcustomerid", EdmType.GUID, attribute_type="Customer"),
            ),
            lookups=(
                Lookup(
                    "parentcustomerid",
                    {"parentcustomerid_account": "accounts", "parentcustomerid_contact": "contacts"},
                ),
            ),
            alternate_keys=(AlternateKey("msdynce_ContactNumber", ("msdynce_contactnumber",)),),
            supports_multiple=True,
        )
    )
    return catalog


def fno_catalog() -> Catalog:
    catalog = Catalog("fno")
    catalog.enums["NoYes"] = EnumType("NoYes", {"Yes": 1, "No": 0})
    catalog.enums["SalesStatus"] = EnumType("SalesStatus", {"None": 0, "Backorder": 1, "Invoiced": 3})
    catalog.add(
        Table(
            logical_name="CDSSalesQuotationLine",
            entity_set="CDSSalesQuotationLines",
            key=("dataAreaId", "LineCreationSequenceNumber", "SalesQuotationNumber"),
            fields=(
                Field("SalesQuotationNumber", EdmType.STRING, nullable=False),
                Field("dataAreaId", EdmType.STRING, max_length=4, nullable=False),
                Field("LineCreationSequenceNumber", EdmType.INT64, nullable=False),
                Field("LineAmount", EdmType.DECIMAL, nullable=False, precision=32, scale=6),
                Field("ProductName", EdmType.STRING),
                Field("IsDeliveryAddressPrivate", EdmType.ENUM, enum_type="NoYes"),
                Field("RequestedReceiptDate", EdmType.DATETIMEOFFSET, nullable=False),
            ),
            company_specific=True,
        )
    )
    catalog.add(
        Table(
            logical_name="LegalEntity",
            entity_set="LegalEntities",
            key=("LegalEntityId",),
            fields=(Field("LegalEntityId", EdmType.STRING, nullable=False), Field("Name", EdmType.STRING)),
        )
    )
    return catalog


def parse(document: str) -> ET.Element:
    assert document.startswith('<?xml version="1.0" encoding="utf-8"?>\n')
    root = ET.fromstring(document)
    assert root.tag == f"{EDMX}Edmx"
    assert root.get("Version") == "4.0"
    return root


def schema_of(root: ET.Element) -> ET.Element:
    schemas = root.findall(f"{EDMX}DataServices/{EDM}Schema")
    assert len(schemas) == 1
    return schemas[0]


def entity_type(schema: ET.Element, name: str) -> ET.Element:
    found = schema.find(f"{EDM}EntityType[@Name='{name}']")
    assert found is not None, name
    return found


def properties(entity: ET.Element) -> dict[str, dict[str, str]]:
    return {p.get("Name", ""): dict(p.attrib) for p in entity.findall(f"{EDM}Property")}


# ---------------------------------------------------------------------------
# Dataverse
# ---------------------------------------------------------------------------


def test_dataverse_schema_and_entity_types() -> None:
    schema = schema_of(parse(dataverse_csdl(dataverse_catalog())))
    assert schema.get("Namespace") == "Microsoft.Dynamics.CRM"
    assert schema.get("Alias") == "mscrm"
    assert entity_type(schema, "crmbaseentity").get("Abstract") == "true"
    account = entity_type(schema, "account")
    assert account.get("BaseType") == "mscrm.crmbaseentity"
    assert [ref.get("Name") for ref in account.findall(f"{EDM}Key/{EDM}PropertyRef")] == ["accountid"]
    props = properties(account)
    assert props["accountid"] == {"Name": "accountid", "Type": "Edm.Guid", "Nullable": "false"}
    assert props["name"] == {"Name": "name", "Type": "Edm.String", "MaxLength": "160"}
    assert props["creditlimit"] == {
        "Name": "creditlimit",
        "Type": "Edm.Decimal",
        "Precision": "23",
        "Scale": "4",
    }
    assert props["numberofemployees"]["Type"] == "Edm.Int32"
    assert props["creditonhold"]["Type"] == "Edm.Boolean"
    assert props["createdon"]["Type"] == "Edm.DateTimeOffset"


def test_dataverse_lookups_are_value_properties_and_navigation() -> None:
    schema = schema_of(parse(dataverse_csdl(dataverse_catalog())))
    account = entity_type(schema, "account")
    props = properties(account)
    assert "primarycontactid" not in props  # the lookup column itself is not a property
    assert props["_primarycontactid_value"] == {"Name": "_primarycontactid_value", "Type": "Edm.Guid"}
    assert props["_ownerid_value"]["Type"] == "Edm.Guid"
    navs = {n.get("Name"): n for n in account.findall(f"{EDM}NavigationProperty")}
    assert navs["primarycontactid"].get("Type") == "mscrm.contact"
    constraint = navs["primarycontactid"].find(f"{EDM}ReferentialConstraint")
    assert constraint is not None
    assert constraint.attrib == {"Property": "_primarycontactid_value", "ReferencedProperty": "contactid"}
    assert navs["ownerid"].get("Type") == "mscrm.crmbaseentity"  # target outside the catalogue
    contact = entity_type(schema, "contact")
    customer_navs = {n.get("Name"): n.get("Type") for n in contact.findall(f"{EDM}NavigationProperty")}
    assert customer_navs == {
        "parentcustomerid_account": "mscrm.account",
        "parentcustomerid_contact": "mscrm.contact",
    }
    assert list(properties(contact)).count("_parentcustomerid_value") == 1


def test_dataverse_alternate_key_annotation() -> None:
    schema = schema_of(parse(dataverse_csdl(dataverse_catalog())))
    annotation = entity_type(schema, "contact").find(f"{EDM}Annotation")
    assert annotation is not None
    assert annotation.get("Term") == "OData.Community.Keys.V1.AlternateKeys"
    paths = [
        value.get("PropertyPath")
        for value in annotation.iter(f"{EDM}PropertyValue")
        if value.get("Property") == "Name"
    ]
    assert paths == ["msdynce_contactnumber"]
    assert entity_type(schema, "account").find(f"{EDM}Annotation") is None


def test_dataverse_container_and_bulk_actions() -> None:
    root = parse(dataverse_csdl(dataverse_catalog()))
    schema = schema_of(root)
    references = [ref.get("Uri") for ref in root.findall(f"{EDMX}Reference")]
    assert references == [
        "http://vocabularies.odata.org/OData.Community.Keys.V1.xml",
        "http://vocabularies.odata.org/OData.Community.Display.V1.xml",
    ]
    container = schema.find(f"{EDM}EntityContainer")
    assert container is not None
    assert container.get("Name") == "System"
    sets = {s.get("Name"): s for s in container.findall(f"{EDM}EntitySet")}
    assert {name: s.get("EntityType") for name, s in sets.items()} == {
        "accounts": "Microsoft.Dynamics.CRM.account",
        "contacts": "Microsoft.Dynamics.CRM.contact",
    }
    bindings = {
        (b.get("Path"), b.get("Target")) for b in sets["accounts"].findall(f"{EDM}NavigationPropertyBinding")
    }
    assert bindings == {("primarycontactid", "contacts")}
    actions = schema.findall(f"{EDM}Action")
    bound = {
        (a.get("Name"), a.find(f"{EDM}Parameter").get("Type"))  # type: ignore[union-attr]
        for a in actions
    }
    assert bound == {
        ("CreateMultiple", "Collection(mscrm.contact)"),
        ("UpsertMultiple", "Collection(mscrm.contact)"),
    }
    for action in actions:
        assert action.get("IsBound") == "true"
        params = {p.get("Name"): p.get("Type") for p in action.findall(f"{EDM}Parameter")}
        assert params["Targets"] == "Collection(mscrm.crmbaseentity)"
        returns = action.find(f"{EDM}ReturnType")
        assert returns is not None
        assert returns.get("Type") == f"mscrm.{action.get('Name')}Response"
    response = schema.find(f"{EDM}ComplexType[@Name='CreateMultipleResponse']/{EDM}Property")
    assert response is not None
    assert response.attrib == {"Name": "Ids", "Type": "Collection(Edm.Guid)", "Nullable": "false"}


# ---------------------------------------------------------------------------
# F&O
# ---------------------------------------------------------------------------


def test_fno_entities_keys_and_enums() -> None:
    schema = schema_of(parse(fno_csdl(fno_catalog())))
    assert schema.get("Namespace") == "Microsoft.Dynamics.DataEntities"
    assert schema.get("Alias") is None
    line = entity_type(schema, "CDSSalesQuotationLine")
    assert [ref.get("Name") for ref in line.findall(f"{EDM}Key/{EDM}PropertyRef")] == [
        "dataAreaId",
        "LineCreationSequenceNumber",
        "SalesQuotationNumber",
    ]
    props = properties(line)
    assert props["dataAreaId"] == {
        "Name": "dataAreaId",
        "Type": "Edm.String",
        "Nullable": "false",
        "MaxLength": "4",
    }
    assert props["LineCreationSequenceNumber"]["Type"] == "Edm.Int64"
    assert props["LineAmount"] == {
        "Name": "LineAmount",
        "Type": "Edm.Decimal",
        "Nullable": "false",
        "Precision": "32",
        "Scale": "6",
    }
    assert props["ProductName"] == {"Name": "ProductName", "Type": "Edm.String"}
    assert props["IsDeliveryAddressPrivate"] == {
        "Name": "IsDeliveryAddressPrivate",
        "Type": "Microsoft.Dynamics.DataEntities.NoYes",
    }
    assert props["RequestedReceiptDate"]["Nullable"] == "false"
    enums = {
        e.get("Name"): [(m.get("Name"), m.get("Value")) for m in e.findall(f"{EDM}Member")]
        for e in schema.findall(f"{EDM}EnumType")
    }
    assert enums == {
        "NoYes": [("No", "0"), ("Yes", "1")],
        "SalesStatus": [("None", "0"), ("Backorder", "1"), ("Invoiced", "3")],
    }
    container = schema.find(f"{EDM}EntityContainer")
    assert container is not None
    assert container.get("Name") == "Resources"
    assert {s.get("Name"): s.get("EntityType") for s in container.findall(f"{EDM}EntitySet")} == {
        "CDSSalesQuotationLines": "Microsoft.Dynamics.DataEntities.CDSSalesQuotationLine",
        "LegalEntities": "Microsoft.Dynamics.DataEntities.LegalEntity",
    }


def test_catalogue_mistakes_are_caught() -> None:
    catalog = fno_catalog()
    catalog.add(
        Table(
            logical_name="Broken",
            entity_set="Brokens",
            key=("Id",),
            fields=(
                Field("Id", EdmType.STRING, nullable=False),
                Field("Flag", EdmType.ENUM, enum_type="Missing"),
            ),
        )
    )
    with pytest.raises(ValueError, match="enum type 'Missing'"):
        fno_csdl(catalog)
    keyless = Catalog("fno")
    keyless.add(
        Table(logical_name="X", entity_set="Xs", key=("Nope",), fields=(Field("Id", EdmType.STRING),))
    )
    with pytest.raises(ValueError, match="key property 'Nope'"):
        fno_csdl(keyless)
    with pytest.raises(ValueError, match="unknown service"):
        build_csdl(Catalog("sap"))


def test_special_characters_are_escaped() -> None:
    catalog = Catalog("fno")
    catalog.enums["Odd"] = EnumType("Odd", {"A&B": 0})
    catalog.add(Table(logical_name="T", entity_set="Ts", key=("K",), fields=(Field("K", EdmType.STRING),)))
    schema = schema_of(parse(fno_csdl(catalog)))
    member = schema.find(f"{EDM}EnumType/{EDM}Member")
    assert member is not None
    assert member.get("Name") == "A&B"


# ---------------------------------------------------------------------------
# The real catalogues produce self-consistent documents
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["dataverse", "fno"])
def test_real_catalogues_are_self_consistent(service: str) -> None:
    if service == "dataverse":
        from emulators.schema.dataverse import CATALOG
    else:
        from emulators.schema.fno import CATALOG
    schema = schema_of(parse(build_csdl(CATALOG)))
    namespace = schema.get("Namespace")
    alias = schema.get("Alias")
    types = {e.get("Name") for e in schema.findall(f"{EDM}EntityType")}
    enum_types = {f"{namespace}.{e.get('Name')}" for e in schema.findall(f"{EDM}EnumType")}

    def known(type_name: str) -> bool:
        for prefix in (f"{namespace}.", f"{alias}." if alias else None):
            if prefix and type_name.startswith(prefix):
                return type_name[len(prefix) :] in types
        return False

    for table in CATALOG.tables.values():
        entity = entity_type(schema, table.logical_name)
        props = properties(entity)
        assert [r.get("Name") for r in entity.findall(f"{EDM}Key/{EDM}PropertyRef")] == list(table.key)
        assert set(table.key) <= set(props)
        for prop in props.values():
            assert prop["Type"].startswith("Edm.") or prop["Type"] in enum_types, prop
        for nav in entity.findall(f"{EDM}NavigationProperty"):
            assert known(nav.get("Type", "")), nav.attrib
    container = schema.find(f"{EDM}EntityContainer")
    assert container is not None
    assert {s.get("Name") for s in container.findall(f"{EDM}EntitySet")} == set(CATALOG.tables)
    for entity_set in container.findall(f"{EDM}EntitySet"):
        assert known(entity_set.get("EntityType", ""))
    if service == "dataverse":
        bulk = {a.find(f"{EDM}Parameter").get("Type") for a in schema.findall(f"{EDM}Action")}  # type: ignore[union-attr]
        # Microsoft names account and contact among the tables without bulk messages.
        assert "Collection(mscrm.account)" not in bulk
        assert bulk == {
            f"Collection(mscrm.{t.logical_name})" for t in CATALOG.tables.values() if t.supports_multiple
        }
