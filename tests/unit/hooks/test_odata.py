"""URL, key and literal building, and page-to-DataFrame conversion."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from urllib.parse import unquote

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prospect_to_cash.hooks.errors import InvalidKeyError
from prospect_to_cash.hooks.odata import (
    EnumLiteral,
    and_filters,
    any_equals,
    entity_id_from_url,
    entity_path,
    format_literal,
    key_row_filters,
    key_segment,
    page_to_frame,
    query_string,
    resolve_next_link,
    select_option,
)

GUID = "5B9A2C1E-0000-4000-8000-00000000ABCD"


class TestFormatLiteral:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("O'Brien & Sons", "'O''Brien & Sons'"),
            ("''", "''''''"),
            ("", "''"),
            (None, "null"),
            (True, "true"),
            (False, "false"),
            (42, "42"),
            (Decimal("10.50"), "10.50"),
            (1.5, "1.5"),
            (uuid.UUID(GUID), GUID.lower()),
            (dt.date(2026, 1, 31), "2026-01-31"),
            (
                dt.datetime(2026, 1, 31, 13, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))),
                "2026-01-31T12:05:00Z",
            ),
            (
                EnumLiteral("Microsoft.Dynamics.DataEntities.NoYes", "Yes"),
                "Microsoft.Dynamics.DataEntities.NoYes'Yes'",
            ),
        ],
    )
    def test_literals(self, value: object, expected: str) -> None:
        assert format_literal(value) == expected

    def test_naive_datetime_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            format_literal(dt.datetime(2026, 1, 1))

    def test_nan_is_refused(self) -> None:
        with pytest.raises(ValueError, match="no OData literal"):
            format_literal(float("nan"))

    @given(st.text())
    def test_string_literal_round_trips(self, text: str) -> None:
        literal = format_literal(text)
        assert literal[0] == literal[-1] == "'"
        inner = literal[1:-1]
        # Every quote inside is doubled, so reading pairs back gives the original text.
        assert inner.replace("''", "'") == text
        assert inner.count("'") == 2 * text.count("'")


class TestKeys:
    def test_single_guid_is_bare_and_lowercase(self) -> None:
        assert entity_path("accounts", {"accountid": GUID}) == f"accounts({GUID.lower()})"

    def test_fno_key_names_every_field_in_order(self) -> None:
        path = entity_path("CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": "US-001"})
        assert path == "CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')"

    @pytest.mark.parametrize(
        ("value", "encoded"),
        [
            ("O'Brien & Sons", "'O''Brien%20%26%20Sons'"),
            ("A/B #1", "'A%252FB%20%231'"),
            ("C:\\temp+1", "'C%3A%255Ctemp%252B1'"),
            ("Müller Ærø", "'M%C3%BCller%20%C3%86r%C3%B8'"),
            ("50% + tax?", "'50%2525%20%252B%20tax%3F'"),
        ],
    )
    def test_reserved_characters_are_escaped(self, value: str, encoded: str) -> None:
        segment = key_segment({"dataAreaId": "usmf", "Name": value})
        assert segment == f"(dataAreaId='usmf',Name={encoded})"
        # F&O decodes the path once (web server), then each key value (OData layer):
        # the two decodings give back the OData literal with doubled quotes.
        once = unquote(segment)
        assert not set("/\\+") & set(once), "routing must not see / \\ + bare"
        assert unquote(once) == f"(dataAreaId='usmf',Name={format_literal(value)})"

    def test_integer_key_values_are_bare(self) -> None:
        assert key_segment({"SalesOrderNumber": "SO-1", "LineCreationSequenceNumber": 3}) == (
            "(SalesOrderNumber='SO-1',LineCreationSequenceNumber=3)"
        )

    @pytest.mark.parametrize("character", list("/<>*%&:\\?+"))
    def test_dataverse_refuses_forbidden_alternate_key_characters(self, character: str) -> None:
        with pytest.raises(InvalidKeyError, match="does not allow"):
            key_segment({"msdynce_contactnumber": f"CON{character}1"}, dataverse=True)

    def test_dataverse_alternate_key_quotes_and_unicode_are_fine(self) -> None:
        assert key_segment({"msdynce_contactnumber": "O'Brien é"}, dataverse=True) == (
            "(msdynce_contactnumber='O''Brien%20%C3%A9')"
        )

    def test_fno_allows_what_dataverse_forbids(self) -> None:
        assert key_segment({"dataAreaId": "usmf", "CustomerAccount": "A/B"}) == (
            "(dataAreaId='usmf',CustomerAccount='A%252FB')"
        )

    @pytest.mark.parametrize(
        "key",
        [{}, {"bad name": "x"}, {"CustomerAccount": None, "dataAreaId": "usmf"}],
    )
    def test_unusable_keys(self, key: dict[str, object]) -> None:
        with pytest.raises(InvalidKeyError):
            key_segment(key)

    def test_entity_set_name_is_validated(self) -> None:
        with pytest.raises(ValueError, match="entity set"):
            entity_path("accounts?$top=1")


class TestQuery:
    def test_options_are_encoded_and_ordered(self) -> None:
        query = query_string(
            [
                ("cross-company", "true"),
                ("$select", "Name,dataAreaId"),
                ("$filter", "Name eq 'O''Brien & Sons #1+'"),
                ("$orderby", None),
            ]
        )
        assert query == (
            "cross-company=true&$select=Name,dataAreaId&$filter=Name%20eq%20'O''Brien%20%26%20Sons%20%231%2B'"
        )

    @pytest.mark.parametrize("select", [[], "name", ["name", "name"], ["name;drop"]])
    def test_select_must_be_explicit_and_clean(self, select: object) -> None:
        with pytest.raises((ValueError, TypeError)):
            select_option(select)  # type: ignore[arg-type]

    def test_company_filter_has_no_in_operator(self) -> None:
        assert any_equals("dataAreaId", ["usmf"]) == "dataAreaId eq 'usmf'"
        assert any_equals("dataAreaId", ["usmf", "demf"]) == "(dataAreaId eq 'usmf' or dataAreaId eq 'demf')"

    def test_and_filters(self) -> None:
        assert and_filters(None, "", "  ") is None
        assert and_filters(" a eq 1 ", None) == "a eq 1"
        assert and_filters("a eq 1") == "a eq 1"
        assert and_filters("a eq 1 or b eq 2", "c eq 3") == "(a eq 1 or b eq 2) and (c eq 3)"


class TestKeyRowFilters:
    """Composite keys (an order line: order number and line number) in F&O ``or`` chains."""

    COLUMNS = ("SalesOrderNumber", "LineCreationSequenceNumber")

    def test_rows_are_and_ed_and_grouped_under_their_leading_values(self) -> None:
        rows = [("SO-1", 3), ("SO-2", 1), ("SO-1", 4), ("SO-1", 3)]
        assert key_row_filters(("Order", "Line"), rows, budget=2000, most=50) == [
            "((Order eq 'SO-1' and (Line eq 3 or Line eq 4)) or (Order eq 'SO-2' and Line eq 1))"
        ]
        assert key_row_filters(self.COLUMNS, [("O'Neil", 1)], budget=2000, most=50) == [
            "(SalesOrderNumber eq 'O''Neil' and LineCreationSequenceNumber eq 1)"
        ]
        assert key_row_filters(self.COLUMNS, [], budget=2000, most=50) == []

    def test_chunks_stay_under_the_budget_and_the_count(self) -> None:
        rows = [(f"SO-{n:06d}", line) for n in range(60) for line in (1, 2)]
        chunks = key_row_filters(self.COLUMNS, rows, budget=2000, most=50)
        encoded = [len(query_string([("$filter", chunk)])) - len("$filter=") for chunk in chunks]
        # 29 lines fit under 2,000 encoded characters, the 30th would not (41 more at least)
        assert encoded == [1959, 1959, 1959, 1959, 262]
        # every row exactly once, in first-seen order
        found = [
            (number, int(line))
            for chunk in chunks
            for number, lines in re.findall(r"SalesOrderNumber eq '([^']+)' and \(?([^)]*)", chunk)
            for line in re.findall(r"LineCreationSequenceNumber eq (\d+)", lines)
        ]
        assert found == rows
        assert key_row_filters(("Order", "Line"), rows[:5], budget=2000, most=2) == [
            "(Order eq 'SO-000000' and (Line eq 1 or Line eq 2))",
            "(Order eq 'SO-000001' and (Line eq 1 or Line eq 2))",
            "(Order eq 'SO-000002' and Line eq 1)",
        ]

    def test_a_row_must_name_every_column(self) -> None:
        with pytest.raises(ValueError, match="2 columns"):
            key_row_filters(self.COLUMNS, [("SO-1",)], budget=2000, most=50)
        with pytest.raises(ValueError, match="two columns"):
            key_row_filters(("SalesOrderNumber",), [("SO-1",)], budget=2000, most=50)


class TestLinks:
    def test_next_link_on_same_origin(self) -> None:
        base = "https://org.crm.dynamics.com/api/data/v9.2/accounts?$select=name"
        link = "https://org.crm.dynamics.com/api/data/v9.2/accounts?$select=name&$skiptoken=%3Ccookie%3E"
        assert resolve_next_link(base, link) == link

    def test_next_link_to_another_host_is_refused(self) -> None:
        with pytest.raises(ValueError, match="another origin"):
            resolve_next_link("https://org.crm.dynamics.com/api/data/v9.2/accounts", "https://evil.example/x")

    def test_entity_id_from_header(self) -> None:
        url = f"https://org.crm.dynamics.com/api/data/v9.2/accounts({GUID})"
        assert entity_id_from_url(url) == GUID.lower()
        assert entity_id_from_url("https://x/data/CustomersV3(dataAreaId='usmf')") is None
        assert entity_id_from_url(None) is None


class TestPageToFrame:
    def test_exact_columns_in_order_with_omitted_nulls(self) -> None:
        rows = [
            {"@odata.etag": 'W/"1"', "name": "A", "accountid": "1", "revenue": 10.5},
            {"@odata.etag": 'W/"2"', "accountid": "2"},
        ]
        frame = page_to_frame(rows, ["accountid", "name", "revenue"])
        assert list(frame.columns) == ["accountid", "name", "revenue"]
        assert frame["accountid"].tolist() == ["1", "2"]
        assert frame.loc[0, "name"] == "A"
        assert pd.isna(frame.loc[1, "name"])
        assert pd.isna(frame.loc[1, "revenue"])

    def test_empty_page_keeps_the_columns(self) -> None:
        frame = page_to_frame([], ["a", "b"])
        assert list(frame.columns) == ["a", "b"]
        assert len(frame) == 0
