"""Accounts in Sales and the F&O customers (synced accounts and persons, F&O-only customers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.schema import fno
from emulators.seed import reference as ref
from emulators.seed.facts import GeneratorCore
from emulators.seed.layout import (
    ACCOUNT_BLOCK,
    ACCOUNT_EXISTING,
    ACCOUNT_PHONE_CHANGED,
    CONTACT_BLOCK,
    CONTACT_EXISTING_CUSTOMERS,
    Batch,
    money,
    nth_row,
    rows_below,
    timestamp,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


class AccountRows(GeneratorCore):
    """Accounts in Sales and the F&O customers (synced accounts and persons, F&O-only customers)."""

    def _account_rows(self) -> Iterator[dict[str, object]]:
        # The hottest loop of a scale run: fill a copy of the template column by column.
        template = self.template("dataverse", "accounts")
        per_company = [
            (
                ref.CURRENCIES[company.currency][2],
                self.currency_id(company.currency),
                self.owner(company),
            )
            for company in ref.COMPANIES
        ]
        for i in range(self.plan.accounts):
            account = self.account(i)
            rate, currency_id, owner = per_company[i % 2]
            row = dict(template)
            row["accountid"] = account.guid
            row["name"] = account.name
            row["accountnumber"] = account.number
            row["emailaddress1"] = account.email
            row["telephone1"] = account.phone
            row["websiteurl"] = "https://www." + account.email.split("@", 1)[1]
            row["numberofemployees"] = account.employees
            row["creditlimit"] = account.credit_limit
            row["creditlimit_base"] = money(account.credit_limit / rate)
            row["exchangerate"] = rate
            row["customertypecode"] = 3
            state = account.state or None
            for prefix, kind in (("address1_", 3), ("address2_", 1)):
                row[prefix + "line1"] = account.street
                row[prefix + "city"] = account.city
                row[prefix + "stateorprovince"] = state
                row[prefix + "postalcode"] = account.zip
                row[prefix + "country"] = account.country
                row[prefix + "addresstypecode"] = kind
            row["transactioncurrencyid"] = currency_id
            row.update(owner)
            row["createdon"] = timestamp(account.created)
            row["modifiedon"] = timestamp(account.modified)
            self._version += 1
            row["versionnumber"] = 1_000_000 + self._version
            yield row

    def accounts(self) -> Iterator[Batch]:
        yield from self.chunked("dataverse", "accounts", self._account_rows())

    def _fno_customer_rows(self) -> Iterator[dict[str, object]]:
        yes, no = 1, 0
        for company in ref.COMPANIES:
            # Accounts synced by an earlier run (externally maintained).
            for j in range(rows_below(self.plan.accounts, company.index, ACCOUNT_BLOCK, ACCOUNT_EXISTING)):
                account = self.account(nth_row(j, company.index, ACCOUNT_BLOCK, ACCOUNT_EXISTING))
                address = (account.country, account.street, account.city, account.state, account.zip)
                phone = account.phone
                if account.position == ACCOUNT_PHONE_CHANGED:
                    phone = phone[:-4] + "0000"  # what Sales had before the change
                yield self.row(
                    "fno",
                    "CustomersV3",
                    {
                        "dataAreaId": company.data_area_id,
                        "CustomerAccount": account.number,
                        "PartyNumber": account.number,
                        "PartyType": "Organization",
                        "OrganizationName": account.name,
                        "NameAlias": account.name.split()[0],
                        "CustomerGroupId": "10",
                        "SalesCurrencyCode": company.currency,
                        "LanguageId": company.language,
                        "SiteId": company.site,
                        "WarehouseId": company.warehouse,
                        "PrimaryContactPhone": phone,
                        "PrimaryContactEmail": account.email,
                        "OrganizationNumberOfEmployees": account.employees,
                        "CreditLimit": account.credit_limit,
                        "IsExternallyMaintained": yes,
                        **self._fno_address("Address", *address),
                        "AddressCounty": None,
                        **self._fno_address("DeliveryAddress", *address),
                        **self._fno_address("InvoiceAddress", *address),
                    },
                )
            # Contacts that are customers, synced earlier (party type Person).
            for j in range(
                rows_below(self.plan.contacts, company.index, CONTACT_BLOCK, CONTACT_EXISTING_CUSTOMERS)
            ):
                contact = self.contact(nth_row(j, company.index, CONTACT_BLOCK, CONTACT_EXISTING_CUSTOMERS))
                address = (contact.country, contact.street, contact.city, contact.state, contact.zip)
                yield self.row(
                    "fno",
                    "CustomersV3",
                    {
                        "dataAreaId": company.data_area_id,
                        "CustomerAccount": contact.number,
                        "PartyNumber": contact.number,
                        "PartyType": "Person",
                        "PersonFirstName": contact.first,
                        "PersonLastName": contact.last,
                        "PersonProfessionalTitle": contact.job,
                        "PersonGender": fno.CATALOG.enums["Gender"].members[
                            "Male" if contact.gender == 1 else "Female"
                        ],
                        "OrganizationName": f"{contact.first} {contact.last}",
                        "CustomerGroupId": "10",
                        "SalesCurrencyCode": company.currency,
                        "LanguageId": company.language,
                        "PrimaryContactPhone": contact.phone,
                        "PrimaryContactEmail": contact.email,
                        "IsExternallyMaintained": yes,
                        **self._fno_address("Address", *address),
                        **self._fno_address("DeliveryAddress", *address),
                        **self._fno_address("InvoiceAddress", *address),
                    },
                )
            # Customers that only F&O knows (not externally maintained).
            for k in range(self.plan.fno_only_customers):
                _, a, _ = self.numbers(f"fno-customer-{company.data_area_id}", k)
                country = company.countries[a % len(company.countries)]
                city, state, zip_code = ref.CITIES[country][0]
                name = (
                    f"{ref.ACCOUNT_WORDS_1[(a >> 8) % len(ref.ACCOUNT_WORDS_1)]} "
                    f"{ref.ACCOUNT_WORDS_2[(a >> 16) % len(ref.ACCOUNT_WORDS_2)]} Retail"
                )
                yield self.row(
                    "fno",
                    "CustomersV3",
                    {
                        "dataAreaId": company.data_area_id,
                        "CustomerAccount": self.fno_only_customer(company, k),
                        "PartyNumber": f"{company.customer_prefix}P-{k + 1:06d}",
                        "PartyType": "Organization",
                        "OrganizationName": name,
                        "CustomerGroupId": "20",
                        "SalesCurrencyCode": company.currency,
                        "LanguageId": company.language,
                        "IsExternallyMaintained": no,
                        **self._fno_address(
                            "Address", country, f"{k + 1} Retail Park", city, state, zip_code
                        ),
                    },
                )

    def fno_customers(self) -> Iterator[Batch]:
        yield from self.chunked("fno", "CustomersV3", self._fno_customer_rows())
