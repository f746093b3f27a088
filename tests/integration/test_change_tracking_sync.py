"""Sales sources read by Dataverse change tracking, over HTTPS against the emulators.

The accounts template runs its initial load (a full refresh, which takes the first delta
token), then one account of the usmf business unit and one of demf's change in Sales; the
scheduled run of usmf reads exactly the one changed usmf row (the delta brings both: the
other business unit's is dropped before staging) and lands it in F&O. An expired token
falls back to a whole read by itself, and the run after it reads the delta again.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import ObjectStoragePath

from devstack.airflow_stack import connection_env
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.sync.changes import DeltaTokens
from prospect_to_cash.sync.contracts import SyncHooks, Window
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.runner import run_template
from tests.conftest import TEST_CONFIG
from tests.support.emulators import Oracle, start_emulators

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_delta_it_dataverse", "fno": "p2c_delta_it_fno"}
UNITS = {"usmf": "Contoso US", "demf": "Contoso Europe"}  # include/mappings/environment.yaml


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulators]:
    started = start_emulators(tmp_path / "state", "--seed", "demo", config=TEST_CONFIG)
    try:
        for name, value in connection_env(started.endpoints, conn_ids=CONN).items():
            monkeypatch.setenv(name, value)
        yield started
    finally:
        started.stop()


def sync(root: ObjectStoragePath, run_id: str, window: Window) -> Any:
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
    )
    return run_template(
        "accounts",
        legal_entity="usmf",
        run_id=run_id,
        staging_root=root,
        hooks=hooks,
        window=window,
        max_rejected="100%",
    )


def delta_record(root: ObjectStoragePath, run_id: str) -> dict[str, Any]:
    with (root / "accounts" / run_id / "usmf" / "customers" / "source" / "delta.json").open("r") as handle:
        return json.load(handle)


def landed_account(sales: Oracle, company: str, ledger: PendingLedger) -> dict[str, Any]:
    """An active account of ``company``'s business unit that the initial load wrote."""
    (unit,) = sales.rows(f"businessunits?$select=businessunitid&$filter=name eq '{UNITS[company]}'")
    rows = sales.rows(
        "accounts?$select=accountid,accountnumber,name&$orderby=accountnumber"
        f"&$filter=statecode eq 0 and _owningbusinessunit_value eq {unit['businessunitid']}"
    )
    pending = {entry["source_key"] for entry in ledger.read()}
    return next(row for row in rows if row["accountnumber"] and row["accountnumber"] not in pending)


def rename(sales: Oracle, account: dict[str, Any], name: str) -> None:
    response = sales.client.patch(f"{sales.root}accounts({account['accountid']})", json={"name": name})
    assert response.status_code == 204, response.text


def test_a_daily_run_reads_only_the_changed_rows_of_its_company(
    running: RunningEmulators, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    tokens = DeltaTokens(root, "accounts", "usmf", "customers")
    ledger = PendingLedger(root, "accounts", "usmf", "customers")

    initial = sync(root, "initial", Window(full_refresh=True))
    full_read = initial["counts"]["read"]
    first = delta_record(root, "initial")
    assert (first["initial"], first["fallback"], first["deleted"]) == (True, None, 0)
    assert first["staged"] == full_read
    assert first["returned"] > full_read  # every business unit's accounts, inactive ones too
    stored = tokens.read()
    assert stored is not None
    assert (stored["token"], stored["run_id"]) == (first["token"], "initial")

    ledger.dismiss()  # this test counts the delta's rows alone (pending re-reads: tests of the ledger)
    sales = Oracle(running.endpoints, "dataverse")
    try:
        ours, theirs = landed_account(sales, "usmf", ledger), landed_account(sales, "demf", ledger)
        rename(sales, ours, "Renamed by the delta test")
        rename(sales, theirs, "Renamed in the other company")
    finally:
        sales.close()

    start = datetime.now(timezone.utc).replace(microsecond=0)
    daily = sync(root, "daily", Window.of(start, start + timedelta(hours=1), since_watermark=True))
    counts = daily["counts"]
    assert {k: counts[k] for k in ("read", "updated", "created", "unchanged", "rejected", "failed")} == {
        "read": 1,
        "updated": 1,
        "created": 0,
        "unchanged": 0,
        "rejected": 0,
        "failed": 0,
    }
    record = delta_record(root, "daily")
    assert {k: record[k] for k in ("initial", "fallback", "returned", "staged", "deleted")} == {
        "initial": False,
        "fallback": None,
        "returned": 2,  # both renamed accounts: a delta is not per business unit
        "staged": 1,
        "deleted": 0,
    }
    assert tokens.read()["token"] == record["token"] != first["token"]  # type: ignore[index]

    fno = Oracle(running.endpoints, "fno")
    try:
        customers = fno.rows(
            "CustomersV3?cross-company=true&$select=dataAreaId,CustomerAccount,OrganizationName"
            f"&$filter=CustomerAccount eq '{ours['accountnumber']}'"
        )
    finally:
        fno.close()
    renamed = [(r["dataAreaId"], r["OrganizationName"]) for r in customers]
    assert renamed == [("usmf", "Renamed by the delta test")]

    # the token expires (the organization's ExpireChangeTrackingInDays): a whole read, logged once
    running.admin("dataverse").patch_config({"change_tracking_expiry_seconds": 1})
    time.sleep(2.1)  # the token's stamp has second precision
    caplog.set_level(logging.WARNING, logger="prospect_to_cash.sync.changes")
    expired = sync(root, "expired", Window.of(start, start + timedelta(hours=1), since_watermark=True))
    fallbacks = [r.getMessage() for r in caplog.records if r.name == "prospect_to_cash.sync.changes"]
    assert len(fallbacks) == 1
    assert "the delta token expired: read accounts whole" in fallbacks[0]
    assert expired["counts"]["read"] == full_read
    landed = sum(initial["counts"][k] for k in ("created", "updated", "unchanged"))
    assert (expired["counts"]["unchanged"], expired["counts"]["updated"]) == (landed, 0)
    assert delta_record(root, "expired")["fallback"] == "the delta token expired"
