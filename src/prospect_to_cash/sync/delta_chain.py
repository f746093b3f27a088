"""One Dataverse delta per template and task, shared by its company pairs.

A table's change-tracking delta is not per company: every business unit's changes come
in it. Read once per company pair, the same rows (and the same deletes) would cross the
wire, and be reported, once per pair. So the delta is read once per template, task and
run, and kept as a **segment** in staging; each pair consumes the segments it has not
consumed yet and keeps its business unit's rows (`changes.read_tracked`).

Layout: ``<root>/_deltas/<template>/<task>/<chain>/``, where ``chain`` names what the
segments hold (entity set, the mapping's source filter, the columns): a mapping that
reads other columns starts a new chain. In it, per segment ``<seq>``:

- ``<seq>.json`` (`SegmentInfo`): the token it ends at, who read it (run id, company
  pair), whether it is the chain's start (``base``: a token only, no rows) or a whole read
  (the token before it had expired), and the ids the delta deleted;
- ``<seq>.<nonce>.parquet``: the rows the service returned (every business unit);
- ``<seq>.claim``: who is reading it now (the others wait for the ``.json``).

**Correct under retries and parallel pairs.** A segment's ``.json`` is created once and
never replaced (`create_once`: an exclusive create), so every pair that consumes segment
``n`` sees the same rows, whoever read it. Each pair keeps a **cursor**, the last segment
it consumed, beside the watermarks (`changes.DeltaTokens`), moved only by its own
finished load: a pair that fails consumes its segments again on retry, and the next run
hands it every segment after its cursor (a row in several keeps its latest version).
So the chain's head may run ahead of a pair, never past what it consumed; segments no
pair needs any more (below every pair's cursor) are removed by the loads (`forget`).
A pair's extract reads a new segment unless one was read in the same run (by the other
pair, or by its own earlier attempt): the pairs of one run see the same delta.

**Deletes are counted once**: a ``$deletedEntity`` carries only an id, no business unit.
A pair reports the deleted ids its own source index knows; the ids no pair's index knows
are reported by the pair that read the segment (`own_deletes`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

import pyarrow.parquet as pq

from prospect_to_cash.sync.staging import TextPageWriter
from prospect_to_cash.sync.watermarks import now_utc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    import pandas as pd
    from airflow.sdk import ObjectStoragePath

    from prospect_to_cash.sync.context import SyncContext

log = logging.getLogger(__name__)

FOLDER = "_deltas"
#: How long a pair waits for another pair's read of the segment it also needs.
WAIT_SECONDS = 1800.0
#: A claim older than this belongs to a reader that died: it may be taken over.
STALE_CLAIM_SECONDS = 3600.0
POLL_SECONDS = 0.25


class SegmentInfo(TypedDict):
    """What one segment holds (``<seq>.json``)."""

    seq: int
    token: str
    base: bool  # the chain's start: a token, no rows
    whole: bool  # the rows are the whole table (a previous token expired)
    fallback: str | None  # why a whole read was made, if one was
    rows_file: str | None
    returned: int
    deleted_ids: list[str]
    run_id: str
    reader: str  # the company pair whose extract read it
    read_at: str


@dataclass(frozen=True)
class DeltaChain:
    """The segments of one template's task for one way of reading its table."""

    root: ObjectStoragePath
    template: str
    task: str
    name: str

    @classmethod
    def of(cls, ctx: SyncContext, select: Sequence[str]) -> DeltaChain:
        """The chain of a step's task: named by the entity set, the mapping's source filter
        and the columns read (never by the business unit: the pairs share it)."""
        source = ctx.task.source
        what = json.dumps([source.entity_set, source.filter, list(select)])
        return cls(
            ctx.staging.root, ctx.template.name, ctx.task.name, hashlib.sha256(what.encode()).hexdigest()[:16]
        )

    @property
    def folder(self) -> ObjectStoragePath:
        return self.root / FOLDER / self.template / self.task / self.name

    def path(self, seq: int, suffix: str) -> ObjectStoragePath:
        return self.folder / f"{seq:08d}{suffix}"

    def segments(self) -> list[int]:
        """The committed segments, oldest first."""
        if not self.folder.exists():
            return []
        names = [p.name for p in self.folder.iterdir()]
        return sorted(int(n[:8]) for n in names if n.endswith(".json") and n[:8].isdigit())

    def info(self, seq: int) -> SegmentInfo:
        with self.path(seq, ".json").open("r") as handle:
            return json.load(handle)  # type: ignore[no-any-return]

    def pages(self, info: SegmentInfo) -> Iterator[pd.DataFrame]:
        """A segment's rows, a row group at a time (text columns, as staged)."""
        if not info["rows_file"]:
            return
        with (self.folder / info["rows_file"]).open("rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches():
                yield batch.to_pandas()


def create_once(path: ObjectStoragePath, text: str) -> bool:
    """Create ``path`` with ``text`` unless it exists, atomically; False when it did.

    On a local disk: a complete temporary file hard-linked into place (the link fails if
    the name exists). On object storage: an upload that may not overwrite (adlfs sends
    ``If-None-Match: *``); a store without conditional writes falls back to a check first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.protocol in ("file", "local", ""):
        target = str(path.path)
        temporary = f"{target}.{uuid.uuid4().hex}.tmp"
        with open(temporary, "w") as handle:
            handle.write(text)
        try:
            os.link(temporary, target)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(temporary)
    try:
        path.fs.pipe_file(path.path, text.encode(), mode="create")
        return True
    except FileExistsError:
        return False
    except Exception as exc:  # azure: ResourceExistsError
        if "exist" in type(exc).__name__.lower():
            return False
        raise


def _claim_is_stale(chain: DeltaChain, seq: int) -> bool:
    try:
        with chain.path(seq, ".claim").open("r") as handle:
            claimed = float(json.load(handle)["at"])
    except (FileNotFoundError, ValueError, KeyError):
        return False
    return time.time() - claimed > STALE_CLAIM_SECONDS


def segment(
    ctx: SyncContext,
    chain: DeltaChain,
    seq: int,
    read: Callable[[TextPageWriter | None], SegmentInfo],
    *,
    columns: Sequence[str] | None,
) -> int:
    """Make sure segment ``seq`` exists: read it (``read`` stages its rows through the
    writer, of ``columns``; None: no rows, no writer) unless another reader has it or is
    reading it, then wait for that one. Returns ``seq``."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not chain.path(seq, ".json").exists():
        claim = json.dumps({"run_id": ctx.run_id, "reader": ctx.pair.legal_entity, "at": time.time()})
        if create_once(chain.path(seq, ".claim"), claim):
            try:
                _read_segment(chain, seq, read, columns)
            finally:
                chain.path(seq, ".claim").unlink(missing_ok=True)
            break
        if _claim_is_stale(chain, seq):
            log.warning(
                "%s/%s: segment %d's reader left a stale claim: taking it over",
                chain.template,
                chain.task,
                seq,
            )
            chain.path(seq, ".claim").unlink(missing_ok=True)
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{chain.template}/{chain.task}: segment {seq} still being read by another pair"
            )
        time.sleep(POLL_SECONDS)
    return seq


