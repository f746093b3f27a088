"""The sync engine end to end over HTTPS: real hooks, the emulators with the demo world.

Every template in run order for both company pairs (after the `$metadata` check), a rerun
that writes nothing, and crashes in the middle of a load (between batches, and after the
service applied a batch whose answer was lost) followed by a rerun without duplicates.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk import ObjectStoragePath

from devstack.airflow_stack import connection_env
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.sync import runner
from prospect_to_cash.sync.mapping import TEMPLATES
from prospect_to_cash.sync.runner import SyncHooks, run_template
from tests.conftest import TEST_CONFIG
from tests.support.emulators import start_emulators
from tests.support.world import ODataReader, business_units, value_map

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMPANIES = ("usmf", "demf")
CONN = {"dataverse": "p2c_sync_it_dataverse", "fno": "p2c_sync_it_fno"}


def _connect(running: RunningEmulators) -> dict[str, str]:
    """Airflow connections as production defines them (AIRFLOW_CONN_* JSON)."""
    return connection_env(running.endpoints, conn_ids=CONN)


class _Instance:
    def __init__(self, state: Path) -> None:
        self.running = start_emulators(state, "--seed", "demo", config=TEST_CONFIG)
        self.variables = _connect(self.running)
        os.environ.update(self.variables)

    def hooks(self) -> SyncHooks:
        return SyncHooks(
            dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
            fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
        )

    def stop(self) -> None:
        for name in self.variables:
            os.environ.pop(name, None)
        self.running.stop()


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[_Instance]:
    """A fresh emulator process with the demo world (nothing shared with other tests)."""
    logging.getLogger("prospect_to_cash").setLevel(logging.WARNING)
    started = _Instance(tmp_path / "state")
    try:
        yield started
    finally:
        started.stop()


def _options(root: ObjectStoragePath) -> dict[str, Any]:
    return {"staging_root": root}


def _count(hook: Any, entity_set: str, column: str, **kwargs: Any) -> Counter[str]:
    values: Counter[str] = Counter()
    for page in hook.iter_pages(entity_set, select=[column], **kwargs):
        values.update(str(v) for v in page[column].tolist())
    return values


def _product_numbers(reader: ODataReader) -> Counter[str]:
    """Sales products by number, read with plain HTTPS (not through the hooks)."""
    return Counter(row["productnumber"] for row in reader.rows("dataverse", "products", ["productnumber"]))


def _customer_accounts(reader: ODataReader, company: str) -> Counter[str]:
    """F&O customers of one company by account, read with plain HTTPS."""
    rows = reader.rows("fno", "CustomersV3", ["CustomerAccount"], filter=f"dataAreaId eq '{company}'")
    return Counter(row["CustomerAccount"] for row in rows)


def _products_to_create(reader: ODataReader, company: str, existing: Counter[str]) -> set[str]:
    """The company's F&O products Sales lacks, except those whose unit has no Sales unit (STORY.md)."""
    units = value_map("units_fno_to_sales")
    rows = reader.rows(
        "fno",
        "SellableReleasedProducts",
        ["ProductNumber", "SalesUnitSymbol"],
        filter=f"dataAreaId eq '{company}'",
    )
    return {
        row["ProductNumber"]
        for row in rows
        if row["ProductNumber"] not in existing and str(row["SalesUnitSymbol"]).casefold() in units
    }


def _accounts_to_sync(reader: ODataReader, company: str) -> set[str]:
    """Active accounts of the company's business unit with a number of their own and a known
    (or blank) country: the customers the accounts template keeps (STORY.md)."""
    countries = value_map("country_to_iso")
    units = {unit for unit, legal_entity in business_units(reader).items() if legal_entity == company}
    accounts = [
        row
        for row in reader.rows(
            "dataverse",
            "accounts",
            ["accountnumber", "address1_country", "_owningbusinessunit_value"],
            filter="statecode eq 0",
        )
        if row["_owningbusinessunit_value"] in units
    ]
    numbers = Counter(row["accountnumber"] for row in accounts if row["accountnumber"])
    return {
        row["accountnumber"]
        for row in accounts
        if row["accountnumber"]
        and numbers[row["accountnumber"]] == 1
        and (not row["address1_country"] or str(row["address1_country"]).casefold() in countries)
    }


