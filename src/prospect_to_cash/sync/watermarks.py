"""High-water marks: how far each template, company pair and task has been read, so a
scheduled run starts where the last successful one ended and a skipped or failed
interval leaves no gap.

One small JSON file per task beside the runs' folders in staging:
``<root>/_watermarks/<template>/<company>/<task>.json`` (``{"mark", "run_id",
"updated_at"}``), replaced atomically like the pending ledger. The rules:

- a ``since_watermark`` window (a scheduled run, the CLI's ``--from-watermark``) reads from
  ``min(start, mark - overlap)`` (``mark - overlap`` when it has no start) to its end; any
  other window is read exactly as given;
- the mark moves when a load finishes (not in a dry run): to the end of the window read
  (the time the extract started when the window has no end), and only forwards, and only
  when the window started at or before the mark (a window beyond a gap leaves it where
  the gap starts); a task without a mark takes the first window's end;
- a full refresh reads everything and sets the mark to the time its extract started,
  whatever it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, TypedDict

from prospect_to_cash.sync.contracts import Window, iso_utc
from prospect_to_cash.sync.staging import TaskStateFile, atomic_write

if TYPE_CHECKING:
    from prospect_to_cash.sync.context import SyncContext

FOLDER = "_watermarks"


class ReadWindow(TypedDict):
    """What an extract read (``source/window.json``), for the load to move the mark."""

    start: str | None
    end: str | None
    full_refresh: bool
    read_at: str


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Watermark(TaskStateFile):
    """The high-water mark of one task of one template for one company pair."""

    folder = FOLDER

    def read(self) -> str | None:
        """The mark (UTC text), or None before the first successful load."""
        if not self.path.exists():
            return None
        with self.path.open("r") as handle:
            return iso_utc(json.load(handle)["mark"])

    def window(self, window: Window, overlap_seconds: float) -> Window:
        """The window a run reads: ``window`` itself, or for a ``since_watermark`` window
        one that starts at the mark less the overlap when that is earlier."""
        mark = self.read()
        if not window.since_watermark or window.full_refresh or mark is None:
            return window
        start = iso_utc(_moment(mark) - timedelta(seconds=overlap_seconds))
        assert start is not None
        return window.but(start=min(start, window.start) if window.start else start)

    def advance(self, read: ReadWindow, run_id: str) -> str | None:
        """Move the mark after a load of what ``read`` describes; returns the mark."""
        mark = self.read()
        reached = read["end"] or read["read_at"]
        if read["full_refresh"] or read["start"] is None:
            new = read["read_at"] if read["full_refresh"] else max(mark or reached, reached)
        elif mark is None or read["start"] <= mark:
            new = max(mark or reached, reached)
        else:
            return mark  # a window beyond a gap: the gap still has to be read
        if new != mark:
            self._write({"mark": new, "run_id": run_id, "updated_at": now_utc()})
        return new

    def _write(self, data: dict[str, str]) -> None:
        with atomic_write(self.path, "w") as handle:
            json.dump(data, handle, sort_keys=True)


def watermark_of(ctx: SyncContext) -> Watermark:
    """The mark of a step's template, company pair and task."""
    return Watermark.of(ctx)
