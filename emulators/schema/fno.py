"""Finance and Operations data entities the Prospect-to-cash templates read and write.

Declared from the field reference (`/work/shared/reference/entities.md` §1: OData
property names, Edm/enum types, nullability and key order as generated from a live F&O
`$metadata`). Rules that hold for every entity here:

* Key fields are non-nullable; other strings and enums are nullable; every decimal,
  integer and date is non-nullable (F&O fills 0 or the 1900-01-01 sentinel instead).
* No string has a maximum length except `dataAreaId` (4): real lengths are not in any
  public source, and inventing them would make the emulator reject what F&O accepts.
* `references` are the referential checks F&O makes on write (unknown customer group,
  customer, currency, product, unit, or a line without its header is refused).

`CustomersV2` and `CustomersV3` are two views of the same customer table in F&O; the
F&O app should serve both from one store table (the seed writes `CustomersV3`).
`CustomersV2`-only properties `FulfillmentErrorTolerance`, `WarehouseFulfillmentRate`
and `WarehouseFulfillmentType` are left out: their enum members are not public.
"""

from __future__ import annotations

from emulators.schema.fno_types import EMPTY_DATE, ENUMS, MAX_LENGTHS, entity, enum_fields, ref, words
from emulators.schema.model import Catalog, EdmType, Table

__all__ = ["CATALOG", "EMPTY_DATE", "ENUMS", "MAX_LENGTHS", "build_catalog"]


# --- customers ---------------------------------------------------------------------------

_CUSTOMER_STRINGS_V3_ONLY = (
    "AddressStreetNumber, DeliveryAddressStreetNumber, InvoiceAddressStreetNumber, AddressPostbox"
)

_CUSTOMER_STRINGS = """
AddressCity, AddressCountryRegionId, AddressCountryRegionISOCode, AddressCounty, AddressDescription,
AddressLocationRoles, AddressPostbox, AddressState, AddressStreet, AddressStreetNumber, AddressZipCode,
ContactPersonId, CreditRating, CustomerGroupId, DeliveryAddressCity, DeliveryAddressCountryRegionId,
DeliveryAddressCountryRegionISOCode, DeliveryAddressCounty, DeliveryAddressDescription, DeliveryAddressState,
DeliveryAddressStreet, DeliveryAddressStreetNumber, DeliveryAddressZipCode, DeliveryMode, DeliveryTerms,
FullPrimaryAddress, IdentificationNumber, InvoiceAccount, InvoiceAddressCity, InvoiceAddressCountryRegionId,
InvoiceAddressCountryRegionISOCode, InvoiceAddressCounty, InvoiceAddressDescription, InvoiceAddressState,
InvoiceAddressStreet, InvoiceAddressStreetNumber, InvoiceAddressZipCode, LanguageId, NameAlias,
OrganizationName, PartyCountry, PartyNumber, PartyState, PartyType, PaymentDay, PaymentMethod,
PaymentSchedule, PaymentTerms, PersonFirstName, PersonLastName, PersonMiddleName, PersonProfessionalTitle,
PrimaryContactEmail, PrimaryContactFacebook, PrimaryContactFax, PrimaryContactLinkedIn, PrimaryContactPhone,
PrimaryContactPhoneExtension, PrimaryContactTwitter, PrimaryContactURL, SalesCurrencyCode, SalesMemo,
SalesTaxGroup, SiteId, TaxExemptNumber, WarehouseId
"""

_CUSTOMER_DECIMALS = """
AddressLatitude, AddressLongitude, CreditLimit, DeliveryAddressLatitude, DeliveryAddressLongitude,
InvoiceAddressLatitude, InvoiceAddressLongitude
"""

_CUSTOMER_ENUMS = {
    "OnHoldStatus": "CustVendorBlocked",
    "PersonMaritalStatus": "DirPersonMaritalStatus",
    "PersonGender": "Gender",
    "InvoiceAddress": "InvoiceOrderAccount",
    **enum_fields("NoYes", "CreditLimitIsMandatory, IsExternallyMaintained, IsOneTimeCustomer"),
}

_CUSTOMER_REFERENCES = (
    ref("CustomerGroupId", "CustomerGroups", "CustomerGroupId", "Customer group {} does not exist."),
    ref("SalesCurrencyCode", "Currencies", "CurrencyCode", "Currency {} does not exist."),
)


