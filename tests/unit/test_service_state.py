"""The end-state comparison the fault and property tests rely on reports every kind of
difference: a missing row, an extra one, a duplicate, and a changed column by identity."""

from __future__ import annotations

import json
from collections import Counter

from tests.support.service_state import ServiceState


def _state(*rows: dict[str, object]) -> ServiceState:
    canonical = Counter(json.dumps(row, sort_keys=True) for row in rows)
    return ServiceState({"fno:CustomersV3": canonical}, {"fno:CustomersV3": ("CustomerAccount",)})


A = {"CustomerAccount": "A", "Name": "Alpha"}
B = {"CustomerAccount": "B", "Name": "Beta"}


def test_equal_states_have_no_difference() -> None:
    assert _state(A, B).differences(_state(B, A)) == []


def test_a_changed_row_shows_its_changed_columns() -> None:
    found = _state(A, {"CustomerAccount": "B", "Name": "Bravo"})
    assert found.differences(_state(A, B)) == [
        "fno:CustomersV3: B differs (found, expected): {'Name': ('Bravo', 'Beta')}"
    ]


def test_missing_extra_and_duplicated_rows_show() -> None:
    assert _state(A).differences(_state(A, B)) == [
        'fno:CustomersV3: missing 1x {"CustomerAccount": "B", "Name": "Beta"}'
    ]
    assert _state(A, A, B).differences(_state(A, B)) == [
        'fno:CustomersV3: extra 1x {"CustomerAccount": "A", "Name": "Alpha"}'
    ]
    assert _state(A, B).count("fno", "CustomersV3") == 2
