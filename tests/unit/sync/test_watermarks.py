"""High-water marks: a scheduled run reads from the last successful mark (less the
overlap), so a skipped or failed day leaves no gap; explicit windows are read exactly and
never move the mark back; a full refresh resets it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest

from prospect_to_cash.sync.contracts import Window
from prospect_to_cash.sync.watermarks import Watermark
from tests.unit.sync.builders import account, accounts_services, customers_staging, run_in_memory

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from tests.unit.sync.memory_service import MemoryService


def day(n: int) -> str:
    return f"2024-01-{n:02d}T00:00:00Z"


pytestmark = pytest.mark.usefixtures("unscoped_environment")


def world() -> tuple[MemoryService, MemoryService]:
    """Sales accounts modified on days 1, 2 and 3 (one each), all valid, the service healthy."""
    return accounts_services(
        [account(f"ACC-{n}", f"Account ACC-{n}", modifiedon=f"2024-01-0{n}T08:00:00Z") for n in (1, 2, 3)]
    )


def run(
    sales: MemoryService, fno: MemoryService, root: ObjectStoragePath, run_id: str, window: Window, **kw: Any
) -> Any:
    return run_in_memory("accounts", sales, fno, root, run_id, window=window, **kw)


def mark(root: ObjectStoragePath) -> str | None:
    return Watermark(root, "accounts", "usmf", "customers").read()


def read_window(root: ObjectStoragePath, run_id: str) -> dict[str, Any]:
    """The window a run's extract read (``source/window.json``)."""
    return customers_staging(root, run_id).read_json("source", "window")


def customers(fno: MemoryService) -> list[str]:
    return sorted(row["CustomerAccount"] for row in fno.tables["CustomersV3"].rows)


def scheduled(start: int, end: int) -> Window:
    return Window.of(day(start), day(end), since_watermark=True)


def test_a_failed_day_is_covered_by_the_next_scheduled_run(staging_root: ObjectStoragePath) -> None:
    sales, fno = world()
    assert run(sales, fno, staging_root, "d1", scheduled(1, 2))["counts"]["created"] == 1
    assert mark(staging_root) == day(2)

    reading = sales.iter_pages

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Sales unreachable all night")

    sales.iter_pages = down  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        run(sales, fno, staging_root, "d2", scheduled(2, 3))
    assert mark(staging_root) == day(2)  # nothing loaded: the mark stays

    sales.iter_pages = reading  # type: ignore[method-assign]
    sales.reads.clear()
    third = run(sales, fno, staging_root, "d3", scheduled(3, 4))
    assert (third["counts"]["read"], third["counts"]["created"]) == (2, 2)
    assert customers(fno) == ["ACC-1", "ACC-2", "ACC-3"]
    read = read_window(staging_root, "d3")
    assert (read["start"], read["end"]) == ("2024-01-01T23:55:00Z", day(4))  # the mark less 300 s
    assert mark(staging_root) == day(4)


def test_explicit_windows_are_read_exactly_and_never_move_the_mark_back(
    staging_root: ObjectStoragePath,
) -> None:
    sales, fno = world()
    run(sales, fno, staging_root, "d3", scheduled(3, 4))
    assert customers(fno) == ["ACC-3"]
    assert mark(staging_root) == day(4)
    backfill = run(sales, fno, staging_root, "backfill-d1", Window.of(day(1), day(2)))
    assert backfill["counts"]["read"] == 1
    read = read_window(staging_root, "backfill-d1")
    assert (read["start"], read["end"]) == (day(1), day(2))
    assert customers(fno) == ["ACC-1", "ACC-3"]  # ACC-2 (day 2) not read: exactly the window
    assert mark(staging_root) == day(4)


def test_a_window_beyond_a_gap_leaves_the_mark_at_the_gap(staging_root: ObjectStoragePath) -> None:
    sales, fno = world()
    run(sales, fno, staging_root, "d1", scheduled(1, 2))
    run(sales, fno, staging_root, "d3-only", Window.of(day(3), day(4)))
    assert customers(fno) == ["ACC-1", "ACC-3"]
    assert mark(staging_root) == day(2)


def test_an_explicit_start_wins_over_the_mark(staging_root: ObjectStoragePath) -> None:
    window = Window.of(day(1), day(2), start=day(3), end=day(4), since_watermark=True)
    assert window == Window(day(3), day(4), False, False)


def test_a_full_refresh_resets_the_mark(staging_root: ObjectStoragePath) -> None:
    sales, fno = world()
    run(sales, fno, staging_root, "d1", scheduled(1, 2))
    before = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    refresh = run(sales, fno, staging_root, "full", Window.of(day(1), day(2), full_refresh=True))
    assert refresh["counts"]["read"] == 3
    reset = mark(staging_root)
    assert reset is not None
    assert before <= reset <= datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_dry_run_leaves_the_mark_alone(staging_root: ObjectStoragePath) -> None:
    sales, fno = world()
    run(sales, fno, staging_root, "dry", scheduled(1, 2), dry_run=True)
    assert mark(staging_root) is None


def test_without_a_start_the_mark_is_the_start(staging_root: ObjectStoragePath) -> None:
    """The CLI's ``run --from-watermark``: everything while there is no mark, then from it."""
    sales, fno = world()
    first = run(sales, fno, staging_root, "first", Window.of(None, day(2), since_watermark=True))
    assert first["counts"]["read"] == 1  # no mark: everything before the end (ACC-1)
    assert mark(staging_root) == day(2)
    second = run(sales, fno, staging_root, "second", Window.of(None, None, since_watermark=True))
    assert (second["counts"]["read"], second["counts"]["created"]) == (2, 2)
    read = read_window(staging_root, "second")
    assert (read["start"], read["end"]) == ("2024-01-01T23:55:00Z", None)
