"""The diff: creates, updates with only the changed fields, unchanged; and its algebra."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prospect_to_cash.sync.diff import apply, diff, fold
from prospect_to_cash.sync.values import values_equal

FIELDS = ["name", "amount", "flag"]


def frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["key", *FIELDS], dtype=object)


def test_classifies_rows_and_names_changed_fields_only() -> None:
    desired = frame(
        [
            {"key": "A", "name": "Alpha", "amount": 1.5, "flag": True},
            {"key": "B", "name": "Beta", "amount": 2.0, "flag": None},
            {"key": "c", "name": "Gamma", "amount": None, "flag": False},
        ]
    )
    snapshot = frame(
        [
            {"key": "A", "name": "Alpha", "amount": 1.5, "flag": True},
            {"key": "C", "name": "Gamma", "amount": 3.0, "flag": False},
            {"key": "Z", "name": "untouched", "amount": 0.0, "flag": None},
        ]
    )
    result = diff(desired, snapshot, key="key", compare=FIELDS)
    assert result.creates == [1]
    assert result.unchanged == [(0, 0)]
    assert [(u.desired_row, u.snapshot_row, u.changed) for u in result.updates] == [(2, 1, ["amount"])]


def test_ignore_null_leaves_lookups_alone() -> None:
    desired = frame([{"key": "A", "name": None, "amount": 1.0, "flag": None}])
    snapshot = frame([{"key": "A", "name": "kept", "amount": 1.0, "flag": None}])
    assert diff(desired, snapshot, key="key", compare=FIELDS, ignore_null={"name"}).unchanged == [(0, 0)]
    assert diff(desired, snapshot, key="key", compare=FIELDS).updates[0].changed == ["name"]


def test_duplicate_target_keys_are_ambiguous() -> None:
    desired = frame([{"key": "A", "name": "x", "amount": 1.0, "flag": None}])
    snapshot = frame([{"key": "A", "name": "x", "amount": 1.0, "flag": None}, {"key": "a", "name": "y"}])
    result = diff(desired, snapshot, key="key", compare=FIELDS)
    assert result.ambiguous == {0: 2}
    assert not result.creates
    assert not result.updates
    assert not result.unchanged


values = {
    "name": st.one_of(st.none(), st.sampled_from(["", "Alpha", "Beta", "alpha"])),
    "amount": st.one_of(st.none(), st.sampled_from([0.0, 1.5, 2.25, 10.0])),
    "flag": st.one_of(st.none(), st.booleans()),
}
row = st.fixed_dictionaries({"key": st.sampled_from(["K1", "K2", "K3", "K4", "K5", "K6"]), **values})


def unique(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    seen: dict[str, dict[str, object]] = {}
    for item in rows:
        seen.setdefault(fold(item["key"]), item)
    return list(seen.values())


@settings(max_examples=200, deadline=None)
@given(
    desired_rows=st.lists(row, max_size=6).map(unique), snapshot_rows=st.lists(row, max_size=6).map(unique)
)
def test_applying_the_plan_to_the_snapshot_yields_the_desired_target(
    desired_rows: list[dict[str, object]], snapshot_rows: list[dict[str, object]]
) -> None:
    desired, snapshot = frame(desired_rows), frame(snapshot_rows)
    result = diff(desired, snapshot, key="key", compare=FIELDS)
    after = apply(snapshot, desired, result, key="key", compare=FIELDS)
    for wanted in desired_rows:
        state = after[fold(wanted["key"])]
        assert all(values_equal(wanted[f], state[f]) for f in FIELDS)
    # rows nobody asked about are untouched
    asked = {fold(r["key"]) for r in desired_rows}
    for current in snapshot_rows:
        if fold(current["key"]) not in asked:
            assert after[fold(current["key"])] == current
    # and a second diff against the result finds nothing to do
    replay = diff(desired, frame(list(after.values())), key="key", compare=FIELDS)
    assert not replay.creates
    assert not replay.updates
    assert len(replay.unchanged) == len(desired_rows)


@pytest.mark.parametrize(
    ("wanted", "current", "changed"),
    [
        (("Alpha", 1.5, True), ("alpha", 1.5, True), ["name"]),  # values keep their case
        (("Alpha", 1.5, True), ("Alpha", 2.25, True), ["amount"]),
        (("Alpha", 1.5, None), ("Alpha", 1.5, False), ["flag"]),  # null is not false
        (("Alpha", 0.0, True), ("Alpha", None, True), ["amount"]),  # nor is it zero
        ((None, 1.5, True), ("Alpha", 1.5, True), ["name"]),
        (("", 1.5, True), ("Alpha", 1.5, True), ["name"]),
        (("Beta", 10.0, False), ("Alpha", 1.5, True), ["name", "amount", "flag"]),
    ],
)
def test_updates_name_exactly_the_differing_fields(
    wanted: tuple[object, ...], current: tuple[object, ...], changed: list[str]
) -> None:
    desired = frame([{"key": "K1", **dict(zip(FIELDS, wanted, strict=True))}])
    snapshot = frame([{"key": "k1", **dict(zip(FIELDS, current, strict=True))}])
    result = diff(desired, snapshot, key="key", compare=FIELDS)
    assert [(u.desired_row, u.snapshot_row, u.changed) for u in result.updates] == [(0, 0, changed)]
    assert result.creates == []
    assert result.unchanged == []
