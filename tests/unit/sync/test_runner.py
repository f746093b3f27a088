"""Extract → snapshot → transform → load through in-memory services that enforce the real
services' write rules: a template run end to end (idempotence, dead letters, dry run, logs),
the streaming load and staging. Crash and resume: test_runner_resume.py; company pairs and
business-unit scoping: test_company_pairs.py."""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from prospect_to_cash.hooks.operations import WriteKind
from prospect_to_cash.sync import deadletter, runner
from prospect_to_cash.sync.errors import DataError, SyncError
from prospect_to_cash.sync.runner import SyncHooks
from tests.unit.sync.builders import (
    WINDOW,
    account,
    accounts_services,
    customers_staging,
    load_accounts,
    product_services,
    run_accounts,
    run_in_memory,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath
    from typing_extensions import Unpack

    from prospect_to_cash.sync.contracts import ExtractResult, SnapshotResult, SyncArgs
    from tests.unit.sync.memory_service import MemoryService

pytestmark = pytest.mark.usefixtures("unscoped_environment")  # one pair, no business-unit scoping


def assert_xcom_safe(value: Any) -> None:
    """Only paths, counts and small plain values cross XCom."""
    json.dumps(value)
    if isinstance(value, dict):
        for item in value.values():
            assert_xcom_safe(item)
    elif isinstance(value, list):
        for item in value:
            assert_xcom_safe(item)
    else:
        assert value is None or isinstance(value, (str, int, float, bool))


class TestAccountsEndToEnd:
    def test_first_run_creates_and_rejects_second_run_writes_nothing(
        self, staging_root: ObjectStoragePath
    ) -> None:
        parent = account("ACC-1", "Parent", paymenttermscode=1)
        rows = [
            parent,
            account("ACC-2", "Child", _parentaccountid_value=parent["accountid"]),
            account(None, "No number"),
            account("ACC-3", "Twin A"),
            account("ACC-3", "Twin B"),
        ]
        sales, fno = accounts_services(rows)
        first = run_accounts(sales, fno, staging_root, "run-1")
        assert_xcom_safe(first)
        assert first["counts"] == {
            "read": 5,
            "skipped": 0,
            "rounded": 0,
            "created": 2,
            "updated": 0,
            "unchanged": 0,
            "rejected": 3,
            "failed": 0,
            "second_pass_updated": 1,
            "second_pass_failed": 0,
            "failed_retryable": 0,
            "pending": 1,  # the twins' key; the row without a number cannot be read by key
            "parked": 0,  # the twins were read and rejected in this run: not parked-and-unread
            "source_deleted": 0,
            "deactivated": 0,
            "deleted": 0,
            "deletes_held": 0,
        }
        customers = {r["CustomerAccount"]: r for r in fno.tables["CustomersV3"].rows}
        assert customers["ACC-2"]["InvoiceAccount"] == "ACC-1"
        assert customers["ACC-1"]["PaymentTerms"] == "Net30"
        creates = [op for op in fno.writes if op.kind == WriteKind.CREATE]
        assert all("InvoiceAccount" not in op.body for op in creates)  # second pass only
        assert creates[0].key == {"dataAreaId": "usmf", "CustomerAccount": "ACC-1"}

        dead = deadletter.read(customers_staging(staging_root))
        assert len(dead) == 3
        assert set(dead["stage"]) == {"transform"}
        assert any("rejected, not merged" in r for r in dead["reason"])

        writes = len(fno.writes)
        second = run_accounts(sales, fno, staging_root, "run-2")
        assert len(fno.writes) == writes
        assert second["counts"]["unchanged"] == 2
        assert second["counts"]["created"] == second["counts"]["updated"] == 0

    def test_window_filter_and_full_refresh(self, staging_root: ObjectStoragePath) -> None:
        sales, fno = accounts_services([account("ACC-1", "A")])
        run_accounts(sales, fno, staging_root, "run-1")
        # the source rows and the reference tables (parent accounts among them) are read side
        # by side, so find the source read by its window rather than by its position
        windowed = [f for s, f in sales.reads if s == "accounts" and f and "modifiedon" in f]
        # the window, then the other rows of its keys outside it (issue 17's key rules)
        assert windowed == [
            "(statecode eq 0)"
            " and (modifiedon ge 2024-01-01T00:00:00Z and modifiedon lt 2024-01-02T00:00:00Z)",
            "(statecode eq 0) and (modifiedon lt 2024-01-01T00:00:00Z or modifiedon ge 2024-01-02T00:00:00Z)"
            " and ((accountnumber eq 'ACC-1'))",
        ]
        sales.reads.clear()
        run_accounts(sales, fno, staging_root, "run-2", full_refresh=True)
        filters = [f for s, f in sales.reads if s == "accounts"]
        assert "statecode eq 0" in filters
        assert not any(f and "modifiedon" in f for f in filters)

    def test_rows_outside_the_window_are_not_read(self, staging_root: ObjectStoragePath) -> None:
        sales, fno = accounts_services(
            [account("ACC-1", "A"), account("ACC-OLD", "B", modifiedon="2023-05-01T00:00:00Z")]
        )
        result = run_accounts(sales, fno, staging_root, "run-1")
        assert result["counts"]["read"] == 1

    def test_update_sends_only_the_changed_field(self, staging_root: ObjectStoragePath) -> None:
        row = account("ACC-1", "Before")
        sales, fno = accounts_services([row])
        run_accounts(sales, fno, staging_root, "run-1")
        row["name"] = "After"
        fno.writes.clear()
        result = run_accounts(sales, fno, staging_root, "run-2")
        assert result["counts"]["updated"] == 1
        (update,) = fno.writes
        assert update.kind == WriteKind.UPDATE
        assert dict(update.body) == {"OrganizationName": "After"}

    def test_dry_run_plans_without_writing(self, staging_root: ObjectStoragePath) -> None:
        sales, fno = accounts_services([account("ACC-1", "A"), account(None, "B")])
        result = run_accounts(sales, fno, staging_root, "dry", dry_run=True)
        assert fno.writes == []
        assert result["dry_run"] is True
        counts = result["tasks"]["customers"]["counts"]
        assert (counts["to_create"], counts["rejected"]) == (1, 1)
        samples = result["samples"]["customers"]
        assert samples["create"][0]["CustomerAccount"] == "ACC-1"
        assert "source key accountnumber is empty" in samples["rejected"][0]["__reason"]
        assert_xcom_safe(result)

    def test_refused_write_is_dead_lettered_and_retried_next_run(
        self, staging_root: ObjectStoragePath
    ) -> None:
        # OrganizationNumberOfEmployees is an Edm.Int32: the service refuses ACC-1
        too_many = 3_000_000_000
        sales, fno = accounts_services(
            [account("ACC-1", "A", numberofemployees=too_many), account("ACC-2", "B")]
        )
        first = run_accounts(sales, fno, staging_root, "run-1")
        assert (first["counts"]["created"], first["counts"]["failed"]) == (1, 1)
        dead = deadletter.read(customers_staging(staging_root))
        failed = dead[dead["stage"] == "load"].to_dict("records")
        assert failed[0]["ref"] == "ACC-1"
        assert failed[0]["status"] == 400
        assert failed[0]["reason"] == (
            "An error has occurred. — Cannot convert the literal '3000000000' "
            "to the expected type 'Edm.Int32'."
        )
        assert json.loads(failed[0]["row"])["body"]["OrganizationNumberOfEmployees"] == too_many

        sales.tables["accounts"].rows[0]["numberofemployees"] = 250  # corrected in Sales
        second = run_accounts(sales, fno, staging_root, "run-2")
        assert (second["counts"]["created"], second["counts"]["unchanged"]) == (1, 1)


@pytest.mark.parametrize("debug", [False, True], ids=["default", "P2C_LOG_ROW_VALUES"])
def test_row_values_reach_the_log_only_when_the_debug_setting_asks(
    staging_root: ObjectStoragePath,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    debug: bool,
) -> None:
    if debug:
        monkeypatch.setenv("P2C_LOG_ROW_VALUES", "1")
    else:
        monkeypatch.delenv("P2C_LOG_ROW_VALUES", raising=False)
    rows = [
        account("ACC-1", "A", numberofemployees=3_000_000_000),  # refused by the service
        account("ACC-2", "Ms Private", address1_country="Atlantis"),  # rejected: no such country
        account("ACC-3", "C"),
    ]
    sales, fno = accounts_services(rows)
    with caplog.at_level(logging.INFO, logger="prospect_to_cash"):
        result = run_accounts(sales, fno, staging_root, "run-1")
    assert (result["counts"]["created"], result["counts"]["rejected"], result["counts"]["failed"]) == (
        1,
        1,
        1,
    )
    text = caplog.text
    values = ["Atlantis", "3000000000"]
    if debug:
        assert [value in text for value in values] == [True, True]
    else:
        assert [value in text for value in values] == [False, False]
        assert "accounts/customers [usmf]: 1 row(s) rejected; keys and reasons in " in text
        assert "accounts/customers [usmf]: 1 write(s) refused; keys and reasons in " in text


class TestProductsToDataverse:
    def run(
        self, sales: MemoryService, fno: MemoryService, root: ObjectStoragePath, run_id: str, **kw: Any
    ) -> dict:
        return run_in_memory("products", sales, fno, root, run_id, **kw)

    def test_products_and_price_list_items_with_deterministic_ids(
        self, staging_root: ObjectStoragePath
    ) -> None:
        sales, fno = product_services()
        result = self.run(sales, fno, staging_root, "run-1")
        assert result["tasks"]["products"]["counts"]["created"] == 3
        assert result["tasks"]["price_list_items"]["counts"]["created"] == 3
        products = {r["productnumber"]: r for r in sales.tables["products"].rows}
        assert {number: row["productid"] for number, row in products.items()} == {
            "P-1": "ad6740ed-74fc-5ce7-a1e1-e4f7c8945703",
            "P-2": "e2bd7ce3-8ecc-5d50-bef9-8b86adcf904c",
            "P-3": "8e68fcc9-ef41-5122-b82e-bf2b643c0f3f",
        }
        assert products["P-1"]["msdynce_ismaintainedexternally"] is True
        items = sales.tables["productpricelevels"].rows
        assert {i["_productid_value"] for i in items} == {r["productid"] for r in products.values()}
        assert {i["amount"] for i in items} == {11.0, 12.0, 13.0}

        writes = len(sales.writes)
        again = self.run(sales, fno, staging_root, "run-2")
        assert len(sales.writes) == writes
        assert again["counts"]["unchanged"] == 6

    def test_repeated_dataverse_create_hits_the_same_row(self, staging_root: ObjectStoragePath) -> None:
        sales, fno = product_services(lose_answer_of_unit=1)
        with pytest.raises(ConnectionError):
            self.run(sales, fno, staging_root, "run-1")
        result = runner.load(
            "products",
            "products",
            legal_entity="usmf",
            run_id="run-1",
            staging_root=staging_root,
            hooks=SyncHooks(sales, fno),
        )
        assert result["counts"]["created"] == 3
        assert len(sales.tables["products"].rows) == 3
        retried = [op for op in sales.writes if op.kind == WriteKind.UPDATE]
        assert len(retried) == 3  # 412 on the repeated create → same body as an update

    def test_missing_price_list_fails_the_task_clearly(self, staging_root: ObjectStoragePath) -> None:
        sales, fno = product_services()
        sales.tables["pricelevels"].rows.clear()
        with pytest.raises(DataError, match="no pricelevels with _transactioncurrencyid_value"):
            self.run(sales, fno, staging_root, "run-1")
        assert len(sales.tables["products"].rows) == 3  # products themselves were loaded first


class TestStreamingLoad:
    """The load hands the hook one lazy stream per phase and journals outcomes as they come."""

    def test_one_write_stream_for_all_rows_and_a_journal_while_it_runs(
        self, staging_root: ObjectStoragePath
    ) -> None:
        sales, fno = accounts_services(
            [account(f"ACC-{i}", f"Customer {i}") for i in range(1, 8)], unit_size=2
        )
        journal_files_seen: list[int] = []
        staging = customers_staging(staging_root)
        real_write = fno.write
        calls = []

        def observed_write(operations: Any, **kwargs: Any) -> Any:
            calls.append(kwargs)
            for outcome in real_write(operations, **kwargs):
                journal_files_seen.append(len(staging.list("plan", "journal-")))
                yield outcome

        fno.write = observed_write  # type: ignore[method-assign]
        result = run_accounts(sales, fno, staging_root, "run-1", journal_every=2)
        assert result["counts"]["created"] == 7
        assert len(calls) == 1, "one stream, not one hook call per slice of the plan"
        assert fno.units == 4  # the hook (not the engine) cuts the stream into units
        # by the time the 5th outcome is handed over, the first four are already on disk
        assert journal_files_seen[4] == 2
        assert len(staging.list("plan", "journal-")) == 4  # 2+2+2+1

    def test_refs_shared_by_two_operations_stop_the_load(self, staging_root: ObjectStoragePath) -> None:
        sales, fno = accounts_services([account("ACC-1", "One")])
        run_accounts(sales, fno, staging_root, "run-1", dry_run=True)
        staging = customers_staging(staging_root)
        creates = staging.read_frame("plan", "creates")
        staging.write_frame("plan", "creates", pd.concat([creates, creates], ignore_index=True))
        with pytest.raises(SyncError, match="share the ref 'ACC-1'"):
            load_accounts(sales, fno, staging_root, "run-1")


def extract_and_snapshot_accounts(
    sales: MemoryService, fno: MemoryService, root: ObjectStoragePath, **given: Unpack[SyncArgs]
) -> tuple[ExtractResult, SnapshotResult]:
    """The customers task's extract and snapshot steps alone, for usmf in ``run-1``."""
    return runner.extract_and_snapshot(
        "accounts",
        "customers",
        legal_entity="usmf",
        run_id="run-1",
        staging_root=root,
        hooks=SyncHooks(sales, fno),
        **given,
    )


def test_extract_and_snapshot_read_side_by_side(staging_root: ObjectStoragePath) -> None:
    """On a full refresh each service's first read waits until the other service has been
    read too: done one after the other, the first read would wait in vain."""
    sales, fno = accounts_services([account("ACC-1", "One")])
    started = {"dataverse": threading.Event(), "fno": threading.Event()}
    overlapped: list[bool] = []
    for service, other in ((sales, "fno"), (fno, "dataverse")):
        real = service.iter_pages

        def iter_pages(
            *args: Any, _real: Any = real, _me: str = service.system, _other: str = other, **kw: Any
        ) -> Any:
            if not started[_me].is_set():
                started[_me].set()
                overlapped.append(started[_other].wait(timeout=10))
            return _real(*args, **kw)

        service.iter_pages = iter_pages  # type: ignore[method-assign]
    extracted, snapped = extract_and_snapshot_accounts(sales, fno, staging_root, full_refresh=True)
    assert overlapped == [True, True], "extract and snapshot did not read at the same time"
    assert (extracted["read"], snapped["rows"]) == (1, 0)


def test_a_windowed_snapshot_reads_the_keys_its_extract_staged(staging_root: ObjectStoragePath) -> None:
    """A windowed run extracts first, then reads only the target rows of the extracted keys."""
    sales, fno = accounts_services([account("ACC-1", "One"), account("ACC-2", "Two")])
    fno.tables["CustomersV3"].rows.append(
        {"dataAreaId": "usmf", "CustomerAccount": "OTHER", "OrganizationName": "X"}
    )
    extracted, snapped = extract_and_snapshot_accounts(sales, fno, staging_root, **WINDOW)
    assert (extracted["read"], snapped["rows"]) == (2, 0)
    customers = [f for s, f in fno.reads if s == "CustomersV3"]
    # one chunk for the snapshot (OTHER is never read); the invoice-account lookup reads
    # nothing: neither account has a parent
    assert customers == ["(CustomerAccount eq 'ACC-1' or CustomerAccount eq 'ACC-2')"]


class TestAtomicStaging:
    """Staging files appear whole or not at all."""

    def test_a_write_that_fails_midway_keeps_the_previous_file(self, staging_root: ObjectStoragePath) -> None:
        staging = customers_staging(staging_root)
        staging.write_json("plan", "summary", {"counts": {"created": 1}})

        class Unserializable:
            def __str__(self) -> str:
                raise RuntimeError("killed while writing")

        with pytest.raises(RuntimeError, match="killed while writing"):
            staging.write_json("plan", "summary", {"counts": {"created": 2}, "x": Unserializable()})
        assert staging.read_json("plan", "summary") == {"counts": {"created": 1}}

        def stream_then_die() -> None:
            with staging.page_writer("source", "rows", ["a"]) as writer:
                writer.write(pd.DataFrame({"a": ["1", "2"]}))
                raise RuntimeError("killed while writing")

        with pytest.raises(RuntimeError, match="killed while writing"):
            stream_then_die()
        assert not staging.exists("source", "rows")
        leftovers = [p.name for area in ("plan", "source") for p in staging.list(area, ".")]
        assert leftovers == []
