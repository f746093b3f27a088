"""The error threshold and the notifiers in real Airflow runs: api-server, scheduler
(LocalExecutor), dag-processor and triggerer on a temp AIRFLOW_HOME, against a fresh emulator
instance over HTTPS, for one company pair (usmf).

1. A contacts run is triggered first: its run-order sensors wait for accounts and products.
2. An accounts run with ``max_rejected=0`` crosses the threshold (the demo world has accounts
   the template must reject): every load writes what it can, then the report task fails
   without retries; the failure notifier is called for it.
3. The contacts sensor on accounts fails and nothing of contacts is read or written: the
   threshold held the downstream DAG (its sensor on products, which has no run, still waits).
4. An accounts run with the default threshold (20 %) succeeds with the same rejects: a warning
   in the report's log and grid label, and the warning notifier is called.

The notifier is ``tests.support.notifier.FileNotifier`` configured through ``P2C_NOTIFIERS``
as a user would configure the SMTP notifier; no secret reaches what it receives.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from devstack.airflow_stack import AirflowStack, StackError
from tests.support.notifier import received
from tests.support.story_checks import expected_accounts
from tests.support.world import SchedulerWorld, business_units, scheduler_world, tasks_by_key

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACCOUNTS, PRODUCTS, CONTACTS = "p2c_accounts", "p2c_products", "p2c_contacts"
#: manual runs: the logical date is the interval's end (11-03 .. 11-04, then 11-04 .. 11-05)
HELD, WARNED = "2026-11-04T00:00:00Z", "2026-11-05T00:00:00Z"
NOT_STARTED = (None, "upstream_failed")
NOTIFIER = "tests.support.notifier.FileNotifier"
ACCOUNT_READS = ["accountnumber", "name", "statecode", "_owningbusinessunit_value", "address1_country",
                 "address2_country", "paymenttermscode"]  # fmt: skip


def _wait_for_task(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, state: str) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        task = tasks_by_key(stack, dag_id, run_id).get((task_id, -1))
        if task and task["state"] == state:
            return
        time.sleep(1)
    raise StackError(f"{dag_id}.{task_id} never reached {state}\n{stack.diagnostics()}")


def _log(stack: AirflowStack, dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """The task's first try log as Airflow serves it, every field of every line (the exception
    is in the failure line's ``error_detail``, not in its ``event``)."""
    body = stack.api(
        "GET",
        f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1",
        params={"map_index": map_index, "full_content": True},
        headers={"Accept": "application/json"},
    )
    return json.dumps(body["content"])


def test_a_threshold_crossing_fails_the_run_holds_downstream_and_notifies(
    tmp_path: Path, airflow_template_home: Path
) -> None:
    with scheduler_world(tmp_path, airflow_template_home) as world:
        _scenario(tmp_path, world)