def _customers(entity_set: str, logical_name: str, *, v3: bool) -> Table:
    strings = words(_CUSTOMER_STRINGS)
    if not v3:
        dropped = set(words(_CUSTOMER_STRINGS_V3_ONLY))
        strings = [name for name in strings if name not in dropped]
    return entity(
        logical_name,
        entity_set,
        ("dataAreaId", "CustomerAccount"),
        strings=", ".join(strings),
        decimals=_CUSTOMER_DECIMALS,
        int32s="OrganizationNumberOfEmployees, PaymentTermsBaseDays",
        enums=_CUSTOMER_ENUMS,
        mandatory=("CustomerGroupId",),
        read_only=("FullPrimaryAddress",),
        references=_CUSTOMER_REFERENCES,
        description="Customers (CustTable + party). CustomersV2 is another view of the same rows.",
    )


def _customer_groups() -> Table:
    return entity(
        "CustomerGroup",
        "CustomerGroups",
        ("dataAreaId", "CustomerGroupId"),
        strings="""AccountingCurrencyExchangeRateType, ClearingPeriodPaymentTermName,
        CustomerAccountNumberSequence, DefaultDimensionDisplayValue, Description, PaymentTermId,
        ReportingCurrencyExchangeRateType, TaxGroupId, WriteOffReason""",
        enums=enum_fields("NoYes", "IsPublicSector_IT, IsSalesTaxIncludedInPrice"),
    )


def _contact_persons() -> Table:
    return entity(
        "CDSContactPerson",
        "CDSContactPersons",
        ("dataAreaId", "ContactPersonPartyNumber", "AssociatedPartyNumber"),
        strings="""ContactPersonPartyType, ContactPersonResponsiblePersonnelNumber, DecisionMakingRoleCode,
        EmploymentDepartment, EmploymentProfession, FirstName, GovernmentIdentificationNumber, LastName,
        MiddleName, Notes, PrimaryAddressCity, PrimaryAddressCountryRegionId,
        PrimaryAddressCountryRegionISOCode,
        PrimaryAddressCountyId, PrimaryAddressDescription, PrimaryAddressLocationRoles, PrimaryAddressStateId,
        PrimaryAddressStreet, PrimaryAddressStreetNumber, PrimaryAddressZipCode, PrimaryEmailAddress,
        PrimaryFacebook, PrimaryFaxNumber, PrimaryLinkedIn, PrimaryPhoneNumber, PrimaryTwitter, PrimaryURL,
        SpouseName""",
        int32s="BirthDay, BirthYear",
        enums={
            "MaritalStatus": "DirPersonMaritalStatus",
            "Gender": "Gender",
            "BirthMonth": "MonthsOfYear",
            **enum_fields("NoYes", "IsContactPersonExternallyMaintained, IsInactive, IsReceivingDirectMail"),
        },
        references=(
            # A contact person points at its customer's party (DirPartyTable), not at the
            # customer account: the two differ when the party number came from the sequence.
            ref(
                "AssociatedPartyNumber",
                "CustomersV3",
                "PartyNumber",
                "The associated party {} is not a customer of this company.",
            ),
        ),
    )


def _products() -> Table:
    return entity(
        "SellableReleasedProduct",
        "SellableReleasedProducts",
        ("dataAreaId", "ProductNumber"),
        strings="CurrencyCode, InventoryUnitSymbol, ProductDescription, ProductName, SalesUnitSymbol",
        decimals="SalesPrice, UnitCost",
        int32s="InventoryUnitDecimalPrecision, SalesUnitDecimalPrecision",
        enums={
            "FieldServiceProductType": "EcoResFieldServiceProductType",
            "ProductType": "EcoResProductType",
            **enum_fields("NoYes", "IsSalesStopped, IsStockedProduct"),
        },
        references=(
            ref("SalesUnitSymbol", "Units", "UnitSymbol", "Unit {} does not exist."),
            ref("InventoryUnitSymbol", "Units", "UnitSymbol", "Unit {} does not exist."),
            ref("CurrencyCode", "Currencies", "CurrencyCode", "Currency {} does not exist."),
        ),
        description="Released products that pass the sellable validation (read-only for P2C).",
    )


# --- quotations --------------------------------------------------------------------------

