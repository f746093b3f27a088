"""The shared delta (sync/delta_chain.py) over HTTPS against the emulators: the accounts
template for its two company pairs, usmf (Contoso US) and demf (Contoso Europe).

Day 1: an account of each business unit is renamed and another of each deleted in Sales.
The delta is read once for both pairs (one segment; the emulator served the accounts
delta once), each pair lands its own rename, and each delete is reported once, by the
pair whose customer it was. Day 2: F&O is unavailable while demf's run reads its target,
so demf fails after consuming the day's segment; usmf's run of the same day lands. demf's
retry of the day consumes the same segment (nothing read again, nothing lost) and lands
its rename; a change made after the failure comes with day 3, whose segment both pairs
consume, after which the segments they both consumed are gone.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.hooks._http import RetryPolicy
from prospect_to_cash.hooks.errors import DynamicsAPIError
from prospect_to_cash.sync.changes import DeltaTokens
from prospect_to_cash.sync.contracts import SyncHooks, Window
from prospect_to_cash.sync.delta_chain import DeltaChain
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.runner import run_template
from tests.support.emulators import Oracle, connected_demo_world

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_shared_delta_it_dataverse", "fno": "p2c_shared_delta_it_fno"}
UNITS = {"usmf": "Contoso US", "demf": "Contoso Europe"}  # include/mappings/environment.yaml
IMPATIENT = RetryPolicy(max_attempts=2, backoff_base=0.05, backoff_max=0.1, max_retry_after=1.0)
#: F&O answers every read 429 for a minute: a snapshot of the target cannot be taken.
FNO_READS_DOWN = {
    "faults": {"seed": 14, "retry_after_seconds": 60, "throttle": {"rate": 1.0, "methods": ["GET"]}}
}


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulators]:
    with connected_demo_world(tmp_path / "state", monkeypatch, CONN) as started:
        yield started


def sync(
    root: ObjectStoragePath, company: str, run_id: str, window: Window, **options: Any
) -> dict[str, int]:
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"], retry=IMPATIENT),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"], retry=IMPATIENT),
    )
    result = run_template(
        "accounts",
        legal_entity=company,
        run_id=run_id,
        staging_root=root,
        hooks=hooks,
        window=window,
        max_rejected="100%",
        **options,
    )
    return {k: result["counts"][k] for k in ("read", "updated", "source_deleted")}


def daily() -> Window:
    start = datetime.now(timezone.utc).replace(microsecond=0)
    return Window.of(start, start + timedelta(hours=1), since_watermark=True)


def delta_record(root: ObjectStoragePath, company: str, run_id: str) -> dict[str, Any]:
    with (root / "accounts" / run_id / company / "customers" / "source" / "delta.json").open("r") as handle:
        return json.load(handle)


def deletes_of(root: ObjectStoragePath, company: str, run_id: str) -> list[tuple[str, str]]:
    path = root / "accounts" / run_id / company / "customers" / "plan" / "deletes.parquet"
    with path.open("rb") as handle:
        frame = pq.read_table(handle).to_pandas()
    return sorted(zip(frame["record_id"], frame["action"], strict=True))


def chain(root: ObjectStoragePath, run_id: str) -> DeltaChain:
    name = delta_record(root, "usmf", run_id)["chain"]
    return DeltaChain(root, "accounts", "customers", name)


def customer_names(running: RunningEmulators, company: str, numbers: list[str]) -> dict[str, str]:
    fno = Oracle(running.endpoints, "fno")
    wanted = " or ".join(f"CustomerAccount eq '{n}'" for n in numbers)
    try:
        rows = fno.rows(
            "CustomersV3?cross-company=true&$select=CustomerAccount,OrganizationName"
            f"&$filter=dataAreaId eq '{company}' and ({wanted})"
        )
    finally:
        fno.close()
    return {r["CustomerAccount"]: r["OrganizationName"] for r in rows}


def test_two_pairs_share_one_delta_report_each_delete_once_and_a_retried_pair_loses_nothing(
    running: RunningEmulators, tmp_path: Path
) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    for company in UNITS:
        sync(root, company, "initial", Window(full_refresh=True))
    rejected = {
        company: {e["source_key"] for e in PendingLedger(root, "accounts", company, "customers").read()}
        for company in UNITS
    }
    for company in UNITS:
        PendingLedger(root, "accounts", company, "customers").dismiss()  # this test follows its rows alone

    sales = Oracle(running.endpoints, "dataverse")
    try:
        landed: dict[str, list[dict[str, Any]]] = {}
        for company, unit_name in UNITS.items():
            (unit,) = sales.rows(f"businessunits?$select=businessunitid&$filter=name eq '{unit_name}'")
            landed[company] = [
                row
                for row in sales.rows(
                    "accounts?$select=accountid,accountnumber,name&$orderby=accountnumber"
                    f"&$filter=statecode eq 0 and _owningbusinessunit_value eq {unit['businessunitid']}"
                )
                if row["accountnumber"] and row["accountnumber"] not in rejected[company]
            ][:4]

        def rename(account: dict[str, Any], name: str) -> None:
            response = sales.client.patch(
                f"{sales.root}accounts({account['accountid']})", json={"name": name}
            )
            assert response.status_code == 204, response.text

        def delete(account: dict[str, Any]) -> None:
            assert sales.client.delete(f"{sales.root}accounts({account['accountid']})").status_code == 204

        # day 1: one rename and one delete per business unit, both pairs of one run
        for company, accounts in landed.items():
            rename(accounts[0], f"Day 1 {company}")
            delete(accounts[1])
        admin = running.admin("dataverse")
        admin.reset_counters()
        day1 = {company: sync(root, company, "day-1", daily()) for company in UNITS}
        assert day1 == {
            "usmf": {"read": 1, "updated": 1, "source_deleted": 1},
            "demf": {"read": 1, "updated": 1, "source_deleted": 1},
        }
        for company, accounts in landed.items():
            assert deletes_of(root, company, "day-1") == [(accounts[1]["accountid"], "reported")]
            assert customer_names(running, company, [accounts[0]["accountnumber"]]) == {
                accounts[0]["accountnumber"]: f"Day 1 {company}"
            }
        records = {company: delta_record(root, company, "day-1") for company in UNITS}
        assert records["usmf"]["segment"] == records["demf"]["segment"] == 1  # 0: the initial token
        assert {(r["returned"], r["deleted"], r["fallback"]) for r in records.values()} == {(2, 1, None)}
        (read_by,) = [chain(root, "day-1").info(1)["reader"]]
        assert read_by == "usmf"  # the first pair to run read it; demf consumed it as it was
        # the accounts delta crossed the wire once (read per pair, it was 4 rows more)
        counters = admin.counters()
        assert counters["requests"]["GET accounts"] == 3  # one delta + each pair's key-sharer read
        assert counters["requests"]["GET transactioncurrencies"] == 2  # each pair's one currency
        # the delta's 2 changed rows and 2 deleted entries; each pair's unit and currency
        assert counters["rows_read"] == 4 + 2 + 2

        # day 2: usmf lands; demf fails while F&O is down, after consuming the day's segment
        for company, accounts in landed.items():
            rename(accounts[2], f"Day 2 {company}")
        assert sync(root, "usmf", "day-2", daily()) == {"read": 1, "updated": 1, "source_deleted": 0}
        down = pytest.raises(DynamicsAPIError, match=r"HTTP 429.*CustomersV3")  # the snapshot's read
        with running.admin("fno").overrides(FNO_READS_DOWN), down:
            sync(root, "demf", "day-2", daily(), check_metadata=False)  # checked by the runs before
        assert delta_record(root, "demf", "day-2")["segment"] == 2
        assert DeltaTokens(root, "accounts", "demf", "customers").read()["segment"] == 1  # type: ignore[index,typeddict-item]
        assert chain(root, "day-2").segments() == [1, 2]  # usmf consumed day 1's, demf has not
        rename(landed["demf"][3], "After the failure")  # not the day's delta: the next one's

        # demf's retry of day 2 reads no new delta and lands what day 2 brought
        assert sync(root, "demf", "day-2", daily()) == {"read": 1, "updated": 1, "source_deleted": 0}
        assert chain(root, "day-2").segments() == [2]  # none new; day 1's gone once both consumed it
        demf = landed["demf"]
        assert customer_names(running, "demf", [demf[2]["accountnumber"], demf[3]["accountnumber"]]) == {
            demf[2]["accountnumber"]: "Day 2 demf",
            demf[3]["accountnumber"]: demf[3]["name"],  # renamed after the day's delta was read
        }
    finally:
        sales.close()

    # day 3: the change made after demf's failure comes with the next delta
    day3 = {company: sync(root, company, "day-3", daily()) for company in UNITS}
    assert day3 == {
        "usmf": {"read": 0, "updated": 0, "source_deleted": 0},
        "demf": {"read": 1, "updated": 1, "source_deleted": 0},
    }
    assert customer_names(running, "demf", [demf[3]["accountnumber"]]) == {
        demf[3]["accountnumber"]: "After the failure"
    }
    assert chain(root, "day-3").segments() == [3]  # both pairs consumed everything before
