"""Contacts in Sales and the F&O contact persons synced earlier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.schema import fno
from emulators.seed import reference as ref
from emulators.seed.facts import GeneratorCore
from emulators.seed.layout import (
    CONTACT_BLOCK,
    CONTACT_CUSTOMER_NO_NUMBER,
    CONTACT_CUSTOMERS,
    CONTACT_EXISTING_PERSONS,
    CONTACT_PARENT_IS_CONTACT,
    CONTACT_PERSON_NO_NUMBER,
    CONTACT_PERSON_OF_NEW_ACCOUNT,
    CONTACT_PERSONS,
    Batch,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


class ContactRows(GeneratorCore):
    """Contacts in Sales and the F&O contact persons synced earlier."""

    def _contact_rows(self) -> Iterator[dict[str, object]]:
        for i in range(self.plan.contacts):
            contact = self.contact(i)
            company = contact.company
            pos = contact.position
            _, a, _ = self.numbers("contact-parent", i)
            parent: str | None = None
            parent_set: str | None = None
            active = pos < CONTACT_CUSTOMERS or pos == CONTACT_CUSTOMER_NO_NUMBER
            company_is_account = False
            created, modified = contact.created, contact.modified
            new_parent = (
                self.new_account_with_contact(company.index, (i // 2) // CONTACT_BLOCK)
                if pos == CONTACT_PERSON_OF_NEW_ACCOUNT
                else None
            )
            if new_parent is not None:
                parent, parent_set, company_is_account = new_parent.guid, "accounts", True
                if company.index == 1 and new_parent.created // 86400 < new_parent.modified // 86400:
                    # A child a day before its parent: entered a minute after its account was
                    # created, whose last change (what puts it into a daily window) is a day later.
                    modified = new_parent.created + 60
                else:
                    # Entered with its new account: up to a minute later, the same day.
                    modified = new_parent.modified + min(60, 86399 - new_parent.modified % 86400)
                created = min(created, modified)
            elif pos in CONTACT_PERSONS or pos == CONTACT_PERSON_NO_NUMBER:
                parent = self.existing_account(company.index, a).guid
                parent_set = "accounts"
                company_is_account = True
            elif pos == CONTACT_PARENT_IS_CONTACT:
                parent = self.existing_contact_customer(company.index, a).guid
                parent_set = "contacts"
            yield self.row(
                "dataverse",
                "contacts",
                {
                    "contactid": contact.guid,
                    "firstname": contact.first,
                    "lastname": contact.last,
                    "fullname": f"{contact.first} {contact.last}",
                    "jobtitle": contact.job,
                    "emailaddress1": contact.email,
                    "telephone1": contact.phone,
                    "gendercode": contact.gender,
                    **self._address(
                        "address1_", contact.country, contact.street, contact.city, contact.state, contact.zip
                    ),
                    "address1_addresstypecode": 3,
                    "msdynce_contactnumber": contact.number,
                    "msdynce_isactivecustomer": 1 if active else 0,
                    "msdynce_iscompanyanaccount": 1 if company_is_account else 0,
                    "parentcustomerid": parent,
                    "parentcustomerid__set": parent_set,
                    "transactioncurrencyid": self.currency_id(company.currency),
                    **self.owner(company),
                    **self.audit(created, modified),
                },
            )

    def contacts(self) -> Iterator[Batch]:
        yield from self.chunked("dataverse", "contacts", self._contact_rows())

    def _fno_contact_person_rows(self) -> Iterator[dict[str, object]]:
        first, stop = CONTACT_EXISTING_PERSONS.start, CONTACT_EXISTING_PERSONS.stop
        for company in ref.COMPANIES:
            rows = (self.plan.contacts - company.index + 1) // 2
            for t in range(rows):
                pos = t % CONTACT_BLOCK
                if not first <= pos < stop:
                    continue
                i = 2 * t + company.index
                contact = self.contact(i)
                _, a, _ = self.numbers("contact-parent", i)
                parent = self.existing_account(company.index, a)
                yield self.row(
                    "fno",
                    "CDSContactPersons",
                    {
                        "dataAreaId": company.data_area_id,
                        "ContactPersonPartyNumber": contact.number,
                        "AssociatedPartyNumber": parent.number,
                        "FirstName": contact.first,
                        "LastName": contact.last,
                        "EmploymentProfession": contact.job,
                        "PrimaryEmailAddress": contact.email,
                        "PrimaryPhoneNumber": contact.phone,
                        "PrimaryAddressStreet": contact.street,
                        "PrimaryAddressCity": contact.city,
                        "PrimaryAddressStateId": contact.state or None,
                        "PrimaryAddressZipCode": contact.zip,
                        "PrimaryAddressCountryRegionId": ref.COUNTRIES[contact.country][0],
                        "Gender": fno.CATALOG.enums["Gender"].members[
                            "Male" if contact.gender == 1 else "Female"
                        ],
                        "IsContactPersonExternallyMaintained": 1,
                    },
                )

    def fno_contact_persons(self) -> Iterator[Batch]:
        yield from self.chunked("fno", "CDSContactPersons", self._fno_contact_person_rows())
