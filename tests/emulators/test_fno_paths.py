"""Unit checks of the F&O emulator's resource paths, keys and entity views (no server)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from emulators.fno.entities import build_views, field_label
from emulators.fno.paths import UnroutableKey, key_literal, parse_key, parse_path
from emulators.odata.errors import ODataError
from emulators.schema.fno import build_catalog

VIEWS = build_views(build_catalog())
INVOICE_LINES = VIEWS["ExternallyMaintainedCustomerSalesInvoiceLines"]


def test_paths_split_respecting_quoted_key_values() -> None:
    parsed = parse_path("CustomersV3(dataAreaId='usmf',CustomerAccount='A)B%252FC''D')/OrganizationName")
    assert parsed.name == "CustomersV3"
    assert parsed.key_text == "dataAreaId='usmf',CustomerAccount='A)B%2FC''D'"
    assert parsed.rest == ("OrganizationName",)
    # The OData layer decodes the value a second time.
    assert parse_key(VIEWS["CustomersV3"], parsed.key_text)["CustomerAccount"] == "A)B/C'D"


@pytest.mark.parametrize("character", ["/", "\\", "+"])
@pytest.mark.parametrize("encoded", [False, True])
def test_key_characters_routing_sees_bare_are_unroutable(character: str, encoded: bool) -> None:
    """Sent bare or encoded once, ``/ \\ +`` reach F&O's routing as path syntax (404)."""
    value = quote(character, safe="") if encoded else character
    with pytest.raises(UnroutableKey):
        parse_path(f"CustomersV3(dataAreaId='usmf',CustomerAccount='A{value}B')")


def test_key_literal_encodes_what_parse_path_decodes_twice() -> None:
    account = "50% A/B\\C+D 'ü' & #1"
    literal = key_literal(VIEWS["CustomersV3"], {"dataAreaId": "usmf", "CustomerAccount": account})
    parsed = parse_path(f"CustomersV3({literal})")
    assert parse_key(VIEWS["CustomersV3"], parsed.key_text or "")["CustomerAccount"] == account
    assert parse_path("CustomersV3/$count").rest == ("$count",)
    assert parse_path("CustomersV3").key_text is None


@pytest.mark.parametrize("path", ["CustomersV3(dataAreaId='usmf'", "CustomersV3(dataAreaId='usmf')x"])
def test_unbalanced_or_trailing_paths_are_syntax_errors(path: str) -> None:
    with pytest.raises(ODataError) as caught:
        parse_path(path)
    assert caught.value.status == 400
    assert caught.value.message == "Bad Request - Error in query syntax."


def test_keys_are_typed_named_and_order_insensitive() -> None:
    text = (
        "LedgerVoucher='USMF-SIV-1',LineCreationSequenceNumber=2,InvoiceDate=2026-11-01T14:00:00+02:00,"
        "InvoiceNumber='USMF-CIV-000006',dataAreaId='usmf'"
    )
    key = parse_key(INVOICE_LINES, text)
    assert list(key) == list(INVOICE_LINES.table.key)
    assert key["InvoiceDate"] == "2026-11-01T12:00:00Z"
    assert key["LineCreationSequenceNumber"] == 2
    assert key_literal(INVOICE_LINES, key) == (
        "dataAreaId='usmf',InvoiceNumber='USMF-CIV-000006',InvoiceDate=2026-11-01T12:00:00Z,"
        "LineCreationSequenceNumber=2,LedgerVoucher='USMF-SIV-1'"
    )


def test_single_keys_may_be_positional_and_quotes_are_doubled() -> None:
    currencies = VIEWS["Currencies"]
    assert parse_key(currencies, "'US''D'") == {"CurrencyCode": "US'D"}
    assert parse_key(currencies, "CurrencyCode='A=B'") == {"CurrencyCode": "A=B"}
    assert key_literal(currencies, {"CurrencyCode": "O'B & C"}) == "CurrencyCode='O''B%20%26%20C'"


@pytest.mark.parametrize(
    "text",
    [
        "dataAreaId='usmf',InvoiceNumber='X',InvoiceDate=2026-11-01T12:00:00Z,LedgerVoucher='V'",
        "dataAreaId='usmf',dataAreaId='usmf',InvoiceNumber='X',InvoiceDate=2026-11-01T12:00:00Z,"
        "LineCreationSequenceNumber=1,LedgerVoucher='V'",
        "'usmf','X'",
    ],
)
def test_incomplete_keys_are_refused(text: str) -> None:
    with pytest.raises(ODataError) as caught:
        parse_key(INVOICE_LINES, text)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "text",
    [
        "dataAreaId=usmf,InvoiceNumber='X',InvoiceDate=2026-11-01T12:00:00Z,LineCreationSequenceNumber=1,"
        "LedgerVoucher='V'",
        "dataAreaId='usmf',InvoiceNumber='X',InvoiceDate='2026-11-01',LineCreationSequenceNumber=1,"
        "LedgerVoucher='V'",
        "dataAreaId='usmf',InvoiceNumber='X',InvoiceDate=2026-11-01T12:00:00Z,LineCreationSequenceNumber='1',"
        "LedgerVoucher='V'",
    ],
)
def test_key_values_of_the_wrong_type_are_syntax_errors(text: str) -> None:
    with pytest.raises(ODataError) as caught:
        parse_key(INVOICE_LINES, text)
    assert caught.value.message == "Bad Request - Error in query syntax."


def test_views_share_customer_rows_and_filter_what_fno_filters() -> None:
    assert VIEWS["CustomersV2"].storage == "CustomersV3"
    assert VIEWS["CustomersV3"].storage == "CustomersV3"
    assert "IsSalesStopped" in VIEWS["SellableReleasedProducts"].predicate
    assert "IsExternallyMaintained" in VIEWS["ExternallyMaintainedCustomerSalesInvoiceHeaders"].predicate
    assert set(VIEWS["CDSSalesOrderLines"].computed) == {
        "OrderingCustomerIsExternallyMaintained",
        "InvoiceCustomerIsExternallyMaintained",
    }
    assert VIEWS["CustomersV3"].names.aot_name == "CustCustomerV3Entity"


def test_field_labels_read_like_fno_labels() -> None:
    assert field_label("CustomerGroupId") == "Customer group"
    assert field_label("OrganizationName") == "Organization name"
    assert field_label("PrimaryContactURL") == "Primary contact URL"
