"""Daily runs over HTTPS against the emulators: day 1 an account fails under injected F&O
throttling beyond the hook's wait budget (429 with Retry-After 60 s on every write) and its
contact person is rejected because the customer is not in F&O; day 2 the service is
healthy and nothing changed in Sales, and the day-2 runs land both from the pending
ledger. Day 1's runs fail (the throttling: `ServiceFailures`, for Airflow to retry; the
contact: `RowsRefused`, above the error threshold)."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.hooks._http import RetryPolicy
from prospect_to_cash.hooks.operations import WriteKind, WriteOperation
from prospect_to_cash.sync.contracts import SyncHooks, Window
from prospect_to_cash.sync.errors import RowsRefused, ServiceFailures
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.runner import run_template
from tests.support.emulators import Oracle, connected_demo_world

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_daily_it_dataverse", "fno": "p2c_daily_it_fno"}
#: Waits at most 5 s for a Retry-After (production: 900 s), so the outage below outlasts it.
IMPATIENT = RetryPolicy(max_attempts=2, backoff_base=0.05, backoff_max=0.1, max_retry_after=5.0)
OUTAGE = {
    "faults": {"seed": 13, "retry_after_seconds": 60, "throttle": {"rate": 1.0, "methods": ["POST", "PATCH"]}}
}


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulators]:
    logging.getLogger("prospect_to_cash").setLevel(logging.WARNING)
    with connected_demo_world(tmp_path / "state", monkeypatch, CONN) as started:
        unscoped = tmp_path / "unscoped.yaml"  # this story's rows are owned by no pair's unit
        unscoped.write_text(
            yaml.safe_dump({"company_pairs": [{"legal_entity": "usmf", "business_unit": None}]})
        )
        monkeypatch.setenv("P2C_ENVIRONMENT_FILE", str(unscoped))
        yield started


def sync(template: str, root: ObjectStoragePath, run_id: str, window: Window) -> Any:
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"], retry=IMPATIENT),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"], retry=IMPATIENT),
    )
    return run_template(
        template, legal_entity="usmf", run_id=run_id, staging_root=root, hooks=hooks, window=window
    )


def summary_counts(root: ObjectStoragePath, template: str, run_id: str) -> dict[str, int]:
    import json

    with (root / template / run_id / "usmf" / "summary.json").open("r") as handle:
        return json.load(handle)["counts"]


def test_day_2_lands_what_day_1_rejected_and_failed_without_a_source_change(
    running: RunningEmulators, tmp_path: Path
) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
    day1 = Window.of(start, start + timedelta(hours=1), since_watermark=True)
    day2 = Window.of(start + timedelta(hours=1), start + timedelta(hours=2), since_watermark=True)

    account_id, contact_id = str(uuid.uuid4()), str(uuid.uuid4())
    with DataverseHook(dataverse_conn_id=CONN["dataverse"]) as sales:
        outcomes = list(
            sales.write(
                [
                    WriteOperation(
                        WriteKind.CREATE,
                        "accounts",
                        {"accountid": account_id},
                        {"accountnumber": "DAILY-1", "name": "Daily Runs Ltd"},
                        ref="account",
                    ),
                    WriteOperation(
                        WriteKind.CREATE,
                        "contacts",
                        {"contactid": contact_id},
                        {
                            "msdynce_contactnumber": "DAILY-C1",
                            "lastname": "Pending",
                            "msdynce_iscompanyanaccount": True,
                            "parentcustomerid_account@odata.bind": f"/accounts({account_id})",
                        },
                        ref="contact",
                    ),
                ],
                bulk=False,
            )
        )
    assert [(o.ref, o.ok) for o in outcomes] == [("account", True), ("contact", True)]

    # day 1: F&O throttles every write for longer than the hook waits; the contact's
    # customer is not in F&O
    failing = pytest.raises(ServiceFailures, match=r"accounts \[usmf\]: 1 write\(s\) failed at the service")
    with running.admin("fno").overrides(OUTAGE), failing:
        sync("accounts", root, "day-1", day1)
    accounts_day1 = summary_counts(root, "accounts", "day-1")
    assert {k: accounts_day1[k] for k in ("read", "created", "failed", "failed_retryable", "pending")} == {
        "read": 1,
        "created": 0,
        "failed": 1,
        "failed_retryable": 1,
        "pending": 1,
    }
    # read by both of the template's tasks: persons rejects it, customers skips it (its route)
    with pytest.raises(RowsRefused, match=r"1 rejected of 2 read \(max_rejected 20%\)"):
        sync("contacts", root, "day-1", day1)
    contacts_ledger = PendingLedger(root, "contacts", "usmf", "contact_persons")
    (entry,) = contacts_ledger.read()
    assert (entry["source_key"], entry["status"], entry["record_id"]) == ("DAILY-C1", "rejected", contact_id)
    assert entry["reason"].startswith("dangling lookup AssociatedPartyNumber")
    assert entry["parked"] is False  # the target's fault: retried every run (sync/pending.py)
    (failed,) = PendingLedger(root, "accounts", "usmf", "customers").read()
    assert (failed["source_key"], failed["status"], failed["record_id"]) == (
        "DAILY-1",
        "failed",
        "usmf|DAILY-1",
    )
    assert failed["parked"] is False

    # day 2: healthy, and nothing changed in Sales since day 1
    accounts = sync("accounts", root, "day-2", day2)
    assert {k: accounts["counts"][k] for k in ("read", "created", "failed", "pending")} == {
        "read": 1,
        "created": 1,
        "failed": 0,
        "pending": 0,
    }
    contacts = sync("contacts", root, "day-2", day2)
    assert {k: contacts["counts"][k] for k in ("read", "created", "rejected", "pending")} == {
        "read": 1,  # the pending contact, by the persons task only (nothing changed in the window)
        "created": 1,
        "rejected": 0,
        "pending": 0,
    }
    fno = Oracle(running.endpoints, "fno")
    try:
        customers = fno.rows(
            "CustomersV3?cross-company=true&$select=dataAreaId,CustomerAccount,PartyNumber"
            "&$filter=CustomerAccount eq 'DAILY-1'"
        )
        persons = fno.rows(
            "CDSContactPersons?cross-company=true&$select=dataAreaId,ContactPersonPartyNumber,AssociatedPartyNumber"
            "&$filter=ContactPersonPartyNumber eq 'DAILY-C1'"
        )
    finally:
        fno.close()
    assert [(r["dataAreaId"], r["CustomerAccount"]) for r in customers] == [("usmf", "DAILY-1")]
    party = customers[0]["PartyNumber"]  # the contact person hangs off the customer's party
    assert party
    assert [(r["dataAreaId"], r["AssociatedPartyNumber"]) for r in persons] == [("usmf", party)]
    assert contacts_ledger.read() == []
