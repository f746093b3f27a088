"""summary.json: one shape and one writer for the DAG's report task and run_template."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from prospect_to_cash.sync.contracts import CompanyPair, RunSummary, TaskReport
from prospect_to_cash.sync.summary import (
    COUNT_ORDER,
    DRY_RUN_COUNT_ORDER,
    summarize,
    total_counts,
    write_summary,
)

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import ObjectStoragePath


def _report(rejected: int, failed: int, *, failed_path: str | None) -> TaskReport:
    return {
        "counts": {"read": rejected + failed + 1, "created": 1, "rejected": rejected, "failed": failed},
        "deadletter": {"rejected": "file:///s/rejected.parquet", "failed": failed_path, "parked": None},
        "paths": {"outcome": "file:///s/outcome.parquet"},
    }


def test_summary_sums_tasks_and_lists_only_dead_letters_with_rows(
    staging_dir: Path, staging_root: ObjectStoragePath
) -> None:
    tasks = {
        "headers": _report(2, 0, failed_path="file:///s/failed.parquet"),
        "lines": _report(0, 3, failed_path=None),
    }
    pair = CompanyPair("usmf", "Contoso US")
    summary = summarize("orders", pair, "manual__1", tasks, dry_run=False, window=None, dag_id="p2c_orders")
    assert set(summary) == set(RunSummary.__annotations__)
    assert summary["counts"] == {
        **dict.fromkeys(COUNT_ORDER, 0),
        "read": 7,
        "created": 2,
        "rejected": 2,
        "failed": 3,
    }
    assert summary["dead_letters"] == [
        {"task": "headers", "kind": "rejected", "path": "file:///s/rejected.parquet", "rows": 2}
    ]
    assert (summary["legal_entity"], summary["business_unit"], summary["dag_id"]) == (
        "usmf",
        "Contoso US",
        "p2c_orders",
    )

    written = write_summary(staging_root, summary)
    assert written == f"file://{staging_dir}/orders/manual__1/usmf/summary.json"
    assert json.loads((staging_dir / "orders" / "manual__1" / "usmf" / "summary.json").read_text()) == summary


def test_dry_run_totals_use_the_plan_counts() -> None:
    totals = total_counts([{"to_create": 2}, {"to_create": 1, "rejected": 1}], dry_run=True)
    assert totals == {**dict.fromkeys(DRY_RUN_COUNT_ORDER, 0), "to_create": 3, "rejected": 1}
