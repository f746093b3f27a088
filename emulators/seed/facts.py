"""Facts of the seeded rows (pure functions of an index) and the primitives behind them.

`GeneratorCore` is the base of every area's row builder: digests, GUIDs, store-ready row
templates, reference ids, and the facts of the accounts, contacts, products and customers
that other tables refer to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulators.schema import dataverse, fno
from emulators.schema.validate import to_storage
from emulators.seed import reference as ref
from emulators.seed.layout import (
    ACCOUNT_BLANK_COUNTRY,
    ACCOUNT_BLOCK,
    ACCOUNT_DUP_SECOND,
    ACCOUNT_EXISTING,
    ACCOUNT_NEW_WITH_CONTACT,
    ACCOUNT_NO_NUMBER,
    ACCOUNT_UNKNOWN_COUNTRY,
    BATCH_SIZE,
    CONTACT_BLOCK,
    CONTACT_CUSTOMER_NO_NUMBER,
    CONTACT_EXISTING_CUSTOMERS,
    CONTACT_PERSON_NO_NUMBER,
    PRODUCT_BLOCK,
    PRODUCT_IN_SALES,
    PRODUCT_PRICE_CHANGED,
    PRODUCT_UNMAPPED_UNIT,
    Batch,
    Plan,
    guid_of,
    money,
    nth_row,
    position_in,
    random_suffix,
    rows_below,
    timestamp,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from emulators.schema.model import Catalog


_DOMAINS = tuple(word.split()[0].lower().replace("'", "") for word in ref.ACCOUNT_WORDS_1)


@dataclass(slots=True)
class Account:
    index: int
    guid: str
    company: ref.Company
    position: int
    number: str | None
    name: str
    country: str | None
    city: str
    state: str
    zip: str
    street: str
    phone: str
    email: str
    employees: int
    credit_limit: float
    modified: int
    created: int


@dataclass(slots=True)
class Contact:
    index: int
    guid: str
    company: ref.Company
    position: int
    number: str | None
    first: str
    last: str
    job: str
    email: str
    phone: str
    country: str
    city: str
    state: str
    zip: str
    street: str
    gender: int
    modified: int
    created: int


@dataclass(slots=True)
class Product:
    index: int
    company: ref.Company
    position: int
    number: str
    name: str
    service: bool
    unit: str
    price: float  # current F&O sales price
    sales_price: float  # price in Sales (older for the price-changed rows)
    cost: float
    sales_guid: str
    price_item_guid: str


@dataclass(slots=True)
class Customer:
    """A customer both systems know: a Sales account/contact that is an F&O customer."""

    guid: str
    entity_set: str  # accounts | contacts
    number: str
    name: str
    country: str | None


class GeneratorCore:
    """What every area's row builder shares: primitives, reference ids, facts of single rows."""

    def __init__(self, scale: str | int, random_seed: int) -> None:
        self.plan = Plan.for_scale(scale)
        self.demo = scale == "demo"
        self._key = hashlib.blake2b(str(random_seed).encode(), digest_size=32).digest()
        self._version = 0
        self._templates: dict[tuple[str, str], dict[str, object]] = {}
        self._ids: dict[tuple[str, int], str] = {}
        self._owners: dict[int, dict[str, object]] = {}
        self._currency_ids = {
            code: self.guid("transactioncurrency", n) for n, code in enumerate(sorted(ref.CURRENCIES))
        }
        self._price_list_ids = {name: self.guid("pricelevel", n) for n, name in enumerate(ref.PRICE_LISTS)}
        self._unit_ids = {name: self.guid("uom", n) for n, name in enumerate(ref.SALES_UNITS)}

    # .. primitives ...................................................................

    def digest(self, kind: str, index: int) -> bytes:
        return hashlib.blake2b(f"{kind}:{index}".encode(), key=self._key, digest_size=32).digest()

    def numbers(self, kind: str, index: int) -> tuple[bytes, int, int]:
        """The row's digest plus two independent 64-bit numbers drawn from it."""
        d = self.digest(kind, index)
        return d, int.from_bytes(d[16:24], "little"), int.from_bytes(d[24:32], "little")

    def guid(self, kind: str, index: int) -> str:
        return guid_of(self.digest(kind, index))

    def reference_id(self, kind: str, index: int) -> str:
        """GUID of a reference row, memoised (every large-table row points at a few)."""
        key = (kind, index)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = self.guid(kind, index)
        return found

    def template(self, service: str, entity_set: str) -> dict[str, object]:
        """Every stored column of a table, with the values the service fills in itself."""
        key = (service, entity_set)
        if key not in self._templates:
            catalog: Catalog = dataverse.CATALOG if service == "dataverse" else fno.CATALOG
            table = catalog.tables[entity_set]
            row: dict[str, object] = {}
            for field in table.fields:
                default = field.default
                row[field.name] = (
                    None if default is None else to_storage(table, field, default, catalog=catalog)
                )
            for lookup in table.lookups:
                if len(set(lookup.targets.values())) > 1:
                    row[f"{lookup.column}__set"] = None
            self._templates[key] = row
        return self._templates[key]

    def row(self, service: str, entity_set: str, values: dict[str, object]) -> dict[str, object]:
        row = dict(self.template(service, entity_set))
        row.update(values)
        if service == "dataverse":
            self._version += 1
            row["versionnumber"] = 1_000_000 + self._version
        return row

    def audit(self, created: int, modified: int) -> dict[str, object]:
        return {"createdon": timestamp(created), "modifiedon": timestamp(modified)}

    def times(self, number: int) -> tuple[int, int]:
        """(createdon, modifiedon) offsets in the window, created no later than modified."""
        modified = number % ref.WINDOW_SECONDS
        created = modified - (number // ref.WINDOW_SECONDS) % min(modified + 1, 86400)
        return created, modified

    # .. reference ids ................................................................

    def business_unit_id(self, company: ref.Company | None) -> str:
        return self.reference_id("businessunit", -1 if company is None else company.index)

    def user_id(self, company: ref.Company | None) -> str:
        return self.reference_id("systemuser", -1 if company is None else company.index)

    def currency_id(self, code: str) -> str:
        return self._currency_ids[code]

    def price_list_id(self, name: str) -> str:
        return self._price_list_ids[name]

    def unit_id(self, name: str) -> str:
        return self._unit_ids[name]

    def unit_group_id(self) -> str:
        return self.reference_id("uomschedule", 0)

    def owner(self, company: ref.Company) -> dict[str, object]:
        found = self._owners.get(company.index)
        if found is None:
            user = self.user_id(company)
            found = self._owners[company.index] = {
                "ownerid": user,
                "owninguser": user,
                "owningbusinessunit": self.business_unit_id(company),
            }
        return found

    def sales_unit_for(self, symbol: str) -> str | None:
        for name, (_, fno_symbol) in ref.SALES_UNITS.items():
            if fno_symbol == symbol:
                return name
        return None

    # .. facts of large-table rows (pure functions of the index) .......................

    def account(self, i: int) -> Account:
        d, a, b = self.numbers("account", i)
        company = ref.COMPANIES[i % 2]
        pos = position_in(i, ACCOUNT_BLOCK)
        number: str | None = f"ACC-{1000 + i:05d}-{random_suffix(a)}"
        if pos == ACCOUNT_NO_NUMBER:
            number = None
        elif pos == ACCOUNT_DUP_SECOND:
            number = self.account(i - 2).number
        country: str | None = company.countries[a % len(company.countries)]
        if pos == ACCOUNT_UNKNOWN_COUNTRY:
            country = ref.UNKNOWN_COUNTRY
        elif pos == ACCOUNT_BLANK_COUNTRY:
            country = None
        cities = ref.CITIES[country or "United States"]
        city, state, zip_code = cities[(a >> 8) % len(cities)]
        name = (
            f"{ref.ACCOUNT_WORDS_1[(a >> 12) % len(ref.ACCOUNT_WORDS_1)]} "
            f"{ref.ACCOUNT_WORDS_2[(a >> 20) % len(ref.ACCOUNT_WORDS_2)]} "
            f"{ref.ACCOUNT_WORDS_3[(a >> 28) % len(ref.ACCOUNT_WORDS_3)]}"
        )
        created, modified = self.times(b)
        return Account(
            index=i,
            guid=guid_of(d),
            company=company,
            position=pos,
            number=number,
            name=name,
            country=country,
            city=city,
            state=state,
            zip=zip_code,
            street=f"{1 + (a >> 32) % 999} {ref.STREETS[(a >> 42) % len(ref.STREETS)]}",
            phone=f"+1 425 555 {(a >> 48) % 10000:04d}" if company.index == 0 else f"+49 89 {a >> 48:05d}",
            email=f"info{i}@{_DOMAINS[(a >> 12) % len(_DOMAINS)]}.example",
            employees=10 + (b >> 20) % 5000,
            credit_limit=float(1000 * (1 + (b >> 36) % 200)),
            modified=modified,
            created=created,
        )

    def contact(self, i: int) -> Contact:
        d, a, b = self.numbers("contact", i)
        company = ref.COMPANIES[i % 2]
        pos = position_in(i, CONTACT_BLOCK)
        number: str | None = f"CON-{1000 + i:05d}-{random_suffix(a)}"
        if pos in (CONTACT_PERSON_NO_NUMBER, CONTACT_CUSTOMER_NO_NUMBER):
            number = None
        first = ref.FIRST_NAMES[(a >> 8) % len(ref.FIRST_NAMES)]
        last = ref.LAST_NAMES[(a >> 16) % len(ref.LAST_NAMES)]
        country = company.countries[(a >> 24) % len(company.countries)]
        city, state, zip_code = ref.CITIES[country][(a >> 28) % len(ref.CITIES[country])]
        created, modified = self.times(b)
        return Contact(
            index=i,
            guid=guid_of(d),
            company=company,
            position=pos,
            number=number,
            first=first,
            last=last,
            job=ref.JOB_TITLES[(a >> 32) % len(ref.JOB_TITLES)],
            email=f"{first.lower()}.{last.lower()}{i}@mail.example",
            phone=f"+1 206 555 {(a >> 40) % 10000:04d}" if company.index == 0 else f"+49 30 {a >> 48:05d}",
            country=country,
            city=city,
            state=state,
            zip=zip_code,
            street=f"{1 + (a >> 36) % 300} {ref.STREETS[(a >> 44) % len(ref.STREETS)]}",
            gender=1 + (a >> 52) % 2,
            modified=modified,
            created=created,
        )

    def product(self, i: int) -> Product:
        _, a, _b = self.numbers("product", i)
        company = ref.COMPANIES[i % 2]
        pos = position_in(i, PRODUCT_BLOCK)
        service = pos % 4 == 3
        if pos == PRODUCT_UNMAPPED_UNIT:
            unit = ref.UNMAPPED_UNIT
        elif service:
            unit = "hr"
        else:
            unit = "box" if pos % 4 == 2 else "ea"
        word = ref.PRODUCT_WORDS_1[(a >> 8) % len(ref.PRODUCT_WORDS_1)]
        noun_list = ref.PRODUCT_SERVICES if service else ref.PRODUCT_ITEMS
        noun = noun_list[(a >> 16) % len(noun_list)]
        price = money(50 + (a >> 24) % 150) if service else money(19.99 + ((a >> 24) % 980) * 1.25)
        sales_price = price
        if pos < PRODUCT_PRICE_CHANGED:
            sales_price = money(price * 0.9)  # Sales still has the price from before the change
        return Product(
            index=i,
            company=company,
            position=pos,
            number=f"{company.product_prefix}{i // 2 + 1:05d}",
            name=f"{word} {noun}",
            service=service,
            unit=unit,
            price=price,
            sales_price=sales_price,
            cost=money(price * 0.6),
            sales_guid=self.guid("product", i),
            price_item_guid=self.guid("productpricelevel", i),
        )

    # .. choosing related rows ..........................................................

    def existing_account(self, company: int, number: int) -> Account:
        count = rows_below(self.plan.accounts, company, ACCOUNT_BLOCK, ACCOUNT_EXISTING)
        return self.account(nth_row(number % count, company, ACCOUNT_BLOCK, ACCOUNT_EXISTING))

    def new_account_with_contact(self, company: int, number: int) -> Account | None:
        """A new account (not yet in F&O) that gets a contact person the same day, if the
        scale has one for `company`."""
        count = rows_below(self.plan.accounts, company, ACCOUNT_BLOCK, ACCOUNT_NEW_WITH_CONTACT + 1)
        count -= rows_below(self.plan.accounts, company, ACCOUNT_BLOCK, ACCOUNT_NEW_WITH_CONTACT)
        if count == 0:
            return None
        block = number % count
        return self.account(2 * (block * ACCOUNT_BLOCK + ACCOUNT_NEW_WITH_CONTACT) + company)

    def existing_contact_customer(self, company: int, number: int) -> Contact:
        count = rows_below(self.plan.contacts, company, CONTACT_BLOCK, CONTACT_EXISTING_CUSTOMERS)
        return self.contact(nth_row(number % count, company, CONTACT_BLOCK, CONTACT_EXISTING_CUSTOMERS))

    def sales_product(self, company: int, number: int) -> Product:
        count = rows_below(self.plan.products, company, PRODUCT_BLOCK, PRODUCT_IN_SALES)
        return self.product(nth_row(number % count, company, PRODUCT_BLOCK, PRODUCT_IN_SALES))

    def customer(self, company: int, number: int) -> Customer:
        """A customer both systems know; every fifth one is a person (contact)."""
        if number % 5 == 4:
            contact = self.existing_contact_customer(company, number // 5)
            assert contact.number is not None
            return Customer(
                contact.guid, "contacts", contact.number, f"{contact.first} {contact.last}", contact.country
            )
        account = self.existing_account(company, number // 5)
        assert account.number is not None
        return Customer(account.guid, "accounts", account.number, account.name, account.country)

    def fno_only_customer(self, company: ref.Company, number: int) -> str:
        return f"{company.customer_prefix}-{number % self.plan.fno_only_customers + 1:03d}"

    @staticmethod
    def chunked(service: str, entity_set: str, rows: Iterator[dict[str, object]]) -> Iterator[Batch]:
        batch: list[dict[str, object]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH_SIZE:
                yield service, entity_set, batch
                batch = []
        if batch:
            yield service, entity_set, batch

    def _address(
        self, prefix: str, country: str | None, street: str, city: str, state: str, zip_code: str
    ) -> dict:
        return {
            f"{prefix}line1": street,
            f"{prefix}city": city,
            f"{prefix}stateorprovince": state or None,
            f"{prefix}postalcode": zip_code,
            f"{prefix}country": country,
        }

    def _fno_address(
        self, prefix: str, country: str | None, street: str, city: str, state: str, zip_code: str
    ) -> dict:
        region, iso = ref.COUNTRIES.get(country or "United States", ("USA", "US"))
        return {
            f"{prefix}Street": street,
            f"{prefix}City": city,
            f"{prefix}State": state or None,
            f"{prefix}ZipCode": zip_code,
            f"{prefix}CountryRegionId": region,
            f"{prefix}CountryRegionISOCode": iso,
        }
