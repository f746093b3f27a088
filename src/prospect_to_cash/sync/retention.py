"""Staging retention: run folders older than ``P2C_STAGING_RETENTION_DAYS`` are removed.

A run's staging folder (``<root>/<template>/<run_id>/``) holds personal data: the source
rows as read (names, addresses, e-mail) and the dead letters with their values. Nothing
reads a finished run's folder once its retries are over, so it is kept only as long as
someone may want to look at it (default :data:`DEFAULT_RETENTION_DAYS`).

What is never removed: the state later runs depend on, in the ``_``-prefixed folders beside
the runs (pending ledger ``_pending/``, watermarks ``_watermarks/``, change-tracking
cursors ``_delta_tokens/``, shared deltas ``_deltas/``, source index ``_source_index/``),
and anything that is not a template's folder (the purge walks only ``<root>/<template>/``
for the templates it knows).

A run folder's age is that of its newest file, so a run that a retry touched yesterday is
kept however old its first attempt is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypedDict

from prospect_to_cash.settings import NumberSetting
from prospect_to_cash.sync.staging import as_path

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

RETENTION_VARIABLE = "P2C_STAGING_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 30
#: Folders of the staging root that hold state later runs need; the purge never enters them.
KEPT_FOLDERS = ("_pending", "_watermarks", "_delta_tokens", "_deltas", "_source_index")


#: The retention in days: at least 1, since a run's retries need yesterday's journals.
RETENTION = NumberSetting("retention days", RETENTION_VARIABLE, DEFAULT_RETENTION_DAYS, "days", 1)


def retention_days(value: int | str | None = None) -> int:
    """Days a run's staging is kept: ``value``, else ``P2C_STAGING_RETENTION_DAYS``, else
    :data:`DEFAULT_RETENTION_DAYS` (:data:`RETENTION`)."""
    return RETENTION.read(value)


class PurgeReport(TypedDict):
    """What a purge did (the cleanup task's XCom: folder names, no row data)."""

    cutoff: str
    retention_days: int
    removed: list[str]
    kept: int


@dataclass
class _Tally:
    removed: list[str] = field(default_factory=list)
    kept: int = 0


def _modified(info: dict[str, Any]) -> float | None:
    """A file's modification time from an fsspec ``info`` (local: ``mtime``; Azure:
    ``last_modified``, a datetime; S3-style: ``LastModified``)."""
    for key in ("last_modified", "LastModified", "mtime", "updated"):
        value = info.get(key)
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and value:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def _newest(folder: ObjectStoragePath) -> float | None:
    """The newest modification time of any file under ``folder`` (None: no files)."""
    found = folder.fs.find(folder.path, detail=True)
    times = [t for t in (_modified(info) for info in found.values()) if t is not None]
    return max(times) if times else None


def purge_staging(
    root: str | ObjectStoragePath | None = None,
    *,
    days: int | str | None = None,
    templates: Iterable[str] | None = None,
    now: datetime | None = None,
) -> PurgeReport:
    """Remove every template run folder whose newest file is older than the retention.

    :param root: the staging root (default: ``P2C_STAGING_ROOT``, as every task uses).
    :param days: the retention (default: :func:`retention_days`).
    :param templates: the template folders to look in (default: every known template).
    :param now: the moment the age is measured from (tests move it forward).
    """
    from prospect_to_cash.sync.mapping import TEMPLATES

    base = as_path(root)
    kept_days = retention_days(days)
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=kept_days)
    tally = _Tally()
    for template in sorted(templates if templates is not None else TEMPLATES):
        if template in KEPT_FOLDERS or template.startswith("_"):
            raise ValueError(f"{template!r} is not a template folder; the purge never enters it")
        folder = base / template
        if not folder.exists():
            continue
        for run in sorted(folder.iterdir(), key=lambda p: p.name):
            if not run.is_dir():
                continue
            newest = _newest(run)
            if newest is not None and newest >= cutoff.timestamp():
                tally.kept += 1
                continue
            run.fs.rm(run.path, recursive=True)
            tally.removed.append(f"{template}/{run.name}")
    if tally.removed:
        log.info(
            "staging retention %d days: removed %d run folders older than %s",
            kept_days,
            len(tally.removed),
            cutoff.isoformat(),
        )
    return {
        "cutoff": cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "retention_days": kept_days,
        "removed": tally.removed,
        "kept": tally.kept,
    }
