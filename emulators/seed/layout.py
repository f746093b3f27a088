"""Deterministic generator of the emulators' seed data (demo story and scale runs).

Every row is a pure function of `(random_seed, table, row index)`: attributes come from
a keyed BLAKE2b digest of the index, never from wall-clock time or a shared random
stream. So a row in one table can recompute the facts of a row it refers to (an order
knows its customer's GUID and account number) without keeping earlier tables in
memory, and a 1M-row run streams in bounded batches.

Row `i` of a large table belongs to company `i % 2`; its *position* `(i // 2) % B`
(B fixed per table) decides its role in the story (new, already synced, or one of the
rows the templates must skip or reject). The demo and every scale share these rules;
`STORY.md` lists them with the demo's exact counts. This module holds the layouts,
the row-count plan and the pure helpers; `facts.py` the facts of single rows; one module
per area builds its rows (`organisation`, `products`, `accounts`, `contacts`, `documents`,
`quotations`, `orders`, `invoices`) and `generator.py` puts the world together.
"""

from __future__ import annotations

from dataclasses import dataclass

BATCH_SIZE = 5000
#: Rows of a header table generated together with their lines (keeps every batch bounded).
CHUNK = 1000

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
ACCOUNT_NEW_WITH_CONTACT = 15  # a new account whose contact person is synced the same day

CONTACT_BLOCK = 30
CONTACT_CUSTOMERS = 8  # positions 0..7: active customers (msdynce_isactivecustomer)
CONTACT_EXISTING_CUSTOMERS = 2  # positions 0..1 already F&O customers (Person)
CONTACT_PERSONS = range(8, 26)  # contact persons of an account
CONTACT_PERSON_OF_NEW_ACCOUNT = 25  # ...whose account is new to F&O, changed the same day
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


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def guid_of(digest: bytes) -> str:
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


def random_suffix(number: int) -> str:
    """Six upper-case letters, the random part of a P2C number (`ACC-01000-BVRCPS`)."""
    return _TRIGRAMS[number % 17576] + _TRIGRAMS[(number >> 16) % 17576]


def timestamp(offset: int) -> str:
    """`WINDOW_START + offset` seconds (within November 2026), stored form `YYYY-MM-DDTHH:MM:SSZ`."""
    minute, second = divmod(offset, 60)
    return _MINUTES[minute] + _SECONDS[second]


def position_in(i: int, block: int) -> int:
    return (i // 2) % block


def nth_row(j: int, company: int, block: int, allowed: int) -> int:
    """Index of the j-th row of `company` whose position is below `allowed`."""
    k, pos = divmod(j, allowed)
    return 2 * (k * block + pos) + company


def rows_below(n: int, company: int, block: int, allowed: int) -> int:
    """How many of the first `n` rows belong to `company` with position below `allowed`."""
    rows = (n - company + 1) // 2
    return (rows // block) * allowed + min(rows % block, allowed)


def money(value: float) -> float:
    return round(value + 0.0, 2)
