"""The backfill path a user takes (issue 17): ``python -m devstack backfill`` through the real
scheduler ends in the state of one full refresh, read back from both services over HTTPS.

Two fresh demo worlds, one company pair (usmf) each:

* world A gets one full refresh of the seven templates, through the engine (what the sync
  CLI and the operators run);
* world B gets a local Airflow (api-server, scheduler, dag-processor, triggerer; SQLite) and
  :func:`devstack.backfill.backfill_dags` over the seed's days: the seven DAGs unpaused
  together, then one backfill at a time in run order, each retried on SQLite's 503.

To keep the test near two minutes on two cores, the seed's three days (11-01 .. 11-03) are
cut into two uneven intervals, not three: ``P2C_SCHEDULE`` fires on 11-01, 11-02 and 11-04,
so the backfill from 11-01 to 11-02 has the runs [11-01, 11-02) and [11-02, 11-04): 14 runs
instead of 21, still one boundary inside the seed's window (rows of day 1 land before
rows of days 2 and 3 are read). Then every table of both services is compared, row for row
(F&O party numbers, assigned in order of creation, compared as the customers they belong to).

Issue 17 point 1 (a key two source rows share, synced on one day and overwritten on a later
one) is not what this test pins: with this split both usmf accounts numbered
``ACC-01022-FNWAMW`` are read in the second interval and rejected together, as in the full
refresh. The cross-run property test of that point covers random splits.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from devstack.backfill import SYNC_DAGS, backfill_dags
from prospect_to_cash.sync.contracts import SyncOptions, Window
from prospect_to_cash.sync.mapping import TEMPLATES
from prospect_to_cash.sync.runner import run_company_pairs
from tests.support.story_checks import snapshot
from tests.support.world import SchedulerWorld, scheduler_world

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCHEDULE = "0 0 1,2,4 11 *"
INTERVALS = {"2026-11-01": "2026-11-02", "2026-11-02": "2026-11-04"}
FOLDERS = {"2026-11-01T00-00-00Z__backfill", "2026-11-02T00-00-00Z__backfill"}


def _full_refresh(world: SchedulerWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """World A: the seven templates once each, in run order, with the engine the operators
    and the CLI call (in this process: no Airflow process start per template)."""
    for name, value in world.connections.items():
        monkeypatch.setenv(name, value)
    options = SyncOptions(
        run_id="full-refresh",
        staging_root=str(world.staging),
        environment_file=str(world.environment),
        max_rejected="100%",
        max_failed="0",
    )
    for template in TEMPLATES:
        run_company_pairs(template, options=options, window=Window.of(None, None, full_refresh=True))


def _rows(state: Any) -> dict[str, list[str]]:
    """Every table of both services as sorted JSON rows, comparable across worlds. F&O numbers
    a party when it creates a customer (its number sequence), so the numbers follow the order
    of creation, which a backfill and a full refresh do not share: a party is named by the
    customer account it became, and a contact person by the customer account it belongs to."""
    customers = state.fno["CustomersV3"]
    account_of = {(c["dataAreaId"], c["PartyNumber"]): c["CustomerAccount"] for c in customers}
    assert len(account_of) == len(customers), "two customers share a party"
    fno = {
        **state.fno,
        "CustomersV3": [{k: v for k, v in c.items() if k != "PartyNumber"} for c in customers],
        "CDSContactPersons": [
            {**p, "AssociatedPartyNumber": account_of.get((p["dataAreaId"], p["AssociatedPartyNumber"]), "?")}
            for p in state.fno["CDSContactPersons"]
        ],
    }
    tables = {f"dataverse {name}": rows for name, rows in state.sales.items()}
    tables |= {f"fno {name}": rows for name, rows in fno.items()}
    return {name: sorted(json.dumps(row, sort_keys=True) for row in rows) for name, rows in tables.items()}


@pytest.mark.timeout(3000)  # minutes on a machine of its own; a shared, loaded one is far slower
def test_a_backfill_of_the_seven_dags_ends_in_the_full_refresh_state(
    tmp_path: Path, airflow_template_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with scheduler_world(tmp_path / "a", airflow_template_home) as world_a:
        _full_refresh(world_a, monkeypatch)
        refreshed = _rows(snapshot(world_a.reader))

    with scheduler_world(tmp_path / "b", airflow_template_home) as world_b:
        said: list[str] = []
        # no job schedule (the unpause would start no run: the schedule's latest is 11-02); a
        # dozen sensors wait at once: they poll gently
        with world_b.stack(P2C_SCHEDULE=SCHEDULE, P2C_RUN_ORDER_POKE_SECONDS="5") as stack:
            stack.wait_for_dags(SYNC_DAGS)
            outcomes = backfill_dags(stack, "2026-11-01", "2026-11-02", out=said.append, timeout=2700)
            assert [o.dag_id for o in outcomes] == list(SYNC_DAGS), said
            for outcome in outcomes:
                runs = stack.dag_runs(outcome.dag_id)
                failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
                assert outcome.runs == {"2026-11-01": "success", "2026-11-02": "success"}, "\n".join(
                    [str(outcome), *(stack.failed_task_logs(outcome.dag_id, run_id) for run_id in failed)]
                )
                assert {
                    (r["run_type"], r["data_interval_start"][:10], r["data_interval_end"][:10]) for r in runs
                } == {("backfill", start, end) for start, end in INTERVALS.items()}
        backfilled = _rows(snapshot(world_b.reader))

    # staging a person can map to the interval it holds
    for template in TEMPLATES:
        folders = {p.name for p in (world_b.staging / template).iterdir() if not p.name.startswith(".")}
        assert folders == FOLDERS, (template, folders)

    different = {
        name: (sorted(set(refreshed[name]) - set(rows)), sorted(set(rows) - set(refreshed[name])))
        for name, rows in backfilled.items()
        if rows != refreshed[name]
    }
    assert set(backfilled) == set(refreshed)
    assert different == {}, json.dumps(different, indent=1)[:6000]
