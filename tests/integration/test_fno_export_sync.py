"""Products read from F&O's Data management incremental export, over HTTPS against the
emulators: after the project's first export (a full push), a daily run after 3 products
changed reads those 3 rows from the export (and by key only the rows the pending ledger
waits for), lands them in Sales, and a run with no change reads none; a failed export
execution fails the task with F&O's status and message, and the retry lands the change.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from devstack.airflow_stack import connection_env
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.hooks.dmf import DataExportError
from prospect_to_cash.sync.contracts import SyncHooks, Window
from prospect_to_cash.sync.exports import ExportedRows
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.runner import extract, run_template
from prospect_to_cash.sync.staging import TaskStaging
from tests.conftest import TEST_CONFIG
from tests.support.emulators import Oracle, start_emulators

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_export_it_dataverse", "fno": "p2c_export_it_fno"}
PROJECTS = {"products": "P2C-Products-USMF", "price_list_items": "P2C-PriceListItems-USMF"}
EXPORTED = "SellableReleasedProducts (export)"


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEmulators]:
    logging.getLogger("prospect_to_cash").setLevel(logging.WARNING)
    config = copy.deepcopy(TEST_CONFIG)
    config["fno"]["dmf"] = {
        "projects": dict.fromkeys(PROJECTS.values(), "SellableReleasedProducts"),
        "execution_seconds": 0.2,
    }
    started = start_emulators(tmp_path / "state", "--seed", "demo", config=config)
    try:
        for name, value in connection_env(started.endpoints, conn_ids=CONN).items():
            monkeypatch.setenv(name, value)
        override = tmp_path / "exports.yaml"
        pair = {
            "legal_entity": "usmf",
            "business_unit": "Contoso US",
            "defaults": {"incremental_exports": {"products": PROJECTS}},
        }
        override.write_text(yaml.safe_dump({"company_pairs": [pair]}))
        monkeypatch.setenv("P2C_ENVIRONMENT_FILE", str(override))
        yield started
    finally:
        started.stop()


def _sync(root: ObjectStoragePath, run_id: str, window: Window) -> Any:
    """One usmf run of the products template with fresh hooks, as a new Airflow task has."""
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
    )
    # the rows rejected on day 1 come back with every run: against a few changed rows they
    # are more than the default share (a whole read counts every unchanged row as read)
    return run_template(
        "products",
        legal_entity="usmf",
        run_id=run_id,
        staging_root=root,
        hooks=hooks,
        window=window,
        max_rejected="100%",
    )


def _daily() -> Window:
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
    return Window.of(start, start + timedelta(hours=1))


def _change(running: RunningEmulators, numbers: list[str], text: str) -> None:
    fno = Oracle(running.endpoints, "fno")
    try:
        for number in numbers:
            response = fno.client.patch(
                f"{fno.root}SellableReleasedProducts(dataAreaId='usmf',ProductNumber='{number}')",
                json={"ProductName": f"{text} {number}"},
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 204, response.text
    finally:
        fno.close()


def _reads(running: RunningEmulators) -> tuple[int, int]:
    """Rows exported and rows read through OData of SellableReleasedProducts since the last reset."""
    with running.admin("fno") as admin:
        by_set = admin.counters()["rows_read_by_set"]
        admin.reset_counters()
    return by_set.get(EXPORTED, 0), by_set.get("SellableReleasedProducts", 0)


def _waiting(root: ObjectStoragePath) -> int:
    return sum(len(PendingLedger(root, "products", "usmf", task).read()) for task in PROJECTS)


def test_daily_products_runs_read_the_incremental_export(
    running: RunningEmulators, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    fno = Oracle(running.endpoints, "fno")
    try:
        numbers = sorted(
            r["ProductNumber"] for r in fno.rows("SellableReleasedProducts?$select=ProductNumber")
        )
    finally:
        fno.close()
    initial = _sync(root, "initial", Window(full_refresh=True))["tasks"]["products"]["counts"]
    assert initial["read"] == len(numbers)
    _reads(running)

    push = _sync(root, "daily-0", _daily())["tasks"]["products"]["counts"]  # the projects' first export
    exported, whole = _reads(running)
    assert exported == 2 * len(numbers)  # a full push, once per task's project
    assert (push["read"], push["updated"], push["created"]) == (len(numbers), 0, 0)

    changed = numbers[:3]
    _change(running, changed, "Renamed")
    caplog.set_level(logging.INFO, logger="prospect_to_cash")
    caplog.set_level(logging.INFO, logger="httpx")
    daily = _sync(root, "daily-1", _daily())["tasks"]
    exported, whole = _reads(running)
    assert exported == 2 * 3  # the 3 changed rows, for each task
    waiting = _waiting(root)
    assert whole == waiting  # besides the export: only the rows the pending ledger waits for, by key
    staged = TaskStaging(root, "products", "daily-1", "usmf", "products").read_frame("source", "rows")
    pending = [e["source_key"] for e in PendingLedger(root, "products", "usmf", "products").read()]
    assert pending  # the demo world has a product Sales refuses: re-tried with every run
    assert sorted(staged["ProductNumber"]) == sorted([*changed, *pending])
    counts = daily["products"]["counts"]
    assert (counts["read"], counts["updated"], counts["created"], counts["source_deleted"]) == (
        3 + len(pending),
        3,
        0,
        0,  # an export is no whole read: absence from it is no delete
    )
    assert "sig=" not in caplog.text  # the package's SAS token is never logged
    sales = Oracle(running.endpoints, "dataverse")
    try:
        landed = sales.rows(
            "products?$select=productnumber,name&$filter="
            + " or ".join(f"productnumber eq '{n}'" for n in changed)
        )
    finally:
        sales.close()
    assert sorted((r["productnumber"], r["name"]) for r in landed) == [(n, f"Renamed {n}") for n in changed]
    assert not ExportedRows(root, "products", "usmf", "products").path.exists()  # loaded: not kept

    quiet = _sync(root, "daily-2", _daily())["tasks"]["products"]["counts"]
    assert _reads(running)[0] == 0
    assert (quiet["updated"], quiet["created"]) == (0, 0)


def _loaded_with_a_quiet_day(running: RunningEmulators, tmp_path: Path) -> tuple[ObjectStoragePath, str]:
    """Staging after the initial load and one quiet daily run (the projects' full push), and
    the first product number, the one the test changes."""
    root = ObjectStoragePath(f"file://{tmp_path / 'staging'}")
    _sync(root, "initial", Window(full_refresh=True))
    _sync(root, "daily-0", _daily())
    fno = Oracle(running.endpoints, "fno")
    try:
        (product,) = fno.rows("SellableReleasedProducts?$select=ProductNumber&$top=1&$orderby=ProductNumber")
    finally:
        fno.close()
    return root, product["ProductNumber"]


def test_a_failed_export_fails_the_task_and_the_retry_lands_the_change(
    running: RunningEmulators, tmp_path: Path
) -> None:
    root, number = _loaded_with_a_quiet_day(running, tmp_path)
    _change(running, [number], "Failed once")
    with running.admin("fno") as admin:
        admin.patch_config({"dmf": {"fail_next": 1}})
    window = _daily()
    with pytest.raises(
        DataExportError, match=r"ended Failed: Export of entity 'SellableReleasedProducts' failed"
    ):
        _sync(root, "daily-1", window)

    retried = _sync(root, "daily-1", window)["tasks"]["products"]["counts"]
    assert (retried["updated"], retried["created"]) == (1, 0)
    sales = Oracle(running.endpoints, "dataverse")
    try:
        (row,) = sales.rows(f"products?$select=name&$filter=productnumber eq '{number}'")
    finally:
        sales.close()
    assert row["name"] == f"Failed once {number}"


def test_rows_exported_by_a_run_that_died_before_its_load_land_with_the_next_run(
    running: RunningEmulators, tmp_path: Path
) -> None:
    """F&O moves the project's baseline when the export succeeds: a run that dies after
    its extract must not lose those rows. They are kept until a load finishes with them."""
    root, number = _loaded_with_a_quiet_day(running, tmp_path)
    _change(running, [number], "Exported before a crash")
    _reads(running)
    hooks = SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
    )
    extract(
        "products",
        "products",
        legal_entity="usmf",
        run_id="died",
        staging_root=root,
        hooks=hooks,
        window=_daily(),
    )
    assert _reads(running)[0] == 1  # exported (and consumed in F&O), then the run died
    kept = ExportedRows(root, "products", "usmf", "products").path
    assert kept.exists()

    counts = _sync(root, "daily-1", _daily())["tasks"]["products"]["counts"]
    assert _reads(running)[0] == 1  # price_list_items' own project; products' export is empty
    assert (counts["updated"], counts["created"]) == (1, 0)
    assert not kept.exists()
    sales = Oracle(running.endpoints, "dataverse")
    try:
        (row,) = sales.rows(f"products?$select=name&$filter=productnumber eq '{number}'")
    finally:
        sales.close()
    assert row["name"] == f"Exported before a crash {number}"
