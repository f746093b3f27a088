"""``summary.json``: one shape for a company pair's run of one template, one writer.

A DAG's report task, ``run_template`` (hence the CLI and ``TemplateSyncOperator``) all
sum a pair's tasks the same way and write the same file, so whoever reads
``<staging>/<template>/<run_id>/<company>/summary.json`` need not know who ran the sync.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from prospect_to_cash.sync.staging import atomic_write, safe_segment

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow.sdk import ObjectStoragePath

    from prospect_to_cash.sync.contracts import (
        CompanyPair,
        Counts,
        DeadLetterFile,
        RunSummary,
        TaskReport,
        WindowDict,
    )

#: The counts of a load, in the order a summary table shows them.
COUNT_ORDER = (
    "read",
    "skipped",
    "created",
    "updated",
    "unchanged",
    "rejected",
    "failed",
    "second_pass_updated",
    "second_pass_failed",
    "failed_retryable",
    "pending",
    "parked",
    "source_deleted",
    "deactivated",
    "deleted",
    "deletes_held",
)
#: A dry run reports the plan's own counts: nothing was created, this much would be.
DRY_RUN_COUNT_ORDER = ("read", "skipped", "to_create", "to_update", "unchanged", "rejected", "second_pass")


def count_order(dry_run: bool) -> tuple[str, ...]:
    return DRY_RUN_COUNT_ORDER if dry_run else COUNT_ORDER


def total_counts(counts: Iterable[Counts], *, dry_run: bool) -> Counts:
    """The sum of several tasks' (or pairs') counts, every count of the kind present."""
    totals: Counts = dict.fromkeys(count_order(dry_run), 0)
    for one in counts:
        for name, value in one.items():
            totals[name] = totals.get(name, 0) + int(value)
    return totals


def summarize(
    template: str,
    pair: CompanyPair,
    run_id: str,
    tasks: Mapping[str, TaskReport],
    *,
    dry_run: bool,
    window: WindowDict | None,
    dag_id: str | None = None,
) -> RunSummary:
    """The summary of one pair's run: totals, each task's part, the dead letters that hold rows."""
    dead_letters: list[DeadLetterFile] = [
        {"task": name, "kind": kind, "path": path, "rows": int(report["counts"].get(kind, 0))}
        for name, report in tasks.items()
        for kind, path in report["deadletter"].items()
        if path and report["counts"].get(kind, 0)
    ]
    return {
        "template": template,
        "dag_id": dag_id,
        "legal_entity": pair.legal_entity,
        "business_unit": pair.business_unit,
        "run_id": run_id,
        "dry_run": dry_run,
        "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "window": window,
        "counts": total_counts((report["counts"] for report in tasks.values()), dry_run=dry_run),
        "tasks": dict(tasks),
        "dead_letters": dead_letters,
    }


def write_summary(root: ObjectStoragePath, summary: RunSummary, folder: str | None = None) -> str:
    """Write ``<root>/<template>/<run folder>/<company>/summary.json`` (the run folder is
    ``folder`` when given, else the run id); returns its URL."""
    target = (
        root
        / summary["template"]
        / safe_segment(folder or summary["run_id"])
        / summary["legal_entity"].lower()
        / "summary.json"
    )
    with atomic_write(target, "w") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True, default=str)
    return str(target)