def test_all_templates_then_a_rerun_that_writes_nothing(instance: _Instance, tmp_path: Path) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    hooks = instance.hooks()
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for template in TEMPLATES:
        for company in COMPANIES:
            first[(template, company)] = run_template(
                template, legal_entity=company, run_id="first", hooks=hooks, **_options(root)
            )

    def total(template: str, task: str, *names: str) -> int:
        return sum(first[(template, c)]["tasks"][task]["counts"][n] for c in COMPANIES for n in names)

    # the demo story (emulators/seed/STORY.md)
    assert total("accounts", "customers", "created", "updated", "unchanged") == 72
    assert total("accounts", "customers", "rejected") == 8
    assert total("products", "products", "created", "updated", "unchanged") == 58
    assert total("contacts", "contact_persons", "created", "updated", "unchanged") == 36
    assert total("contacts", "contact_customers", "created", "updated", "unchanged") == 16
    assert total("sales_quotations", "quote_headers", "created") == 12
    assert total("sales_orders_fno_to_sales", "order_headers", "created", "updated", "unchanged") == 18
    assert total("sales_orders_fno_to_sales", "order_freight_tax", "created") == 4
    assert total("sales_orders_sales_to_fno", "order_headers", "created") == 14
    assert total("sales_invoices", "invoice_headers", "created") == 6
    for result in first.values():
        assert result["counts"]["failed"] == 0, result

    # what landed, read back through the hooks
    fno_lines = [
        row
        for page in hooks.fno.iter_pages(
            "CDSSalesOrderLines",
            select=[
                "SalesOrderNumber",
                "LineCreationSequenceNumber",
                "LineDiscountAmount",
                "FixedPriceCharges",
            ],
            filter="LineCreationSequenceNumber eq 1",
            companies=list(COMPANIES),
        )
        for row in page.to_dict("records")
        if str(row["SalesOrderNumber"]).startswith(("ORD-01000-", "ORD-01001-"))
    ]
    assert sorted((float(r["LineDiscountAmount"]), float(r["FixedPriceCharges"])) for r in fno_lines) == [
        (3.33, -0.01),
        (3.33, -0.01),
    ]
    invoiced = _count(hooks.dataverse, "salesorders", "statecode", filter="statecode eq 4")
    assert invoiced["4"] == 4  # only fully invoiced orders close (STORY.md: invoices.close_order)

    again = [
        run_template(template, legal_entity=company, run_id="again", hooks=hooks, **_options(root))
        for template in TEMPLATES
        for company in COMPANIES
    ]
    for result in again:
        counts = result["counts"]
        assert counts["created"] == counts["updated"] == counts["failed"] == 0, (result["template"], counts)


class _Crashing:
    """A real hook whose first write stream dies after ``after`` outcomes: before the rest is
    sent (worker killed mid-load) or after the service applied all of it (answers lost)."""

    def __init__(self, hook: Any, after: int, *, after_applying: bool) -> None:
        self.hook, self.after, self.after_applying, self.crashed = hook, after, after_applying, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hook, name)

    def write(self, operations: Any, **kwargs: Any) -> Any:
        if self.crashed:
            return self.hook.write(operations, **kwargs)
        return self._crash_after(self.hook.write(operations, **kwargs))

    def _crash_after(self, outcomes: Any) -> Any:
        for answered, outcome in enumerate(outcomes):
            if answered == self.after:
                self.crashed = True
                if self.after_applying:
                    for _ in outcomes:  # the service applies the rest; the answers are lost
                        pass
                outcomes.close()
                raise ConnectionError("simulated crash during load")
            yield outcome


@pytest.mark.parametrize("after_applying", [False, True], ids=["mid-stream", "answers-lost"])
def test_crash_during_a_dataverse_load_then_rerun_has_no_duplicates(
    instance: _Instance, tmp_path: Path, after_applying: bool
) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    hooks = instance.hooks()
    reader = ODataReader(instance.running.endpoints)
    before = _product_numbers(reader)
    created = _products_to_create(reader, "usmf", before)
    assert len(created) == 14
    crashing = SyncHooks(
        dataverse=_Crashing(hooks.dataverse, 7, after_applying=after_applying), fno=hooks.fno
    )
    with pytest.raises(ConnectionError):
        runner.run_task(
            "products",
            "products",
            legal_entity="usmf",
            run_id="crash",
            hooks=crashing,
            journal_every=5,
            **_options(root),
        )

    # Airflow retries the load of the same run: the journal skips confirmed batches, and a
    # create repeated for a row the lost batch made hits the same deterministic id
    retried = runner.load(
        "products",
        "products",
        legal_entity="usmf",
        run_id="crash",
        hooks=hooks,
        journal_every=5,
        **_options(root),
    )
    assert retried["counts"]["failed"] == 0
    assert retried["counts"]["created"] == 14
    # and a fresh run finds nothing left to do
    fresh = runner.run_task(
        "products", "products", legal_entity="usmf", run_id="fresh", hooks=hooks, **_options(root)
    )
    assert fresh["counts"]["created"] == fresh["counts"]["updated"] == 0

    assert _product_numbers(reader) == before + Counter(created)  # each new one exactly once
    reader.close()


