"""A run killed mid-load and retried (same run) or run again (a fresh run): the journal,
lost answers of creates resolved by reading the key back, and refusals that stand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from emulators.odata.errors import ODataError
from prospect_to_cash.hooks.operations import WriteKind, WriteOperation
from prospect_to_cash.sync import deadletter
from prospect_to_cash.sync.errors import ServiceFailures
from tests.unit.sync import memory_service
from tests.unit.sync.builders import (
    account,
    accounts_services,
    customers_staging,
    load_accounts,
    run_accounts,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from tests.unit.sync.memory_service import MemoryService

pytestmark = pytest.mark.usefixtures("unscoped_environment")  # one pair, no business-unit scoping


class TestCrashAndResume:
    def rows(self) -> list[dict[str, Any]]:
        return [account(f"ACC-{i}", f"Customer {i}") for i in range(1, 6)]

    def crashed_run(self, root: ObjectStoragePath, **faults: int) -> tuple[MemoryService, MemoryService]:
        """Run ``run-1`` over five accounts, F&O writing in units of two and the run
        journaling every two outcomes, until the F&O fault ``faults`` names kills it."""
        sales, fno = accounts_services(self.rows(), unit_size=2, **faults)
        with pytest.raises(ConnectionError):
            run_accounts(sales, fno, root, "run-1", journal_every=2)
        return sales, fno

    def test_killed_between_units_then_retried_finishes_without_duplicates(
        self, staging_root: ObjectStoragePath
    ) -> None:
        sales, fno = self.crashed_run(staging_root, fail_after_units=2)
        assert len(fno.tables["CustomersV3"].rows) == 4
        fno.fail_after_units = None
        sent_before = len(fno.writes)
        # Airflow retries the load task of the same run: the journal skips what is done
        result = load_accounts(sales, fno, staging_root, "run-1", journal_every=2)
        assert len(fno.writes) - sent_before == 1
        assert result["counts"]["created"] == 5
        keys = [r["CustomerAccount"] for r in fno.tables["CustomersV3"].rows]
        assert sorted(keys) == [f"ACC-{i}" for i in range(1, 6)]

    def test_a_torn_journal_does_not_block_the_retry(self, staging_root: ObjectStoragePath) -> None:
        sales, fno = self.crashed_run(staging_root, fail_after_units=2)
        staging = customers_staging(staging_root)
        journals = staging.list("plan", "journal-")
        assert [p.name for p in journals] == ["journal-000000.parquet", "journal-000001.parquet"]
        whole = journals[1].read_bytes()
        journals[1].write_bytes(whole[: len(whole) // 2])  # cut in half, as a crash mid-write would
        fno.fail_after_units = None
        result = load_accounts(sales, fno, staging_root, "run-1", journal_every=2)
        # ACC-3 and ACC-4 lost their journal: sent again, found existing by a read-back
        assert (result["counts"]["created"], result["counts"]["failed"]) == (5, 0)
        assert sorted(r["CustomerAccount"] for r in fno.tables["CustomersV3"].rows) == [
            f"ACC-{i}" for i in range(1, 6)
        ]
        names = [p.name for p in staging.list("plan", "journal-")]
        assert names == ["journal-000000.parquet", "journal-000002.parquet", "journal-000003.parquet"]
        assert [p.name for p in staging.list("plan", ".")] == []  # no temporary file left

    def test_fresh_run_after_a_crash_creates_only_what_is_missing(
        self, staging_root: ObjectStoragePath
    ) -> None:
        sales, fno = self.crashed_run(staging_root, fail_after_units=1)
        fno.fail_after_units = None
        result = run_accounts(sales, fno, staging_root, "run-2", journal_every=2)
        assert (result["counts"]["created"], result["counts"]["unchanged"]) == (3, 2)
        assert len(fno.tables["CustomersV3"].rows) == 5

    def test_fno_create_whose_answer_was_lost_is_resolved_by_reading_the_row(
        self, staging_root: ObjectStoragePath
    ) -> None:
        sales, fno = self.crashed_run(staging_root, lose_answer_of_unit=1)
        result = load_accounts(sales, fno, staging_root, "run-1", journal_every=2)
        assert result["counts"]["created"] == 5
        assert result["counts"]["failed"] == 0
        assert len(fno.tables["CustomersV3"].rows) == 5
        refused = [op for op in fno.writes if op.kind == WriteKind.CREATE]
        assert len(refused) == 7  # 2 creates repeated, answered "already exists", then read back
        assert any(f and "CustomerAccount eq 'ACC-1'" in f for s, f in fno.reads if s == "CustomersV3")

    def test_fno_duplicate_answered_in_another_language_is_resolved_by_reading_the_key(
        self, staging_root: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A German environment: same 500 and empty code, no English word in the answer."""
        german = ODataError(
            500,
            "",
            "Ein Fehler ist aufgetreten.",
            inner={"message": "Der Datensatz ist bereits vorhanden.", "type": "", "stacktrace": ""},
        )
        monkeypatch.setattr(memory_service._FNO_CHECK, "already_exists", lambda entity_set, row: german)
        sales, fno = self.crashed_run(staging_root, lose_answer_of_unit=1)
        fno.reads.clear()  # the snapshot's key reads are not read-backs
        result = load_accounts(sales, fno, staging_root, "run-1", journal_every=2)
        assert (result["counts"]["created"], result["counts"]["failed"]) == (5, 0)
        assert sorted(r["CustomerAccount"] for r in fno.tables["CustomersV3"].rows) == [
            f"ACC-{i}" for i in range(1, 6)
        ]
        read_back = sorted(f for s, f in fno.reads if s == "CustomersV3" and f and "CustomerAccount eq" in f)
        assert [f.split("CustomerAccount eq ")[1] for f in read_back] == ["'ACC-1'", "'ACC-2'"]

    def test_fno_500_on_a_create_whose_key_is_free_stays_failed(
        self, staging_root: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A 500 may be "already exists": the key is read back, finds nothing, the refusal stands."""
        sales, fno = accounts_services(self.rows())
        applied = fno._apply

        def refuse_acc_3(operation: WriteOperation) -> Any:
            if operation.kind == WriteKind.CREATE and operation.key["CustomerAccount"] == "ACC-3":
                raise ODataError(500, "", "An error has occurred.", inner={"message": "Deadlock", "type": ""})
            return applied(operation)

        monkeypatch.setattr(fno, "_apply", refuse_acc_3)
        # a 5xx may heal: the run writes everything else, then fails so Airflow retries it
        with pytest.raises(ServiceFailures, match=r"accounts \[usmf\]: 1 write\(s\) failed at the service"):
            run_accounts(sales, fno, staging_root, "run-1")
        assert [f for s, f in fno.reads if s == "CustomersV3" and f and "'ACC-3'" in f] != []
        dead = deadletter.read(customers_staging(staging_root))
        failed = dead[dead["stage"] == "load"].to_dict("records")
        assert [(f["ref"], f["status"], f["reason"]) for f in failed] == [
            ("ACC-3", 500, "An error has occurred. — Deadlock")
        ]
        assert sorted(r["CustomerAccount"] for r in fno.tables["CustomersV3"].rows) == [
            "ACC-1",
            "ACC-2",
            "ACC-4",
            "ACC-5",
        ]
