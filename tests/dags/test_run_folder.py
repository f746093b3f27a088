"""Staging folders a person can map to the interval they hold (issue 17): a DAG run stages
under ``<template>/<interval start>__<run type>/``, a manual run adds its run id, a run that
already staged under its run id keeps that folder."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from airflow.sdk.api.datamodels._generated import DagRunType

from prospect_to_cash.operators.common import run_folder
from prospect_to_cash.sync.context import make_context
from prospect_to_cash.sync.contracts import SyncOptions
from prospect_to_cash.sync.staging import as_path, safe_segment
from prospect_to_cash.sync.summary import write_summary

if TYPE_CHECKING:
    from pathlib import Path

DAY = datetime(2026, 11, 1, tzinfo=timezone.utc)
NEXT = datetime(2026, 11, 2, tzinfo=timezone.utc)


def _context(run_type: DagRunType, logical_date: datetime | None, start: datetime | None = DAY) -> Any:
    """What a task's context holds of its run (Airflow 3 names a run after its run_after)."""
    return {
        "run_id": f"{run_type.value}__{NEXT.isoformat()}",
        "dag_run": SimpleNamespace(run_type=run_type),
        "logical_date": logical_date,
        "data_interval_start": start,
    }


def test_scheduled_and_backfill_runs_are_named_by_the_interval_start(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert (
        run_folder(_context(DagRunType.SCHEDULED, DAY), "accounts", root) == "2026-11-01T00-00-00Z__scheduled"
    )
    assert (
        run_folder(_context(DagRunType.BACKFILL, DAY), "accounts", root) == "2026-11-01T00-00-00Z__backfill"
    )


def test_a_manual_run_keeps_its_run_id_after_the_interval_start(tmp_path: Path) -> None:
    context = _context(DagRunType.MANUAL, NEXT)  # a manual run's logical date is the interval end
    assert run_folder(context, "accounts", str(tmp_path)) == f"2026-11-01T00-00-00Z__{context['run_id']}"


def test_a_run_that_staged_under_its_run_id_keeps_that_folder(tmp_path: Path) -> None:
    context = _context(DagRunType.BACKFILL, DAY)
    (tmp_path / "accounts" / safe_segment(context["run_id"])).mkdir(parents=True)
    assert run_folder(context, "accounts", str(tmp_path)) == context["run_id"]
    assert run_folder(context, "contacts", str(tmp_path)) == "2026-11-01T00-00-00Z__backfill"


def test_a_run_without_an_interval_is_named_by_its_run_id(tmp_path: Path) -> None:
    context = _context(DagRunType.MANUAL, None, start=None)
    assert run_folder(context, "accounts", str(tmp_path)) == context["run_id"]


def test_the_engine_stages_and_summarizes_in_the_folder_given(tmp_path: Path) -> None:
    folder = "2026-11-01T00-00-00Z__backfill"
    options = SyncOptions(run_id="backfill__2026-11-02T00:00:00+00:00", staging_root=str(tmp_path),
                          staging_folder=folder)  # fmt: skip
    ctx = make_context("accounts", "customers", "usmf", options)
    assert str(ctx.staging.path("deadletter", "rejected")).endswith(
        f"/accounts/{folder}/usmf/customers/deadletter/rejected.parquet"
    )
    assert ctx.staging.sibling("contacts").base.parent.parent.name == folder
    summary: Any = {"template": "accounts", "run_id": options.run_id, "legal_entity": "usmf"}
    written = write_summary(as_path(str(tmp_path)), summary, folder)
    assert written.endswith(f"/accounts/{folder}/usmf/summary.json")
    assert json.loads((tmp_path / "accounts" / folder / "usmf" / "summary.json").read_text())["run_id"] == (
        options.run_id
    )
