"""Transform rules on the shipped mappings: every transform kind, lookups, validation, routing."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from prospect_to_cash.sync.errors import DataError
from tests.unit.sync.builders import by_ref, plan_for, reasons, task_of

USD, EUR = str(uuid.uuid4()), str(uuid.uuid4())

# Golden deterministic ids (tests/unit/sync/test_values.py pins the function itself).
P100_ID = "63d6ee5b-7f6e-5077-a81b-f5598309abb1"  # products | P-100
SO1_ID = "ca973e4b-f46b-5d53-a30b-07c2fda31cf3"  # uuid5 of salesorders|usmf|SO-1 (orders are company-scoped)


class TestAccounts:
    task = task_of("accounts", "customers")
    currencies = {"src_currencies": [{"transactioncurrencyid": USD, "isocurrencycode": "USD"}]}

    def test_fields_defaults_constants_value_maps_and_source_lookup(self) -> None:
        plan = plan_for(
            self.task,
            [
                {
                    "accountnumber": "ACC-1",
                    "name": "Contoso",
                    "_transactioncurrencyid_value": USD,
                    "paymenttermscode": 3,
                    "address1_country": "united states",
                    "creditlimit": "1000.125",
                }
            ],
            references=self.currencies,
        )
        row = by_ref(plan.creates)["ACC-1"]
        assert row["dataAreaId"] == "usmf"
        assert row["OrganizationName"] == "Contoso"
        assert row["IsExternallyMaintained"] == "Yes"  # constant
        assert row["CustomerGroupId"] == "10"  # environment default
        assert row["PaymentTerms"] == "Net45"  # value map
        assert row["SalesCurrencyCode"] == "USD"  # lookup through a source reference table
        assert row["DeliveryAddressCountryRegionISOCode"] == "US"  # value map, case-insensitive
        assert row["CreditLimit"] == 1000.125

    def test_blank_country_gets_the_default(self) -> None:
        plan = plan_for(self.task, [{"accountnumber": "ACC-1", "name": "A"}])
        assert by_ref(plan.creates)["ACC-1"]["AddressCountryRegionISOCode"] == "US"

    def test_missing_and_duplicate_account_numbers_are_rejected_not_merged(self) -> None:
        plan = plan_for(
            self.task,
            [
                {"accountnumber": None, "name": "No number"},
                {"accountnumber": "ACC-7", "name": "First"},
                {"accountnumber": "acc-7", "name": "Second"},
                {"accountnumber": "ACC-8", "name": "Fine"},
            ],
        )
        assert list(plan.creates["__ref"]) == ["ACC-8"]
        assert len(plan.rejects) == 3
        text = " | ".join(plan.rejects["__reason"])
        assert "source key accountnumber is empty" in text
        assert text.count("duplicate source key accountnumber") == 2

    def test_value_map_miss_and_length_and_required(self) -> None:
        plan = plan_for(
            self.task,
            [
                {"accountnumber": "ACC-1", "name": "A", "paymenttermscode": 42},
                {"accountnumber": "ACC-2-IS-FAR-TOO-LONG-FOR-FNO", "name": "B"},
                {"accountnumber": "ACC-3", "name": None},
            ],
        )
        why = reasons(plan)
        assert why["ACC-1"] == "value '42' of PaymentTerms has no entry in value map 'payment_terms'"
        assert "at most 20 allowed" in why["ACC-2-IS-FAR-TOO-LONG-FOR-FNO"]
        assert why["ACC-3"] == "required field OrganizationName is empty"
        assert plan.creates.empty

    def test_parent_account_becomes_invoice_account_in_the_second_pass(self) -> None:
        parent_id, child_id, orphan_id = (str(uuid.uuid4()) for _ in range(3))
        plan = plan_for(
            self.task,
            [
                {"accountnumber": "P-1", "name": "Parent"},
                {"accountnumber": "C-1", "name": "Child", "_parentaccountid_value": parent_id},
                {"accountnumber": "C-2", "name": "Orphan", "_parentaccountid_value": orphan_id},
            ],
            references={
                "src_accounts": [
                    {"accountid": parent_id, "accountnumber": "P-1"},
                    {"accountid": child_id, "accountnumber": "C-1"},
                    {"accountid": orphan_id, "accountnumber": "GONE-1"},
                ]
            },
        )
        second = by_ref(plan.second_pass)
        assert list(second) == ["C-1"]
        assert second["C-1"]["InvoiceAccount"] == "P-1"
        assert list(second["C-1"]["__changed"]) == ["InvoiceAccount"]
        assert (
            "dangling lookup InvoiceAccount: no CustomersV3 with CustomerAccount='GONE-1'"
            in reasons(plan)["C-2"]
        )

    def test_diff_sends_only_changed_fields_and_ignores_blank_spellings(self) -> None:
        existing = {
            "dataAreaId": "usmf",
            "CustomerAccount": "ACC-1",
            "OrganizationName": "Old name",
            "IsExternallyMaintained": "Yes",
            "CreditLimit": "1000.000000",
            "SalesMemo": "",
            "PrimaryContactPhone": None,
            "DeliveryAddressCountryRegionISOCode": "US",
            "AddressCountryRegionISOCode": "US",
            "OrganizationNumberOfEmployees": "0",
        }
        plan = plan_for(
            self.task,
            [{"accountnumber": "ACC-1", "name": "New name", "creditlimit": 1000, "description": None}],
            snapshot=[existing, {**existing, "dataAreaId": "demf", "OrganizationName": "Other company"}],
        )
        assert plan.creates.empty
        update = by_ref(plan.updates)["ACC-1"]
        assert list(update["__changed"]) == ["OrganizationName"]

    def test_unchanged_when_equal(self) -> None:
        first = plan_for(self.task, [{"accountnumber": "ACC-1", "name": "Same", "creditlimit": "5.5"}])
        snapshot = [
            {k: v for k, v in row.items() if k in self.task.snapshot_columns}
            for row in first.creates.to_dict("records")
        ]
        again = plan_for(
            self.task, [{"accountnumber": "ACC-1", "name": "Same", "creditlimit": "5.50"}], snapshot=snapshot
        )
        assert (len(again.creates), len(again.updates), len(again.unchanged)) == (0, 0, 1)

    def test_two_target_rows_with_one_key_are_not_guessed(self) -> None:
        row = {"dataAreaId": "usmf", "CustomerAccount": "ACC-1", "OrganizationName": "X"}
        plan = plan_for(self.task, [{"accountnumber": "ACC-1", "name": "X"}], snapshot=[row, dict(row)])
        assert "target has 2 rows with key 'ACC-1'" in reasons(plan)["ACC-1"]


class TestContactRouting:
    account_id = str(uuid.uuid4())
    contacts = [
        {
            "msdynce_contactnumber": "CON-1",
            "lastname": "Person",
            "msdynce_isactivecustomer": False,
            "msdynce_iscompanyanaccount": True,
            "_parentcustomerid_value": account_id,
            "gendercode": 2,
            "donotemail": True,
        },
        {
            "msdynce_contactnumber": "CON-2",
            "lastname": "Buyer",
            "msdynce_isactivecustomer": True,
            "msdynce_iscompanyanaccount": False,
        },
        {
            "msdynce_contactnumber": "CON-3",
            "lastname": "Loner",
            "msdynce_isactivecustomer": False,
            "msdynce_iscompanyanaccount": False,
        },
    ]

    def test_contacts_of_accounts_become_contact_persons(self) -> None:
        task = task_of("contacts", "contact_persons")
        plan = plan_for(
            task,
            self.contacts,
            references={
                "src_accounts": [{"accountid": self.account_id, "accountnumber": "ACC-1"}],
                "tgt_customers": [{"CustomerAccount": "ACC-1", "PartyNumber": "000000042"}],
            },
        )
        assert plan.skipped == 2
        row = by_ref(plan.creates)["CON-1|000000042"]
        assert row["AssociatedPartyNumber"] == "000000042"  # the customer's party, not its account
        assert row["Gender"] == "Female"
        assert row["IsReceivingDirectMail"] == "No"
        assert row["IsContactPersonExternallyMaintained"] == "Yes"

    def test_contact_person_waits_for_its_customer(self) -> None:
        task = task_of("contacts", "contact_persons")
        plan = plan_for(
            task,
            self.contacts[:1],
            references={"src_accounts": [{"accountid": self.account_id, "accountnumber": "ACC-1"}]},
        )
        assert plan.creates.empty
        assert (
            "dangling lookup AssociatedPartyNumber: no CustomersV3 with CustomerAccount='ACC-1'"
            in (plan.rejects["__reason"].iloc[0])
        )

    def test_active_customers_become_customers(self) -> None:
        task = task_of("contacts", "contact_customers")
        plan = plan_for(task, self.contacts)
        assert plan.skipped == 2
        row = by_ref(plan.creates)["CON-2"]
        assert (row["PartyType"], row["PersonLastName"], row["CustomerGroupId"]) == ("Person", "Buyer", "10")


class TestProducts:
    group, unit, price_a, price_b = (str(uuid.uuid4()) for _ in range(4))
    references = {
        "tgt_currencies": [{"transactioncurrencyid": USD, "isocurrencycode": "USD"}],
        "tgt_unit_groups": [{"uomscheduleid": group, "name": "Default Unit"}],
        "tgt_units": [
            {"uomid": unit, "name": "Each", "_uomscheduleid_value": group},
            {"uomid": str(uuid.uuid4()), "name": "Each", "_uomscheduleid_value": str(uuid.uuid4())},
        ],
        "tgt_price_lists": [
            {"pricelevelid": price_b, "name": "Zeta USD", "_transactioncurrencyid_value": USD},
            {"pricelevelid": price_a, "name": "Alpha USD", "_transactioncurrencyid_value": USD},
        ],
        "tgt_products": [],
    }
    product = {
        "ProductNumber": "P-100",
        "ProductName": "Widget",
        "ProductType": "Item",
        "SalesPrice": "12.5",
        "CurrencyCode": "USD",
        "SalesUnitSymbol": "ea",
        "IsStockedProduct": "Yes",
        "dataAreaId": "usmf",
    }

    def test_product_lookups_by_name_through_unit_group(self) -> None:
        plan = plan_for(task_of("products", "products"), [self.product], references=self.references)
        row = by_ref(plan.creates)["P-100"]
        assert row["__id"] == P100_ID
        assert row["defaultuomscheduleid"] == self.group
        assert row["defaultuomid"] == self.unit  # the unit of the default group, not the other one
        assert row["transactioncurrencyid"] == USD
        assert row["producttypecode"] == 1
        assert row["isstockitem"] is True
        assert row["msdynce_ismaintainedexternally"] is True
        assert row["statecode"] == 0  # environment: create_as active
        assert row["pricelevelid"] is None  # no default price list configured

    def test_price_list_item_uses_first_price_list_of_the_currency_and_planned_product(self) -> None:
        plan = plan_for(
            task_of("products", "price_list_items"),
            [self.product],
            references=self.references,
            upstream={
                "products": pd.DataFrame(
                    {
                        "__ref": ["P-100"],
                        "status": ["create"],
                        "reason": [None],
                        "id": [None],
                        "__source_key": ["P-100"],
                    }
                )
            },
        )
        row = plan.creates.to_dict("records")[0]
        assert row["pricelevelid"] == self.price_a  # alphabetical: Alpha before Zeta
        assert row["productid"] == P100_ID
        assert row["amount"] == 12.5

    def test_no_price_list_for_the_currency_fails_the_task(self) -> None:
        references = {
            **self.references,
            "tgt_currencies": [
                *self.references["tgt_currencies"],
                {"transactioncurrencyid": EUR, "isocurrencycode": "EUR"},
            ],
            "tgt_products": [{"productid": str(uuid.uuid4()), "productnumber": "P-200"}],
        }
        with pytest.raises(
            DataError, match=r"field 'pricelevelid': no pricelevels with _transactioncurrencyid_value="
        ):
            plan_for(
                task_of("products", "price_list_items"),
                [{**self.product, "ProductNumber": "P-200", "CurrencyCode": "EUR"}],
                references=references,
            )


class TestOrdersFromFno:
    account, contact, order = (str(uuid.uuid4()) for _ in range(3))
    header_refs = {
        "tgt_accounts": [{"accountid": account, "accountnumber": "ACC-1"}],
        "tgt_contacts": [{"contactid": contact, "msdynce_contactnumber": "CON-9"}],
        "tgt_currencies": [{"transactioncurrencyid": USD, "isocurrencycode": "USD"}],
        "tgt_price_lists": [{"pricelevelid": str(uuid.uuid4()), "name": "CRM Service USA (sample)"}],
    }

    def header(self, number: str, customer: str, **extra: object) -> dict[str, object]:
        return {
            "SalesOrderNumber": number,
            "OrderingCustomerAccountNumber": customer,
            "CurrencyCode": "USD",
            "SalesOrderProcessingStatus": "Confirmed",
            "RequestedShippingDate": "1900-01-01T12:00:00Z",
            "dataAreaId": "usmf",
            **extra,
        }

    def test_customer_binds_to_account_or_contact(self) -> None:
        plan = plan_for(
            task_of("sales_orders_fno_to_sales", "order_headers"),
            [
                self.header("SO-1", "ACC-1"),
                self.header("SO-2", "CON-9", DeliveryAddressCountryRegionISOCode="DE"),
                self.header("SO-3", "NOBODY"),
            ],
            references=self.header_refs,
        )
        rows = by_ref(plan.creates)
        assert rows["SO-1"]["customerid"] == self.account
        assert rows["SO-1"]["__bind__customerid"] == "customerid_account|accounts"
        assert rows["SO-2"]["__bind__customerid"] == "customerid_contact|contacts"
        assert rows["SO-2"]["shipto_country"] == "Germany"
        assert rows["SO-1"]["msdynce_processingstatus"] == 647390001
        assert rows["SO-1"]["requestdeliveryby"] is None  # F&O's empty date is not a date
        assert rows["SO-1"]["statecode"] == 0
        assert (
            "no accounts with accountnumber='NOBODY' or contacts with msdynce_contactnumber='NOBODY'"
            in (reasons(plan)["SO-3"])
        )

    def test_freight_tax_becomes_a_write_in_line(self) -> None:
        plan = plan_for(
            task_of("sales_orders_fno_to_sales", "order_freight_tax"),
            [
                {
                    "SalesOrderNumber": "SO-1",
                    "OrderHeaderTaxAmount": "4.75",
                    "CurrencyCode": "USD",
                    "dataAreaId": "usmf",
                }
            ],
            references={
                "tgt_orders": [{"salesorderid": self.order, "ordernumber": "SO-1"}],
                "tgt_currencies": self.header_refs["tgt_currencies"],
            },
        )
        line = plan.creates.to_dict("records")[0]
        assert line["productdescription"] == "Freight Tax"
        assert line["isproductoverridden"] is True
        assert line["msdynce_ismisctax"] is True
        assert (line["quantity"], line["priceperunit"], line["sequencenumber"]) == (1.0, 4.75, 9999)
        assert line["salesorderid"] == self.order

    def lines_plan(self, header_outcome: pd.DataFrame, orders: list[dict[str, object]]) -> object:
        group, unit, product = (str(uuid.uuid4()) for _ in range(3))
        return plan_for(
            task_of("sales_orders_fno_to_sales", "order_lines"),
            [
                {
                    "SalesOrderNumber": "SO-1",
                    "LineCreationSequenceNumber": "1",
                    "ProductNumber": "P-1",
                    "OrderedSalesQuantity": "3",
                    "SalesPrice": "10",
                    "LineDiscountAmount": "3.33",
                    "FixedPriceCharges": "-0.01",
                    "SalesUnitSymbol": "ea",
                    "CurrencyCode": "USD",
                    "dataAreaId": "usmf",
                },
                {
                    "SalesOrderNumber": "SO-2",
                    "LineCreationSequenceNumber": "1",
                    "ProductNumber": "P-1",
                    "OrderedSalesQuantity": "1",
                    "SalesUnitSymbol": "ea",
                    "CurrencyCode": "USD",
                    "dataAreaId": "usmf",
                },
            ],
            references={
                "tgt_orders": orders,
                "tgt_products": [{"productid": product, "productnumber": "P-1"}],
                "tgt_unit_groups": [{"uomscheduleid": group, "name": "Default Unit"}],
                "tgt_units": [{"uomid": unit, "name": "Each", "_uomscheduleid_value": group}],
                "tgt_currencies": self.header_refs["tgt_currencies"],
            },
            upstream={"order_headers": header_outcome},
        )

    def test_lines_rebuild_the_discount_and_bind_to_planned_headers(self) -> None:
        outcome = pd.DataFrame(
            {
                "__ref": ["SO-1", "SO-2"],
                "status": ["create", "rejected"],
                "reason": [None, "dangling lookup customerid"],
                "id": [None, None],
                "__source_key": ["SO-1", "SO-2"],
            }
        )
        plan = self.lines_plan(outcome, orders=[])
        line = plan.creates.to_dict("records")[0]
        assert line["manualdiscountamount"] == 10.0  # 3 x 3.33 with a -0.01 charge = 10.00
        assert line["salesorderid"] == SO1_ID
        assert line["__ref"] == f"{SO1_ID}|1"
        why = " ".join(plan.rejects["__reason"])
        assert "held back: order SO-2 was rejected (dangling lookup customerid)" in why

    def test_line_of_failed_header_is_held_back_even_if_the_order_exists(self) -> None:
        outcome = pd.DataFrame(
            {
                "__ref": ["SO-1"],
                "status": ["failed"],
                "reason": ["HTTP 500"],
                "id": [None],
                "__source_key": ["SO-1"],
            }
        )
        plan = self.lines_plan(outcome, orders=[{"salesorderid": self.order, "ordernumber": "SO-1"}])
        assert "held back: order SO-1 was failed (HTTP 500)" in " ".join(plan.rejects["__reason"])


class TestOrdersToFno:
    order_id, product_id, unit_id = (str(uuid.uuid4()) for _ in range(3))

    def test_discount_is_sent_per_unit_with_a_rounding_charge_and_draft_lines_are_skipped(self) -> None:
        draft_order = str(uuid.uuid4())
        line = {
            "salesorderdetailid": str(uuid.uuid4()),
            "_salesorderid_value": self.order_id,
            "sequencenumber": 1,
            "_productid_value": self.product_id,
            "quantity": 3,
            "priceperunit": 10,
            "manualdiscountamount": 10,
            "_uomid_value": self.unit_id,
        }
        plan = plan_for(
            task_of("sales_orders_sales_to_fno", "order_lines"),
            [line, {**line, "salesorderdetailid": str(uuid.uuid4()), "_salesorderid_value": draft_order}],
            references={
                "src_orders": [{"salesorderid": self.order_id, "ordernumber": "ORD-1"}],
                "src_products": [{"productid": self.product_id, "productnumber": "P-1"}],
                "src_units": [{"uomid": self.unit_id, "name": "Each"}],
                "tgt_headers": [{"SalesOrderNumber": "ORD-1"}],
                "tgt_products": [{"ProductNumber": "P-1"}],
            },
        )
        assert plan.skipped == 1  # the draft order's line
        row = plan.creates.to_dict("records")[0]
        assert (row["LineDiscountAmount"], row["FixedPriceCharges"]) == (3.33, -0.01)
        assert row["SalesUnitSymbol"] == "ea"
        assert row["ShippingWarehouseId"] == "13"
        assert row["__ref"] == "ORD-1|1"


class TestInvoices:
    def test_many_invoices_mark_one_order_invoiced_and_missing_orders_are_not_created(self) -> None:
        task = task_of("sales_invoices", "orders_invoiced")
        order = str(uuid.uuid4())
        plan = plan_for(
            task,
            [
                {
                    "InvoiceNumber": "INV-1",
                    "InvoiceDate": "2024-01-02T12:00:00Z",
                    "LedgerVoucher": "V1",
                    "SalesOrderNumber": "SO-1",
                    "dataAreaId": "usmf",
                },
                {
                    "InvoiceNumber": "INV-2",
                    "InvoiceDate": "2024-01-03T12:00:00Z",
                    "LedgerVoucher": "V2",
                    "SalesOrderNumber": "SO-1",
                    "dataAreaId": "usmf",
                },
                {
                    "InvoiceNumber": "INV-3",
                    "InvoiceDate": "2024-01-03T12:00:00Z",
                    "LedgerVoucher": "V3",
                    "SalesOrderNumber": "SO-404",
                    "dataAreaId": "usmf",
                },
            ],
            snapshot=[{"salesorderid": order, "ordernumber": "SO-1", "statecode": 0, "statuscode": 1}],
            references={
                "src_orders": [
                    {"SalesOrderNumber": n, "SalesOrderStatus": "Invoiced"} for n in ("SO-1", "SO-404")
                ]
            },
        )
        update = by_ref(plan.updates)["SO-1"]
        assert sorted(update["__changed"]) == ["statecode", "statuscode"]
        assert update["__id"] == order
        assert plan.skipped == 1  # the second invoice of SO-1 collapsed into the first
        assert "not found (this task only updates)" in reasons(plan)["SO-404"]
        assert plan.creates.empty

    def test_a_partly_invoiced_order_stays_open(self) -> None:
        """Only an order F&O has invoiced in full (SalesStatus Invoiced) is closed in Sales."""
        task = task_of("sales_invoices", "orders_invoiced")
        orders = [str(uuid.uuid4()) for _ in range(2)]
        invoices = [
            {
                "InvoiceNumber": f"INV-{n}",
                "InvoiceDate": "2024-01-02T12:00:00Z",
                "LedgerVoucher": f"V{n}",
                "SalesOrderNumber": f"SO-{n}",
                "dataAreaId": "usmf",
            }
            for n in range(2)
        ]
        plan = plan_for(
            task,
            invoices,
            snapshot=[
                {"salesorderid": orders[n], "ordernumber": f"SO-{n}", "statecode": 0, "statuscode": 1}
                for n in range(2)
            ],
            references={
                "src_orders": [
                    {"SalesOrderNumber": "SO-0", "SalesOrderStatus": "Backorder"},  # partly invoiced
                    {"SalesOrderNumber": "SO-1", "SalesOrderStatus": "Invoiced"},
                ]
            },
        )
        assert list(plan.updates["__ref"]) == ["SO-1"]
        assert plan.skipped == 1
        assert plan.rejects.empty

    def test_invoice_header_links_order_and_dates(self) -> None:
        order, account = str(uuid.uuid4()), str(uuid.uuid4())
        plan = plan_for(
            task_of("sales_invoices", "invoice_headers"),
            [
                {
                    "InvoiceNumber": "INV-1",
                    "InvoiceDate": "2024-01-02T12:00:00Z",
                    "LedgerVoucher": "V1",
                    "InvoiceCustomerAccountNumber": "ACC-1",
                    "SalesOrderNumber": "SO-1",
                    "CurrencyCode": "USD",
                    "InvoiceAddressCountryRegionId": "USA",
                    "dataAreaId": "usmf",
                }
            ],
            references={
                "tgt_accounts": [{"accountid": account, "accountnumber": "ACC-1"}],
                "tgt_contacts": [],
                "tgt_orders": [{"salesorderid": order, "ordernumber": "SO-1"}],
                "tgt_currencies": [{"transactioncurrencyid": USD, "isocurrencycode": "USD"}],
                "tgt_price_lists": [{"pricelevelid": str(uuid.uuid4()), "name": "CRM Service USA (sample)"}],
            },
        )
        row = plan.creates.to_dict("records")[0]
        assert (row["salesorderid"], row["customerid"]) == (order, account)
        assert row["msdynce_invoicedate"] == "2024-01-02"
        assert row["billto_country"] == "United States"
        assert row["statuscode"] == 4
