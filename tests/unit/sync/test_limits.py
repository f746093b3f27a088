"""Target limits from ``$metadata`` (`prospect_to_cash.sync.limits`): facets parsed from the
CSDL, and the reason each kind of value that does not fit is given."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from prospect_to_cash.sync.limits import FieldLimits, field_limits
from prospect_to_cash.sync.metadata_check import parse_csdl

CSDL = """<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="Microsoft.Dynamics.DataEntities" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="CustomerV3">
        <Key><PropertyRef Name="CustomerAccount"/></Key>
        <Property Name="CustomerAccount" Type="Edm.String" Nullable="false" MaxLength="20"/>
        <Property Name="CreditLimit" Type="Edm.Decimal" Nullable="false" Precision="32" Scale="6"/>
        <Property Name="Employees" Type="Edm.Int32" Nullable="false"/>
        <Property Name="Since" Type="Edm.DateTimeOffset" Nullable="false"/>
        <Property Name="Memo" Type="Edm.String"/>
      </EntityType>
      <EntityType Name="account">
        <Key><PropertyRef Name="accountid"/></Key>
        <Property Name="accountid" Type="Edm.Guid"/>
        <Property Name="creditlimit" Type="Edm.Decimal" Scale="Variable"/>
      </EntityType>
      <EntityContainer Name="Container">
        <EntitySet Name="CustomersV3" EntityType="Microsoft.Dynamics.DataEntities.CustomerV3"/>
        <EntitySet Name="accounts" EntityType="Microsoft.Dynamics.DataEntities.account"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"""


@pytest.fixture(scope="module")
def customers() -> dict[str, FieldLimits]:
    shape = parse_csdl(CSDL).entity_sets["CustomersV3"]
    found = {name: field_limits(shape, "fno", name) for name in shape.properties}
    assert all(limits is not None for limits in found.values())
    return {name: limits for name, limits in found.items() if limits is not None}


def test_facets_are_read_from_the_csdl() -> None:
    metadata = parse_csdl(CSDL)
    facets = metadata.entity_sets["CustomersV3"].facets
    assert (facets["CustomerAccount"].max_length, facets["CustomerAccount"].type) == (20, "Edm.String")
    assert (facets["CreditLimit"].precision, facets["CreditLimit"].scale) == (32, 6)
    assert facets["Memo"].max_length is None
    # Dataverse says Scale="Variable": no number to check against
    assert metadata.entity_sets["accounts"].facets["creditlimit"].scale is None


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        (
            "CustomerAccount",
            "C" * 21,
            "CustomersV3.CustomerAccount takes at most 20 characters; the value has 21",
        ),
        (
            "CreditLimit",
            1e30,
            "CustomersV3.CreditLimit holds 26 digit(s) before the decimal point (Precision 32, Scale 6); "
            "1E+30 has 31",
        ),
        (
            "CreditLimit",
            0.1234567,
            "CustomersV3.CreditLimit keeps 6 decimal place(s) (Scale); 0.1234567 has more",
        ),
        (
            "Employees",
            2**31,
            "CustomersV3.Employees is Edm.Int32 (-2147483648 to 2147483647); 2147483648 is out of range",
        ),
        (
            "Since",
            "1899-12-31T00:00:00Z",
            "CustomersV3.Since accepts dates from 1900-01-01; 1899-12-31 is earlier",
        ),
        (
            "Since",
            "2155-01-01T00:00:00Z",
            "CustomersV3.Since accepts dates up to 2154-12-31; 2155-01-01 is later",
        ),
    ],
)
def test_a_value_that_does_not_fit_gets_a_reason(
    customers: dict[str, FieldLimits], name: str, value: object, reason: str
) -> None:
    assert customers[name].problem(value) == reason


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CustomerAccount", "C" * 20),
        ("CreditLimit", 10.0**25),
        ("CreditLimit", -123.456789),
        ("CreditLimit", 0.0),
        ("Employees", -(2**31)),
        ("Since", "1900-01-01T12:00:00Z"),  # F&O's "no date"
        ("Since", datetime(2154, 12, 31, tzinfo=timezone.utc)),
        ("Memo", "x" * 10_000),
        ("CustomerAccount", None),
    ],
)
def test_a_value_that_fits_passes(customers: dict[str, FieldLimits], name: str, value: object) -> None:
    assert customers[name].problem(value) is None