def _read_segment(
    chain: DeltaChain,
    seq: int,
    read: Callable[[TextPageWriter | None], SegmentInfo],
    columns: Sequence[str] | None,
) -> None:
    rows_file = f"{seq:08d}.{uuid.uuid4().hex[:12]}.parquet"
    if columns is not None:
        with TextPageWriter(chain.folder / rows_file, columns) as writer:
            info = read(writer)
        info["rows_file"] = rows_file
    else:
        info = read(None)
        info["rows_file"] = None
    info["seq"] = seq
    committed = create_once(chain.path(seq, ".json"), json.dumps(info, sort_keys=True))
    if not committed and info["rows_file"]:  # another reader committed it first (a claim taken over)
        (chain.folder / info["rows_file"]).unlink(missing_ok=True)


def new_info(
    ctx: SyncContext, token: str, returned: int, deleted: Sequence[str], **flags: object
) -> SegmentInfo:
    """A segment's info (``flags``: ``base``, ``whole``, ``fallback``)."""
    return {
        "seq": -1,
        "token": token,
        "base": bool(flags.get("base", False)),
        "whole": bool(flags.get("whole", False)),
        "fallback": flags.get("fallback"),  # type: ignore[typeddict-item]
        "rows_file": None,
        "returned": returned,
        "deleted_ids": [str(i).lower() for i in deleted],
        "run_id": ctx.run_id,
        "reader": ctx.pair.legal_entity,
        "read_at": now_utc(),
    }


def own_deletes(ctx: SyncContext, deleted: Sequence[tuple[SegmentInfo, list[str]]]) -> list[str]:
    """Of the ids each segment deleted, those this pair reports: the ones its source
    index knows, and, of the segments it read itself, the ones no pair's index knows."""
    from prospect_to_cash.sync.deletes import SourceIndex  # deletes imports changes

    if not any(ids for _, ids in deleted):
        return []  # no index to read
    environment = ctx.template.environment
    pairs = [pair.legal_entity for pair in environment.company_pairs] if environment else []
    known: dict[str, set[str]] = {}
    for company in dict.fromkeys([ctx.pair.legal_entity, *pairs]):
        index = SourceIndex(ctx.staging.root, ctx.template.name, company, ctx.task.name)
        known[company.casefold()] = {str(i).lower() for i in index.read()["record_id"].dropna()}
    mine = known[ctx.pair.legal_entity.casefold()]
    anyone = set().union(*known.values())
    kept: list[str] = []
    for info, ids in deleted:
        reader = info["reader"].casefold() == ctx.pair.legal_entity.casefold()
        for record in ids:
            if record in mine or (reader and record not in anyone):
                kept.append(record)
    return list(dict.fromkeys(kept))


def forget(chain: DeltaChain, cursors: Sequence[int]) -> int:
    """Remove the segments every pair has consumed (below the lowest cursor; the head,
    whose token the next read starts from, always stays). Returns how many this call
    removed: pairs that finish together both clean up, so a segment another pair removed
    meanwhile is simply gone, not an error (the load it follows has finished)."""
    if not cursors:
        return 0
    lowest = min(cursors)
    present = chain.segments()
    removed = 0
    for seq in (seq for seq in present[:-1] if seq < lowest):
        try:
            info = chain.info(seq)
        except FileNotFoundError:
            continue  # another pair's forget took it
        if info["rows_file"]:
            (chain.folder / info["rows_file"]).unlink(missing_ok=True)
        chain.path(seq, ".json").unlink(missing_ok=True)
        removed += 1
    return removed
