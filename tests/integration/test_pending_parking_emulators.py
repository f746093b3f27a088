"""Parked rows, over HTTPS against the emulators: two usmf accounts get a payment terms code
the value map does not know (a reject for the row's own content). The daily run that reads
them parks them; the runs after it do not read them again while nothing changed (the
Dataverse counter shows no row read), yet count them (``parked``), list them in
``deadletter/parked.parquet`` and in ``python -m prospect_to_cash.sync pending``. One lands
once its Sales row is fixed (the delta brings it), the other once the environment's value
map learns its code (the compiled mapping's fingerprint changed, so the ledger re-reads it).
Target-caused rejects and failures keep being retried every run: test_daily_runs_emulators.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.sync import __main__ as cli
from prospect_to_cash.sync.contracts import SyncHooks, Window
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.runner import run_template
from tests.support.emulators import Oracle, connected_demo_world

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_parking_it_dataverse", "fno": "p2c_parking_it_fno"}
MAPPINGS = Path(__file__).resolve().parents[2] / "include" / "mappings"
#: Sales "Net 45": taken out of the copied environment's payment_terms value map, put back later.
UNKNOWN_TERMS = 3
KNOWN = 'entries: {1: Net30, 2: "2%10Net30", 3: Net45, 4: Net60}'
FORGOTTEN = 'entries: {1: Net30, 2: "2%10Net30", 4: Net60}'
COUNTED = ("read", "created", "updated", "unchanged", "rejected", "failed", "pending", "parked")


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulators]:
    with connected_demo_world(tmp_path / "state", monkeypatch, CONN) as started:
        yield started


def sync(root: ObjectStoragePath, mappings: Path, run_id: str, window: Window) -> dict[str, int]:
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
    )
    result = run_template(
        "accounts",
        legal_entity="usmf",
        run_id=run_id,
        staging_root=root,
        hooks=hooks,
        window=window,
        mappings_dir=mappings,
        max_rejected="100%",
    )
    return {k: result["counts"][k] for k in COUNTED}


def daily() -> Window:
    start = datetime.now(timezone.utc).replace(microsecond=0)
    return Window.of(start, start + timedelta(hours=1), since_watermark=True)


def parked_letters(root: ObjectStoragePath, run_id: str) -> list[tuple[str, str, str]]:
    path = root / "accounts" / run_id / "usmf" / "customers" / "deadletter" / "parked.parquet"
    with path.open("rb") as handle:
        frame = pq.read_table(handle).to_pandas()
    return sorted(zip(frame["source_key"], frame["record_id"], frame["stage"], strict=True))


def test_a_parked_row_is_not_read_again_until_its_row_or_the_environment_changes(
    running: RunningEmulators, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    mappings = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, mappings)
    environment = mappings / "environment.yaml"
    assert KNOWN in environment.read_text()
    environment.write_text(environment.read_text().replace(KNOWN, FORGOTTEN))
    ledger = PendingLedger(root, "accounts", "usmf", "customers")
    sync(root, mappings, "initial", Window(full_refresh=True))
    rejected = {entry["source_key"] for entry in ledger.read()}
    ledger.dismiss()  # the demo world's own rejects: this test follows its two rows alone

    sales = Oracle(running.endpoints, "dataverse")
    admin = running.admin("dataverse")
    try:
        (unit,) = sales.rows("businessunits?$select=businessunitid&$filter=name eq 'Contoso US'")
        first, second = [
            row
            for row in sales.rows(
                "accounts?$select=accountid,accountnumber,paymenttermscode&$orderby=accountnumber"
                f"&$filter=statecode eq 0 and _owningbusinessunit_value eq {unit['businessunitid']}"
            )
            if row["accountnumber"]
            and row["accountnumber"] not in rejected
            and row["paymenttermscode"] != UNKNOWN_TERMS
        ][:2]

        def terms(account: dict[str, Any], code: int) -> None:
            response = sales.client.patch(
                f"{sales.root}accounts({account['accountid']})", json={"paymenttermscode": code}
            )
            assert response.status_code == 204, response.text

        terms(first, UNKNOWN_TERMS)
        terms(second, UNKNOWN_TERMS)
        assert sync(root, mappings, "day-1", daily()) == {
            "read": 2,
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "rejected": 2,
            "failed": 0,
            "pending": 2,
            "parked": 0,  # rejected by this run: in its rejected dead letter
        }
        entries = {e["source_key"]: e for e in ledger.read()}
        assert set(entries) == {first["accountnumber"], second["accountnumber"]}
        miss = f"value '{UNKNOWN_TERMS}' of PaymentTerms has no entry in value map 'payment_terms'"
        assert {(e["status"], e["parked"], e["attempts"], e["reason"]) for e in entries.values()} == {
            ("rejected", True, 1, miss)
        }

        # nothing changed: the parked rows are not read, still counted and listed
        admin.reset_counters()
        assert sync(root, mappings, "day-2", daily()) == {
            "read": 0,
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "rejected": 0,
            "failed": 0,
            "pending": 2,
            "parked": 2,
        }
        # one row: the pair's business unit, by name; an empty delta; no pending re-read
        # (before parking: 3, the two rows read again by key)
        assert admin.counters()["rows_read"] == 1
        assert parked_letters(root, "day-2") == sorted(
            (a["accountnumber"], a["accountid"], "parked") for a in (first, second)
        )
        assert [e["attempts"] for e in ledger.read()] == [1, 1]  # not tried again
        capsys.readouterr()  # the runs' log lines so far
        assert cli.main(["pending", "accounts", "--staging-root", str(root)]) == 0
        listed = json.loads(capsys.readouterr().out)["usmf/customers"]
        assert sorted((e["source_key"], e["parked"]) for e in listed) == sorted(
            (a["accountnumber"], True) for a in (first, second)
        )

        # the first row is fixed in Sales: the delta brings it, it lands
        terms(first, 4)
        assert sync(root, mappings, "day-3", daily()) == {
            "read": 1,
            "created": 0,
            "updated": 1,
            "unchanged": 0,
            "rejected": 0,
            "failed": 0,
            "pending": 1,
            "parked": 1,
        }
        assert [e["source_key"] for e in ledger.read()] == [second["accountnumber"]]
    finally:
        sales.close()

    # the environment's value map learns the code: the compiled mapping changed, the
    # parked row is read again and lands unchanged in Sales
    environment.write_text(environment.read_text().replace(FORGOTTEN, KNOWN))
    assert sync(root, mappings, "day-4", daily()) == {
        "read": 1,
        "created": 0,
        "updated": 1,
        "unchanged": 0,
        "rejected": 0,
        "failed": 0,
        "pending": 0,
        "parked": 0,
    }
    assert ledger.read() == []
    fno = Oracle(running.endpoints, "fno")
    try:
        landed = fno.rows(
            "CustomersV3?cross-company=true&$select=CustomerAccount,PaymentTerms&$orderby=CustomerAccount"
            f"&$filter=dataAreaId eq 'usmf' and (CustomerAccount eq '{first['accountnumber']}'"
            f" or CustomerAccount eq '{second['accountnumber']}')"
        )
    finally:
        fno.close()
    assert [(r["CustomerAccount"], r["PaymentTerms"]) for r in landed] == [
        (first["accountnumber"], "Net60"),
        (second["accountnumber"], "Net45"),
    ]
