"""Sales orders, F&O sales orders and the Sales copies an earlier run made of F&O orders."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.schema import fno
from emulators.seed import reference as ref
from emulators.seed.documents import SalesDocuments
from emulators.seed.invoices import InvoiceRows
from emulators.seed.layout import (
    CHUNK,
    FNO_ORDER_BLOCK,
    FNO_ORDER_FNO_ONLY_CUSTOMER,
    FNO_ORDER_FNO_ONLY_INVOICE_ACCOUNT,
    FNO_ORDER_HEADER_TAX,
    FNO_ORDER_IN_SALES,
    FNO_ORDER_INVOICED,
    FNO_ORDER_STATUS,
    FNO_ORDER_TOTALS_NOT_CALCULATED,
    FNO_ORDER_WORK_ORDER,
    ORDER_BLOCK,
    ORDER_DRAFT,
    ORDER_NATIVE_PRODUCT,
    ORDER_ROUNDING_EXAMPLE,
    ORDER_WRITE_IN,
    PROCESSING_ACTIVE,
    PROCESSING_CONFIRMED,
    PROCESSING_DRAFT,
    Batch,
    money,
    position_in,
    random_suffix,
    timestamp,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from emulators.seed.facts import Customer, Product


class OrderRows(SalesDocuments, InvoiceRows):
    """Sales orders, F&O sales orders and the Sales copies an earlier run made of F&O orders."""

    def _sales_order_rows(self, start: int, stop: int) -> tuple[list, list]:
        headers, lines = [], []
        for i in range(start, stop):
            company = ref.COMPANIES[i % 2]
            pos = position_in(i, ORDER_BLOCK)
            _, a, _ = self.numbers("salesorder", i)
            processing = PROCESSING_DRAFT if pos == ORDER_DRAFT else PROCESSING_ACTIVE
            common = self._sales_header_common("salesorder", i, company)
            header = {
                "salesorderid": self.guid("salesorder", i),
                "name": f"Order for {company.business_unit} #{i + 1}",
                "ordernumber": f"ORD-{1000 + i:05d}-{random_suffix(a)}",
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
        for start in range(0, self.plan.sales_orders, CHUNK):
            headers, lines = self._sales_order_rows(start, min(start + CHUNK, self.plan.sales_orders))
            yield "dataverse", "salesorders", headers
            yield from self.chunked("dataverse", "salesorderdetails", iter(lines))

    def _fno_order(self, i: int) -> tuple[dict, list[dict], ref.Company, int]:
        """Header values and line values of F&O order `i` (store form), plus its position."""
        enums = fno.CATALOG.enums
        company = ref.COMPANIES[i % 2]
        pos = position_in(i, FNO_ORDER_BLOCK)
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
        # SalesStatus is Invoiced only once every line is; a partly invoiced order is still open.
        line_status = {
            "Active": "Backorder",
            "Confirmed": "Backorder",
            "Delivered": "Delivered",
            "PartiallyInvoiced": "Backorder",
        }.get(status, "Invoiced")
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
            amount = money(quantity * (product.price - unit_discount))
            tax = money(amount * company.tax_rate)
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
                    "TotalDiscountAmount": money(quantity * unit_discount),
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
            money(12.5 if pos == FNO_ORDER_HEADER_TAX[0] else 9.8) if pos in FNO_ORDER_HEADER_TAX else 0.0
        )
        total_tax = money(line_tax + header_tax)
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
            "TotalDiscountAmount": money(discount_total) if totals_calculated else 0.0,
            "OrderTotalDiscountAmount": 0.0,
            "OrderTotalChargesAmount": 0.0,
            "OrderTotalAmount": money(line_total + total_tax) if totals_calculated else 0.0,
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

    def _sales_mirror(
        self, i: int, header: dict, lines: list[dict], company: ref.Company, customer: Customer, out: dict
    ) -> None:
        """The Sales copy an earlier F&O-to-Sales run made: one line short, old total, status Confirmed."""
        rate = ref.CURRENCIES[company.currency][2]
        order_id = self.guid("mirror-salesorder", i)
        known = lines[:-1]
        total = money(sum(line["LineAmount"] for line in known))
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
                    "totalamount_base": money(total / rate),
                    "totallineitemamount": total,
                    "totallineitemamount_base": money(total / rate),
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
                        "priceperunit_base": money(line["SalesPrice"] / rate),
                        "ispriceoverridden": 1,
                        "isproductoverridden": 0,
                        "extendedamount": line["LineAmount"],
                        "extendedamount_base": money(line["LineAmount"] / rate),
                        "baseamount": line["LineAmount"],
                        "baseamount_base": money(line["LineAmount"] / rate),
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
        for start in range(0, self.plan.fno_orders, CHUNK):
            chunk = self._fno_order_chunk(start, min(start + CHUNK, self.plan.fno_orders))
            for (service, entity_set), rows in chunk.items():
                yield from self.chunked(service, entity_set, iter(rows))
