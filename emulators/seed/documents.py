"""What Sales quotes and orders share: lines, document columns, header columns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.seed import reference as ref
from emulators.seed.facts import GeneratorCore
from emulators.seed.layout import money, timestamp

if TYPE_CHECKING:
    from emulators.seed.facts import Product


class SalesDocuments(GeneratorCore):
    """What Sales quotes and orders share: lines, document columns, header columns."""

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
            base = money(quantity * price)
            extended = money(base - discount)
            total += extended
            discounts += discount
            product: Product | None = line["product"]  # type: ignore[assignment]
            values: dict[str, object] = {
                f"{line_set[:-1]}id": self.guid(f"{line_set}", i * 10 + n),
                parent_column: header_id,
                "quantity": quantity,
                "priceperunit": price,
                "priceperunit_base": money(price / rate),
                "baseamount": base,
                "baseamount_base": money(base / rate),
                "extendedamount": extended,
                "extendedamount_base": money(extended / rate),
                "manualdiscountamount": discount,
                "manualdiscountamount_base": money(discount / rate),
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
        total = money(total)
        discounts = money(discounts)
        header.update(
            {
                "totallineitemamount": total,
                "totallineitemamount_base": money(total / rate),
                "totallineitemdiscountamount": discounts,
                "totallineitemdiscountamount_base": money(discounts / rate),
                "discountamount": 0.0,
                "discountamount_base": 0.0,
                "freightamount": 0.0,
                "freightamount_base": 0.0,
                "totaltax": 0.0,
                "totaltax_base": 0.0,
                "totalamountlessfreight": total,
                "totalamountlessfreight_base": money(total / rate),
                "totalamount": total,
                "totalamount_base": money(total / rate),
                "totaldiscountamount": discounts,
                "totaldiscountamount_base": money(discounts / rate),
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
