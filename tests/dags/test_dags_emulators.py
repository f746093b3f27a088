"""The seven DAGs against the emulators with the demo story, through ``dag.test()``.

One fresh emulator instance; the source rows are read over HTTPS *before* the DAGs run;
then the seven DAGs run in run order (each with ``full_refresh``; the run-order sensors
are on and find the upstream runs of the same interval); then the targets are read back.
The per-template checks (what each template must have written, derived from the source
rows with its documented rules, without the package's transform) are in
``tests/support/story_checks.py``, shared with the ``make demo`` end-to-end test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pytest

from devstack.dag_test import DagTestRun
from prospect_to_cash.dags.steps import report_label
from prospect_to_cash.sync.mapping import TEMPLATES
from tests.support.story_checks import CHECKS, COMPANIES, FNO_READS, StoryState, expected_accounts, snapshot
from tests.support.world import business_units, start_demo_world

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.support.world import DemoWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOGICAL_DATE = "2026-11-04T00:00:00+00:00"  # manual runs: the interval 2026-11-03 .. 2026-11-04
DRY_RUN_LOGICAL_DATE = "2026-11-05T00:00:00+00:00"


@dataclass
class SyncedWorld(StoryState):
    world: DemoWorld
    runs: dict[str, dict[str, Any]]
    dry_run: dict[str, Any]  # the accounts dry run, before anything was written
    after_dry_run: list[dict[str, Any]]  # CustomersV3 right after the dry run
    written_by_dry_run: int  # F&O operations written during the dry run


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, airflow_template_home: Path) -> Iterator[SyncedWorld]:
    world = start_demo_world(tmp_path_factory.mktemp("seven-dags"), airflow_template_home)
    try:
        before = snapshot(world.reader)
        companies = business_units(world.reader)
        with world.running.admin("fno") as admin:
            admin.reset_counters()
        # a dry run first (another logical date: one run per DAG and logical date)
        (dry_run,) = world.dag_test(
            DagTestRun("p2c_accounts", DRY_RUN_LOGICAL_DATE, {"dry_run": True, "full_refresh": True})
        )
        written = world.counters("fno")["operations_written_total"]
        after_dry_run = world.reader.rows("fno", "CustomersV3", FNO_READS["CustomersV3"])
        results = world.dag_test(
            *(DagTestRun(f"p2c_{name}", LOGICAL_DATE, {"full_refresh": True}) for name in TEMPLATES),
            timeout=1200,
        )
        after = snapshot(world.reader)
        yield SyncedWorld(
            before=before,
            after=after,
            companies=companies,
            world=world,
            runs={r["dag_id"]: r for r in results},
            dry_run=dry_run,
            after_dry_run=after_dry_run,
            written_by_dry_run=written,
        )
    finally:
        world.reader.close()
        world.running.stop()


def report(synced: SyncedWorld, dag_id: str) -> dict[str, dict[str, Any]]:
    """The per-company report task results of a run."""
    return {
        r["value"]["legal_entity"]: r["value"]
        for r in synced.runs[dag_id]["returns"]
        if r["task_id"] == "sync.report"
    }


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_dag_succeeds_for_both_legal_entities_and_publishes_assets(
    synced: SyncedWorld, template: str
) -> None:
    run = synced.runs[f"p2c_{template}"]
    assert run["state"] == "success", [t for t in run["tasks"] if t["state"] != "success"]
    mapped = [t for t in run["tasks"] if t["map_index"] >= 0]
    assert {t["rendered_map_index"] for t in mapped if t["task_id"] != "sync.report"} == set(COMPANIES)
    reports = report(synced, f"p2c_{template}")
    assert set(reports) == set(COMPANIES)
    # the report names its rows left behind in the grid, so such a run does not look clean
    assert {t["rendered_map_index"] for t in mapped if t["task_id"] == "sync.report"} == {
        report_label(company, result["counts"]) for company, result in reports.items()
    }
    for company, result in reports.items():
        moved = result["counts"]["created"] + result["counts"]["updated"]
        assert moved > 0, f"{template}/{company} wrote nothing: {result['counts']}"
        assert result["counts"]["failed"] == 0, result
    events = run["asset_events"]
    loads = [t for t in run["tasks"] if t["task_id"].endswith(".load")]
    assert len(events) == len(loads), "one asset event per load task instance"
    for event in events:
        assert event["extra"]["legal_entity"] in COMPANIES
        assert event["extra"]["dry_run"] is False
        assert set(event["extra"]["counts"]) >= {"created", "updated", "rejected", "failed"}
        assert event["extra"]["deadletter"]["rejected"].endswith("deadletter/rejected.parquet")


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_targets_hold_what_the_source_rows_call_for(
    synced: SyncedWorld, check: Callable[[StoryState], None]
) -> None:
    check(synced)


def test_rejected_rows_are_in_the_dead_letter_files_with_reasons(synced: SyncedWorld) -> None:
    reports = report(synced, "p2c_accounts")
    for company, result in reports.items():
        assert result["counts"]["rejected"] == 4, company  # no number, duplicate pair, Atlantis
        (dead,) = [d for d in result["dead_letters"] if d["kind"] == "rejected"]
        table = pq.read_table(dead["path"].removeprefix("file://")).to_pylist()
        assert len(table) == 4
        assert all(row["reason"] and row["legal_entity"] == company for row in table)
        reasons = " ".join(row["reason"] for row in table).casefold()
        assert "atlantis" in reasons


def test_dry_run_plans_without_writing(synced: SyncedWorld) -> None:
    run = synced.dry_run
    assert run["state"] == "success"
    assert synced.written_by_dry_run == 0
    before = synced.before.fno["CustomersV3"]
    assert sorted(synced.after_dry_run, key=str) == sorted(before, key=str), "a dry run changed CustomersV3"
    existing = {(c["dataAreaId"], c["CustomerAccount"]) for c in before}
    expected = expected_accounts(synced.before.sales["accounts"], synced.companies)
    reports = {
        r["value"]["legal_entity"]: r["value"] for r in run["returns"] if r["task_id"] == "sync.report"
    }
    assert set(reports) == set(COMPANIES)
    for company, result in reports.items():
        assert result["dry_run"] is True
        new = [a for a in expected[company]["synced"] if (company, a["accountnumber"]) not in existing]
        counts = result["counts"]
        assert counts["to_create"] == len(new), company
        planned = counts["to_create"] + counts["to_update"] + counts["unchanged"]
        assert planned == len(expected[company]["synced"]), company
        assert counts.get("created", 0) == counts.get("updated", 0) == 0
    assert {e["extra"]["dry_run"] for e in run["asset_events"]} == {True}
    loads = [r["value"] for r in run["returns"] if r["task_id"] == "sync.customers.load"]
    assert loads
    assert all("samples" not in value for value in loads), "row samples stay out of XCom"
