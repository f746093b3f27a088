"""The organisation both services start with: currencies, business units, users, price lists,
units (Sales); legal entities, currencies, units, customer groups (F&O).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.schema import fno
from emulators.seed import reference as ref
from emulators.seed.facts import GeneratorCore

if TYPE_CHECKING:
    from collections.abc import Iterator

    from emulators.seed.layout import Batch


class OrganisationRows(GeneratorCore):
    """The organisation both services start with: currencies, business units, users, price lists,"""

    def dataverse_reference(self) -> Iterator[Batch]:
        start = self.audit(0, 0)
        currencies = []
        for code in sorted(ref.CURRENCIES):
            name, symbol, rate = ref.CURRENCIES[code]
            currencies.append(
                self.row(
                    "dataverse",
                    "transactioncurrencies",
                    {
                        "transactioncurrencyid": self.currency_id(code),
                        "isocurrencycode": code,
                        "currencyname": name,
                        "currencysymbol": symbol,
                        "currencyprecision": 2,
                        "exchangerate": rate,
                        **start,
                    },
                )
            )
        yield "dataverse", "transactioncurrencies", currencies

        units = [
            self.row(
                "dataverse",
                "businessunits",
                {
                    "businessunitid": self.business_unit_id(None),
                    "name": ref.ROOT_BUSINESS_UNIT,
                    "transactioncurrencyid": self.currency_id("USD"),
                    **start,
                },
            )
        ]
        for company in ref.COMPANIES:
            units.append(
                self.row(
                    "dataverse",
                    "businessunits",
                    {
                        "businessunitid": self.business_unit_id(company),
                        "name": company.business_unit,
                        "divisionname": company.name,
                        "parentbusinessunitid": self.business_unit_id(None),
                        "transactioncurrencyid": self.currency_id(company.currency),
                        **start,
                    },
                )
            )
        yield "dataverse", "businessunits", units

        users = [
            self.row(
                "dataverse",
                "systemusers",
                {
                    "systemuserid": self.user_id(None),
                    "firstname": "Dana",
                    "lastname": "Admin",
                    "fullname": "Dana Admin",
                    "domainname": "dana.admin@contoso.example",
                    "internalemailaddress": "dana.admin@contoso.example",
                    "businessunitid": self.business_unit_id(None),
                    **start,
                },
            )
        ]
        for company in ref.COMPANIES:
            email = f"{company.owner_first.lower()}.{company.owner_last.lower()}@contoso.example"
            users.append(
                self.row(
                    "dataverse",
                    "systemusers",
                    {
                        "systemuserid": self.user_id(company),
                        "firstname": company.owner_first,
                        "lastname": company.owner_last,
                        "fullname": f"{company.owner_first} {company.owner_last}",
                        "domainname": email,
                        "internalemailaddress": email,
                        "businessunitid": self.business_unit_id(company),
                        **start,
                    },
                )
            )
        yield "dataverse", "systemusers", users

        yield (
            "dataverse",
            "uomschedules",
            [
                self.row(
                    "dataverse",
                    "uomschedules",
                    {
                        "uomscheduleid": self.unit_group_id(),
                        "name": ref.UNIT_GROUP,
                        "baseuomname": ref.BASE_UNIT,
                        **start,
                    },
                )
            ],
        )
        uoms = []
        for name, (quantity, _symbol) in ref.SALES_UNITS.items():
            is_base = name == ref.BASE_UNIT
            uoms.append(
                self.row(
                    "dataverse",
                    "uoms",
                    {
                        "uomid": self.unit_id(name),
                        "name": name,
                        "quantity": quantity,
                        "isschedulebaseuom": 1 if is_base else 0,
                        "uomscheduleid": self.unit_group_id(),
                        "baseuom": None if is_base else self.unit_id(ref.BASE_UNIT),
                        **start,
                    },
                )
            )
        yield "dataverse", "uoms", uoms

        yield (
            "dataverse",
            "pricelevels",
            [
                self.row(
                    "dataverse",
                    "pricelevels",
                    {
                        "pricelevelid": self.price_list_id(name),
                        "name": name,
                        "transactioncurrencyid": self.currency_id(currency),
                        **start,
                    },
                )
                for name, currency in ref.PRICE_LISTS.items()
            ],
        )

    def fno_reference(self) -> Iterator[Batch]:
        yield (
            "fno",
            "LegalEntities",
            [
                self.row(
                    "fno",
                    "LegalEntities",
                    {
                        "LegalEntityId": company.data_area_id.upper(),
                        "Name": company.name,
                        "CompanyName": company.name,
                        "LanguageId": company.language,
                        "AddressCountryRegionId": "USA" if company.index == 0 else "DEU",
                        "AddressCountryRegionISOCode": "US" if company.index == 0 else "DE",
                        "TimeZone": fno.CATALOG.enums["Timezone"].members[
                            "GMTMINUS0800PACIFICTIME"
                            if company.index == 0
                            else "GMTPLUS0100_AMSTERDAM_BERLIN_BERN_ROME"
                        ],
                    },
                )
                for company in ref.COMPANIES
            ],
        )
        yield (
            "fno",
            "Currencies",
            [
                self.row("fno", "Currencies", {"CurrencyCode": code, "Name": name, "Symbol": symbol})
                for code, (name, symbol, _rate) in sorted(ref.CURRENCIES.items())
            ],
        )
        yield (
            "fno",
            "Units",
            [
                self.row(
                    "fno",
                    "Units",
                    {"UnitSymbol": symbol, "UnitDescription": description, "DecimalPrecision": precision},
                )
                for symbol, (description, precision) in ref.FNO_UNITS.items()
            ],
        )
        yield (
            "fno",
            "CustomerGroups",
            [
                self.row(
                    "fno",
                    "CustomerGroups",
                    {
                        "dataAreaId": company.data_area_id,
                        "CustomerGroupId": group,
                        "Description": description,
                    },
                )
                for company in ref.COMPANIES
                for group, description in ref.CUSTOMER_GROUPS.items()
            ],
        )
