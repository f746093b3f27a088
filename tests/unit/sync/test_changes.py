"""The engine's side of change tracking, over the memory services with a tracked accounts
table: which read each kind of run makes, where tokens go, and every fallback (no token,
a token taken for another filter, an expired or refused one), each logged once."""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from prospect_to_cash.hooks.delta import DeltaRead
from prospect_to_cash.hooks.errors import EXPIRED_VERSION_STAMP, DeltaTokenInvalidError
from prospect_to_cash.sync.changes import DeltaTokens
from prospect_to_cash.sync.contracts import Window
from prospect_to_cash.sync.pending import PendingLedger
from tests.unit.sync.builders import SHIPPED, account, accounts_services, customers_staging, run_in_memory

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from airflow.sdk import ObjectStoragePath

    from tests.unit.sync.memory_service import MemoryService


class Tracked:
    """The Sales memory service with a tracked ``accounts`` table: a read without a token
    returns every row and token ``t<n>``; with a token, the rows changed since
    (``changes[token]``); ``refused`` tokens answer like Dataverse."""

    def __init__(self, sales: MemoryService) -> None:
        self.sales = sales
        self.tokens = 0
        self.changes: dict[str, list[str]] = {}
        self.refused: dict[str, str | None] = {}
        self.calls: list[str | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sales, name)

    def change_tracking_enabled(self, entity_set: str) -> bool:
        return entity_set == "accounts"

    def read_changes(
        self,
        entity_set: str,
        *,
        select: Sequence[str],
        delta_token: str | None = None,
        page_size: int = 5000,
        on_page: Callable[[pd.DataFrame], None] | None = None,
    ) -> DeltaRead:
        self.calls.append(delta_token)
        if delta_token in self.refused:
            raise DeltaTokenInvalidError(400, self.refused[delta_token], "refused", entity_set)
        rows = self.sales.tables[entity_set].rows
        if delta_token is not None:
            rows = [r for r in rows if r["accountnumber"] in self.changes.get(delta_token, [])]
        frame = pd.DataFrame([{c: r.get(c) for c in select} for r in rows], columns=list(select))
        if on_page is not None and len(frame):
            on_page(frame)
        self.tokens += 1
        return DeltaRead(
            frame.iloc[0:0], (), f"t{self.tokens}", delta_token is None, 1, tuple(select), len(frame)
        )


def run(
    tracked: Tracked, fno: MemoryService, root: ObjectStoragePath, run_id: str, window: Window, **kw: Any
) -> Any:
    return run_in_memory("accounts", tracked, fno, root, run_id, window=window, max_rejected="100%", **kw)


def delta(root: ObjectStoragePath, run_id: str) -> dict[str, Any]:
    return customers_staging(root, run_id).read_json("source", "delta")


SCHEDULED = Window.of("2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z", since_watermark=True)


pytestmark = pytest.mark.usefixtures("unscoped_environment")


@pytest.fixture
def world() -> tuple[Tracked, MemoryService]:
    sales, fno = accounts_services(
        [account("ACC-1", "One"), account("ACC-2", "Two"), account("ACC-3", "Gone", statecode=1)]
    )
    return Tracked(sales), fno


