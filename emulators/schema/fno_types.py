"""How the F&O entities of :mod:`emulators.schema.fno` are declared: F&O's enum types (as its
``$metadata`` spells them), the string sizes it publishes, its fill-in values, and the builder
that turns the field reference's per-type property lists into a :class:`Table` with F&O's
rules (keys first and non-nullable, numbers and dates non-nullable with F&O's defaults).
"""

from __future__ import annotations

from emulators.schema.model import EdmType, EnumType, Field, Reference, Required, Table

#: What F&O returns for an empty date (and fills in when a request omits one).
EMPTY_DATE = "1900-01-01T12:00:00Z"


def _members(text: str) -> dict[str, int]:
    """Parse `NAME=value NAME=value ...` into enum members."""
    return {name: int(value) for name, value in (pair.split("=") for pair in text.split())}


_TIMEZONE_MEMBERS = (
    "GMTMINUS1200INTERNATIONALDATELINEWEST=24 GMTMINUS1100COORDINATEDUNIVERSALTIME=99 "
    "GMTMINUS1100MIDWAYISLAND_SAMOA=65 GMTMINUS1000HAWAII=39 GMTMINUS0900ALASKA=2 "
    "GMTMINUS0800PACIFICTIME=58 GMTMINUS0800TIJUANA_BAJACALIFORNIA=59 GMTMINUS0700ARIZONA=75 "
    "GMTMINUS0700MOUNTAINTIME=47 GMTMINUS0700CHIHUAHUA_LAPAZ_MAZATLAN=48 "
    "GMTMINUS0600CENTRALAMERICA=15 GMTMINUS0600CENTRALTIME=21 "
    "GMTMINUS0600GUADALAJARA_MEXICOCITY=22 GMTMINUS0600SASKATCHEWAN=11 "
    "GMTMINUS0500BOGOTA_LIMA_QUITO_RIOBRANCO=63 GMTMINUS0500EASTERNTIME=29 "
    "GMTMINUS0500INDIANA=74 GMTMINUS0500CHETUMAL=255 GMTMINUS0400ASUNCION=95 "
    "GMTMINUS0400ATLANTICTIME=6 GMTMINUS0400LAPAZ=64 GMTMINUS0400MANAUS=17 "
    "GMTMINUS0300SANTIAGO=57 GMTMINUS0430CARACAS=85 GMTMINUS0330NEWFOUNDLAND=54 "
    "GMTMINUS0300_SALVADOR=87 GMTMINUS0300BRASILIA=28 GMTMINUS0300BUENOSAIRES=86 "
    "GMTMINUS0300BUENOSAIRES_GEORGETOWN=62 GMTMINUS0300GREENLAND=36 "
    "GMTMINUS0300MONTEVIDEO=83 GMTMINUS0200MIDATLANTIC=45 GMTMINUS0100AZORES=10 "
    "GMTMINUS0100CAPEVERDIS=12 GMT_CASABLANCA=93 GMT_CASABLANCA_MONTROVIA_REYKJAVIK=37 "
    "GMT_COORDINATEDUNIVERSALTIME=89 GMT_DUBLIN_EDINBURGH_LISBON_LONDON=35 "
    "GMT_PLUS0300KALININGRAD_MINSK=90 GMTPLUS0100_AMSTERDAM_BERLIN_BERN_ROME=79 "
    "GMTPLUS0100BELGRADE_BRATISLAVA_BUDAPEST=18 GMTPLUS0100BRUSSELS_COPENHAGEN_MADRID=60 "
    "GMTPLUS0100SARAJEVO_SKOPJE_WARSAW_ZAGREB=19 GMTPLUS0100TRIPOLI=101 "
    "GMTPLUS0100WESTCENTRALAFRICA=78 GMTPLUS0200_DAMASCUS=96 GMTPLUS0200AMMAN=43 "
    "GMTPLUS0200ATHENS_BUCHAREST_ISTANBUL=38 GMTPLUS0200BEIRUT=46 GMTPLUS0200MINSK=27 "
    "GMTPLUS0200CAIRO=30 GMTPLUS0200HARARE_PRETORIA=68 "
    "GMTPLUS0200HELSINKI_KYIV_RIGA_VILNIUS=33 GMTPLUS0300ISTANBUL=98 GMTPLUS0200JERUSALEM=42 "
    "GMTPLUS0200WINDHOEK=51 GMTPLUS0300BAGHDAD=5 GMTPLUS0300KUWAIT_RIYADH=3 "
    "GMTPLUS0300MOSCOW_STPETERSBURG_VOLGOGRAD=61 GMTPLUS0300NAIROBI=25 GMTPLUS0300TBILISI=34 "
    "GMTPLUS0330TEHRAN=41 GMTPLUS0400ABUDHABI_MUSCAT=4 GMTPLUS0400BAKU=9 "
    "GMTPLUS0400IZHEVSK_SAMARA=104 GMTPLUS0400CAUCASUSSTANDARDTIME=84 "
    "GMTPLUS0400PORTLOUIS=92 GMTPLUS0400YEREVAN=13 GMTPLUS0430KABUL=1 "
    "GMTPLUS0500EKATERINBURG=31 GMTPLUS0500ISLAMABAD_KARACHI=94 "
    "GMTPLUS0500ISLAMABAD_KARACHI_TASHKENT=255 GMTPLUS0530CHENNAI_KOLKATA_MUMBAI=40 "
    "GMTPLUS0530SRIJAYAWARDENEPURA=69 GMTPLUS0545KATHMANDU=52 "
    "GMTPLUS0600ALMATY_NOVOSIBIRSK=50 GMTPLUS0600ASTANA_DHAKA=16 GMTPLUS0600DHAKA=88 "
    "GMTPLUS0600MAGADAN=91 GMTPLUS0630_YANGON=49 GMTPLUS0700_BANGKOK_HANOI_JAKARTA=66 "
    "GMTPLUS0700KRASNOYARSK=56 GMTPLUS0800_ULAANBAATAR=97 "
    "GMTPLUS0800BEIJING_CHONGQING_HONGKONG=23 GMTPLUS0800IRKUTSK_ULAANBATAAR=55 "
    "GMTPLUS0800KUALALUMPUR_SINGAPORE=67 GMTPLUS0800PERTH=77 GMTPLUS0800TAIPEI=70 "
    "GMTPLUS0900OSAKA_SAPPORO_TOKYO=72 GMTPLUS0900SEOUL=44 GMTPLUS0900YAKUTSK=82 "
    "GMTPLUS0930ADELAIDE=14 GMTPLUS0930DARWIN=7 GMTPLUS1000BRISBANE=26 "
    "GMTPLUS1000CANBERRA_MELBOURNE_SYDNEY=8 GMTPLUS1000GUAM_PORTMORESBY=81 "
    "GMTPLUS1000HOBART=71 GMTPLUS1000VLADIVOSTOK=76 GMTPLUS1100CHOKURDAKH=102 "
    "GMTPLUS1100MAGADAN_SOLOMONIS=20 GMTPLUS1200ANADYR_PETRO_KAMCHATSKY=103 "
    "GMTPLUS1200AUCKLAND_WELLINGTON=53 GMTPLUS1200COORDINATEDUNIVERSALTIME=100 "
    "GMTPLUS1200FIJI_KAMCHATKA_MARSHALLIS=32 GMTPLUS1300NUKU_ALOFA=73"
)

