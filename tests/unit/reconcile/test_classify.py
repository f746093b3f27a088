"""Classification of every row, checked against an oracle written here from the rules.

The plan comes from the real engine (``build_plan``), so these tests also pin down that
the reconciliation reads the engine's decisions the way the engine meant them.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prospect_to_cash.reconcile.classify import (
    DIFFERENT,
    IN_SYNC,
    MISSING,
    ORPHANED,
    REJECTED,
    STATUSES,
    PlanFrames,
    claimed_keys,
    classify_plan,
    count,
    orphan_rows,
)
from prospect_to_cash.sync.columns import CHANGED, ID, REF, SOURCE_KEY
from prospect_to_cash.sync.planner import TransformInputs, build_plan
from prospect_to_cash.sync.target_rows import snapshot_frame

if TYPE_CHECKING:
    from prospect_to_cash.sync.mapping import Task

KEYS = st.sampled_from(["A1", "a1", "B2", "C3", "D4", "", None])
NAMES = st.sampled_from([None, "", "Contoso", "Fabrikam"])
CREDITS = st.sampled_from([None, "0", "1.5", "1.50", "2"])


def source_frame(rows: list[tuple[Any, Any, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["accountnumber", "name", "creditlimit"], dtype=object)


def target_frame(rows: list[tuple[Any, Any, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        [("usmf", key, name, credit) for key, name, credit in rows],
        columns=["dataAreaId", "CustomerAccount", "OrganizationName", "CreditLimit"],
        dtype=object,
    )


def run(task: Task, source: list, target: list) -> list[dict[str, Any]]:
    """What the reconciliation reports for one task: the plan classified, then orphans."""
    snapshot = target_frame(target)
    plan = build_plan(
        task, TransformInputs(source=source_frame(source), snapshot=snapshot, legal_entity="usmf")
    )
    frames = PlanFrames.from_plan(plan)
    current = snapshot_frame(task, snapshot, "usmf")
    return classify_plan(frames, current) + orphan_rows(current, claimed_keys(frames))


def blank(value: Any) -> bool:
    return value is None or str(value).strip() == ""


def oracle(source: list, target: list) -> Counter:
    """(status, folded key, differing fields) per row, from the documented rules alone."""

    def name(value: Any) -> Any:
        return None if blank(value) else value

    def credit(value: Any) -> float:
        return 0.0 if blank(value) else float(value)  # F&O has no null numbers

    target_by_key = {key.casefold(): (name(n), credit(c)) for key, n, c in target}
    counts = Counter(key.casefold() for key, _, _ in source if not blank(key))
    expected: Counter = Counter()
    for key, row_name, row_credit in source:
        if blank(key):
            expected[(REJECTED, None, ())] += 1
        elif counts[key.casefold()] > 1:
            expected[(REJECTED, key.casefold(), ())] += 1
        elif key.casefold() not in target_by_key:
            expected[(MISSING, key.casefold(), ())] += 1
        else:
            now = target_by_key[key.casefold()]
            fields = tuple(
                field
                for field, wanted, actual in (
                    ("OrganizationName", name(row_name), now[0]),
                    ("CreditLimit", credit(row_credit), now[1]),
                )
                if wanted != actual
            )
            expected[(DIFFERENT if fields else IN_SYNC, key.casefold(), fields)] += 1
    claimed = {key.casefold() for key, _, _ in source if not blank(key)}
    for key, _, _ in target:
        if key.casefold() not in claimed:
            expected[(ORPHANED, key.casefold(), ())] += 1
    return expected


def observed(rows: list[dict[str, Any]]) -> Counter:
    return Counter(
        (
            row["status"],
            row["key"].casefold() if row["key"] else None,
            tuple(
                sorted(
                    (d["field"] for d in row["differences"]), key=["OrganizationName", "CreditLimit"].index
                )
            ),
        )
        for row in rows
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    source=st.lists(st.tuples(KEYS, NAMES, CREDITS), max_size=8),
    target=st.lists(
        st.tuples(st.sampled_from(["A1", "B2", "C3", "E5", "F6"]), NAMES, CREDITS),
        max_size=5,
        unique_by=lambda row: row[0].casefold(),
    ),
)
def test_every_row_is_classified_as_the_rules_say(widgets_task: Task, source: list, target: list) -> None:
    rows = run(widgets_task, source, target)
    assert observed(rows) == oracle(source, target)
    # every source row and every unclaimed target row appears exactly once
    assert len(rows) == len(source) + sum(count(rows)[s] for s in [ORPHANED])
    for row in rows:
        assert (row["status"] == DIFFERENT) == bool(row["differences"])
        assert (row["status"] == REJECTED) == bool(row["reason"])


def test_difference_shows_both_values_as_compared(widgets_task: Task) -> None:
    rows = run(
        widgets_task, [("A1", "Contoso", "1.5"), ("B2", "Fabrikam", None)], [("a1", "Contoso Ltd", "1.50")]
    )
    different = next(r for r in rows if r["status"] == DIFFERENT)
    assert different["key"] == "A1"
    assert different["differences"] == [
        {"field": "OrganizationName", "expected": "Contoso", "actual": "Contoso Ltd"},
    ]
    assert {r["status"] for r in rows} == {DIFFERENT, MISSING}


def test_reject_keeps_the_engine_reason_and_the_source_row(widgets_task: Task) -> None:
    rows = run(widgets_task, [(None, "No number Inc.", "3")], [])
    (reject,) = rows
    assert reject["status"] == REJECTED
    assert "source key accountnumber is empty" in reject["reason"]
    assert reject["source_row"] == {"accountnumber": None, "name": "No number Inc.", "creditlimit": "3"}


def test_a_rejected_row_still_claims_its_target_row(widgets_task: Task) -> None:
    # both rows share A1: rejected as duplicates, but the target A1 is explained, not orphaned
    rows = run(widgets_task, [("A1", "x", None), ("A1", "y", None)], [("A1", "x", None)])
    assert count(rows) == {IN_SYNC: 0, MISSING: 0, DIFFERENT: 0, ORPHANED: 0, REJECTED: 2}


def test_second_pass_difference_makes_an_unchanged_row_different() -> None:
    unchanged = pd.DataFrame({REF: ["C1"], ID: [None], SOURCE_KEY: ["C1"]}, dtype=object)
    second = pd.DataFrame(
        {
            REF: ["C1"],
            ID: [None],
            SOURCE_KEY: ["C1"],
            "InvoiceAccount": ["P1"],
            CHANGED: [["InvoiceAccount"]],
        },
        dtype=object,
    )
    current = pd.DataFrame({REF: ["c1"], ID: [None], "InvoiceAccount": [None]}, dtype=object)
    empty = pd.DataFrame()
    rows = classify_plan(PlanFrames(empty, empty, unchanged, second, empty), current)
    assert rows == [
        {
            "status": DIFFERENT,
            "key": "C1",
            "source_key": "C1",
            "target_id": None,
            "differences": [{"field": "InvoiceAccount", "expected": "P1", "actual": None}],
            "reason": None,
            "source_row": None,
        }
    ]


def test_orphans_without_a_key_are_reported_and_claims_fold_case() -> None:
    scoped = pd.DataFrame({REF: ["A1", None, "b2"], ID: ["g1", "g2", "g3"]}, dtype=object)
    rows = orphan_rows(scoped, {"a1"})
    assert [(r["key"], r["target_id"]) for r in rows] == [(None, "g2"), ("b2", "g3")]
    assert all(r["status"] == ORPHANED for r in rows)


def test_counts_list_every_status_in_report_order() -> None:
    assert list(count([{"status": REJECTED}, {"status": REJECTED}])) == list(STATUSES)
    assert count([{"status": REJECTED}])[REJECTED] == 1


def test_rows_are_json_ready(widgets_task: Task) -> None:
    rows = run(
        widgets_task, [("A1", "Contoso", "1.5"), (None, "x", None)], [("A1", "Old", "2"), ("Z9", "z", None)]
    )
    assert json.loads(json.dumps(rows)) == rows