_DELIVERY_ADDRESS_STRINGS = """
DeliveryAddressCity, DeliveryAddressCountryRegionId, DeliveryAddressCountryRegionISOCode,
DeliveryAddressCountyId, DeliveryAddressDescription, DeliveryAddressDistrictName, DeliveryAddressDunsNumber,
DeliveryAddressLocationId, DeliveryAddressName, DeliveryAddressPostBox, DeliveryAddressStateId,
DeliveryAddressStreet, DeliveryAddressStreetNumber, DeliveryAddressZipCode, DeliveryBuildingCompliment
"""

_INVOICE_ADDRESS_STRINGS = """
InvoiceAddressCity, InvoiceAddressCountryRegionId, InvoiceAddressCountryRegionISOCode, InvoiceAddressCountyId,
InvoiceAddressDistrictName, InvoiceAddressPostBox, InvoiceAddressStateId, InvoiceAddressStreet,
InvoiceAddressStreetNumber, InvoiceAddressZipCode, InvoiceBuildingCompliment
"""


def _quotation_headers() -> Table:
    return entity(
        "CDSSalesQuotationHeader",
        "CDSSalesQuotationHeaders",
        ("dataAreaId", "SalesQuotationNumber"),
        strings=f"""CashDiscountCode, ContactPersonId, CurrencyCode, CustomerRequisitionNumber,
        CustomersReference, DefaultShippingSiteId, DefaultShippingWarehouseId, {_DELIVERY_ADDRESS_STRINGS},
        DeliveryModeCode, DeliveryTermsCode, Email, FormattedDeliveryAddress, FormattedInvoiceAddress,
        GeneratedSalesOrderNumber, {_INVOICE_ADDRESS_STRINGS}, InvoiceCustomerAccountNumber, LanguageId,
        OperatingUnitPartyNumber, OpportunityId, PaymentTermsName, PriceCustomerGroupCode, ProspectId,
        QuotationResponsiblePersonnelNumber, QuotationTakerPersonnelNumber, RequestingCustomerAccountNumber,
        SalesOrderOriginCode, SalesQuotationName, URL""",
        decimals="""CashDiscountPercentage, DeliveryAddressLatitude, DeliveryAddressLongitude,
        InvoiceAddressLatitude, InvoiceAddressLongitude, QuotationHeaderTaxAmount, QuotationTotalAmount,
        QuotationTotalChargesAmount, QuotationTotalDiscountAmount, QuotationTotalTaxAmount,
        TotalDiscountAmount,
        TotalDiscountPercentage""",
        dates="""ReceiptDateRequested, RequestedShippingDate, SalesQuotationConfirmationDate,
        SalesQuotationExpiryDate, SalesQuotationFollowUpDate""",
        enums={
            **enum_fields(
                "NoYes",
                """ArePricesIncludingSalesTax, AreTotalsCalculated, IsDeliveryAddressOrderSpecific,
                IsDeliveryAddressPrivate, IsInvoiceAddressPrivate, SkipGlobalUnifiedPricingCalculation""",
            ),
            "SalesOrderPromisingMethod": "SalesDeliveryDateControlType",
            "SalesQuotationHeaderCreationMethod": "SalesQuotationCreationMethod",
            "SalesQuotationStatus": "SalesQuotationStatus",
            "DeliveryAddressTimeZone": "Timezone",
            "InvoiceAddressTimeZone": "Timezone",
        },
        mandatory=("RequestingCustomerAccountNumber",),
        read_only=("FormattedDeliveryAddress", "FormattedInvoiceAddress", "GeneratedSalesOrderNumber"),
        references=(
            ref(
                "RequestingCustomerAccountNumber", "CustomersV3", "CustomerAccount", "Customer {} not found."
            ),
            ref("InvoiceCustomerAccountNumber", "CustomersV3", "CustomerAccount", "Customer {} not found."),
            ref("CurrencyCode", "Currencies", "CurrencyCode", "Currency {} does not exist."),
        ),
    )


_LINE_DELIVERY_STRINGS = """
DeliveryAddressCity, DeliveryAddressCountryRegionId, DeliveryAddressCountryRegionISOCode,
DeliveryAddressCountyId, DeliveryAddressDescription, DeliveryAddressDistrictName, DeliveryAddressDunsNumber,
DeliveryAddressLocationId, DeliveryAddressName, DeliveryAddressPostBox, DeliveryAddressStateId,
DeliveryAddressStreet, DeliveryAddressStreetNumber, DeliveryAddressZipCode, DeliveryBuildingCompliment,
DeliveryModeCode, DeliveryTermsId, ExternalItemNumber, FormattedDeliveryAddress
"""

