"""Field validation (every Problem kind, both services) and wire <-> storage conversion."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.schema import dataverse, fno
from emulators.schema.model import EdmType, Field
from emulators.schema.validate import (
    Problem,
    format_datetime,
    from_storage,
    to_storage,
    validate_record,
    validate_value,
)

DV = dataverse.CATALOG
FO = fno.CATALOG

ACCOUNT_ID = "6f1e3b0c-0d2a-4c8e-9b1a-2f6d7e8c9a01"


def kinds(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(problem.kind, problem.field) for problem in problems]


class TestDataverseRecords:
    def test_a_valid_create_has_no_problems(self) -> None:
        body = {
            "name": "Contoso Pharmaceuticals",
            "accountnumber": "ACC-01000-BVRCPS",
            "creditlimit": 25000.5,
            "numberofemployees": 120,
            "creditonhold": False,
            "customertypecode": 3,
            "address1_country": "US",
            "transactioncurrencyid@odata.bind": "/transactioncurrencies(isocurrencycode='USD')",
            "@odata.type": "Microsoft.Dynamics.CRM.account",
        }
        assert validate_record(DV.tables["accounts"], body, catalog=DV, for_create=True) == []

    def test_unknown_property(self) -> None:
        problems = validate_record(DV.tables["accounts"], {"nmae": "x"}, catalog=DV, for_create=False)
        assert kinds(problems) == [("unknown_property", "nmae")]

    def test_lookup_column_is_not_a_writable_property(self) -> None:
        body = {"parentcustomerid": ACCOUNT_ID, "_parentcustomerid_value": ACCOUNT_ID}
        problems = validate_record(DV.tables["contacts"], body, catalog=DV, for_create=False)
        assert kinds(problems) == [
            ("unknown_property", "parentcustomerid"),
            ("read_only", "_parentcustomerid_value"),
        ]

    def test_unknown_navigation_property(self) -> None:
        body = {"parentcustomerid_lead@odata.bind": f"/leads({ACCOUNT_ID})"}
        problems = validate_record(DV.tables["contacts"], body, catalog=DV, for_create=False)
        assert kinds(problems) == [("unknown_property", "parentcustomerid_lead@odata.bind")]

    def test_customer_lookup_binds_either_target(self) -> None:
        """Each navigation of the customer lookup binds its own table. (Whether the URL names
        that table is the app's check, after validation: see test_dataverse_writes's
        test_bind_to_the_wrong_table_or_undeclared_navigation_fails.)"""
        contact = "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f60"
        for body in (
            {"parentcustomerid_account@odata.bind": f"/accounts({ACCOUNT_ID})", "lastname": "Ng"},
            {"parentcustomerid_contact@odata.bind": f"/contacts({contact})", "lastname": "Ng"},
        ):
            assert validate_record(DV.tables["contacts"], body, catalog=DV, for_create=True) == []

    def test_wrong_types(self) -> None:
        body = {"name": 7, "creditlimit": "1000", "numberofemployees": 1.5, "creditonhold": "true"}
        problems = validate_record(DV.tables["accounts"], body, catalog=DV, for_create=False)
        assert kinds(problems) == [
            ("wrong_type", "name"),
            ("wrong_type", "creditlimit"),
            ("wrong_type", "numberofemployees"),
            ("wrong_type", "creditonhold"),
        ]

    def test_too_long(self) -> None:
        problems = validate_record(
            DV.tables["accounts"], {"accountnumber": "A" * 21}, catalog=DV, for_create=False
        )
        assert kinds(problems) == [("too_long", "accountnumber")]
        assert "20" in problems[0].detail
        assert (
            validate_record(DV.tables["accounts"], {"accountnumber": "A" * 20}, catalog=DV, for_create=False)
            == []
        )

    def test_invalid_option(self) -> None:
        body = {"statecode": 7, "msdynce_processingstatus": 647390012}
        problems = validate_record(DV.tables["salesorders"], body, catalog=DV, for_create=False)
        assert kinds(problems) == [
            ("invalid_option", "statecode"),
            ("invalid_option", "msdynce_processingstatus"),
        ]

    def test_read_only(self) -> None:
        body = {"fullname": "A B", "createdon": "2026-11-01T00:00:00Z", "owningbusinessunit@odata.bind": "/x"}
        problems = validate_record(DV.tables["contacts"], body, catalog=DV, for_create=False)
        assert kinds(problems) == [
            ("read_only", "fullname"),
            ("read_only", "createdon"),
            ("read_only", "owningbusinessunit@odata.bind"),
        ]

    def test_system_required_is_enforced_on_create(self) -> None:
        problems = validate_record(DV.tables["products"], {"name": "Widget"}, catalog=DV, for_create=True)
        assert kinds(problems) == [("missing_required", "productnumber")]

    def test_system_required_lookup_is_enforced_on_create(self) -> None:
        problems = validate_record(DV.tables["quotedetails"], {"quantity": 1}, catalog=DV, for_create=True)
        assert kinds(problems) == [("missing_required", "quoteid")]
        body = {"quantity": 1, "quoteid@odata.bind": f"/quotes({ACCOUNT_ID})"}
        assert validate_record(DV.tables["quotedetails"], body, catalog=DV, for_create=True) == []

    def test_application_required_is_not_enforced_by_the_api(self) -> None:
        # account.name and contact.lastname are ApplicationRequired: the Web API accepts rows without them.
        assert validate_record(DV.tables["accounts"], {}, catalog=DV, for_create=True) == []
        assert validate_record(DV.tables["contacts"], {"firstname": "Ana"}, catalog=DV, for_create=True) == []

    def test_auto_numbered_and_defaulted_columns_may_be_omitted(self) -> None:
        # quotenumber (auto number), revisionnumber/statecode (defaults), ownerid (the caller) are filled in.
        body = {"name": "Q", "pricelevelid@odata.bind": f"/pricelevels({ACCOUNT_ID})"}
        assert validate_record(DV.tables["quotes"], body, catalog=DV, for_create=True) == []

    def test_updates_do_not_require_anything_but_refuse_clearing_system_required(self) -> None:
        assert (
            validate_record(DV.tables["products"], {"name": "New name"}, catalog=DV, for_create=False) == []
        )
        problems = validate_record(
            DV.tables["products"], {"productnumber": None}, catalog=DV, for_create=False
        )
        assert kinds(problems) == [("missing_required", "productnumber")]

    def test_date_only_column(self) -> None:
        table = DV.tables["invoices"]
        assert (
            validate_record(table, {"msdynce_invoicedate": "2026-11-02"}, catalog=DV, for_create=False) == []
        )
        problems = validate_record(
            table, {"msdynce_invoicedate": "2026-11-02T00:00:00Z"}, catalog=DV, for_create=False
        )
        assert kinds(problems) == [("wrong_type", "msdynce_invoicedate")]


class TestFnoRecords:
    def valid_order(self) -> dict[str, object]:
        return {
            "dataAreaId": "usmf",
            "SalesOrderNumber": "SO-000123",
            "OrderingCustomerAccountNumber": "US-001",
            "CurrencyCode": "USD",
            "OrderTotalAmount": 1250.75,
            "SalesOrderProcessingStatus": "Confirmed",
            "IsOneTimeCustomer": "No",
            "RequestedShippingDate": "2026-11-05T12:00:00Z",
            "DeliveryPostalAddressRecId": 5637144576,
        }

    def test_a_valid_create_has_no_problems(self) -> None:
        table = FO.tables["CDSSalesOrderHeaders"]
        assert validate_record(table, self.valid_order(), catalog=FO, for_create=True) == []

    def test_unknown_property_is_case_sensitive(self) -> None:
        body = {**self.valid_order(), "salesOrderName": "x"}
        problems = validate_record(FO.tables["CDSSalesOrderHeaders"], body, catalog=FO, for_create=True)
        assert kinds(problems) == [("unknown_property", "salesOrderName")]

    def test_invalid_enum_member_and_numbers_for_enums(self) -> None:
        body = {**self.valid_order(), "SalesOrderProcessingStatus": "Shipped", "IsOneTimeCustomer": 1}
        problems = validate_record(FO.tables["CDSSalesOrderHeaders"], body, catalog=FO, for_create=True)
        assert kinds(problems) == [
            ("invalid_enum", "SalesOrderProcessingStatus"),
            ("wrong_type", "IsOneTimeCustomer"),
        ]

    def test_non_nullable_numbers_refuse_null(self) -> None:
        body = {**self.valid_order(), "OrderTotalAmount": None, "RequestedShippingDate": None}
        problems = validate_record(FO.tables["CDSSalesOrderHeaders"], body, catalog=FO, for_create=True)
        assert kinds(problems) == [
            ("wrong_type", "OrderTotalAmount"),
            ("wrong_type", "RequestedShippingDate"),
        ]

    def test_data_area_id_is_the_only_length_limit(self) -> None:
        body = {**self.valid_order(), "dataAreaId": "usmf1", "SalesOrderName": "x" * 5000}
        problems = validate_record(FO.tables["CDSSalesOrderHeaders"], body, catalog=FO, for_create=True)
        assert kinds(problems) == [("too_long", "dataAreaId")]

    def test_keys_and_mandatory_fields_are_required_on_create(self) -> None:
        problems = validate_record(
            FO.tables["CDSSalesOrderLines"], {"OrderedSalesQuantity": 2}, catalog=FO, for_create=True
        )
        assert kinds(problems) == [
            ("missing_required", "SalesOrderNumber"),
            ("missing_required", "LineCreationSequenceNumber"),
            ("missing_required", "ProductNumber"),
        ]

    def test_data_area_id_comes_from_the_company_context(self) -> None:
        body = self.valid_order()
        del body["dataAreaId"]
        assert validate_record(FO.tables["CDSSalesOrderHeaders"], body, catalog=FO, for_create=True) == []

    def test_omitted_numbers_are_filled_not_required(self) -> None:
        body = {"SalesOrderNumber": "SO-1", "OrderingCustomerAccountNumber": "US-001"}
        assert validate_record(FO.tables["CDSSalesOrderHeaders"], body, catalog=FO, for_create=True) == []

    def test_read_only(self) -> None:
        body = {"FormattedDelveryAddress": "1 Main St", "OrderingCustomerIsExternallyMaintained": "Yes"}
        problems = validate_record(FO.tables["CDSSalesOrderHeaders"], body, catalog=FO, for_create=False)
        assert kinds(problems) == [
            ("read_only", "FormattedDelveryAddress"),
            ("read_only", "OrderingCustomerIsExternallyMaintained"),
        ]

    def test_wrong_types(self) -> None:
        body = {"LineCreationSequenceNumber": "1", "SalesPrice": True, "ConfirmedShippingDate": "tomorrow"}
        problems = validate_record(FO.tables["CDSSalesOrderLines"], body, catalog=FO, for_create=False)
        assert kinds(problems) == [
            ("wrong_type", "LineCreationSequenceNumber"),
            ("wrong_type", "SalesPrice"),
            ("wrong_type", "ConfirmedShippingDate"),
        ]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2026-11-01T00:00:00Z", True),
        ("2026-11-01T10:00:00.123+02:00", True),
        ("2026-11-01T10:00Z", True),
        ("2026-11-01", False),
        ("2026-13-01T00:00:00Z", False),
        ("2026-11-01T00:00:00", False),  # no offset: not a DateTimeOffset
        (20261101, False),
    ],
)
def test_datetime_values(value: object, ok: bool) -> None:
    field = Field("d", EdmType.DATETIMEOFFSET)
    assert (validate_value(field, value, catalog=DV) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("6F1E3B0C-0D2A-4C8E-9B1A-2F6D7E8C9A01", True),
        ("{6f1e3b0c-0d2a-4c8e-9b1a-2f6d7e8c9a01}", False),
        ("6f1e3b0c0d2a4c8e9b1a2f6d7e8c9a01", False),
        ("not-a-guid", False),
    ],
)
def test_guid_values(value: str, ok: bool) -> None:
    assert (validate_value(Field("g", EdmType.GUID), value, catalog=DV) is None) is ok


def test_int32_range() -> None:
    field = Field("i", EdmType.INT32)
    assert validate_value(field, 2**31 - 1, catalog=DV) is None
    problem = validate_value(field, 2**31, catalog=DV)
    assert problem is not None
    assert problem.kind == "wrong_type"


def test_unregistered_enum_is_a_catalogue_bug() -> None:
    with pytest.raises(KeyError):
        validate_value(Field("e", EdmType.ENUM, enum_type="Nope"), "x", catalog=FO)


# --- wire <-> storage ------------------------------------------------------------------

ORDER = FO.tables["CDSSalesOrderHeaders"]
ACCOUNT = DV.tables["accounts"]
INVOICE = DV.tables["invoices"]

moments = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(2999, 12, 30), timezones=st.just(timezone.utc)
)
offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=200, deadline=None)
@given(moment=moments, offset=offsets)
def test_datetimes_are_stored_as_utc_seconds(moment: datetime, offset: timezone) -> None:
    wire = moment.astimezone(offset).isoformat()
    stored = to_storage(ORDER, "RequestedShippingDate", wire)
    assert stored == format_datetime(moment.replace(microsecond=0))
    assert isinstance(stored, str)
    assert stored.endswith("Z")
    assert len(stored) == 20
    # Stored form is also the served form, and storing it again changes nothing.
    served = from_storage(ORDER, "RequestedShippingDate", stored)
    assert served == stored
    assert to_storage(ORDER, "RequestedShippingDate", served) == stored


@settings(max_examples=100, deadline=None)
@given(member=st.sampled_from(sorted(FO.enums["SalesOrderProcessingStatus"].members)))
def test_enum_names_round_trip_through_integers(member: str) -> None:
    stored = to_storage(ORDER, "SalesOrderProcessingStatus", member)
    assert stored == FO.enums["SalesOrderProcessingStatus"].members[member]
    assert from_storage(ORDER, "SalesOrderProcessingStatus", stored) == member


@settings(max_examples=100, deadline=None)
@given(flag=st.booleans())
def test_booleans_are_stored_as_0_1(flag: bool) -> None:
    stored = to_storage(ACCOUNT, "creditonhold", flag)
    assert stored == int(flag)
    assert from_storage(ACCOUNT, "creditonhold", stored) is flag


@settings(max_examples=100, deadline=None)
@given(value=st.uuids())
def test_guids_are_stored_lower_case(value: object) -> None:
    wire = str(value).upper()
    stored = to_storage(ACCOUNT, "accountid", wire)
    assert stored == str(value)
    assert from_storage(ACCOUNT, "accountid", stored) == str(value)


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(
        st.integers(min_value=-(10**12), max_value=10**12),
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    )
)
def test_decimals_round_trip(value: float) -> None:
    assert validate_value(ORDER.field("OrderTotalAmount"), value, catalog=FO) is None  # type: ignore[arg-type]
    stored = to_storage(ORDER, "OrderTotalAmount", value)
    assert isinstance(stored, float)
    assert from_storage(ORDER, "OrderTotalAmount", stored) == float(value)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=60))
def test_strings_are_stored_unchanged(text: str) -> None:
    assert to_storage(ACCOUNT, "name", text) == text
    assert from_storage(ACCOUNT, "name", text) == text


def test_dates_and_nulls() -> None:
    assert to_storage(INVOICE, "msdynce_invoicedate", "2026-11-02") == "2026-11-02"
    assert to_storage(ACCOUNT, "name", None) is None
    assert from_storage(ORDER, "SalesOrderProcessingStatus", None) is None


def test_unknown_stored_enum_value_is_an_error() -> None:
    with pytest.raises(ValueError, match="SalesOrderProcessingStatus"):
        from_storage(ORDER, "SalesOrderProcessingStatus", 99)
