"""Which keys a windowed run reads again through OData beside an F&O incremental export:
the export's CSV text typed by the entity's ``$metadata``, by the whole key where every
column converts (`exports.reread_scope`)."""

from __future__ import annotations

import uuid

import pytest

from prospect_to_cash.hooks.odata import key_row_filters
from prospect_to_cash.sync import exports, target_scope
from prospect_to_cash.sync.target_scope import RowScope

LINE_KEY = ("SalesOrderNumber", "LineCreationSequenceNumber")
LINE_TYPES = {"SalesOrderNumber": "Edm.String", "LineCreationSequenceNumber": "Edm.Int32"}
INVOICE_KEY = ("InvoiceNumber", "InvoiceDate", "LedgerVoucher")
INVOICE_TYPES = {
    "InvoiceNumber": "Edm.String",
    "InvoiceDate": "Edm.DateTimeOffset",
    "LedgerVoucher": "Edm.String",
}


def test_order_lines_are_read_again_by_order_number_and_typed_line_number() -> None:
    keys = [("SO-1", "2"), ("SO-1", "4"), ("SO-2", "3"), ("SO-1", "2")]  # text, as the CSV has it
    scope = exports.reread_scope(LINE_KEY, LINE_TYPES, keys)
    assert scope == RowScope(LINE_KEY, (("SO-1", 2), ("SO-1", 4), ("SO-2", 3)))
    (chunk,) = key_row_filters(scope.columns, scope.rows, budget=2000, most=50)
    line = "LineCreationSequenceNumber"
    assert chunk == (
        f"((SalesOrderNumber eq 'SO-1' and ({line} eq 2 or {line} eq 4))"
        f" or (SalesOrderNumber eq 'SO-2' and {line} eq 3))"
    )


def test_lines_spread_over_orders_are_grouped_by_line_number() -> None:
    scope = exports.reread_scope(LINE_KEY, LINE_TYPES, [("SO-1", "1"), ("SO-2", "1"), ("SO-3", "1")])
    assert scope == RowScope(tuple(reversed(LINE_KEY)), ((1, "SO-1"), (1, "SO-2"), (1, "SO-3")))


def test_a_date_column_is_left_out_of_the_key_not_guessed() -> None:
    """A data project writes dates in its own format: the invoice is read by its number and
    voucher (a superset the digests narrow), never by a literal built from the CSV's date."""
    keys = [("INV-1", "11/24/2026 00:00:00", "V-1"), ("INV-2", "11/25/2026 00:00:00", "V-2")]
    assert exports.reread_scope(INVOICE_KEY, INVOICE_TYPES, keys) == RowScope(
        ("InvoiceNumber", "LedgerVoucher"), (("INV-1", "V-1"), ("INV-2", "V-2"))
    )


def test_a_column_whose_text_does_not_convert_for_every_key_is_left_out() -> None:
    keys = [("SO-1", "2"), ("SO-2", "")]  # a blank line number has no Int32 literal
    assert exports.reread_scope(LINE_KEY, LINE_TYPES, keys) == RowScope(
        ("SalesOrderNumber",), (("SO-1",), ("SO-2",))
    )


def test_guid_keys_become_bare_guids() -> None:
    value = "0A1B2C3D-0000-4000-8000-00000000000A"
    scope = exports.reread_scope(("Id",), {"Id": "Edm.Guid"}, [(value,)])
    assert scope == RowScope(("Id",), ((uuid.UUID(value),),))


@pytest.mark.parametrize(
    "types", [{}, {"SalesOrderNumber": "Edm.Date", "LineCreationSequenceNumber": "Edm.DateTimeOffset"}]
)
def test_no_typed_column_reads_the_filter_whole(types: dict[str, str]) -> None:
    """Without ``$metadata`` (or with no column it can type) nothing is guessed."""
    assert exports.reread_scope(LINE_KEY, types, [("SO-1", "1")]) is None


def test_above_the_key_limit_the_filter_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A project's first export is a full push: reading it again key by key would cost more
    requests than the whole filtered read."""
    monkeypatch.setattr(target_scope, "SCOPED_READ_MAX_KEYS", 2)
    keys = [("SO-1", "1"), ("SO-1", "2"), ("SO-2", "1")]
    assert exports.reread_scope(LINE_KEY, LINE_TYPES, keys) is None
    assert exports.reread_scope(LINE_KEY, LINE_TYPES, keys[:2]) == RowScope(
        LINE_KEY, (("SO-1", 1), ("SO-1", 2))
    )