_LINE_DECIMALS = """
AllowedOverdeliveryPercentage, AllowedUnderdeliveryPercentage, DeliveryAddressLatitude,
DeliveryAddressLongitude, FixedPriceCharges, LineAmount, LineDiscountAmount, LineDiscountPercentage,
MultilineDiscountAmount, MultilineDiscountPercentage
"""

_LINE_REFERENCES = (
    ref("ProductNumber", "SellableReleasedProducts", "ProductNumber", "Item number {} does not exist."),
    ref("SalesUnitSymbol", "Units", "UnitSymbol", "Unit {} does not exist."),
    ref("CurrencyCode", "Currencies", "CurrencyCode", "Currency {} does not exist."),
)


def _quotation_lines() -> Table:
    return entity(
        "CDSSalesQuotationLine",
        "CDSSalesQuotationLines",
        # Key order as F&O declares it: the sequence number before the quotation number.
        ("dataAreaId", "LineCreationSequenceNumber", "SalesQuotationNumber"),
        key_types={"LineCreationSequenceNumber": EdmType.INT32},
        strings=f"""CurrencyCode, {_LINE_DELIVERY_STRINGS}, InventoryLotId, ItemBatchNumber, LineDescription,
        ProductName, ProductNumber, RequestedInventoryStatusId, SalesProductCategoryHierarchyName,
        SalesProductCategoryName, SalesUnitSymbol, ShippingSiteId, ShippingWarehouseId""",
        decimals=f"""{_LINE_DECIMALS}, RequestedSalesQuantity, SalesPrice, SalesPriceQuantity,
        TotalChargesAmount, TotalDiscountAmount, TotalTaxAmount""",
        int64s="DeliveryPostalAddressRecId",
        dates="RequestedReceiptDate, RequestedShippingDate",
        enums={
            **enum_fields(
                "NoYes", "AreTotalsCalculated, IsDeliveryAddressOrderSpecific, IsDeliveryAddressPrivate"
            ),
            "SalesQuotationPromisingMethod": "SalesDeliveryDateControlType",
            "SalesQuotationLineCreationMethod": "SalesQuotationCreationMethod",
            "SalesQuotationStatus": "SalesQuotationStatus",
            "DeliveryAddressTimeZone": "Timezone",
        },
        mandatory=("ProductNumber",),
        read_only=("FormattedDeliveryAddress",),
        references=(
            ref(
                "SalesQuotationNumber",
                "CDSSalesQuotationHeaders",
                "SalesQuotationNumber",
                "Sales quotation {} does not exist.",
            ),
            *_LINE_REFERENCES,
        ),
    )


# --- orders ------------------------------------------------------------------------------


def _order_headers() -> Table:
    return entity(
        "CDSSalesOrderHeader",
        "CDSSalesOrderHeaders",
        ("dataAreaId", "SalesOrderNumber"),
        strings=f"""CashDiscountCode, ContactPersonId, CurrencyCode, CustomerRequisitionNumber,
        CustomersOrderReference, DefaultShippingSiteId, DefaultShippingWarehouseId,
        {_DELIVERY_ADDRESS_STRINGS},
        DeliveryModeCode, DeliveryTermsCode, Email, FormattedDelveryAddress, FormattedInvoiceAddress,
        {_INVOICE_ADDRESS_STRINGS}, InvoiceCustomerAccountNumber, LanguageId, OrderingCustomerAccountNumber,
        OrderResponsiblePersonnelNumber, OrderTakerPersonnelNumber, PaymentTermsName, PriceCustomerGroupCode,
        ProjectId, QuotationNumber, SalesOrderName, SalesOrderOriginCode, URL""",
        decimals="""DeliveryAddressLatitude, DeliveryAddressLongitude, InvoiceAddressLatitude,
        InvoiceAddressLongitude, OrderHeaderTaxAmount, OrderTotalAmount, OrderTotalChargesAmount,
        OrderTotalDiscountAmount, OrderTotalTaxAmount, TotalDiscountAmount""",
        int64s="DeliveryPostalAddressRecId, SalesResponsible, SalesTaker",
        dates="""ConfirmedReceiptDate, ConfirmedShippingDate, DeliveryValidFrom, DeliveryValidTo,
        InvoiceValidFrom, InvoiceValidTo, OrderCreationDateTime, PaymentTermsBaseDate, RequestedReceiptDate,
        RequestedShippingDate""",
        enums={
            **enum_fields(
                "NoYes",
                """ArePricesIncludingSalesTax, AreTotalsUpdated, InvoiceCustomerIsExternallyMaintained,
                IsDeliveryAddressOrderSpecific, IsDeliveryAddressPrivate, IsInvoiceAddressPrivate,
                IsOneTimeCustomer, IsSalesProcessingStopped, OrderingCustomerIsExternallyMaintained,
                SkipGlobalUnifiedPricingCalculation""",
            ),
            "SalesOrderPromisingMethod": "SalesDeliveryDateControlType",
            "ExternalWorkOrderStatus": "SalesExternalWorkOrderStatus",
            "SalesOrderProcessingStatus": "SalesOrderProcessingStatus",
            "SalesOrderOriginType": "SalesOriginType",
            "SalesOrderStatus": "SalesStatus",
            "DeliveryAddressTimeZone": "Timezone",
            "InvoiceAddressTimeZone": "Timezone",
        },
        mandatory=("OrderingCustomerAccountNumber",),
        # Computed by F&O from the customers' flags and the address book.
        read_only=(
            "FormattedDelveryAddress",
            "FormattedInvoiceAddress",
            "OrderingCustomerIsExternallyMaintained",
            "InvoiceCustomerIsExternallyMaintained",
        ),
        references=(
            ref("OrderingCustomerAccountNumber", "CustomersV3", "CustomerAccount", "Customer {} not found."),
            ref("InvoiceCustomerAccountNumber", "CustomersV3", "CustomerAccount", "Customer {} not found."),
            ref("CurrencyCode", "Currencies", "CurrencyCode", "Currency {} does not exist."),
        ),
    )


