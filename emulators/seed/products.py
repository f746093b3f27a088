"""Products: the Sales products and price list items synced earlier, the F&O released products."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.schema import fno
from emulators.seed import reference as ref
from emulators.seed.facts import GeneratorCore
from emulators.seed.layout import (
    PRODUCT_BLOCK,
    PRODUCT_IN_SALES,
    PRODUCT_TYPE_SALES_INVENTORY,
    PRODUCT_TYPE_SERVICES,
    Batch,
    money,
    nth_row,
    rows_below,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


class ProductRows(GeneratorCore):
    """Products: the Sales products and price list items synced earlier, the F&O released products."""

    def _sales_product_rows(self) -> Iterator[dict[str, object]]:
        for company in ref.COMPANIES:
            count = rows_below(self.plan.products, company.index, PRODUCT_BLOCK, PRODUCT_IN_SALES)
            rate = ref.CURRENCIES[company.currency][2]
            for j in range(count):
                product = self.product(nth_row(j, company.index, PRODUCT_BLOCK, PRODUCT_IN_SALES))
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
                        "price_base": money(product.sales_price / rate),
                        "currentcost": product.cost,
                        "currentcost_base": money(product.cost / rate),
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
            count = rows_below(self.plan.products, company.index, PRODUCT_BLOCK, PRODUCT_IN_SALES)
            rate = ref.CURRENCIES[company.currency][2]
            for j in range(count):
                product = self.product(nth_row(j, company.index, PRODUCT_BLOCK, PRODUCT_IN_SALES))
                yield self.row(
                    "dataverse",
                    "productpricelevels",
                    {
                        "productpricelevelid": product.price_item_guid,
                        "amount": product.sales_price,
                        "amount_base": money(product.sales_price / rate),
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
        yield from self.chunked("dataverse", "products", self._sales_product_rows())
        yield from self.chunked("dataverse", "productpricelevels", self._price_item_rows())

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
        yield from self.chunked("fno", "SellableReleasedProducts", self._fno_product_rows())
