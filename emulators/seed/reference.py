"""Fixed reference data of the seeded world: companies, currencies, units, price lists.

Everything here is the same for the demo and for every scale; the generator derives
the large tables from it. STORY.md explains the choices.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Every seeded Dataverse timestamp lies in this window (UTC): three daily intervals.
WINDOW_START = "2026-11-01T00:00:00Z"
WINDOW_END = "2026-11-03T23:59:59Z"
WINDOW_SECONDS = 3 * 86400


@dataclass(frozen=True)
class Company:
    """One F&O legal entity and the Sales business unit mapped to it."""

    index: int  # 0 or 1; row i of a large table belongs to company i % 2
    data_area_id: str
    name: str
    business_unit: str
    currency: str
    price_list: str
    language: str
    customer_prefix: str  # F&O-only customer accounts: US-001, DE-001, ...
    product_prefix: str  # F&O product numbers: USMF-P00001, ...
    order_prefix: str
    tax_rate: float
    countries: tuple[str, ...]  # Sales country names used for this company's addresses
    site: str
    warehouse: str
    owner_first: str
    owner_last: str


COMPANIES: tuple[Company, ...] = (
    Company(
        index=0,
        data_area_id="usmf",
        name="Contoso Entertainment System USA",
        business_unit="Contoso US",
        currency="USD",
        price_list="CRM Service USA (sample)",
        language="en-us",
        customer_prefix="US",
        product_prefix="USMF-P",
        order_prefix="USMF-SO",
        tax_rate=0.08,
        countries=("United States", "United States", "United States", "Canada"),
        site="1",
        warehouse="13",
        owner_first="Sam",
        owner_last="Seller",
    ),
    Company(
        index=1,
        data_area_id="demf",
        name="Contoso Entertainment System Germany",
        business_unit="Contoso Europe",
        currency="EUR",
        price_list="CRM Service Europe (sample)",
        language="de",
        customer_prefix="DE",
        product_prefix="DEMF-P",
        order_prefix="DEMF-SO",
        tax_rate=0.19,
        countries=("Germany", "Germany", "France", "Netherlands", "United Kingdom"),
        site="1",
        warehouse="11",
        owner_first="Eva",
        owner_last="Verkauf",
    ),
)

ROOT_BUSINESS_UNIT = "Contoso"

#: Sales country name -> (F&O CountryRegionId, ISO code). The value map the templates
#: need for these; "Atlantis" is the one the seed uses to provoke a value-map miss.
COUNTRIES: dict[str, tuple[str, str]] = {
    "United States": ("USA", "US"),
    "Canada": ("CAN", "CA"),
    "Germany": ("DEU", "DE"),
    "France": ("FRA", "FR"),
    "Netherlands": ("NLD", "NL"),
    "United Kingdom": ("GBR", "GB"),
}
UNKNOWN_COUNTRY = "Atlantis"

CITIES: dict[str, tuple[tuple[str, str, str], ...]] = {
    # country -> (city, state/province, postal code)
    "United States": (
        ("Redmond", "WA", "98052"),
        ("Seattle", "WA", "98101"),
        ("Chicago", "IL", "60601"),
        ("Austin", "TX", "73301"),
        ("Boston", "MA", "02108"),
    ),
    "Canada": (("Toronto", "ON", "M5H 2N2"), ("Vancouver", "BC", "V6B 1A1")),
    "Germany": (("Munich", "BY", "80331"), ("Berlin", "BE", "10115"), ("Hamburg", "HH", "20095")),
    "France": (("Paris", "IDF", "75001"), ("Lyon", "ARA", "69001")),
    "Netherlands": (("Amsterdam", "NH", "1012 JS"), ("Utrecht", "UT", "3511 AD")),
    "United Kingdom": (("London", "LND", "SW1A 1AA"), ("Manchester", "MAN", "M1 1AE")),
    UNKNOWN_COUNTRY: (("Poseidonia", "", "00001"),),
}

STREETS = (
    "Main Street",
    "Market Street",
    "Harbor Road",
    "Park Avenue",
    "Industrial Way",
    "Station Road",
    "Lake View Drive",
    "Hauptstrasse",
    "Rue de la Paix",
    "Keizersgracht",
)

CURRENCIES: dict[str, tuple[str, str, float]] = {
    # ISO code -> (name, symbol, exchange rate against the base currency USD)
    "USD": ("US Dollar", "$", 1.0),
    "EUR": ("Euro", "\u20ac", 0.92),
}

#: Sales unit group and its units: name -> (quantity of the base unit, F&O symbol or None).
UNIT_GROUP = "Default Unit"
BASE_UNIT = "Primary Unit"
SALES_UNITS: dict[str, tuple[float, str | None]] = {
    "Primary Unit": (1.0, None),
    "Each": (1.0, "ea"),
    "Hour": (1.0, "hr"),
    "Box": (12.0, "box"),
}

#: F&O units: symbol -> (description, decimal precision). `kg` has no Sales unit.
FNO_UNITS: dict[str, tuple[str, int]] = {
    "ea": ("Each", 0),
    "hr": ("Hour", 2),
    "box": ("Box of 12", 0),
    "kg": ("Kilogram", 3),
}
UNMAPPED_UNIT = "kg"

#: Price lists: name -> currency. "standard" is the products template's example default.
PRICE_LISTS: dict[str, str] = {
    "CRM Service USA (sample)": "USD",
    "CRM Service Europe (sample)": "EUR",
    "standard": "USD",
}

#: F&O customer groups per company: id -> description.
CUSTOMER_GROUPS: dict[str, str] = {"10": "Customers synced from Sales", "20": "Other customers"}

#: Sales catalogue products that F&O does not know (msdynce_ismaintainedexternally = No).
SALES_NATIVE_PRODUCTS: tuple[tuple[str, str, float], ...] = (
    ("SP-1001", "On-site consultation (Sales catalogue)", 150.0),
    ("SP-1002", "Extended warranty (Sales catalogue)", 89.0),
)

WRITE_IN_DESCRIPTION = "Custom installation (write-in)"

ACCOUNT_WORDS_1 = (
    "Adatum",
    "Alpine",
    "Blue Yonder",
    "City Power",
    "Coho",
    "Contoso",
    "Fabrikam",
    "Fourth Coffee",
    "Humongous",
    "Litware",
    "Lucerne",
    "Margie's",
    "Northwind",
    "Proseware",
    "Southridge",
    "Tailspin",
    "Trey",
    "Wide World",
    "Woodgrove",
    "Wingtip",
)
ACCOUNT_WORDS_2 = (
    "Outdoor",
    "Audio",
    "Pharmaceuticals",
    "Travel",
    "Winery",
    "Electronics",
    "Foods",
    "Logistics",
    "Studios",
    "Systems",
    "Publishing",
    "Energy",
    "Toys",
    "Bikes",
    "Furniture",
    "Health",
)
ACCOUNT_WORDS_3 = ("Inc.", "Ltd.", "GmbH", "Group", "Corporation", "Partners")

FIRST_NAMES = (
    "Alex",
    "Ana",
    "Ben",
    "Carla",
    "Chen",
    "Dario",
    "Elena",
    "Farid",
    "Greta",
    "Hana",
    "Ivan",
    "Jasmin",
    "Kofi",
    "Lena",
    "Marco",
    "Nadia",
    "Oscar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Yusuf",
)
LAST_NAMES = (
    "Adams",
    "Bauer",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hoffmann",
    "Ito",
    "Jansen",
    "Kowalski",
    "Larsen",
    "Martin",
    "Novak",
    "Okafor",
    "Petrov",
    "Quist",
    "Rossi",
    "Schmidt",
    "Tanaka",
)
JOB_TITLES = ("Purchasing Manager", "CFO", "Operations Lead", "Buyer", "IT Director", "Office Manager")

PRODUCT_WORDS_1 = (
    "Surround",
    "Wireless",
    "Studio",
    "Compact",
    "Premium",
    "Smart",
    "Portable",
    "Pro",
    "Home",
    "Outdoor",
)
PRODUCT_ITEMS = ("Speaker", "Receiver", "Headphones", "Amplifier", "Projector", "Soundbar", "Turntable")
PRODUCT_SERVICES = ("Installation", "Calibration", "Maintenance plan", "Training", "Support hours")