def _order_lines() -> Table:
    return entity(
        "CDSSalesOrderLine",
        "CDSSalesOrderLines",
        ("dataAreaId", "SalesOrderNumber", "LineCreationSequenceNumber"),
        key_types={"LineCreationSequenceNumber": EdmType.INT32},
        strings=f"""CurrencyCode, {_LINE_DELIVERY_STRINGS}, ItemBatchNumber, LineDescription,
        OrderedInventoryStatusId, ProductName, ProductNumber, ProjectCategoryId, ProjectId,
        ProjectLinePropertyId,
        SalesOrderNumberHeader, SalesProductCategoryHierarchyName, SalesProductCategoryName, SalesUnitSymbol,
        ShippingSiteId, ShippingWarehouseId""",
        decimals=f"""{_LINE_DECIMALS}, OrderedSalesQuantity, PickedQuantity, SalesDeliverNow, SalesPrice,
        SalesPriceQuantity, TotalChargesAmount, TotalDiscountAmount, TotalTaxAmount""",
        dates="ConfirmedReceiptDate, ConfirmedShippingDate, RequestedReceiptDate, RequestedShippingDate",
        enums={
            **enum_fields(
                "NoYes",
                """AreSalesOrderTotalsUpdated, AreTotalsCalculated, InvoiceCustomerIsExternallyMaintained,
                IsDeliveryAddressOrderSpecific, IsDeliveryAddressPrivate, IsLineStopped,
                OrderingCustomerIsExternallyMaintained""",
            ),
            "SalesOrderPromisingMethod": "SalesDeliveryDateControlType",
            "SalesOrderProcessingStatus": "SalesOrderProcessingStatus",
            "SalesOrderOriginType": "SalesOriginType",
            "SalesOrderLineStatus": "SalesStatus",
            "DeliveryAddressTimeZone": "Timezone",
        },
        mandatory=("ProductNumber",),
        read_only=(
            "FormattedDeliveryAddress",
            "OrderingCustomerIsExternallyMaintained",
            "InvoiceCustomerIsExternallyMaintained",
        ),
        references=(
            ref(
                "SalesOrderNumber",
                "CDSSalesOrderHeaders",
                "SalesOrderNumber",
                "Sales order {} does not exist.",
            ),
            *_LINE_REFERENCES,
        ),
    )


# --- invoices ----------------------------------------------------------------------------


