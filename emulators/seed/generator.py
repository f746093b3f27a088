"""Deterministic generator of the emulators' seed data (demo story and scale runs).

Every row is a pure function of `(random_seed, table, row index)`: attributes come from
a keyed BLAKE2b digest of the index, never from wall-clock time or a shared random
stream. So a row in one table can recompute the facts of a row it refers to (an order
knows its customer's GUID and account number) without keeping earlier tables in
memory, and a 1M-row run streams in bounded batches.

Row `i` of a large table belongs to company `i % 2`; its *position* `(i // 2) % B`
(B fixed per table) decides its role in the story (new, already synced, or one of the
rows the templates must skip or reject). The demo and every scale share these rules;
`STORY.md` lists them with the demo's exact counts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulators.schema import dataverse, fno
from emulators.schema.validate import to_storage
from emulators.seed import reference as ref

if TYPE_CHECKING:
    from collections.abc import Iterator

    from emulators.schema.model import Catalog

BATCH_SIZE = 5000
#: Rows of a header table generated together with their lines (keeps every batch bounded).
_CHUNK = 1000

Batch = tuple[str, str, list[dict[str, object]]]

# --- table layouts: block size B and the positions of each role ------------------------

ACCOUNT_BLOCK = 50  # per company
ACCOUNT_EXISTING = 10  # positions 0..9 were synced to F&O earlier
ACCOUNT_PHONE_CHANGED = 0  # ...and position 0 changed its phone in Sales since
ACCOUNT_NO_NUMBER = 10
ACCOUNT_DUP_FIRST = 11
ACCOUNT_DUP_SECOND = 12  # copies the number of the row two indexes earlier
ACCOUNT_UNKNOWN_COUNTRY = 13
ACCOUNT_BLANK_COUNTRY = 14

CONTACT_BLOCK = 30
CONTACT_CUSTOMERS = 8  # positions 0..7: active customers (msdynce_isactivecustomer)
CONTACT_EXISTING_CUSTOMERS = 2  # positions 0..1 already F&O customers (Person)
CONTACT_PERSONS = range(8, 26)  # contact persons of an account
CONTACT_EXISTING_PERSONS = range(8, 11)  # already F&O contact persons
CONTACT_PERSON_NO_NUMBER = 26
CONTACT_PARENT_IS_CONTACT = 27
CONTACT_PROSPECT = 28
CONTACT_CUSTOMER_NO_NUMBER = 29

PRODUCT_BLOCK = 30
PRODUCT_IN_SALES = 15  # positions 0..14 were synced to Sales earlier
PRODUCT_PRICE_CHANGED = 2  # positions 0..1 changed their F&O price since
PRODUCT_UNMAPPED_UNIT = 15

QUOTE_BLOCK = 10
QUOTE_ACTIVE = range(0, 6)
QUOTE_DRAFT = (6, 7)
QUOTE_WRITE_IN = 8
QUOTE_WON = 9

ORDER_BLOCK = 10  # Sales orders
ORDER_ACTIVATED = range(0, 7)
ORDER_DRAFT = 7
ORDER_WRITE_IN = 8
ORDER_NATIVE_PRODUCT = 9
ORDER_ROUNDING_EXAMPLE = 0  # line 1: quantity 3, discount 10.00

FNO_ORDER_BLOCK = 15
FNO_ORDER_STATUS = {
    0: "Confirmed",
    1: "Confirmed",
    2: "Confirmed",
    3: "Confirmed",
    4: "Delivered",
    5: "PartiallyInvoiced",
    6: "Invoiced",
    7: "Invoiced",
    8: "Delivered",
    9: "Active",  # not confirmed yet
    10: "Confirmed",  # totals not calculated
    11: "Confirmed",  # Field Service work order
    12: "Confirmed",  # F&O-only ordering customer
    13: "Confirmed",  # F&O-only ordering customer
    14: "Confirmed",  # invoice account is an F&O-only customer
}
FNO_ORDER_SYNCED = range(0, 9)
FNO_ORDER_IN_SALES = 0  # an earlier run already brought it to Sales
FNO_ORDER_HEADER_TAX = (1, 6)
FNO_ORDER_NOT_CONFIRMED = 9
FNO_ORDER_TOTALS_NOT_CALCULATED = 10
FNO_ORDER_WORK_ORDER = 11
FNO_ORDER_FNO_ONLY_CUSTOMER = (12, 13)
FNO_ORDER_FNO_ONLY_INVOICE_ACCOUNT = 14
FNO_ORDER_INVOICED = {5: "partial", 6: "full", 7: "full"}

# Dataverse choice values used below.
QUOTE_STATE_STATUS = {"draft": (0, 1), "active": (1, 2), "won": (2, 4)}
PROCESSING_ACTIVE = 647390000
PROCESSING_CONFIRMED = 647390001
PROCESSING_DRAFT = 647390011
PRODUCT_TYPE_SALES_INVENTORY = 1
PRODUCT_TYPE_SERVICES = 3


@dataclass(frozen=True)
class Plan:
    """Row counts of the large tables (totals over both companies)."""

    accounts: int
    contacts: int
    products: int
    quotes: int
    sales_orders: int
    fno_orders: int
    fno_only_customers: int  # per company

    @classmethod
    def for_scale(cls, scale: str | int) -> Plan:
        if isinstance(scale, str) and scale == "demo":
            return cls(
                accounts=80,
                contacts=60,
                products=60,
                quotes=20,
                sales_orders=20,
                fno_orders=30,
                fno_only_customers=5,
            )
        try:
            n = int(scale)
        except (TypeError, ValueError):
            raise ValueError(f"scale must be 'demo' or a row count, not {scale!r}") from None
        if n < 10:
            raise ValueError("scale must be at least 10 rows per large table")
        return cls(
            accounts=n,
            contacts=n,
            products=n,
            quotes=max(10, n // 5),
            sales_orders=n,
            fno_orders=n,
            fno_only_customers=max(5, n // 40),
        )


# --- helpers ---------------------------------------------------------------------------

_DOMAINS = tuple(word.split()[0].lower().replace("'", "") for word in ref.ACCOUNT_WORDS_1)
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _guid(digest: bytes) -> str:
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_TRIGRAMS = tuple(a + b + c for a in _SUFFIX_ALPHABET for b in _SUFFIX_ALPHABET for c in _SUFFIX_ALPHABET)
_MINUTES = tuple(
    f"2026-11-{day + 1:02d}T{hour:02d}:{minute:02d}:"
    for day in range(29)
    for hour in range(24)
    for minute in range(60)
)
_SECONDS = tuple(f"{second:02d}Z" for second in range(60))


def _suffix(number: int) -> str:
    """Six upper-case letters, the random part of a P2C number (`ACC-01000-BVRCPS`)."""
    return _TRIGRAMS[number % 17576] + _TRIGRAMS[(number >> 16) % 17576]


def timestamp(offset: int) -> str:
    """`WINDOW_START + offset` seconds (within November 2026), stored form `YYYY-MM-DDTHH:MM:SSZ`."""
    minute, second = divmod(offset, 60)
    return _MINUTES[minute] + _SECONDS[second]


def _position(i: int, block: int) -> int:
    return (i // 2) % block


def _nth(j: int, company: int, block: int, allowed: int) -> int:
    """Index of the j-th row of `company` whose position is below `allowed`."""
    k, pos = divmod(j, allowed)
    return 2 * (k * block + pos) + company


def _count(n: int, company: int, block: int, allowed: int) -> int:
    """How many of the first `n` rows belong to `company` with position below `allowed`."""
    rows = (n - company + 1) // 2
    return (rows // block) * allowed + min(rows % block, allowed)


def _money(value: float) -> float:
    return round(value + 0.0, 2)


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


class Generator:
    """Builds every batch of one seeded world."""

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
        return _guid(self.digest(kind, index))

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
        pos = _position(i, ACCOUNT_BLOCK)
        number: str | None = f"ACC-{1000 + i:05d}-{_suffix(a)}"
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
            guid=_guid(d),
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
        pos = _position(i, CONTACT_BLOCK)
        number: str | None = f"CON-{1000 + i:05d}-{_suffix(a)}"
        if pos in (CONTACT_PERSON_NO_NUMBER, CONTACT_CUSTOMER_NO_NUMBER):
            number = None
        first = ref.FIRST_NAMES[(a >> 8) % len(ref.FIRST_NAMES)]
        last = ref.LAST_NAMES[(a >> 16) % len(ref.LAST_NAMES)]
        country = company.countries[(a >> 24) % len(company.countries)]
        city, state, zip_code = ref.CITIES[country][(a >> 28) % len(ref.CITIES[country])]
        created, modified = self.times(b)
        return Contact(
            index=i,
            guid=_guid(d),
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
        pos = _position(i, PRODUCT_BLOCK)
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
        price = _money(50 + (a >> 24) % 150) if service else _money(19.99 + ((a >> 24) % 980) * 1.25)
        sales_price = price
        if pos < PRODUCT_PRICE_CHANGED:
            sales_price = _money(price * 0.9)  # Sales still has the price from before the change
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
            cost=_money(price * 0.6),
            sales_guid=self.guid("product", i),
            price_item_guid=self.guid("productpricelevel", i),
        )

    # .. choosing related rows ..........................................................

    def existing_account(self, company: int, number: int) -> Account:
        count = _count(self.plan.accounts, company, ACCOUNT_BLOCK, ACCOUNT_EXISTING)
        return self.account(_nth(number % count, company, ACCOUNT_BLOCK, ACCOUNT_EXISTING))

    def existing_contact_customer(self, company: int, number: int) -> Contact:
        count = _count(self.plan.contacts, company, CONTACT_BLOCK, CONTACT_EXISTING_CUSTOMERS)
        return self.contact(_nth(number % count, company, CONTACT_BLOCK, CONTACT_EXISTING_CUSTOMERS))

    def sales_product(self, company: int, number: int) -> Product:
        count = _count(self.plan.products, company, PRODUCT_BLOCK, PRODUCT_IN_SALES)
        return self.product(_nth(number % count, company, PRODUCT_BLOCK, PRODUCT_IN_SALES))

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

    # .. the world ........................................................................

    def batches(self) -> Iterator[Batch]:
        yield from self.dataverse_reference()
        yield from self.dataverse_products()
        yield from self.accounts()
        yield from self.contacts()
        yield from self.quotes()
        yield from self.sales_orders()
        yield from self.fno_reference()
        yield from self.fno_customers()
        yield from self.fno_contact_persons()
        yield from self.fno_products()
        yield from self.fno_orders()

    @staticmethod
    def _chunked(service: str, entity_set: str, rows: Iterator[dict[str, object]]) -> Iterator[Batch]:
        batch: list[dict[str, object]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH_SIZE:
                yield service, entity_set, batch
                batch = []
        if batch:
            yield service, entity_set, batch

    # .. Dataverse ....................................................................

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

    def _sales_product_rows(self) -> Iterator[dict[str, object]]:
        for company in ref.COMPANIES:
            count = _count(self.plan.products, company.index, PRODUCT_BLOCK, PRODUCT_IN_SALES)
            rate = ref.CURRENCIES[company.currency][2]
            for j in range(count):
                product = self.product(_nth(j, company.index, PRODUCT_BLOCK, PRODUCT_IN_SALES))
                _, _, b = self.numbers("sales-product", product.index)
                yield self.row(
                    "dataverse",
                    "products",
                    {
                        "productid": product.sales_guid,
                        "name": product.name,
                        "productnumber": product.number,
                        "description": f"{product.name} ({company.data_area_id})",
                        "producttypecode": PRODUCT_TYPE_SERVICES
                        if product.service
                        else PRODUCT_TYPE_SALES_INVENTORY,
                        "price": product.sales_price,
                        "price_base": _money(product.sales_price / rate),
                        "currentcost": product.cost,
                        "currentcost_base": _money(product.cost / rate),
                        "exchangerate": rate,
                        "isstockitem": 0 if product.service else 1,
                        "quantitydecimal": 0,
                        "msdynce_ismaintainedexternally": 1,
                        "defaultuomid": self.unit_id(self.sales_unit_for(product.unit) or ref.BASE_UNIT),
                        "defaultuomscheduleid": self.unit_group_id(),
                        "transactioncurrencyid": self.currency_id(company.currency),
                        **self.audit(*self.times(b)),
                    },
                )
        for k, (number, name, price) in enumerate(ref.SALES_NATIVE_PRODUCTS):
            yield self.row(
                "dataverse",
                "products",
                {
                    "productid": self.guid("native-product", k),
                    "name": name,
                    "productnumber": number,
                    "producttypecode": PRODUCT_TYPE_SERVICES,
                    "price": price,
                    "price_base": price,
                    "exchangerate": 1.0,
                    "isstockitem": 0,
                    "quantitydecimal": 0,
                    "msdynce_ismaintainedexternally": 0,
                    "defaultuomid": self.unit_id("Each"),
                    "defaultuomscheduleid": self.unit_group_id(),
                    "transactioncurrencyid": self.currency_id("USD"),
                    **self.audit(0, 0),
                },
            )

    def _price_item_rows(self) -> Iterator[dict[str, object]]:
        for company in ref.COMPANIES:
            count = _count(self.plan.products, company.index, PRODUCT_BLOCK, PRODUCT_IN_SALES)
            rate = ref.CURRENCIES[company.currency][2]
            for j in range(count):
                product = self.product(_nth(j, company.index, PRODUCT_BLOCK, PRODUCT_IN_SALES))
                yield self.row(
                    "dataverse",
                    "productpricelevels",
                    {
                        "productpricelevelid": product.price_item_guid,
                        "amount": product.sales_price,
                        "amount_base": _money(product.sales_price / rate),
                        "exchangerate": rate,
                        "productnumber": product.number,
                        "productidname": product.name,
                        "pricelevelid": self.price_list_id(company.price_list),
                        "productid": product.sales_guid,
                        "uomid": self.unit_id(self.sales_unit_for(product.unit) or ref.BASE_UNIT),
                        "uomscheduleid": self.unit_group_id(),
                        "transactioncurrencyid": self.currency_id(company.currency),
                        **self.audit(0, 0),
                    },
                )
        for k, (number, name, price) in enumerate(ref.SALES_NATIVE_PRODUCTS):
            yield self.row(
                "dataverse",
                "productpricelevels",
                {
                    "productpricelevelid": self.guid("native-price-item", k),
                    "amount": price,
                    "amount_base": price,
                    "exchangerate": 1.0,
                    "productnumber": number,
                    "productidname": name,
                    "pricelevelid": self.price_list_id(ref.COMPANIES[0].price_list),
                    "productid": self.guid("native-product", k),
                    "uomid": self.unit_id("Each"),
                    "uomscheduleid": self.unit_group_id(),
                    "transactioncurrencyid": self.currency_id("USD"),
                    **self.audit(0, 0),
                },
            )

    def dataverse_products(self) -> Iterator[Batch]:
        yield from self._chunked("dataverse", "products", self._sales_product_rows())
        yield from self._chunked("dataverse", "productpricelevels", self._price_item_rows())

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
            row["creditlimit_base"] = _money(account.credit_limit / rate)
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
        yield from self._chunked("dataverse", "accounts", self._account_rows())

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
            if pos in CONTACT_PERSONS or pos == CONTACT_PERSON_NO_NUMBER:
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
                    **self.audit(contact.created, contact.modified),
                },
            )

    def contacts(self) -> Iterator[Batch]:
        yield from self._chunked("dataverse", "contacts", self._contact_rows())

    def _sales_lines(
        self, kind: str, i: int, company: ref.Company, *, write_in: bool, native: bool, rounding_example: bool
    ) -> list[dict[str, object]]:
        """Line facts of a Sales quote or order (3-5 lines, one odd line when asked)."""
        _, a, b = self.numbers(f"{kind}-lines", i)
        count = 3 + a % 3
        lines: list[dict[str, object]] = []
        for n in range(count):
            quantity = float(1 + (b >> (4 * n)) % 10)
            discount = 0.0
            if rounding_example and n == 0:
                quantity, discount = 3.0, 10.0
            elif (a >> (8 + n)) % 4 == 0:
                discount = 5.0
            odd = n == count - 1 and (write_in or native)
            if odd and write_in:
                price = 250.0
                lines.append(
                    {"product": None, "write_in": True, "quantity": 1.0, "price": price, "discount": 0.0}
                )
                continue
            if odd and native:
                _number, name, price = ref.SALES_NATIVE_PRODUCTS[a % len(ref.SALES_NATIVE_PRODUCTS)]
                lines.append(
                    {
                        "product": None,
                        "native": (self.guid("native-product", a % len(ref.SALES_NATIVE_PRODUCTS)), name),
                        "write_in": False,
                        "quantity": quantity,
                        "price": price,
                        "discount": 0.0,
                    }
                )
                continue
            product = self.sales_product(company.index, (a >> 16) + 7 * n)
            lines.append(
                {
                    "product": product,
                    "write_in": False,
                    "quantity": quantity,
                    "price": product.sales_price,
                    "discount": discount,
                }
            )
        return lines

    def _sales_document(
        self,
        kind: str,
        entity_set: str,
        line_set: str,
        i: int,
        company: ref.Company,
        header: dict[str, object],
        lines: list[dict[str, object]],
        parent_column: str,
        line_extra: dict[str, object],
    ) -> tuple[dict[str, object], list[dict[str, object]]]:
        """Header and line rows of a Sales quote or order, totals computed from the lines."""
        rate = ref.CURRENCIES[company.currency][2]
        header_id = header[f"{kind}id"]
        external_only = all(line["product"] is not None for line in lines)
        line_rows = []
        total = 0.0
        discounts = 0.0
        for n, line in enumerate(lines):
            quantity = float(line["quantity"])  # type: ignore[arg-type]
            price = float(line["price"])  # type: ignore[arg-type]
            discount = float(line["discount"])  # type: ignore[arg-type]
            base = _money(quantity * price)
            extended = _money(base - discount)
            total += extended
            discounts += discount
            product: Product | None = line["product"]  # type: ignore[assignment]
            values: dict[str, object] = {
                f"{line_set[:-1]}id": self.guid(f"{line_set}", i * 10 + n),
                parent_column: header_id,
                "quantity": quantity,
                "priceperunit": price,
                "priceperunit_base": _money(price / rate),
                "baseamount": base,
                "baseamount_base": _money(base / rate),
                "extendedamount": extended,
                "extendedamount_base": _money(extended / rate),
                "manualdiscountamount": discount,
                "manualdiscountamount_base": _money(discount / rate),
                "tax": 0.0,
                "tax_base": 0.0,
                "exchangerate": rate,
                "sequencenumber": n + 1,
                "lineitemnumber": n + 1,
                "requestdeliveryby": header.get("requestdeliveryby"),
                "transactioncurrencyid": self.currency_id(company.currency),
                **line_extra,
                **self.owner(company),
                "createdon": header["createdon"],
                "modifiedon": header["modifiedon"],
            }
            if product is not None:
                values.update(
                    {
                        "productid": product.sales_guid,
                        "uomid": self.unit_id(self.sales_unit_for(product.unit) or ref.BASE_UNIT),
                        "productname": product.name,
                        "msdynce_ismaintainedexternally": 1,
                        "isproductoverridden": 0,
                    }
                )
            elif line.get("write_in"):
                values.update(
                    {
                        "productdescription": ref.WRITE_IN_DESCRIPTION,
                        "isproductoverridden": 1,
                        "msdynce_ismaintainedexternally": 0,
                    }
                )
            else:
                native_id, native_name = line["native"]  # type: ignore[misc]
                values.update(
                    {
                        "productid": native_id,
                        "uomid": self.unit_id("Each"),
                        "productname": native_name,
                        "msdynce_ismaintainedexternally": 0,
                        "isproductoverridden": 0,
                    }
                )
            line_rows.append(values)
        total = _money(total)
        discounts = _money(discounts)
        header.update(
            {
                "totallineitemamount": total,
                "totallineitemamount_base": _money(total / rate),
                "totallineitemdiscountamount": discounts,
                "totallineitemdiscountamount_base": _money(discounts / rate),
                "discountamount": 0.0,
                "discountamount_base": 0.0,
                "freightamount": 0.0,
                "freightamount_base": 0.0,
                "totaltax": 0.0,
                "totaltax_base": 0.0,
                "totalamountlessfreight": total,
                "totalamountlessfreight_base": _money(total / rate),
                "totalamount": total,
                "totalamount_base": _money(total / rate),
                "totaldiscountamount": discounts,
                "totaldiscountamount_base": _money(discounts / rate),
                "exchangerate": rate,
                "msdynce_hasexternallymaintainedproductsonly": 1 if external_only else 0,
            }
        )
        return header, line_rows

    def _sales_header_common(self, kind: str, i: int, company: ref.Company) -> dict[str, object]:
        _, a, b = self.numbers(kind, i)
        customer = self.customer(company.index, a)
        created, modified = self.times(b)
        country = customer.country
        if country is not None and country not in ref.COUNTRIES:
            country = None
        city, state, zip_code = ref.CITIES[country or "United States"][(a >> 40) % 2]
        street = f"{1 + (a >> 44) % 500} {ref.STREETS[(a >> 54) % len(ref.STREETS)]}"
        return {
            "customerid": customer.guid,
            "customerid__set": customer.entity_set,
            "pricelevelid": self.price_list_id(company.price_list),
            "transactioncurrencyid": self.currency_id(company.currency),
            "emailaddress": f"orders{i}@customer.example",
            "requestdeliveryby": timestamp(modified + 7 * 86400),  # a business date after the window
            "description": f"Reference {kind.upper()}-{i:06d}",
            **self._address("shipto_", country, street, city, state, zip_code),
            **self._address("billto_", country, street, city, state, zip_code),
            "shipto_name": customer.name[:200],
            "billto_name": customer.name[:200],
            **self.owner(company),
            **self.audit(created, modified),
        }

    def _quote_rows(self, start: int, stop: int) -> tuple[list, list]:
        headers, lines = [], []
        for i in range(start, stop):
            company = ref.COMPANIES[i % 2]
            pos = _position(i, QUOTE_BLOCK)
            _, a, _ = self.numbers("quote", i)
            state = "draft" if pos in QUOTE_DRAFT else "won" if pos == QUOTE_WON else "active"
            statecode, statuscode = QUOTE_STATE_STATUS[state]
            header = {
                "quoteid": self.guid("quote", i),
                "name": f"Quote for {company.business_unit} #{i + 1}",
                "quotenumber": f"QUO-{1000 + i:05d}-{_suffix(a)}",
                "revisionnumber": 0,
                "statecode": statecode,
                "statuscode": statuscode,
                "msdynce_ismaintainedexternally": 0,
                **self._sales_header_common("quote", i, company),
            }
            line_facts = self._sales_lines(
                "quote", i, company, write_in=pos == QUOTE_WRITE_IN, native=False, rounding_example=False
            )
            header, line_rows = self._sales_document(
                "quote",
                "quotes",
                "quotedetails",
                i,
                company,
                header,
                line_facts,
                "quoteid",
                {"quotestatecode": statecode, "msdynce_quoterevisionnumber": 0},
            )
            for line in line_rows:
                line["msdynce_quotehasexternalmaintainedproductsonly"] = header[
                    "msdynce_hasexternallymaintainedproductsonly"
                ]
            headers.append(self.row("dataverse", "quotes", header))
            lines.extend(self.row("dataverse", "quotedetails", line) for line in line_rows)
        return headers, lines

    def quotes(self) -> Iterator[Batch]:
        for start in range(0, self.plan.quotes, _CHUNK):
            headers, lines = self._quote_rows(start, min(start + _CHUNK, self.plan.quotes))
            yield "dataverse", "quotes", headers
            yield from self._chunked("dataverse", "quotedetails", iter(lines))

    def _sales_order_rows(self, start: int, stop: int) -> tuple[list, list]:
        headers, lines = [], []
        for i in range(start, stop):
            company = ref.COMPANIES[i % 2]
            pos = _position(i, ORDER_BLOCK)
            _, a, _ = self.numbers("salesorder", i)
            processing = PROCESSING_DRAFT if pos == ORDER_DRAFT else PROCESSING_ACTIVE
            common = self._sales_header_common("salesorder", i, company)
            header = {
                "salesorderid": self.guid("salesorder", i),
                "name": f"Order for {company.business_unit} #{i + 1}",
                "ordernumber": f"ORD-{1000 + i:05d}-{_suffix(a)}",
                "statecode": 0,
                "statuscode": 1,
                "ispricelocked": 0,
                "msdynce_processingstatus": processing,
                "msdynce_ismaintainedexternally": 0,
                "submitdate": common["modifiedon"],
                **common,
            }
            line_facts = self._sales_lines(
                "salesorder",
                i,
                company,
                write_in=pos == ORDER_WRITE_IN,
                native=pos == ORDER_NATIVE_PRODUCT,
                rounding_example=pos == ORDER_ROUNDING_EXAMPLE,
            )
            header, line_rows = self._sales_document(
                "salesorder",
                "salesorders",
                "salesorderdetails",
                i,
                company,
                header,
                line_facts,
                "salesorderid",
                {"salesorderstatecode": 0, "salesorderispricelocked": 0, "msdynce_orderissubmitted": 0},
            )
            for line in line_rows:
                line["msdynce_ordernumber"] = header["ordernumber"]
                line["msdynce_orderhasexternalmaintainedproductsonly"] = header[
                    "msdynce_hasexternallymaintainedproductsonly"
                ]
            headers.append(self.row("dataverse", "salesorders", header))
            lines.extend(self.row("dataverse", "salesorderdetails", line) for line in line_rows)
        return headers, lines

    def sales_orders(self) -> Iterator[Batch]:
        for start in range(0, self.plan.sales_orders, _CHUNK):
            headers, lines = self._sales_order_rows(start, min(start + _CHUNK, self.plan.sales_orders))
            yield "dataverse", "salesorders", headers
            yield from self._chunked("dataverse", "salesorderdetails", iter(lines))

    # .. F&O ............................................................................

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

    def _fno_customer_rows(self) -> Iterator[dict[str, object]]:
        yes, no = 1, 0
        for company in ref.COMPANIES:
            # Accounts synced by an earlier run (externally maintained).
            for j in range(_count(self.plan.accounts, company.index, ACCOUNT_BLOCK, ACCOUNT_EXISTING)):
                account = self.account(_nth(j, company.index, ACCOUNT_BLOCK, ACCOUNT_EXISTING))
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
                _count(self.plan.contacts, company.index, CONTACT_BLOCK, CONTACT_EXISTING_CUSTOMERS)
            ):
                contact = self.contact(_nth(j, company.index, CONTACT_BLOCK, CONTACT_EXISTING_CUSTOMERS))
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
        yield from self._chunked("fno", "CustomersV3", self._fno_customer_rows())

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
        yield from self._chunked("fno", "CDSContactPersons", self._fno_contact_person_rows())

    def _fno_product_rows(self) -> Iterator[dict[str, object]]:
        enums = fno.CATALOG.enums
        for i in range(self.plan.products):
            product = self.product(i)
            precision = ref.FNO_UNITS[product.unit][1]
            yield self.row(
                "fno",
                "SellableReleasedProducts",
                {
                    "dataAreaId": product.company.data_area_id,
                    "ProductNumber": product.number,
                    "ProductName": product.name,
                    "ProductDescription": f"{product.name} ({product.company.data_area_id})",
                    "ProductType": enums["EcoResProductType"].members[
                        "Service" if product.service else "Item"
                    ],
                    "FieldServiceProductType": enums["EcoResFieldServiceProductType"].members[
                        "Service" if product.service else "Inventory"
                    ],
                    "IsStockedProduct": 0 if product.service else 1,
                    "IsSalesStopped": 0,
                    "SalesUnitSymbol": product.unit,
                    "InventoryUnitSymbol": product.unit,
                    "SalesUnitDecimalPrecision": precision,
                    "InventoryUnitDecimalPrecision": precision,
                    "SalesPrice": product.price,
                    "UnitCost": product.cost,
                    "CurrencyCode": product.company.currency,
                },
            )

    def fno_products(self) -> Iterator[Batch]:
        yield from self._chunked("fno", "SellableReleasedProducts", self._fno_product_rows())

    def _fno_order(self, i: int) -> tuple[dict, list[dict], ref.Company, int]:
        """Header values and line values of F&O order `i` (store form), plus its position."""
        enums = fno.CATALOG.enums
        company = ref.COMPANIES[i % 2]
        pos = _position(i, FNO_ORDER_BLOCK)
        _, a, b = self.numbers("fno-order", i)
        customer = self.customer(company.index, a)
        ordering = customer.number
        invoice_account = customer.number
        ordering_external = invoice_external = 1
        if pos in FNO_ORDER_FNO_ONLY_CUSTOMER:
            ordering = invoice_account = self.fno_only_customer(company, a)
            ordering_external = invoice_external = 0
        elif pos == FNO_ORDER_FNO_ONLY_INVOICE_ACCOUNT:
            invoice_account = self.fno_only_customer(company, a)
            invoice_external = 0
        status = FNO_ORDER_STATUS[pos]
        line_status = {"Active": "Backorder", "Confirmed": "Backorder", "Delivered": "Delivered"}.get(
            status, "Invoiced"
        )
        totals_calculated = pos != FNO_ORDER_TOTALS_NOT_CALCULATED
        origin = "WorkOrderIntegration" if pos == FNO_ORDER_WORK_ORDER else "NotSpecified"
        _created, modified = self.times(b)
        requested = timestamp(modified + 5 * 86400)  # a business date: may lie after the window
        ordered_at = timestamp(modified)
        number = f"{company.order_prefix}{i // 2 + 1:06d}"
        country = customer.country if customer.country in ref.COUNTRIES else None
        city, state, zip_code = ref.CITIES[country or "United States"][(a >> 40) % 2]
        street = f"{1 + (a >> 44) % 500} {ref.STREETS[(a >> 54) % len(ref.STREETS)]}"
        lines: list[dict] = []
        line_total = line_tax = discount_total = 0.0
        for n in range(3 + a % 3):
            product = self.sales_product(company.index, (a >> 16) + 5 * n)
            quantity = float(1 + (b >> (4 * n)) % 12)
            unit_discount = 1.25 if (a >> (8 + n)) % 4 == 0 else 0.0
            amount = _money(quantity * (product.price - unit_discount))
            tax = _money(amount * company.tax_rate)
            line_total += amount
            line_tax += tax
            discount_total += quantity * unit_discount
            lines.append(
                {
                    "dataAreaId": company.data_area_id,
                    "SalesOrderNumber": number,
                    "SalesOrderNumberHeader": number,
                    "LineCreationSequenceNumber": n + 1,
                    "ProductNumber": product.number,
                    "ProductName": product.name,
                    "LineDescription": product.name,
                    "OrderedSalesQuantity": quantity,
                    "SalesPrice": product.price,
                    "SalesPriceQuantity": 1.0,
                    "LineDiscountAmount": unit_discount,
                    "LineAmount": amount,
                    "TotalDiscountAmount": _money(quantity * unit_discount),
                    "TotalTaxAmount": tax if totals_calculated else 0.0,
                    "SalesUnitSymbol": product.unit,
                    "CurrencyCode": company.currency,
                    "ShippingSiteId": company.site,
                    "ShippingWarehouseId": company.warehouse,
                    "RequestedShippingDate": requested,
                    "ConfirmedShippingDate": requested if status != "Active" else fno.EMPTY_DATE,
                    "SalesOrderProcessingStatus": enums["SalesOrderProcessingStatus"].members[status],
                    "SalesOrderLineStatus": enums["SalesStatus"].members[line_status],
                    "SalesOrderOriginType": enums["SalesOriginType"].members[origin],
                    "AreTotalsCalculated": 1 if totals_calculated else 0,
                    "AreSalesOrderTotalsUpdated": 1 if totals_calculated else 0,
                    "OrderingCustomerIsExternallyMaintained": ordering_external,
                    "InvoiceCustomerIsExternallyMaintained": invoice_external,
                    "DeliveryAddressCountryRegionISOCode": ref.COUNTRIES.get(country or "United States")[1],
                }
            )
        header_tax = (
            _money(12.5 if pos == FNO_ORDER_HEADER_TAX[0] else 9.8) if pos in FNO_ORDER_HEADER_TAX else 0.0
        )
        total_tax = _money(line_tax + header_tax)
        header = {
            "dataAreaId": company.data_area_id,
            "SalesOrderNumber": number,
            "SalesOrderName": f"{customer.name} order {i // 2 + 1}"[:120],
            "CustomersOrderReference": f"PO-{a % 100000:05d}",
            "OrderingCustomerAccountNumber": ordering,
            "InvoiceCustomerAccountNumber": invoice_account,
            "OrderingCustomerIsExternallyMaintained": ordering_external,
            "InvoiceCustomerIsExternallyMaintained": invoice_external,
            "CurrencyCode": company.currency,
            "LanguageId": company.language,
            "Email": f"orders{i}@customer.example",
            "DefaultShippingSiteId": company.site,
            "DefaultShippingWarehouseId": company.warehouse,
            "OrderCreationDateTime": ordered_at,
            "RequestedShippingDate": requested,
            "ConfirmedShippingDate": requested if status != "Active" else fno.EMPTY_DATE,
            "SalesOrderProcessingStatus": enums["SalesOrderProcessingStatus"].members[status],
            "SalesOrderStatus": enums["SalesStatus"].members[line_status],
            "SalesOrderOriginType": enums["SalesOriginType"].members[origin],
            "AreTotalsUpdated": 1 if totals_calculated else 0,
            "OrderHeaderTaxAmount": header_tax if totals_calculated else 0.0,
            "OrderTotalTaxAmount": total_tax if totals_calculated else 0.0,
            "TotalDiscountAmount": _money(discount_total) if totals_calculated else 0.0,
            "OrderTotalDiscountAmount": 0.0,
            "OrderTotalChargesAmount": 0.0,
            "OrderTotalAmount": _money(line_total + total_tax) if totals_calculated else 0.0,
            "DeliveryAddressName": customer.name,
            **self._fno_address("DeliveryAddress", country, street, city, state, zip_code),
            **self._fno_address("InvoiceAddress", country, street, city, state, zip_code),
        }
        # The F&O entity spells the state fields *StateId.
        for prefix in ("DeliveryAddress", "InvoiceAddress"):
            header[f"{prefix}StateId"] = header.pop(f"{prefix}State")
        header["_customer"] = customer
        return header, lines, company, pos

    def _fno_order_chunk(self, start: int, stop: int) -> dict[tuple[str, str], list[dict[str, object]]]:
        out: dict[tuple[str, str], list[dict[str, object]]] = {
            ("fno", "CDSSalesOrderHeaders"): [],
            ("fno", "CDSSalesOrderLines"): [],
            ("fno", "ExternallyMaintainedCustomerSalesInvoiceHeaders"): [],
            ("fno", "ExternallyMaintainedCustomerSalesInvoiceLines"): [],
            ("dataverse", "salesorders"): [],
            ("dataverse", "salesorderdetails"): [],
        }
        for i in range(start, stop):
            header, lines, company, pos = self._fno_order(i)
            customer: Customer = header.pop("_customer")
            out["fno", "CDSSalesOrderHeaders"].append(self.row("fno", "CDSSalesOrderHeaders", header))
            out["fno", "CDSSalesOrderLines"].extend(
                self.row("fno", "CDSSalesOrderLines", line) for line in lines
            )
            if pos in FNO_ORDER_INVOICED:
                self._fno_invoice(i, header, lines, company, FNO_ORDER_INVOICED[pos], out)
            if pos == FNO_ORDER_IN_SALES:
                self._sales_mirror(i, header, lines, company, customer, out)
        return out

    def _fno_invoice(
        self, i: int, header: dict, lines: list[dict], company: ref.Company, extent: str, out: dict
    ) -> None:
        _, a, _ = self.numbers("fno-invoice", i)
        number = f"{company.data_area_id.upper()}-CIV-{i // 2 + 1:06d}"
        voucher = f"{company.data_area_id.upper()}-SIV-{i // 2 + 1:06d}"
        invoice_date = f"2026-11-{1 + a % 3:02d}T12:00:00Z"
        invoiced = lines if extent == "full" else lines[:1]
        amount = _money(sum(line["LineAmount"] for line in invoiced))
        tax = _money(sum(line["TotalTaxAmount"] for line in invoiced))
        header_tax = header["OrderHeaderTaxAmount"] if extent == "full" else 0.0
        discount = _money(sum(line["TotalDiscountAmount"] for line in invoiced))
        out["fno", "ExternallyMaintainedCustomerSalesInvoiceHeaders"].append(
            self.row(
                "fno",
                "ExternallyMaintainedCustomerSalesInvoiceHeaders",
                {
                    "dataAreaId": company.data_area_id,
                    "InvoiceNumber": number,
                    "InvoiceDate": invoice_date,
                    "LedgerVoucher": voucher,
                    "InvoiceCustomerAccountNumber": header["InvoiceCustomerAccountNumber"],
                    "SalesOrderNumber": header["SalesOrderNumber"],
                    "CurrencyCode": company.currency,
                    "CustomersOrderReference": header["CustomersOrderReference"],
                    "InvoiceAddressCity": header["InvoiceAddressCity"],
                    "InvoiceAddressCountryRegionId": header["InvoiceAddressCountryRegionId"],
                    "InvoiceAddressCountryRegionISOCode": header["InvoiceAddressCountryRegionISOCode"],
                    "InvoiceAddressState": header["InvoiceAddressStateId"],
                    "InvoiceAddressStreet": header["InvoiceAddressStreet"],
                    "InvoiceAddressZipCode": header["InvoiceAddressZipCode"],
                    "InvoiceHeaderTaxAmount": header_tax,
                    "TotalTaxAmount": _money(tax + header_tax),
                    "TotalDiscountAmount": discount,
                    "TotalChargeAmount": 0.0,
                    "TotalInvoiceAmount": _money(amount + tax + header_tax),
                    "SalesOrderOriginType": header["SalesOrderOriginType"],
                },
            )
        )
        for line in invoiced:
            out["fno", "ExternallyMaintainedCustomerSalesInvoiceLines"].append(
                self.row(
                    "fno",
                    "ExternallyMaintainedCustomerSalesInvoiceLines",
                    {
                        "dataAreaId": company.data_area_id,
                        "InvoiceNumber": number,
                        "InvoiceDate": invoice_date,
                        "LineCreationSequenceNumber": line["LineCreationSequenceNumber"],
                        "LedgerVoucher": voucher,
                        "ProductNumber": line["ProductNumber"],
                        "ProductName": line["ProductName"],
                        "ProductDescription": line["LineDescription"],
                        "SalesUnitSymbol": line["SalesUnitSymbol"],
                        "CurrencyCode": company.currency,
                        "InvoicedQuantity": line["OrderedSalesQuantity"],
                        "SalesPrice": line["SalesPrice"],
                        "LineAmount": line["LineAmount"],
                        "LineTotalDiscountAmount": line["TotalDiscountAmount"],
                        "LineTotalTaxAmount": line["TotalTaxAmount"],
                        "LineTotalChargeAmount": 0.0,
                        "ConfirmedShippingDate": line["ConfirmedShippingDate"],
                    },
                )
            )

    def _sales_mirror(
        self, i: int, header: dict, lines: list[dict], company: ref.Company, customer: Customer, out: dict
    ) -> None:
        """The Sales copy an earlier F&O-to-Sales run made: one line short, old total, status Confirmed."""
        rate = ref.CURRENCIES[company.currency][2]
        order_id = self.guid("mirror-salesorder", i)
        known = lines[:-1]
        total = _money(sum(line["LineAmount"] for line in known))
        stamp = {"createdon": timestamp(0), "modifiedon": timestamp(0)}
        out["dataverse", "salesorders"].append(
            self.row(
                "dataverse",
                "salesorders",
                {
                    "salesorderid": order_id,
                    "name": header["SalesOrderName"],
                    "ordernumber": header["SalesOrderNumber"],
                    "customerid": customer.guid,
                    "customerid__set": customer.entity_set,
                    "pricelevelid": self.price_list_id(company.price_list),
                    "transactioncurrencyid": self.currency_id(company.currency),
                    "exchangerate": rate,
                    "emailaddress": header["Email"],
                    "totalamount": total,
                    "totalamount_base": _money(total / rate),
                    "totallineitemamount": total,
                    "totallineitemamount_base": _money(total / rate),
                    "msdynce_processingstatus": PROCESSING_CONFIRMED,
                    "msdynce_ismaintainedexternally": 1,
                    "msdynce_hasexternallymaintainedproductsonly": 1,
                    "statecode": 0,
                    "statuscode": 1,
                    "ispricelocked": 0,
                    **self.owner(company),
                    **stamp,
                },
            )
        )
        for n, line in enumerate(known):
            product = self.sales_product_by_number(company, line["ProductNumber"])
            out["dataverse", "salesorderdetails"].append(
                self.row(
                    "dataverse",
                    "salesorderdetails",
                    {
                        "salesorderdetailid": self.guid("mirror-salesorderdetail", i * 10 + n),
                        "salesorderid": order_id,
                        "productid": product.sales_guid,
                        "uomid": self.unit_id(self.sales_unit_for(product.unit) or ref.BASE_UNIT),
                        "sequencenumber": line["LineCreationSequenceNumber"],
                        "lineitemnumber": line["LineCreationSequenceNumber"],
                        "quantity": line["OrderedSalesQuantity"],
                        "priceperunit": line["SalesPrice"],
                        "priceperunit_base": _money(line["SalesPrice"] / rate),
                        "ispriceoverridden": 1,
                        "isproductoverridden": 0,
                        "extendedamount": line["LineAmount"],
                        "extendedamount_base": _money(line["LineAmount"] / rate),
                        "baseamount": line["LineAmount"],
                        "baseamount_base": _money(line["LineAmount"] / rate),
                        "exchangerate": rate,
                        "transactioncurrencyid": self.currency_id(company.currency),
                        "msdynce_ismaintainedexternally": 1,
                        "msdynce_ordernumber": header["SalesOrderNumber"],
                        "msdynce_orderhasexternalmaintainedproductsonly": 1,
                        "salesorderstatecode": 0,
                        **self.owner(company),
                        **stamp,
                    },
                )
            )

    def sales_product_by_number(self, company: ref.Company, number: str) -> Product:
        index = 2 * (int(number[len(company.product_prefix) :]) - 1) + company.index
        return self.product(index)

    def fno_orders(self) -> Iterator[Batch]:
        for start in range(0, self.plan.fno_orders, _CHUNK):
            chunk = self._fno_order_chunk(start, min(start + _CHUNK, self.plan.fno_orders))
            for (service, entity_set), rows in chunk.items():
                yield from self._chunked(service, entity_set, iter(rows))
