"""Staging retention on a local root: old run folders go, recent ones, the pending ledger,
the watermarks and anything that is not a template folder stay."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pytest

from prospect_to_cash.sync.retention import (
    DEFAULT_RETENTION_DAYS,
    KEPT_FOLDERS,
    RETENTION_VARIABLE,
    _modified,
    purge_staging,
    retention_days,
)

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import ObjectStoragePath

DAY = 86_400


def _file(path: Path, age_days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    moment = time.time() - age_days * DAY
    os.utime(path, (moment, moment))
    return path


def test_purge_removes_old_runs_only_and_never_the_ledger_or_watermarks(
    staging_dir: Path, staging_root: ObjectStoragePath
) -> None:
    old_source = _file(staging_dir / "accounts/old_run/usmf/customers/source/rows.parquet", 40)
    _file(staging_dir / "accounts/old_run/usmf/customers/deadletter/rejected.parquet", 40)
    # a run whose first attempt is old but whose retry wrote yesterday is kept whole
    retried_first = _file(staging_dir / "accounts/retried/usmf/customers/source/rows.parquet", 40)
    _file(staging_dir / "accounts/retried/usmf/customers/plan/journal-0001.parquet", 1)
    _file(staging_dir / "products/old_products/usmf/products/source/rows.parquet", 31)
    recent = _file(staging_dir / "products/recent/usmf/products/source/rows.parquet", 29)
    (staging_dir / "contacts/empty_run").mkdir(parents=True)
    ledger = _file(staging_dir / "_pending/accounts/usmf/customers.parquet", 400)
    mark = _file(staging_dir / "_watermarks/accounts/usmf/customers.json", 400)
    token = _file(staging_dir / "_delta_tokens/accounts/usmf/customers.json", 400)
    index = _file(staging_dir / "_source_index/accounts/usmf/customers.parquet", 400)
    foreign = _file(staging_dir / "reports/old/report.html", 400)

    report = purge_staging(staging_root, days=30)

    assert report["removed"] == ["accounts/old_run", "contacts/empty_run", "products/old_products"]
    assert report["kept"] == 2
    assert report["retention_days"] == 30
    assert not old_source.parent.parent.parent.parent.exists()
    for survivor in (retried_first, recent, ledger, mark, token, index, foreign):
        assert survivor.exists(), survivor
    # a second purge finds nothing more to remove
    assert purge_staging(staging_root, days=30)["removed"] == []


def test_purge_refuses_to_enter_the_ledger_or_watermark_folders(
    staging_dir: Path, staging_root: ObjectStoragePath
) -> None:
    ledger = _file(staging_dir / "_pending/accounts/usmf/customers.parquet", 400)
    for folder in KEPT_FOLDERS:
        with pytest.raises(ValueError, match="never enters it"):
            purge_staging(staging_root, days=1, templates=[folder])
    assert ledger.exists()


def test_retention_days_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RETENTION_VARIABLE, raising=False)
    assert retention_days() == DEFAULT_RETENTION_DAYS == 30
    monkeypatch.setenv(RETENTION_VARIABLE, "7")
    assert retention_days() == 7
    assert retention_days(3) == 3
    for wrong in ("0", "-2", "seven"):
        monkeypatch.setenv(RETENTION_VARIABLE, wrong)
        with pytest.raises(ValueError, match=RETENTION_VARIABLE):
            retention_days()


def test_modification_time_of_local_and_azure_listings() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert _modified({"mtime": 12.5}) == 12.5
    assert _modified({"last_modified": moment, "mtime": None}) == moment.timestamp()
    assert _modified({"LastModified": "2026-01-02T03:04:05Z"}) == moment.timestamp()
    assert _modified({"name": "x"}) is None