def _scenario(tmp_path: Path, world: SchedulerWorld) -> None:
    reader = world.reader
    usmf = expected_accounts(reader.rows("dataverse", "accounts", ACCOUNT_READS), business_units(reader))[
        "usmf"
    ]
    assert usmf["shared"], "the demo world has usmf accounts the template must reject"
    mailbox = tmp_path / "mailbox.jsonl"
    notifiers = [
        {"notifier": NOTIFIER, "kwargs": {"path": str(mailbox), "channel": "failures"}, "on": ["failure"]},
        {"notifier": NOTIFIER, "kwargs": {"path": str(mailbox), "channel": "warnings"}, "on": ["warning"]},
    ]
    with world.stack(P2C_NOTIFIERS=json.dumps(notifiers)) as stack:
        stack.wait_for_dags([ACCOUNTS, CONTACTS])
        for dag_id in (ACCOUNTS, CONTACTS):
            stack.unpause(dag_id)

        # 1. the downstream run first: it waits
        contacts = stack.trigger(CONTACTS, logical_date=HELD)["dag_run_id"]
        _wait_for_task(stack, CONTACTS, contacts, f"wait_for_{ACCOUNTS}", "deferred")

        # 2. over the threshold: every row written that could be, then the report fails, once
        held = stack.trigger(ACCOUNTS, logical_date=HELD, conf={"full_refresh": True, "max_rejected": "0"})
        held_id = held["dag_run_id"]
        assert stack.wait_for_run(ACCOUNTS, held_id, timeout=420)["state"] == "failed"
        tasks = tasks_by_key(stack, ACCOUNTS, held_id)
        assert tasks[("sync.customers.load", 0)]["state"] == "success"
        report = tasks[("sync.report", 0)]
        assert (report["state"], report["try_number"]) == ("failed", 1), report
        failure_log = _log(stack, ACCOUNTS, held_id, "sync.report", 0)
        assert "above the error threshold" in failure_log, failure_log
        assert "(max_rejected 0)" in failure_log, failure_log
        in_fno = {
            c["CustomerAccount"]
            for c in reader.rows("fno", "CustomersV3", ["dataAreaId", "CustomerAccount"])
            if c["dataAreaId"] == "usmf"
        }
        missing = {a["accountnumber"] for a in usmf["synced"]} - in_fno
        assert not missing, f"the failed run did not write every row it could: {sorted(missing)}"

        # 3. the contacts run goes no further than its sensor on the failed accounts run
        _wait_for_task(stack, CONTACTS, contacts, f"wait_for_{ACCOUNTS}", "failed")
        _wait_for_task(stack, CONTACTS, contacts, "check_mapping", "upstream_failed")  # the next loop
        states = {key: t["state"] for key, t in tasks_by_key(stack, CONTACTS, contacts).items()}
        assert states[("check_mapping", -1)] == states[("company_pairs", -1)] == "upstream_failed", states
        started = sorted(
            key for key, state in states.items() if key[0].startswith("sync.") and state not in NOT_STARTED
        )
        assert started == [], f"contacts went ahead of a failed accounts run: {started}"
        assert states[(f"wait_for_{PRODUCTS}", -1)] == "deferred"  # products never ran: still waiting

        # 4. the same rejects under the default threshold: success, with a warning
        warned = stack.trigger(ACCOUNTS, logical_date=WARNED, conf={"full_refresh": True})["dag_run_id"]
        assert stack.wait_for_run(ACCOUNTS, warned, timeout=420)["state"] == "success", (
            stack.failed_task_logs(ACCOUNTS, warned)
        )
        result = stack.xcom(ACCOUNTS, warned, "sync.report", 0)
        rejected = result["counts"]["rejected"]
        assert rejected >= 2 * len(usmf["shared"]), result["counts"]
        report = tasks_by_key(stack, ACCOUNTS, warned)[("sync.report", 0)]
        assert report["rendered_map_index"] == f"usmf: {rejected} rejected", report
        warning_log = _log(stack, ACCOUNTS, warned, "sync.report", 0)
        assert (
            f"{rejected} rejected and 0 failed of {result['counts']['read']} read, within the threshold"
            in (warning_log)
        ), warning_log

    mail = received(mailbox)
    assert sorted(
        (m["channel"], m["dag_id"], m["task_id"], m["map_index"], m["run_id"]) for m in mail
    ) == sorted(
        [
            ("failures", ACCOUNTS, "sync.report", 0, held_id),
            ("failures", CONTACTS, f"wait_for_{ACCOUNTS}", -1, contacts),
            ("warnings", ACCOUNTS, "sync.report", 0, warned),
        ]
    ), mail
    by_task = {(m["dag_id"], m["run_id"]): str(m["message"]) for m in mail}
    assert "above the error threshold" in by_task[(ACCOUNTS, held_id)], by_task
    assert f"{ACCOUNTS} failed for this data interval" in by_task[(CONTACTS, contacts)], by_task
    secrets = {json.loads(value)["password"] for value in world.connections.values()}
    assert secrets
    assert all(len(secret) >= 16 for secret in secrets)
    leaked = [m for m in mail if any(secret in json.dumps(m) for secret in secrets)]
    assert leaked == [], "a client secret reached the notifier"
