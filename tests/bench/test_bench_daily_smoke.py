"""`python -m bench daily` end to end at a tiny scale: the harness, not the figures.

All seven templates in one world at 200 rows per large table. What must hold on any
machine: the initial loads ran in the DAGs' run order; each template's changes went
through the public APIs (every 100th source row changed, every 1000th deleted where the
template deletes, none refused); each change reached the target; each daily run read at
least the changed rows and fewer than the full refresh of the same state; and the report
shows a summary and a table per template from the stored result.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING
from unittest import mock

import pytest

from bench import report
from bench.__main__ import main
from bench.mutations import CHANGE_EVERY, DELETE_EVERY, MUTATIONS

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

SCALE = 200
RUN_ORDER = [
    "accounts",
    "products",
    "contacts",
    "sales_quotations",
    "sales_orders_fno_to_sales",
    "sales_orders_sales_to_fno",
    "sales_invoices",
]


def _expected(rows: int, deletes: bool) -> tuple[int, int]:
    """(changed, deleted) for ``rows`` source rows: every 100th changed, every 1000th
    (at position 500 of each thousand, never a changed one) deleted."""
    deleted = {i for i in range(rows) if deletes and i % DELETE_EVERY == DELETE_EVERY // 2}
    changed = {i for i in range(0, rows, CHANGE_EVERY)} - deleted
    return len(changed), len(deleted)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:
    """The command in this process (its interpreter start and imports are paid once per
    test run); the connections it defines in the environment are undone afterwards."""
    tmp = tmp_path_factory.mktemp("bench-daily")
    argv = [
        *("daily", "--scale", str(SCALE), "--pycache", "none", "--results-name", "smoke-daily"),
        *("--results-dir", str(tmp / "results"), "--output", str(tmp / "benchmarks.md")),
        *("--work-dir", str(tmp / "work")),
    ]
    with mock.patch.dict(os.environ):
        assert main(argv) == 0
    result = json.loads((tmp / "results" / "smoke-daily.json").read_text())
    return result, (tmp / "benchmarks.md").read_text(), tmp / "results"


def test_every_template_is_loaded_in_run_order_then_changed_through_the_api(
    bench_run: tuple[dict, str, Path],
) -> None:
    result, _, _ = bench_run
    assert result["run_order"] == RUN_ORDER
    assert list(result["scenarios"]) == RUN_ORDER
    assert result["seeded"]["rows"]["accounts"] == SCALE
    for template, data in result["scenarios"].items():
        mutations = data["mutations"]
        assert [m["task"] for m in mutations] == [m.task for m in MUTATIONS[template]], template
        for done, planned in zip(mutations, MUTATIONS[template], strict=True):
            assert done["rows"] > 0, (template, done)
            want = _expected(done["rows"], planned.deletes)
            assert (done["changed"], done["deleted"], done["refused"]) == (*want, 0), (template, done)
        assert data["changed"] == sum(m["changed"] for m in mutations) > 0
        assert data["deleted"] == sum(m["deleted"] for m in mutations)
    # the whole sources the scale fixes: accounts and F&O products are read unfiltered
    assert result["scenarios"]["accounts"]["mutations"][0]["rows"] == SCALE
    assert result["scenarios"]["products"]["mutations"][0]["rows"] == SCALE
    # order lines at this scale pass 500 rows, so one of them is deleted on each side
    for template in ("sales_orders_fno_to_sales", "sales_orders_sales_to_fno"):
        assert result["scenarios"][template]["deleted"] == 1, template


def test_each_daily_run_costs_less_than_its_full_refresh(bench_run: tuple[dict, str, Path]) -> None:
    result, _, _ = bench_run
    for template, data in result["scenarios"].items():
        daily, full = data["daily"], data["full_refresh"]
        assert data["lower_bound_rows"] == data["changed"] + data["deleted"]
        assert data["lower_bound_rows"] <= daily["rows_read"] < full["rows_read"], template
        assert daily["rows_read"] == sum(s["rows_read"] for s in daily["by_service"].values())
        # every row the emulators returned is counted under its entity set, and the source is one
        assert daily["rows_read"] == sum(daily["by_entity_set"].values()), template
        own = {name: rows for name, rows in daily["by_entity_set"].items() if name in data["own_tables"]}
        assert any(name.startswith(f"{data['source_system']}:") for name in own), (template, own)
        assert daily["counts"]["updated"] > 0, (template, daily["counts"])  # the changes reached the target
        assert full["counts"]["read"] >= daily["counts"]["read"], template
        assert 0 <= data["pending_rereads"] <= data["pending_at_start"]
        if data["source_system"] == "fno":  # read whole: the ledger's rows come with it
            assert data["pending_rereads"] == 0, template
    accounts = result["scenarios"]["accounts"]
    assert accounts["daily"]["rows_read"] < accounts["full_refresh"]["rows_read"] / 5
    assert accounts["daily"]["counts"]["updated"] <= accounts["changed"]


def test_the_report_has_a_summary_and_a_table_per_template(bench_run: tuple[dict, str, Path]) -> None:
    result, document, results_dir = bench_run
    assert f"### All templates at {SCALE:,} rows per large table" in document
    for template, data in result["scenarios"].items():
        assert f"### {data['title']}: {SCALE:,} rows per large table" in document, template
        summary_row = (
            f"| {template} | {'Sales' if data['source_system'] == 'dataverse' else 'F&O'} "
            f"| {data['changed']:,} | {data['deleted']:,} | {data['daily']['rows_read']:,} |"
        )
        assert summary_row in document, template
    assert document.count("| Lower bound (the changed and deleted rows) |") == len(RUN_ORDER)
    # the page is the stored result rendered, nothing else
    assert report.render(report._load(results_dir)) == document