def _invoice_headers() -> Table:
    return entity(
        "ExternallyMaintainedCustomerSalesInvoiceHeader",
        "ExternallyMaintainedCustomerSalesInvoiceHeaders",
        ("dataAreaId", "InvoiceNumber", "InvoiceDate", "LedgerVoucher"),
        key_types={"InvoiceDate": EdmType.DATETIMEOFFSET},
        strings="""ContactPersonId, CurrencyCode, CustomersOrderReference, DeliveryModeCode,
        DeliveryTermsCode,
        InvoiceAddressCity, InvoiceAddressCountryRegionId, InvoiceAddressCountryRegionISOCode,
        InvoiceAddressState,
        InvoiceAddressStreet, InvoiceAddressStreetNumber, InvoiceAddressZipCode, InvoiceCustomerAccountNumber,
        PaymentTermsName, SalesOrderNumber, SalesOrderResponsiblePersonnelNumber""",
        decimals="""InvoiceHeaderTaxAmount, TotalChargeAmount, TotalDiscountAmount,
        TotalDiscountCustomerGroupCode,
        TotalInvoiceAmount, TotalTaxAmount""",
        enums={"SalesOrderOriginType": "SalesOriginType"},
        mandatory=("InvoiceCustomerAccountNumber",),
        references=(
            ref("InvoiceCustomerAccountNumber", "CustomersV3", "CustomerAccount", "Customer {} not found."),
            ref(
                "SalesOrderNumber",
                "CDSSalesOrderHeaders",
                "SalesOrderNumber",
                "Sales order {} does not exist.",
            ),
            ref("CurrencyCode", "Currencies", "CurrencyCode", "Currency {} does not exist."),
        ),
        description="Posted sales invoices of externally maintained customers only.",
    )


def _invoice_lines() -> Table:
    return entity(
        "ExternallyMaintainedCustomerSalesInvoiceLine",
        "ExternallyMaintainedCustomerSalesInvoiceLines",
        ("dataAreaId", "InvoiceNumber", "InvoiceDate", "LineCreationSequenceNumber", "LedgerVoucher"),
        key_types={"InvoiceDate": EdmType.DATETIMEOFFSET, "LineCreationSequenceNumber": EdmType.INT32},
        strings="CurrencyCode, ProductDescription, ProductName, ProductNumber, SalesUnitSymbol",
        decimals="""InvoicedQuantity, LineAmount, LineTotalChargeAmount, LineTotalDiscountAmount,
        LineTotalTaxAmount, SalesPrice""",
        dates="ConfirmedShippingDate",
        references=(
            ref(
                "InvoiceNumber, InvoiceDate, LedgerVoucher",
                "ExternallyMaintainedCustomerSalesInvoiceHeaders",
                "InvoiceNumber, InvoiceDate, LedgerVoucher",
                "Invoice {} does not exist.",
            ),
            *_LINE_REFERENCES,
        ),
    )


# --- shared (not company-specific) -------------------------------------------------------


def _legal_entities() -> Table:
    return entity(
        "LegalEntity",
        "LegalEntities",
        ("LegalEntityId",),
        strings="""AddressCity, AddressCountryRegionId, AddressCountryRegionISOCode, AddressState,
        AddressStreet,
        AddressZipCode, CompanyName, FullPrimaryAddress, LanguageId, Name, NameAlias, PartyNumber,
        PrimaryContactEmail, PrimaryContactPhone, VATNum""",
        enums={"TimeZone": "Timezone"},
        read_only=("FullPrimaryAddress",),
    )


def _currencies() -> Table:
    return entity(
        "Currency",
        "Currencies",
        ("CurrencyCode",),
        strings="Name, Symbol",
        description="Emulator subset of the Currencies entity: key and name only.",
    )


def _units() -> Table:
    return entity(
        "Unit",
        "Units",
        ("UnitSymbol",),
        strings="UnitDescription",
        int32s="DecimalPrecision",
        description="Emulator subset of the Units entity: key, description and precision only.",
    )


def build_catalog() -> Catalog:
    """A fresh catalogue (tests build their own to mutate without touching `CATALOG`)."""
    catalog = Catalog(service="fno", enums={enum.name: enum for enum in ENUMS})
    for table in (
        _legal_entities(),
        _currencies(),
        _units(),
        _customer_groups(),
        _customers("CustomersV3", "CustomerV3", v3=True),
        _customers("CustomersV2", "CustomerV2", v3=False),
        _contact_persons(),
        _products(),
        _quotation_headers(),
        _quotation_lines(),
        _order_headers(),
        _order_lines(),
        _invoice_headers(),
        _invoice_lines(),
    ):
        catalog.add(table)
    return catalog


CATALOG: Catalog = build_catalog()