ENUMS: tuple[EnumType, ...] = (
    EnumType("NoYes", {"No": 0, "Yes": 1}),
    EnumType("SalesStatus", {"None": 0, "Backorder": 1, "Delivered": 2, "Invoiced": 3, "Canceled": 4}),
    EnumType(
        "SalesOrderProcessingStatus",
        {
            "Active": 0,
            "Confirmed": 1,
            "Picked": 2,
            "PartiallyDelivered": 3,
            "Delivered": 4,
            "Invoiced": 5,
            "PartiallyInvoiced": 6,
            "Canceled": 7,
            "DeliveredPartiallyInvoiced": 8,
        },
    ),
    EnumType(
        "SalesQuotationStatus",
        {
            "Created": 0,
            "Sent": 1,
            "Confirmed": 2,
            "Lost": 3,
            "Cancelled": 4,
            "Reset": 5,
            "Modified": 6,
            "Submitted": 7,
            "Approved": 8,
            "Revised": 9,
        },
    ),
    EnumType("SalesQuotationCreationMethod", {"SCM": 0, "Dynamics365Sales": 1}),
    EnumType("SalesOriginType", {"NotSpecified": 0, "SalesOrderIntegration": 1, "WorkOrderIntegration": 2}),
    EnumType(
        "SalesDeliveryDateControlType",
        {"None": 0, "SalesLeadTime": 1, "ATP": 2, "ATPPlusIssueMargin": 3, "CTP": 4, "FullRunCTP": 5},
    ),
    EnumType(
        "SalesExternalWorkOrderStatus",
        {
            "OpenUnscheduled": 0,
            "OpenScheduled": 1,
            "OpenInProgress": 2,
            "OpenCompleted": 3,
            "ClosedPosted": 4,
            "ClosedCanceled": 5,
        },
    ),
    EnumType(
        "SmmContactPersonCdsAssociatedContactType",
        {"Customer": 0, "Vendor": 1, "Contact": 2, "NotSupported": 3, "Prospect": 4},
    ),
    EnumType("Gender", {"Unknown": 0, "Male": 1, "Female": 2, "NonSpecific": 3}),
    EnumType("DirPersonMaritalStatus", {"None": 0, "Single": 1, "Married": 2, "Divorced": 3, "Widowhood": 4}),
    EnumType("InvoiceOrderAccount", {"InvoiceAccount": 0, "OrderAccount": 1}),
    EnumType(
        "CustVendorBlocked",
        {"No": 0, "Invoice": 1, "All": 2, "Payment": 3, "Requisition": 4, "Never": 5, "PurchOrder": 6},
    ),
    EnumType("EcoResProductType", {"Item": 1, "Service": 2}),
    EnumType(
        "EcoResFieldServiceProductType", {"Inventory": 0, "NonInventory": 1, "Service": 2, "NotAvailable": 3}
    ),
    EnumType(
        "MonthsOfYear",
        {
            "None": 0,
            "January": 1,
            "February": 2,
            "March": 3,
            "April": 4,
            "May": 5,
            "June": 6,
            "July": 7,
            "August": 8,
            "September": 9,
            "October": 10,
            "November": 11,
            "December": 12,
        },
    ),
    # Member names and values as in F&O's $metadata (two members share 255 there too).
    EnumType("Timezone", _members(_TIMEZONE_MEMBERS)),
)

