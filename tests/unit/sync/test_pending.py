"""The pending ledger: a row rejected (its currency missing) and a row failed (an outage)
on day 1 land on day 2 without their source changing; the ledger is listed and dismissed
from the CLI; it is replaced atomically."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from prospect_to_cash.sync import __main__ as cli
from prospect_to_cash.sync import deadletter
from prospect_to_cash.sync.contracts import (
    DEFAULT_MAX_FAILED,
    DEFAULT_MAX_REJECTED,
    DEFAULT_MAX_SOURCE_DELETES,
)
from prospect_to_cash.sync.errors import RowsRefused, ServiceFailures
from prospect_to_cash.sync.pending import PendingLedger, ledgers, self_rejected
from tests.unit.sync import builders
from tests.unit.sync.builders import USD, customers_staging

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from tests.unit.sync.memory_service import MemoryService

EUR = str(uuid.uuid4())  # a currency Sales has and F&O (on day 1) does not
DAY1 = {"data_interval_start": "2024-01-01T00:00:00Z", "data_interval_end": "2024-01-02T00:00:00Z"}
DAY2 = {"data_interval_start": "2024-01-02T00:00:00Z", "data_interval_end": "2024-01-03T00:00:00Z"}
pytestmark = pytest.mark.usefixtures("unscoped_environment")


def account(number: str, currency: str) -> dict[str, Any]:
    return builders.account(number, f"Account {number}", _transactioncurrencyid_value=currency)


def services() -> tuple[MemoryService, MemoryService]:
    """ACC-2 in a currency without its Sales row yet; F&O out of service for ACC-3."""
    rows = [account("ACC-1", USD), account("ACC-2", EUR), account("ACC-3", USD)]
    return builders.accounts_services(rows, outage={"ACC-3": 503})


def run(sales: MemoryService, fno: MemoryService, root: ObjectStoragePath, run_id: str, **kw: Any) -> dict:
    kw.setdefault("max_rejected", "100%")
    kw.setdefault("max_failed", "100%")
    return builders.run_in_memory("accounts", sales, fno, root, run_id, **kw)


def day_1(sales: MemoryService, fno: MemoryService, root: ObjectStoragePath) -> dict[str, int]:
    """Day 1 fails at its end for the outage (so Airflow retries it); its counts."""
    with pytest.raises(ServiceFailures, match=r"accounts \[usmf\]: 1 write\(s\) failed at the service"):
        run(sales, fno, root, "day-1", **DAY1)
    with (root / "accounts" / "day-1" / "usmf" / "summary.json").open("r") as handle:
        return json.load(handle)["counts"]


def customers(fno: MemoryService) -> set[str]:
    return {row["CustomerAccount"] for row in fno.tables["CustomersV3"].rows}


def test_rows_rejected_or_failed_on_day_1_land_on_day_2_without_a_source_change(
    staging_root: ObjectStoragePath,
) -> None:
    sales, fno = services()
    counts = day_1(sales, fno, staging_root)
    assert (counts["read"], counts["created"], counts["rejected"], counts["failed"]) == (3, 1, 1, 1)
    assert (counts["failed_retryable"], counts["pending"]) == (1, 2)
    assert customers(fno) == {"ACC-1"}
    ledger = PendingLedger(staging_root, "accounts", "usmf", "customers")
    entries = {e["source_key"]: e for e in ledger.read()}
    assert sorted(entries) == ["ACC-2", "ACC-3"]
    assert (entries["ACC-2"]["status"], entries["ACC-3"]["status"]) == ("rejected", "failed")
    assert entries["ACC-2"]["reason"] == (
        f"dangling lookup SalesCurrencyCode: no transactioncurrencies with transactioncurrencyid='{EUR}'"
    )
    assert entries["ACC-3"]["reason"] == "Service Unavailable"
    assert [e["attempts"] for e in entries.values()] == [1, 1]
    assert json.loads(entries["ACC-2"]["key_values"]) == ["ACC-2"]
    sales_ids = {row["accountnumber"]: row["accountid"] for row in sales.tables["accounts"].rows}
    assert entries["ACC-2"]["record_id"] == sales_ids["ACC-2"]  # rejected: the Sales record
    assert entries["ACC-3"]["record_id"] == "usmf|ACC-3"  # failed: the F&O record written to

    # day 2: the currency arrives, the service is healthy; no account changed on day 2
    currencies = sales.tables["transactioncurrencies"].rows
    currencies.append({"transactioncurrencyid": EUR, "isocurrencycode": "EUR"})
    fno.outage.clear()
    sales.reads.clear()
    day2 = run(sales, fno, staging_root, "day-2", **DAY2)
    counts = day2["counts"]
    assert (counts["read"], counts["created"], counts["rejected"], counts["failed"]) == (2, 2, 0, 0)
    assert counts["pending"] == 0
    assert customers(fno) == {"ACC-1", "ACC-2", "ACC-3"}
    assert ledger.read() == []
    assert not ledger.path.exists()
    account_reads = [query for entity_set, query in sales.reads if entity_set == "accounts" and query]
    window_reads = [q for q in account_reads if "modifiedon ge 2024-01-02T00:00:00Z" in q]
    pending_reads = [q for q in account_reads if "accountnumber eq" in q]
    assert len(window_reads) == 1
    # outside the window only, so a pending row changed within it is not read twice
    assert pending_reads == [
        "(statecode eq 0)"
        " and (modifiedon lt 2024-01-02T00:00:00Z or modifiedon ge 2024-01-03T00:00:00Z)"
        " and ((accountnumber eq 'ACC-2') or (accountnumber eq 'ACC-3'))"
    ]


def test_a_row_still_refused_counts_another_attempt_and_keeps_its_first_seen(
    staging_root: ObjectStoragePath,
) -> None:
    sales, fno = services()
    day_1(sales, fno, staging_root)
    ledger = PendingLedger(staging_root, "accounts", "usmf", "customers")
    first = {e["source_key"]: e for e in ledger.read()}
    fno.outage.clear()
    day2 = run(sales, fno, staging_root, "day-2", **DAY2)
    assert (day2["counts"]["read"], day2["counts"]["created"], day2["counts"]["pending"]) == (2, 1, 1)
    (entry,) = ledger.read()
    assert entry["source_key"] == "ACC-2"
    assert entry["attempts"] == 2
    assert entry["first_seen"] == first["ACC-2"]["first_seen"]
    assert entry["last_run_id"] == "day-2"


def test_a_dry_run_leaves_the_ledger_alone(staging_root: ObjectStoragePath) -> None:
    sales, fno = services()
    run(sales, fno, staging_root, "dry", dry_run=True, **DAY1)
    assert ledgers(staging_root, "accounts") == []


def test_cli_lists_and_dismisses_entries(
    staging_root: ObjectStoragePath, capsys: pytest.CaptureFixture[str]
) -> None:
    sales, fno = services()
    day_1(sales, fno, staging_root)
    root = str(staging_root)
    assert cli.main(["pending", "accounts", "--staging-root", root]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert list(listing) == ["usmf/customers"]
    assert [e["source_key"] for e in listing["usmf/customers"]] == ["ACC-2", "ACC-3"]

    argv = ["dismiss", "accounts", "--company", "usmf", "--task", "customers", "--staging-root", root]
    assert cli.main([*argv, "--key", "acc-2", "--key", "ACC-9"]) == 1  # ACC-9 is not pending
    assert json.loads(capsys.readouterr().out) == {"dismissed": ["ACC-2"], "not_found": ["acc-9"]}
    ledger = PendingLedger(staging_root, "accounts", "usmf", "customers")
    assert [e["source_key"] for e in ledger.read()] == ["ACC-3"]
    assert cli.main([*argv, "--all"]) == 0
    assert json.loads(capsys.readouterr().out) == {"dismissed": ["ACC-3"], "not_found": []}
    assert ledger.read() == []


def test_the_ledger_is_replaced_whole_and_leaves_no_temporary_file(staging_root: ObjectStoragePath) -> None:
    ledger = PendingLedger(staging_root, "accounts", "usmf", "customers")
    entry = {
        "source_key": "A",
        "key_values": '["A"]',
        "record_id": None,
        "target_key": "A",
        "status": "rejected",
        "reason": "r",
        "first_seen": "2024-01-01T00:00:00Z",
        "last_seen": "2024-01-01T00:00:00Z",
        "attempts": 1,
        "last_run_id": "r1",
    }
    ledger.write([entry])
    ledger.write([{**entry, "source_key": "B", "key_values": '["B"]'}])
    assert [e["source_key"] for e in ledger.read()] == ["B"]
    assert [p.name for p in ledger.path.parent.iterdir()] == ["customers.parquet"]


class TestThreshold:
    """Above the threshold the run fails after writing every row it could; at or below it
    the run succeeds with a warning."""

    def test_rejects_above_a_count_fail_the_run_after_writing_the_rest(
        self, staging_root: ObjectStoragePath
    ) -> None:
        sales, fno = services()
        fno.outage.clear()
        with pytest.raises(RowsRefused, match=r"1 rejected of 3 read \(max_rejected 0\)$"):
            run(sales, fno, staging_root, "r1", max_rejected="0", **DAY1)
        assert customers(fno) == {"ACC-1", "ACC-3"}

    def test_a_percentage_of_the_rows_read(self, staging_root: ObjectStoragePath) -> None:
        sales, fno = services()
        fno.outage.clear()
        with pytest.raises(RowsRefused, match=r"1 rejected of 3 read \(max_rejected 33%\)"):
            run(sales, fno, staging_root, "r1", max_rejected="33%", **DAY1)
        result = run(sales, fno, staging_root, "r2", max_rejected="34%", **DAY1)
        assert result["counts"]["rejected"] == 1

    def test_data_refusals_count_against_max_failed(self, staging_root: ObjectStoragePath) -> None:
        sales, fno = services()
        fno.outage["ACC-3"] = 400  # the target refuses the row's data
        with pytest.raises(RowsRefused, match=r"1 failed of 3 read \(max_failed 0\)$"):
            run(sales, fno, staging_root, "r1", max_failed="0", **DAY1)
        result = run(sales, fno, staging_root, "r2", max_failed="1", **DAY1)
        assert (result["counts"]["failed"], result["counts"]["failed_retryable"]) == (1, 0)

    def test_service_failures_fail_the_run_whatever_the_threshold(
        self, staging_root: ObjectStoragePath
    ) -> None:
        sales, fno = services()
        fno.outage["ACC-3"] = 429
        with pytest.raises(ServiceFailures):
            run(sales, fno, staging_root, "r1", **DAY1)

    def test_defaults_and_bad_limits(self) -> None:
        from prospect_to_cash.sync.contracts import SyncOptions

        options = SyncOptions(run_id="r")
        assert (options.max_rejected, options.max_failed) == ("20%", "5%")
        assert SyncOptions(run_id="r", max_rejected=" 2.5% ").max_rejected == "2.5%"
        for bad in ("-1", "101%", "ten", "1.5"):
            with pytest.raises(ValueError, match="row limit"):
                SyncOptions(run_id="r", max_failed=bad)


def test_dead_letters_name_the_record_even_without_a_business_number(staging_root: ObjectStoragePath) -> None:
    sales, fno = services()
    fno.outage.clear()
    nameless = {**account("", USD), "accountnumber": None}
    sales.tables["accounts"].rows.append(nameless)
    run(sales, fno, staging_root, "r1", **DAY1)
    dead = deadletter.read(customers_staging(staging_root, "r1"))
    by_record = dict(zip(dead["record_id"], dead["source_key"], strict=True))
    sales_ids = {row["accountnumber"]: row["accountid"] for row in sales.tables["accounts"].rows}
    assert by_record == {nameless["accountid"]: "", sales_ids["ACC-2"]: "ACC-2"}
    # the nameless row cannot be read again by key: it is not pending, ACC-2 is
    ledger = PendingLedger(staging_root, "accounts", "usmf", "customers")
    assert [e["source_key"] for e in ledger.read()] == ["ACC-2"]


def test_cli_run_help_names_the_threshold_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """``run --help`` renders (argparse formats help with %: a bare "20%" made it raise)."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", "--help"])
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert f"(default {DEFAULT_MAX_REJECTED})" in shown
    assert f"(default {DEFAULT_MAX_FAILED})" in shown
    assert f"(default {DEFAULT_MAX_SOURCE_DELETES})" in shown


@pytest.mark.parametrize(
    ("status", "reason", "parked"),
    [
        ("rejected", "duplicate source key accountnumber='ACC-1' (2 rows): rejected, not merged", True),
        ("rejected", "value '3' of PaymentTerms has no entry in value map 'payment_terms'", True),
        ("rejected", "required field OrganizationName is empty; source key accountnumber is empty", True),
        ("rejected", "target key CustomerAccount is empty", True),
        ("rejected", "OrganizationName is 120 characters, at most 100 allowed", True),
        # the target's (or another row's) fault: retried every run
        ("rejected", "dangling lookup SalesCurrencyCode: no transactioncurrencies with x=1", False),
        (
            "rejected",
            "value '3' of PaymentTerms has no entry in value map 'payment_terms'; held back: order",
            False,
        ),
        ("rejected", "target has 2 rows with key 'ACC-1'", False),
        ("rejected", "CustomersV3 row 'ACC-1' not found (this task only updates)", False),
        ("failed", "OrganizationName is 120 characters, at most 100 allowed", False),
        ("rejected", None, False),
    ],
)
def test_only_rows_refused_for_their_own_content_are_parked(
    status: str, reason: str | None, parked: bool
) -> None:
    assert self_rejected(status, reason) is parked
