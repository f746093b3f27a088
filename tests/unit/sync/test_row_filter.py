"""The mapping's source filter applied client-side (delta reads refuse ``$filter``): the
same rows Dataverse's own ``$filter`` keeps, nulls and case included."""

from __future__ import annotations

import pandas as pd
import pytest

from prospect_to_cash.sync.row_filter import RowFilter, UnsupportedFilter

ROWS = pd.DataFrame(
    {
        "id": ["a", "b", "c", "d"],
        "statecode": [0, 1, 0, None],
        "external": [True, True, None, False],
        "number": ["SO-1", "so-2", "", None],
        "_owningbusinessunit_value": [
            "6f1c1d5e-0000-4000-8000-000000000001",
            "6F1C1D5E-0000-4000-8000-000000000001",
            "6f1c1d5e-0000-4000-8000-000000000002",
            None,
        ],
        "amount": [10.5, 3, None, "7"],
    }
)


def kept(*filters: str | None) -> list[str]:
    return ROWS["id"][RowFilter(*filters).mask(ROWS)].tolist()


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("statecode eq 0", ["a", "c"]),
        ("statecode ne 0", ["b", "d"]),  # null ne 0
        ("external eq true", ["a", "b"]),
        ("external ne true", ["c", "d"]),  # null ne true (the Sales-to-F&O orders filter)
        ("number ne ''", ["a", "b", "d"]),
        ("number eq 'SO-2'", ["b"]),  # text compares case-insensitively, as Dataverse does
        ("number eq null", ["d"]),
        ("number ne null", ["a", "b", "c"]),
        ("_owningbusinessunit_value eq 6f1c1d5e-0000-4000-8000-000000000001", ["a", "b"]),
        ("amount gt 5", ["a", "d"]),
        ("amount le 3", ["b"]),
        ("statecode eq 0 and external eq true", ["a"]),
        ("statecode eq 1 or (external eq false and not (amount lt 5))", ["b", "d"]),
        ("NOT statecode eq 0", ["b", "d"]),
    ],
)
def test_filters_keep_what_the_service_would(text: str, ids: list[str]) -> None:
    assert kept(text) == ids


def test_several_filters_are_anded_and_none_keeps_everything() -> None:
    assert kept("statecode eq 0", None, "external eq true") == ["a"]
    assert kept(None, "") == ["a", "b", "c", "d"]
    assert RowFilter("statecode eq 0 and (external eq true or number eq 'x')").columns == (
        "statecode",
        "external",
        "number",
    )


@pytest.mark.parametrize(
    "text",
    [
        "contains(name, 'x')",
        "parentaccountid/name eq 'x'",
        "statecode eq 0 and",
        "(statecode eq 0",
        "statecode in (0, 1)",
        "createdon gt 2024-01-01T00:00:00Z",
    ],
)
def test_what_it_cannot_read_is_refused_not_guessed(text: str) -> None:
    with pytest.raises(UnsupportedFilter):
        RowFilter(text)


def test_a_column_that_was_not_read_is_refused() -> None:
    with pytest.raises(UnsupportedFilter, match="'name' was not read"):
        RowFilter("name eq 'x'").mask(ROWS)


def test_staged_text_compares_like_the_values_it_was_read_as() -> None:
    """A shared delta's rows come back from staging as text (sync/delta_chain.py)."""
    staged = pd.DataFrame({"id": ["a", "b", "c"], "flag": ["true", "false", None], "n": ["0", "1", None]})
    assert staged["id"][RowFilter("flag eq true").mask(staged)].tolist() == ["a"]
    assert staged["id"][RowFilter("flag ne true").mask(staged)].tolist() == ["b", "c"]
    assert staged["id"][RowFilter("n eq 0").mask(staged)].tolist() == ["a"]
