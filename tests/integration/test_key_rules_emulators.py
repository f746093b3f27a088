"""Rules that hold across runs, over HTTPS against the demo world (issue 17).

The demo seeds, per business unit, two Sales accounts sharing one account number,
entered on different days. Day by day, each run sees one of them in its window; the
engine reads the other by key and rejects both, as a full refresh does, so no customer
is created and none is overwritten. A number that becomes ambiguous after its customer
was synced stops updating the customer and stays pending with the reason.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import ObjectStoragePath

from prospect_to_cash.sync.contracts import Window
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.runner import run_company_pairs
from prospect_to_cash.sync.staging import TaskStaging
from tests.support.emulators import Oracle, connected_demo_world

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration]

CONN = {"dataverse": "p2c_keys_it_dataverse", "fno": "p2c_keys_it_fno"}
SEED_DAYS = [datetime(2026, 11, day, tzinfo=timezone.utc) for day in (1, 2, 3)]
SHARED = {"usmf": "ACC-01022-FNWAMW", "demf": "ACC-01023-QCCTKD"}


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulators]:
    logging.getLogger("prospect_to_cash").setLevel(logging.WARNING)
    with connected_demo_world(tmp_path / "state", monkeypatch, CONN) as started:
        yield started


def sync(root: ObjectStoragePath, run_id: str, window: Window) -> dict[str, Any]:
    result = run_company_pairs(
        "accounts",
        run_id=run_id,
        staging_root=root,
        window=window,
        dataverse_conn_id=CONN["dataverse"],
        fno_conn_id=CONN["fno"],
        max_rejected="100%",
    )
    return dict(result)


def sales_accounts(running: RunningEmulators, number: str) -> list[dict[str, Any]]:
    oracle = Oracle(running.endpoints, "dataverse")
    try:
        return oracle.rows(
            "accounts?$select=accountid,accountnumber,name,creditlimit,modifiedon"
            f"&$filter=accountnumber eq '{number}'&$orderby=modifiedon"
        )
    finally:
        oracle.close()


def customers(running: RunningEmulators, numbers: list[str]) -> list[tuple[str, str, str, float]]:
    oracle = Oracle(running.endpoints, "fno")
    wanted = " or ".join(f"CustomerAccount eq '{n}'" for n in numbers)
    try:
        rows = oracle.rows(
            "CustomersV3?cross-company=true&$select=dataAreaId,CustomerAccount,OrganizationName,CreditLimit"
            f"&$filter={wanted}"
        )
    finally:
        oracle.close()
    return sorted(
        (r["dataAreaId"], r["CustomerAccount"], r["OrganizationName"], r["CreditLimit"]) for r in rows
    )


def duplicate_entries(root: ObjectStoragePath, company: str) -> dict[str, tuple[str, str]]:
    """source key -> (reason, record id) of the ledger's duplicate-key entries (the ledger
    holds one entry per source key: re-reading the key brings every row of it back)."""
    return {
        entry["source_key"]: (entry["reason"], entry["record_id"])
        for entry in PendingLedger(root, "accounts", company, "customers").read()
        if "duplicate source key" in entry["reason"]
    }


def test_a_number_shared_by_accounts_of_different_days_is_rejected_day_by_day(
    running: RunningEmulators, tmp_path: Path
) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    pairs = {company: sales_accounts(running, number) for company, number in SHARED.items()}
    for company, rows in pairs.items():  # the reproduction: one account per day
        assert len(rows) == 2, company
        assert rows[0]["modifiedon"][:10] != rows[1]["modifiedon"][:10], rows

    for day in SEED_DAYS:
        sync(root, f"day-{day:%m-%d}", Window.of(day, day + timedelta(days=1)))

    assert customers(running, list(SHARED.values())) == []
    for company, rows in pairs.items():
        number = SHARED[company]
        reason = f"duplicate source key accountnumber={number!r} (2 rows): rejected, not merged"
        ((key, (why, record)),) = duplicate_entries(root, company).items()
        assert (key, why) == (number, reason)
        assert record in {row["accountid"] for row in rows}
        # each row's own day dead-lettered both rows: its window's and the other day's
        for row in rows:
            day = f"day-{row['modifiedon'][5:10]}"
            rejected = TaskStaging(root, "accounts", day, company, "customers").read_frame(
                "deadletter", "rejected"
            )
            assert sorted(rejected.loc[rejected["source_key"] == number, "reason"]) == [reason, reason]


def test_a_number_that_becomes_shared_after_its_customer_was_synced_stops_updating_it(
    running: RunningEmulators, tmp_path: Path
) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    number = SHARED["usmf"]
    first, second = sales_accounts(running, number)
    sales = Oracle(running.endpoints, "dataverse")
    try:
        renamed = sales.client.patch(
            f"{sales.root}accounts({second['accountid']})", json={"accountnumber": "ACC-09999-UNIQUE"}
        )
        assert renamed.status_code == 204, renamed.text
        sync(root, "seed", Window.of(SEED_DAYS[0], SEED_DAYS[-1] + timedelta(days=1)))
        synced = ("usmf", number, first["name"], first["creditlimit"])
        assert customers(running, [number]) == [synced]

        # the second account takes the number back (modifiedon: now) and changes its name
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
        shared = sales.client.patch(
            f"{sales.root}accounts({second['accountid']})",
            json={"accountnumber": number, "name": "Overwriting Name Ltd"},
        )
        assert shared.status_code == 204, shared.text
    finally:
        sales.close()
    result = sync(root, "after", Window.of(start, start + timedelta(hours=1)))

    counts = result["companies"]["usmf"]["counts"]
    # the window's row and the other row of its number; the ledger's unknown-country account
    # (a value-map miss, parked by the seed run: sync/pending.py) is not read again
    assert {k: counts[k] for k in ("read", "rejected", "created", "updated", "unchanged", "parked")} == {
        "read": 2,
        "rejected": 2,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "parked": 1,
    }
    assert customers(running, [number]) == [synced]  # never overwritten
    reason = f"duplicate source key accountnumber={number!r} (2 rows): rejected, not merged"
    ((key, (why, record)),) = duplicate_entries(root, "usmf").items()
    assert (key, why) == (number, reason)
    assert record in {first["accountid"], second["accountid"]}
