"""F&O sales invoices (headers and lines) of the invoiced F&O orders."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.seed.facts import GeneratorCore
from emulators.seed.layout import money

if TYPE_CHECKING:
    from emulators.seed import reference as ref


class InvoiceRows(GeneratorCore):
    """F&O sales invoices (headers and lines) of the invoiced F&O orders."""

    def _fno_invoice(
        self, i: int, header: dict, lines: list[dict], company: ref.Company, extent: str, out: dict
    ) -> None:
        _, a, _ = self.numbers("fno-invoice", i)
        number = f"{company.data_area_id.upper()}-CIV-{i // 2 + 1:06d}"
        voucher = f"{company.data_area_id.upper()}-SIV-{i // 2 + 1:06d}"
        invoice_date = f"2026-11-{1 + a % 3:02d}T12:00:00Z"
        invoiced = lines if extent == "full" else lines[:1]
        amount = money(sum(line["LineAmount"] for line in invoiced))
        tax = money(sum(line["TotalTaxAmount"] for line in invoiced))
        header_tax = header["OrderHeaderTaxAmount"] if extent == "full" else 0.0
        discount = money(sum(line["TotalDiscountAmount"] for line in invoiced))
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
                    "TotalTaxAmount": money(tax + header_tax),
                    "TotalDiscountAmount": discount,
                    "TotalChargeAmount": 0.0,
                    "TotalInvoiceAmount": money(amount + tax + header_tax),
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
