"""Sales sources read by Dataverse change tracking, and source deletes, over HTTPS against
the emulators.

The accounts template runs its initial load (a full refresh, which takes the first delta
token), then one account of the usmf business unit and one of demf's change in Sales; the
scheduled run of usmf reads exactly the one changed usmf row (the delta brings both: the
other business unit's is dropped before staging) and lands it in F&O. An expired token
falls back to a whole read by itself, and the run after it reads the delta again.

An account deleted in Sales comes back in the delta as a ``$deletedEntity``: reported by
default (the F&O customer untouched), put on hold (``OnHoldStatus`` All) under the
``deactivate`` policy, and held when more are deleted than ``max_source_deletes`` allows;
an account made inactive in Sales (out of the mapping's filter) is deactivated the same way.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.sync.changes import DeltaTokens
from prospect_to_cash.sync.contracts import SyncHooks, Window
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.runner import run_template
from tests.support.emulators import Oracle, connected_demo_world

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_delta_it_dataverse", "fno": "p2c_delta_it_fno"}
MAPPINGS = Path(__file__).resolve().parents[2] / "include" / "mappings"
UNITS = {"usmf": "Contoso US", "demf": "Contoso Europe"}  # include/mappings/environment.yaml


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulators]:
    with connected_demo_world(tmp_path / "state", monkeypatch, CONN) as started:
        yield started


def sync(root: ObjectStoragePath, run_id: str, window: Window, **options: Any) -> Any:
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
        **options,
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


def customer(running: RunningEmulators, number: str) -> dict[str, Any]:
    fno = Oracle(running.endpoints, "fno")
    try:
        (row,) = fno.rows(
            "CustomersV3?cross-company=true&$select=dataAreaId,CustomerAccount,OnHoldStatus"
            f"&$filter=CustomerAccount eq '{number}' and dataAreaId eq 'usmf'"
        )
    finally:
        fno.close()
    return row


def deletes_of(root: ObjectStoragePath, run_id: str) -> list[tuple[str, str, str]]:
    path = root / "accounts" / run_id / "usmf" / "customers" / "plan" / "deletes.parquet"
    with path.open("rb") as handle:
        frame = pq.read_table(handle).to_pandas()
    return sorted(zip(frame["record_id"], frame["source_key"], frame["action"], strict=True))


def test_a_sales_delete_is_reported_then_deactivated_in_fno_within_the_cap(
    running: RunningEmulators, tmp_path: Path
) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    mappings = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, mappings)
    ledger = PendingLedger(root, "accounts", "usmf", "customers")
    sync(root, "initial", Window(full_refresh=True), mappings_dir=mappings)
    ledger.dismiss()
    sales = Oracle(running.endpoints, "dataverse")
    (unit,) = sales.rows(f"businessunits?$select=businessunitid&$filter=name eq '{UNITS['usmf']}'")
    landed = [
        row
        for row in sales.rows(
            "accounts?$select=accountid,accountnumber&$orderby=accountnumber"
            f"&$filter=statecode eq 0 and _owningbusinessunit_value eq {unit['businessunitid']}"
        )
        if row["accountnumber"]
    ]
    first, second, *rest, inactive = landed[:6]

    def delete(account: dict[str, Any]) -> None:
        assert sales.client.delete(f"{sales.root}accounts({account['accountid']})").status_code == 204

    def daily(run_id: str, **options: Any) -> dict[str, int]:
        start = datetime.now(timezone.utc).replace(microsecond=0)
        window = Window.of(start, start + timedelta(hours=1), since_watermark=True)
        counts = sync(root, run_id, window, mappings_dir=mappings, **options)["counts"]
        return {k: counts[k] for k in ("read", "source_deleted", "deactivated", "deleted", "deletes_held")}

    try:
        # the default policy: reported, the customer untouched
        delete(first)
        assert daily("day-1") == {
            "read": 0,
            "source_deleted": 1,
            "deactivated": 0,
            "deleted": 0,
            "deletes_held": 0,
        }
        assert deletes_of(root, "day-1") == [(first["accountid"], first["accountnumber"], "reported")]
        assert customer(running, first["accountnumber"])["OnHoldStatus"] == "No"

        # policy deactivate: the customer goes on hold for all transactions
        text = (mappings / "accounts.yaml").read_text().replace("policy: report", "policy: deactivate")
        (mappings / "accounts.yaml").write_text(text)
        delete(second)
        assert daily("day-2") == {
            "read": 0,
            "source_deleted": 1,
            "deactivated": 1,
            "deleted": 0,
            "deletes_held": 0,
        }
        assert deletes_of(root, "day-2") == [(second["accountid"], second["accountnumber"], "deactivated")]
        assert customer(running, second["accountnumber"])["OnHoldStatus"] == "All"
        assert customer(running, first["accountnumber"])["OnHoldStatus"] == "No"  # reported only, earlier

        # more deletes than the cap allows: none applied, all held
        for account in rest:
            delete(account)
        assert daily("day-3", max_source_deletes="2") == {
            "read": 0,
            "source_deleted": 3,
            "deactivated": 0,
            "deleted": 0,
            "deletes_held": 3,
        }
        assert [action for _, _, action in deletes_of(root, "day-3")] == ["held"] * 3
        assert {customer(running, a["accountnumber"])["OnHoldStatus"] for a in rest} == {"No"}

        # an account made inactive in Sales leaves the mapping's filter (statecode eq 0): the
        # delta brings it changed, and it counts as gone like a delete
        response = sales.client.patch(
            f"{sales.root}accounts({inactive['accountid']})", json={"statecode": 1, "statuscode": 2}
        )
        assert response.status_code == 204, response.text
        assert daily("day-4") == {
            "read": 0,
            "source_deleted": 1,
            "deactivated": 1,
            "deleted": 0,
            "deletes_held": 0,
        }
        gone = (inactive["accountid"], inactive["accountnumber"], "deactivated")
        assert deletes_of(root, "day-4") == [gone]
        assert customer(running, inactive["accountnumber"])["OnHoldStatus"] == "All"
    finally:
        sales.close()