def test_crash_during_an_fno_load_then_fresh_run_creates_the_rest(
    instance: _Instance, tmp_path: Path
) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    hooks = instance.hooks()
    reader = ODataReader(instance.running.endpoints)
    before = _customer_accounts(reader, "usmf")
    synced_accounts = _accounts_to_sync(reader, "usmf")
    assert len(synced_accounts) == 36
    crashing = SyncHooks(dataverse=hooks.dataverse, fno=_Crashing(hooks.fno, 10, after_applying=True))
    with pytest.raises(ConnectionError):
        runner.run_task(
            "accounts",
            "customers",
            legal_entity="usmf",
            run_id="crash",
            hooks=crashing,
            journal_every=5,
            **_options(root),
        )
    fresh = runner.run_task(
        "accounts", "customers", legal_entity="usmf", run_id="fresh", hooks=hooks, **_options(root)
    )
    assert fresh["counts"]["failed"] == 0
    synced = fresh["counts"]["created"] + fresh["counts"]["updated"] + fresh["counts"]["unchanged"]
    assert synced == 36
    # every customer there before, plus each account the template keeps, exactly once
    expected = Counter({account: 1 for account in set(before) | synced_accounts})
    assert _customer_accounts(reader, "usmf") == expected
    reader.close()


def test_cli_runs_a_template_for_every_pair_side_by_side(instance: _Instance, tmp_path: Path) -> None:
    """``python -m prospect_to_cash.sync run`` in its own process: both pairs at once on shared
    hooks over HTTPS, the demo story's counts as JSON on a clean stdout (logs go to stderr),
    a rerun that writes nothing, an unknown company refused with exit code 1."""

    def cli(*arguments: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "prospect_to_cash.sync", "run", "accounts", *arguments]
        command += ["--staging-root", f"file://{tmp_path / 'staging'}"]
        command += ["--dataverse-conn-id", CONN["dataverse"], "--fno-conn-id", CONN["fno"]]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)

    first = cli("--run-id", "cli")
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.lstrip().startswith("{"), first.stdout[:1500]
    report = json.loads(first.stdout)
    assert "rejected" in first.stderr  # the engine's warnings, kept off stdout
    assert set(report["companies"]) == set(COMPANIES)
    counts = report["counts"]
    assert counts["created"] + counts["updated"] + counts["unchanged"] == 72
    assert counts["rejected"] == 8
    assert counts["failed"] == 0
    for name, value in counts.items():
        assert value == sum(c["counts"][name] for c in report["companies"].values())

    again = cli("--run-id", "cli-again")
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads(again.stdout)["counts"]
    assert rerun["created"] == rerun["updated"] == rerun["failed"] == 0
    assert rerun["unchanged"] == 72

    refused = cli("--company", "GBSI", "--run-id", "cli-bad")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "['gbsi'] have no company pair" in refused.stderr


def test_template_sync_operator_plans_then_syncs_every_pair(instance: _Instance, tmp_path: Path) -> None:
    """``TemplateSyncOperator`` over HTTPS: a dry run writes nothing, the real run lands the demo
    story for both pairs, and what it hands to XCom is counts and paths only."""
    from prospect_to_cash.operators import TemplateSyncOperator

    def operator(**kwargs: Any) -> TemplateSyncOperator:
        return TemplateSyncOperator(
            task_id="sync_accounts",
            template="accounts",
            staging_root=f"file://{tmp_path / 'staging'}",
            dataverse_conn_id=CONN["dataverse"],
            fno_conn_id=CONN["fno"],
            **kwargs,
        )

    hooks = instance.hooks()

    def customers() -> int:
        return sum(_count(hooks.fno, "CustomersV3", "CustomerAccount", companies=list(COMPANIES)).values())

    before = customers()
    context: Any = {"run_id": "op-dry", "data_interval_start": None, "data_interval_end": None}
    planned = operator(dry_run=True).execute(context)
    assert planned["dry_run"] is True
    assert planned["counts"]["to_create"] == 52  # STORY.md: 52 new customers
    assert customers() == before  # a dry run plans, it writes nothing

    landed = operator().execute({**context, "run_id": "op"})
    assert customers() == before + planned["counts"]["to_create"]
    counts = landed["counts"]
    assert counts["created"] + counts["updated"] + counts["unchanged"] == 72
    assert counts["failed"] == 0
    assert set(landed["companies"]) == set(COMPANIES)
    assert json.loads(json.dumps(landed)) == landed  # XCom-safe: plain counts and path strings
    assert all(c["summary_path"].endswith("summary.json") for c in landed["companies"].values())