_ENUM_BY_NAME = {enum.name: enum for enum in ENUMS}

#: String sizes F&O publishes as ``MaxLength`` in ``$metadata`` for the fields whose extended
#: data type the templates depend on: ``CustAccount`` (20) and the party ``Name`` (100). Other
#: strings are left unbounded here; a longer value is refused like F&O does (validate.py).
MAX_LENGTHS = {"CustomerAccount": 20, "OrganizationName": 100}


def words(text: str) -> list[str]:
    return [word.strip() for word in text.replace("\n", " ").split(",") if word.strip()]


def entity(
    logical_name: str,
    entity_set: str,
    key: tuple[str, ...],
    *,
    key_types: dict[str, EdmType] | None = None,
    strings: str = "",
    decimals: str = "",
    int32s: str = "",
    int64s: str = "",
    dates: str = "",
    enums: dict[str, str] | None = None,
    mandatory: tuple[str, ...] = (),
    read_only: tuple[str, ...] = (),
    references: tuple[Reference, ...] = (),
    description: str = "",
) -> Table:
    """Build an entity from the reference's per-type property lists.

    Key fields come first, in key order; their type is Edm.String unless `key_types`
    says otherwise. Numeric and date properties get F&O's fill-in defaults.
    """
    key_types = key_types or {}
    fields: list[Field] = []
    for name in key:
        edm = key_types.get(name, EdmType.STRING)
        fields.append(
            Field(
                name,
                edm,
                max_length=4 if name == "dataAreaId" else MAX_LENGTHS.get(name),
                required=Required.SYSTEM,
                nullable=False,
            )
        )

    def plain(name: str, edm: EdmType, default: object) -> Field:
        return Field(
            name,
            edm,
            required=Required.SYSTEM if name in mandatory else Required.NONE,
            nullable=edm in (EdmType.STRING,),
            read_only=name in read_only,
            default=default,
            precision=32 if edm is EdmType.DECIMAL else None,
            scale=6 if edm is EdmType.DECIMAL else None,
            max_length=MAX_LENGTHS.get(name) if edm is EdmType.STRING else None,
        )

    for name in words(strings):
        fields.append(plain(name, EdmType.STRING, None))
    for name in words(decimals):
        fields.append(plain(name, EdmType.DECIMAL, 0))
    for name in words(int32s):
        fields.append(plain(name, EdmType.INT32, 0))
    for name in words(int64s):
        fields.append(plain(name, EdmType.INT64, 0))
    for name in words(dates):
        fields.append(plain(name, EdmType.DATETIMEOFFSET, EMPTY_DATE))
    for name, enum_name in (enums or {}).items():
        enum = _ENUM_BY_NAME[enum_name]
        zero = next((member for member, value in enum.members.items() if value == 0), None)
        fields.append(
            Field(
                name,
                EdmType.ENUM,
                enum_type=enum_name,
                required=Required.SYSTEM if name in mandatory else Required.NONE,
                read_only=name in read_only,
                default=zero,
            )
        )
    return Table(
        logical_name=logical_name,
        entity_set=entity_set,
        key=key,
        fields=tuple(fields),
        references=references,
        company_specific=key[0] == "dataAreaId",
        ownership="",
        description=description,
    )


def enum_fields(enum_name: str, names: str) -> dict[str, str]:
    return dict.fromkeys(words(names), enum_name)


def ref(fields: str, entity_set: str, target: str, message: str) -> Reference:
    return Reference(tuple(words(fields)), entity_set, tuple(words(target)), message)