def test_full_refresh_then_deltas_then_every_fallback(
    world: tuple[Tracked, MemoryService],
    staging_root: ObjectStoragePath,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracked, fno = world
    tokens = DeltaTokens(staging_root, "accounts", "usmf", "customers")
    caplog.set_level(logging.WARNING, logger="prospect_to_cash.sync.changes")

    def fallbacks() -> list[str]:
        found = [r.getMessage() for r in caplog.records if r.name == "prospect_to_cash.sync.changes"]
        caplog.clear()
        return found

    first = run(tracked, fno, staging_root, "full", Window(full_refresh=True))
    assert first["counts"]["read"] == 2  # the inactive account is filtered out client-side
    assert (delta(staging_root, "full")["token"], tokens.read()["token"]) == ("t1", "t1")  # type: ignore[index]
    assert delta(staging_root, "full")["whole"] is True
    assert fallbacks() == []

    tracked.changes["t1"] = ["ACC-2"]
    tracked.sales.tables["accounts"].rows[1]["name"] = "Two, renamed"
    daily = run(tracked, fno, staging_root, "daily", SCHEDULED)
    assert {k: daily["counts"][k] for k in ("read", "updated")} == {"read": 1, "updated": 1}
    assert (tracked.calls[-1], tokens.read()["token"]) == ("t1", "t2")  # type: ignore[index]

    # an explicit window (a backfill) reads by modifiedon and leaves the token alone
    backfill = Window.of("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
    assert run(tracked, fno, staging_root, "backfill", backfill)["counts"]["read"] == 2
    assert (len(tracked.calls), tokens.read()["token"]) == (2, "t2")  # type: ignore[index]

    # a dry run reads the delta but moves no token
    run(tracked, fno, staging_root, "dry", SCHEDULED, dry_run=True)
    assert (tracked.calls[-1], tokens.read()["token"]) == ("t2", "t2")  # type: ignore[index]

    # the dry run's delta stays the shared chain's head (sync/delta_chain.py): the next
    # delta starts at its token, t3; the cursor (t2) only says what this pair consumed
    tracked.refused["t3"] = EXPIRED_VERSION_STAMP
    expired = run(tracked, fno, staging_root, "expired", SCHEDULED)
    assert (expired["counts"]["read"], tracked.calls[-2:]) == (2, ["t3", None])
    assert [m.split(": ", 1)[1] for m in fallbacks()] == [
        "the delta token expired: read accounts whole through change tracking (2 rows staged)"
    ]

    tracked.refused[tokens.read()["token"]] = None  # type: ignore[index]
    run(tracked, fno, staging_root, "refused", SCHEDULED)
    assert delta(staging_root, "refused")["fallback"] == "the service refused the delta token"

    mappings = tmp_path / "mappings"
    shutil.copytree(SHIPPED, mappings)
    text = (
        (mappings / "accounts.yaml")
        .read_text()
        .replace("filter: statecode eq 0", "filter: statecode ne 1", 1)
    )
    (mappings / "accounts.yaml").write_text(text)
    run(tracked, fno, staging_root, "new-filter", SCHEDULED, mappings_dir=mappings)
    assert tracked.calls[-1] is None
    assert delta(staging_root, "new-filter")["fallback"] == (
        "the mapping's source filter, business unit or columns changed"
    )
    assert len(fallbacks()) == 2  # refused, filter: one line each


def test_a_task_never_loaded_reads_its_window_and_starts_tracking(
    world: tuple[Tracked, MemoryService], staging_root: ObjectStoragePath
) -> None:
    tracked, fno = world
    result = run(
        tracked, fno, staging_root, "first", Window.of("2024-01-01T00:00:00Z", None, since_watermark=True)
    )
    assert result["counts"]["read"] == 2  # the window (modifiedon), not the key-only tracked read
    assert tracked.calls == [None]
    state = delta(staging_root, "first")
    assert (state["staged"], state["whole"], state["fallback"]) == (
        0,
        False,  # what it staged is a window: absent rows are not deletes
        "no delta token and no high-water mark yet",
    )
    assert DeltaTokens(staging_root, "accounts", "usmf", "customers").read()["token"] == "t1"  # type: ignore[index]
    tracked.changes["t1"] = []
    assert run(tracked, fno, staging_root, "second", SCHEDULED)["counts"]["read"] == 0
    assert tracked.calls == [None, "t1"]


def test_a_pending_duplicate_key_keeps_its_other_row_when_the_delta_brings_one(
    staging_root: ObjectStoragePath,
) -> None:
    """Keys match case-insensitively: ``ACC-1`` and ``acc-1`` are one key, two rows. The
    delta brings one; the ledger's re-read of the key must still stage the other (by id),
    or the planner would see one row and land the key."""
    sales, fno = accounts_services(
        [account("ACC-1", "One"), account("acc-1", "Twin"), account("ACC-2", "Two")]
    )
    tracked = Tracked(sales)
    assert run(tracked, fno, staging_root, "full", Window(full_refresh=True))["counts"]["rejected"] == 2
    ledger = PendingLedger(staging_root, "accounts", "usmf", "customers")
    entries = ledger.read()
    assert {(e["source_key"], e["parked"]) for e in entries} == {("ACC-1", True), ("acc-1", True)}
    ledger.write([{**e, "parked": False} for e in entries])  # as a ledger from before parking

    tracked.changes["t1"] = ["ACC-1"]  # the fake's delta matches the number exactly: one row
    tracked.sales.tables["accounts"].rows[0]["name"] = "One, renamed"
    daily = run(tracked, fno, staging_root, "daily", SCHEDULED)
    assert {k: daily["counts"][k] for k in ("read", "rejected", "created", "updated")} == {
        "read": 2,
        "rejected": 2,
        "created": 0,
        "updated": 0,
    }
    assert [r["CustomerAccount"] for r in fno.tables["CustomersV3"].rows] == ["ACC-2"]
