"""The load step: write a task's plan through its target hook, journal every outcome, and
run the second pass for self-references.

Idempotence and resumability:

* Dataverse creates carry a deterministic primary key (uuid5 of entity set + natural
  key); a create repeated after a crash answers "already exists" (412 or a duplicate error
  code) and is turned into an update of that same row, so no second row can appear.
* F&O creates are only planned for keys the snapshot shows absent; a create refused with
  a 409, 412 or 5xx (F&O answers "the record already exists" with a 500 and an empty error
  code) is resolved by reading the key back: when the row is there, what differs is updated.
* No outcome is ever decided by the text of an error message, which a localized
  environment translates.
* Outcomes are journaled as they arrive; a retried load skips operations already
  confirmed, and a fresh run re-plans from a new snapshot, so a rerun after success
  writes nothing.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prospect_to_cash.hooks.operations import INTERRUPTED, WriteKind, WriteOperation, WriteOutcome
from prospect_to_cash.sync import deadletter, exports, source_digests
from prospect_to_cash.sync.changes import commit_token
from prospect_to_cash.sync.children import record_released
from prospect_to_cash.sync.columns import (
    BIND_PREFIX,
    CHANGED,
    ID,
    OUTCOME,
    OUTCOME_SCHEMA,
    PLANNED,
    REF,
    SOURCE_KEY,
)
from prospect_to_cash.sync.context import (
    SyncContext,
    base_result,
    make_context,
)
from prospect_to_cash.sync.contracts import CompanyPair, SyncArgs, SyncOptions, resolve
from prospect_to_cash.sync.deletes import apply_source_deletes
from prospect_to_cash.sync.errors import SyncError
from prospect_to_cash.sync.mapping import COMPANY_FIELD, FieldMapping, Task, Template
from prospect_to_cash.sync.pending import PendingLedger, fingerprint, ledger_of
from prospect_to_cash.sync.privacy import ROW_VALUES_VARIABLE, log_row_values
from prospect_to_cash.sync.reading import odata_literal, read_pages
from prospect_to_cash.sync.values import is_blank, natural_key, normalize, py, values_equal
from prospect_to_cash.sync.watermarks import watermark_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from typing_extensions import Unpack

    from prospect_to_cash.sync.contracts import LoadResult
    from prospect_to_cash.sync.staging import TaskStaging

log = logging.getLogger(__name__)

JOURNAL_SCHEMA = pa.schema(
    [
        ("ref", pa.string()),
        ("phase", pa.string()),
        ("ok", pa.bool_()),
        ("status", pa.int64()),
        ("error_code", pa.string()),
        ("message", pa.string()),
    ]
)
#: Dataverse error codes of a create refused because the key is taken: DuplicateRecord
#: ("Cannot insert duplicate key", -2147220937) and a duplicate alternate key.
_DATAVERSE_DUPLICATE_CODES = frozenset({"0x80040237", "0x80060892"})


# -- load --------------------------------------------------------------------------------------


def _json_value(value: Any, field_type: str) -> Any:
    value = py(value)
    if value is None:
        return None
    if field_type == "decimal":
        return float(value)
    if field_type in ("int", "option"):
        return int(value)
    if field_type == "bool":
        return bool(value)
    return value


def _bind(mapping: FieldMapping, row: dict[str, Any]) -> tuple[str, str] | None:
    if mapping.bind is not None:
        return mapping.bind.navigation, mapping.bind.entity_set
    marker = py(row.get(BIND_PREFIX + mapping.target))
    if marker:
        navigation, entity_set = str(marker).split("|", 1)
        return navigation, entity_set
    return None


def _body(task: Task, row: dict[str, Any], names: Iterable[str], *, skip_none: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in names:
        mapping = task.field(name)
        value = py(row.get(name))
        if mapping is None:  # the company column of an F&O key
            if value is not None:
                body[name] = value
            continue
        if mapping.is_bind:
            target = _bind(mapping, row)
            if value is None or target is None:
                continue  # lookups are set, never cleared, by the engine
            body[f"{target[0]}@odata.bind"] = f"/{target[1]}({value})"
            continue
        if value is None and skip_none:
            continue
        body[name] = _json_value(value, mapping.type)
    return body


def _key(task: Task, row: dict[str, Any]) -> dict[str, Any]:
    if task.target_system == "dataverse":
        assert task.target.primary_id
        return {task.target.primary_id: py(row[ID])}
    return {
        name: _json_value(row.get(name), task.field(name).type if task.field(name) else "string")
        for name in task.target.key
    }


def _create_fields(task: Task) -> list[str]:
    names = [f.target for f in task.fields if f.write and not f.second_pass]
    if task.target_system == "fno" and COMPANY_FIELD in task.target.key and COMPANY_FIELD not in names:
        names.insert(0, COMPANY_FIELD)
    return names


@dataclass
class _Pending:
    operation: WriteOperation
    phase: str
    source_key: Any


@dataclass
class _LoadState:
    """What one load has learnt so far. Only failures (and the few second-pass rows) are kept
    per row: an operation the hook answered and that is not among the failures was written,
    so memory grows with the failures, not with the rows."""

    journal_index: int
    done: set[tuple[str, str]]
    failures: list[dict[str, Any]] = field(default_factory=list)
    second_pass_written: set[str] = field(default_factory=set)

    def failed_refs(self, phase: str) -> set[str]:
        return {f["ref"] for f in self.failures if f["stage"] == phase}

    def confirm(self, phase: str, ref: str) -> None:
        if phase == "second_pass":
            self.second_pass_written.add(ref)


class _Journal:
    """Outcomes appended to staging as they arrive, flushed every ``every`` outcomes or
    ``seconds``, whichever comes first: a load killed at any moment loses at most that much
    bookkeeping (the writes themselves are idempotent, so a lost entry only costs a resend)."""

    def __init__(self, ctx: SyncContext, state: _LoadState, every: int, seconds: float) -> None:
        self.ctx, self.state, self.every, self.seconds = ctx, state, every, seconds
        self.buffer: list[tuple[_Pending, WriteOutcome]] = []
        self.flushed_at = time.monotonic()

    def add(self, item: _Pending, outcome: WriteOutcome) -> None:
        self.buffer.append((item, outcome))
        if len(self.buffer) >= self.every or time.monotonic() - self.flushed_at >= self.seconds:
            self.flush()

    def flush(self) -> None:
        self.flushed_at = time.monotonic()
        if not self.buffer:
            return
        outcomes, self.buffer = self.buffer, []
        frame = pd.DataFrame(
            {
                "ref": [p.operation.ref for p, _ in outcomes],
                "phase": [p.phase for p, _ in outcomes],
                "ok": [o.ok for _, o in outcomes],
                "status": [o.status for _, o in outcomes],
                "error_code": [o.error_code for _, o in outcomes],
                "message": [o.message for _, o in outcomes],
            }
        )
        name = f"journal-{self.state.journal_index:06d}"
        self.ctx.staging.write_frame("plan", name, frame, JOURNAL_SCHEMA)
        self.state.journal_index += 1


def _may_exist(system: str, outcome: WriteOutcome) -> bool:
    """Whether a failed create may have met an existing row, by status and error code only.

    Dataverse says so with 412 or a duplicate error code. F&O's duplicate answer is a 500
    with an empty code, like any other server-side failure, so every 409, 412 and 5xx of an
    F&O create is checked by reading the key back (`_resolve_fno_existing`).
    """
    if outcome.status in (409, 412):
        return True
    if system == "dataverse":
        return (outcome.error_code or "").lower() in _DATAVERSE_DUPLICATE_CODES
    return (outcome.status or 0) >= 500


def _resolve_fno_existing(ctx: SyncContext, pending: _Pending, refused: WriteOutcome) -> WriteOutcome:
    """An F&O create was refused in a way that may mean the key is taken (a retry after a lost
    answer): read the key back; no row means the refusal stands, one row is updated where it
    differs from the plan."""
    task = ctx.task
    key = pending.operation.key
    query = " and ".join(f"{name} eq {odata_literal(value)}" for name, value in key.items())
    rows = []
    for page in read_pages(ctx, "fno", task.target.entity_set, list(task.snapshot_columns), query):
        rows.extend(page.to_dict("records"))
    if not rows:
        return refused  # the key is free: the create failed for another reason
    if len(rows) != 1:
        return WriteOutcome(
            ref=pending.operation.ref,
            ok=False,
            status=409,
            message=f"create refused as existing, but {len(rows)} rows read back",
        )
    current = rows[0]
    changed = []
    for name, value in pending.operation.body.items():
        mapping = task.field(name)
        if mapping is None or name in task.target.key:
            continue
        try:
            existing = normalize(
                current.get(mapping.snapshot_column), mapping.type, scale=mapping.scale, system="fno"
            )
            wanted = normalize(value, mapping.type, scale=mapping.scale, system="fno")
        except ValueError:
            existing, wanted = current.get(name), value
        if not values_equal(wanted, existing):
            changed.append(name)
    if not changed:
        return WriteOutcome(
            ref=pending.operation.ref, ok=True, status=200, message="already existed as planned"
        )
    update = WriteOperation(
        WriteKind.UPDATE,
        task.target.entity_set,
        key,
        {n: pending.operation.body[n] for n in changed},
        pending.operation.ref,
    )
    return next(iter(ctx.hooks.for_system("fno").write([update])))


def _resolve_dataverse_existing(ctx: SyncContext, pending: _Pending, refused: WriteOutcome) -> WriteOutcome:
    """A Dataverse create with our deterministic id answered "already exists": that row is
    ours from an earlier attempt, so send the same body as an update (``If-Match: *``). A
    404 is the read-back saying no row has our id (another row holds an alternate key): the
    create's refusal stands."""
    update = WriteOperation(
        WriteKind.UPDATE,
        pending.operation.entity_set,
        pending.operation.key,
        pending.operation.body,
        pending.operation.ref,
    )
    outcome = next(iter(ctx.hooks.for_system("dataverse").write([update])))
    return refused if not outcome.ok and outcome.status == 404 else outcome


def _write_stream(
    ctx: SyncContext,
    state: _LoadState,
    pending: Iterable[_Pending],
    *,
    journal_every: int,
    journal_seconds: float,
    expected: int | None = None,
) -> None:
    """Hand every operation of one phase to the hook in one lazy stream and record outcomes
    as they arrive.

    One stream (not one hook call per slice) keeps the hook's pipeline full: it runs as
    many units in flight as the service allows, with no barrier where the slowest unit of
    a slice holds back the next slice. Only the operations in flight are held in memory.
    ``expected`` (the phase's planned operations) lets the hook size its units to use every
    parallel slot.
    """
    hook = ctx.hooks.for_system(ctx.task.target_system)
    in_flight: dict[str, _Pending] = {}

    def operations() -> Iterator[WriteOperation]:
        for item in pending:
            if (item.phase, item.operation.ref) in state.done:
                state.confirm(item.phase, item.operation.ref)
                continue
            if item.operation.ref in in_flight:
                raise SyncError(f"two operations of one load share the ref {item.operation.ref!r}")
            in_flight[item.operation.ref] = item
            yield item.operation

    stream = operations()
    first = next(stream, None)
    if first is None:
        return  # nothing left to write in this phase: no hook call at all
    journal = _Journal(ctx, state, journal_every, journal_seconds)
    try:
        for outcome in hook.write(itertools.chain([first], stream), expected=expected):
            item = in_flight.pop(outcome.ref, None)
            if item is None:
                raise SyncError(f"hook answered for unknown ref {outcome.ref!r}")
            system = ctx.task.target_system
            if not outcome.ok and item.operation.kind == WriteKind.CREATE and _may_exist(system, outcome):
                resolver = _resolve_dataverse_existing if system == "dataverse" else _resolve_fno_existing
                outcome = resolver(ctx, item, outcome)
            journal.add(item, outcome)
            _record(state, item, outcome)
    finally:
        journal.flush()
    if in_flight:
        raise SyncError(f"hook gave no outcome for {len(in_flight)} operations, e.g. {sorted(in_flight)[:3]}")


def _record(state: _LoadState, item: _Pending, outcome: WriteOutcome) -> None:
    if outcome.ok:
        state.confirm(item.phase, item.operation.ref)
        return
    state.failures.append(
        {
            "ref": item.operation.ref,
            "source_key": item.source_key,
            "record_id": natural_key(list(item.operation.key.values())),
            "reason": outcome.message or f"HTTP {outcome.status}",
            "status": outcome.status,
            "error_code": outcome.error_code,
            "row": {
                "kind": item.operation.kind.value,
                "key": dict(item.operation.key),
                "body": dict(item.operation.body),
            },
            "stage": item.phase,
        }
    )


def _names(value: Any) -> list[str]:
    """A list column read back from Parquet (numpy array, list or None) as names."""
    if value is None or isinstance(value, float):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _iter_plan(staging: TaskStaging, name: str, rows_per_batch: int) -> Iterator[dict[str, Any]]:
    """The rows of a plan file, read one record batch at a time (never the whole file)."""
    target = staging.path("plan", name)
    if not target.exists():
        return
    with target.open("rb") as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=rows_per_batch):
            yield from batch.to_pylist()


def _first_pass(ctx: SyncContext, rows_per_batch: int) -> Iterator[_Pending]:
    task_spec = ctx.task
    create_names = _create_fields(task_spec)
    owner = (
        ctx.pair.owner
        if task_spec.target_system == "dataverse" and task_spec.target.company_scope == "owner"
        else None
    )
    entity_set = task_spec.target.entity_set
    for row in _iter_plan(ctx.staging, "creates", rows_per_batch):
        body = _body(task_spec, row, create_names, skip_none=True)
        if owner:
            body["ownerid@odata.bind"] = owner
        operation = WriteOperation(WriteKind.CREATE, entity_set, _key(task_spec, row), body, row[REF])
        yield _Pending(operation, "load", row.get(SOURCE_KEY))
    for row in _iter_plan(ctx.staging, "updates", rows_per_batch):
        body = _body(task_spec, row, _names(row[CHANGED]), skip_none=False)
        operation = WriteOperation(WriteKind.UPDATE, entity_set, _key(task_spec, row), body, row[REF])
        yield _Pending(operation, "load", row.get(SOURCE_KEY))


def _second_pass(
    ctx: SyncContext, state: _LoadState, bad_refs: set[str], rows_per_batch: int
) -> Iterator[_Pending]:
    """Self-references, only for rows whose first pass is in place."""
    task_spec = ctx.task
    for row in _iter_plan(ctx.staging, "second_pass", rows_per_batch):
        if str(row[REF]).casefold() in bad_refs:
            continue
        changed = _names(row[CHANGED])
        blocked = [
            name
            for name in changed
            if task_spec.field(name) is not None
            and task_spec.field(name).lookup is not None
            and task_spec.field(name).lookup.self_reference
            and str(py(row.get(name))).casefold() in bad_refs
        ]
        if blocked:
            state.failures.append(
                {
                    "ref": row[REF],
                    "source_key": row.get(SOURCE_KEY),
                    "reason": "second pass held back: "
                    + ", ".join(f"{n}={py(row.get(n))!r}" for n in blocked)
                    + " was not loaded",
                    "stage": "second_pass",
                }
            )
            changed = [n for n in changed if n not in blocked]
        if changed:
            body = _body(task_spec, row, changed, skip_none=False)
            operation = WriteOperation(
                WriteKind.UPDATE, task_spec.target.entity_set, _key(task_spec, row), body, row[REF]
            )
            yield _Pending(operation, "second_pass", row.get(SOURCE_KEY))


def load(
    template: str | Template,
    task: str,
    *,
    legal_entity: str | CompanyPair,
    options: SyncOptions | None = None,
    **given: Unpack[SyncArgs],
) -> LoadResult:
    """Write the plan through the hook: creates and updates, then the second pass.

    With ``dry_run`` it reports the plan (counts and samples) without writing anything.
    ``journal_every`` outcomes make a journal file (so does ``journal_seconds`` since the
    last one); a retried load skips every operation a journal file confirms, and a slow
    load that is killed loses little bookkeeping.
    """
    options, _ = resolve(options, None, given)
    ctx = make_context(template, task, legal_entity, options)
    journal_every, dry_run = options.journal_every, options.dry_run
    staging = ctx.staging
    summary = staging.read_json("plan", "summary")
    result: LoadResult = {**base_result(ctx, "load")}
    if dry_run:
        result.update(dry_run=True, counts=summary["counts"], samples=summary["samples"])
        log.info(
            "%s/%s [%s]: dry run, nothing written: %s",
            ctx.template.name,
            ctx.task.name,
            ctx.pair.legal_entity,
            summary["counts"],
        )
        return result

    journal_files = staging.list("plan", "journal-")
    journal = staging.read_many(journal_files, drop_torn=True)
    done: set[tuple[str, str]] = set()
    if journal is not None and len(journal):
        confirmed = journal[journal["ok"]]
        done = set(zip(confirmed["phase"], confirmed["ref"], strict=True))
    # numbered after the last file seen, so a dropped torn file never makes one overwritten
    next_index = max((int(p.name.split("-")[1].split(".")[0]) for p in journal_files), default=-1) + 1
    state = _LoadState(journal_index=next_index, done=done)
    del journal
    rows_per_batch = max(journal_every, 1000)
    stream = {"journal_every": journal_every, "journal_seconds": options.journal_seconds}

    planned_writes = int(summary["counts"].get("to_create", 0)) + int(summary["counts"].get("to_update", 0))
    expected = max(planned_writes - sum(1 for phase, _ref in done if phase == "load"), 0)
    _write_stream(ctx, state, _first_pass(ctx, rows_per_batch), expected=expected, **stream)

    planned = staging.read_frame("plan", PLANNED)
    rejected = planned[REF][(planned["status"] == "rejected") & planned[REF].notna()]
    bad_refs = {str(r).casefold() for r in rejected if not is_blank(r)}
    bad_refs |= {str(ref).casefold() for ref in state.failed_refs("load")}
    _write_stream(ctx, state, _second_pass(ctx, state, bad_refs, rows_per_batch), **stream)

    outcome = _final_outcome(planned, state)
    paths = {
        "outcome": staging.write_frame("plan", OUTCOME, outcome, OUTCOME_SCHEMA),
        "failed": deadletter.write_failed(staging, state.failures),
    }
    counts = _counts(summary["counts"], outcome, state)
    counts["unchanged"] += source_digests.unseen_rows(ctx)  # read, unchanged, never planned
    ledger = ledger_of(ctx)
    pending_before = ledger.read()
    current = fingerprint(ctx.task)
    counts["pending"] = ledger.record(
        outcome,
        key_columns=ctx.task.source.key,
        run_id=ctx.run_id,
        record_ids=_record_ids(staging, state),
        twins=_twins(staging),
        current=current,
    )
    counts["parked"], paths["parked"] = _report_parked(ctx, ledger, outcome)
    record_released(ctx, pending_before, outcome)  # their lines come with them (sync/children.py)
    if staging.exists("source", "window", ".json"):  # what the extract read moves the mark
        watermark_of(ctx).advance(staging.read_json("source", "window"), ctx.run_id)
    source_digests.promote(ctx)  # the next windowed run compares its whole read with this one
    exports.loaded(ctx)  # the F&O export rows this load took are kept no longer
    commit_token(ctx)  # the change-tracking token of what the extract read, if it read so
    deleted, paths["deletes"] = apply_source_deletes(ctx, outcome, limit=options.max_source_deletes)
    counts.update(deleted)
    staging.write_json("plan", "load-summary", {"counts": counts})
    log.info(
        "%s/%s [%s]: %s",
        ctx.template.name,
        ctx.task.name,
        ctx.pair.legal_entity,
        ", ".join(f"{k}={v}" for k, v in counts.items()),
    )
    if log_row_values():  # the services' messages quote row values: in the log only when asked
        for failure in state.failures[:20]:
            log.warning(
                "%s/%s failed %s: %s", ctx.template.name, ctx.task.name, failure["ref"], failure["reason"]
            )
    elif state.failures:
        log.warning(
            "%s/%s [%s]: %d write(s) refused; keys and reasons in %s (%s=1 logs them)",
            ctx.template.name,
            ctx.task.name,
            ctx.pair.legal_entity,
            len(state.failures),
            paths.get("failed"),
            ROW_VALUES_VARIABLE,
        )
    result.update(dry_run=False, paths=paths, counts=counts)
    return result


def _record_ids(staging: TaskStaging, state: _LoadState) -> dict[str, str]:
    """Source key -> record id of this run's dead letters (rejected, then failed)."""
    ids: dict[str, str] = {}
    rejected = staging.read_frame_if_exists("deadletter", deadletter.REJECTED)
    if rejected is not None and "record_id" in rejected.columns:
        for key, record in zip(rejected["source_key"], rejected["record_id"], strict=True):
            if not is_blank(key) and not is_blank(record):
                ids[str(key)] = str(record)
    for failure in state.failures:
        if not is_blank(failure["source_key"]) and not is_blank(failure["record_id"]):
            ids[str(failure["source_key"])] = str(failure["record_id"])
    return ids


def _twins(staging: TaskStaging) -> dict[str, list[str]]:
    """Source key -> the record ids of every rejected row of it (lower case)."""
    twins: dict[str, set[str]] = {}
    rejected = staging.read_frame_if_exists("deadletter", deadletter.REJECTED)
    if rejected is not None and "record_id" in rejected.columns:
        for key, record in zip(rejected["source_key"], rejected["record_id"], strict=True):
            if not is_blank(key) and not is_blank(record):
                twins.setdefault(str(key), set()).add(str(record).lower())
    return {key: sorted(ids) for key, ids in twins.items()}


def _report_parked(ctx: SyncContext, ledger: PendingLedger, outcome: pd.DataFrame) -> tuple[int, str | None]:
    """The parked rows this run did not read (`pending`): still not landed, so they are
    counted (``parked``) and listed in ``deadletter/parked.parquet`` like the run's own
    rejects. Returns the count and the file (None when there are none)."""
    read = {str(key) for key in outcome[SOURCE_KEY] if not is_blank(key)}
    parked = [e for e in ledger.read() if e["parked"] and e["source_key"] not in read]
    if not parked:
        if ctx.staging.exists("deadletter", deadletter.PARKED):  # an earlier attempt's list
            ctx.staging.path("deadletter", deadletter.PARKED).unlink()
        return 0, None
    return len(parked), deadletter.write_parked(ctx.staging, parked)


def _final_outcome(planned: pd.DataFrame, state: _LoadState) -> pd.DataFrame:
    """The plan with each create and update turned into created/updated or failed."""
    failures = {f["ref"]: f["reason"] for f in state.failures if f["stage"] == "load"}
    written = planned["status"].isin(["create", "update"])
    failed = written & planned[REF].isin(list(failures))
    outcome = planned.copy()
    outcome.loc[written, "status"] = planned.loc[written, "status"].map(
        {"create": "created", "update": "updated"}
    )
    outcome.loc[failed, "status"] = "failed"
    outcome.loc[written & ~failed, "reason"] = None
    outcome.loc[failed, "reason"] = planned.loc[failed, REF].map(failures)
    return outcome


def _counts(plan_counts: dict[str, int], outcome: pd.DataFrame, state: _LoadState) -> dict[str, int]:
    status = outcome["status"].value_counts()
    second_failed = state.failed_refs("second_pass")
    return {
        "read": int(plan_counts["read"]),
        "skipped": int(plan_counts["skipped"]),
        "rounded": int(plan_counts.get("rounded", 0)),
        **{
            name: int(status.get(name, 0))
            for name in ("created", "updated", "unchanged", "rejected", "failed")
        },
        # a row whose self-reference was held back is not in place, even if its other fields are
        "second_pass_updated": len(state.second_pass_written - second_failed),
        "second_pass_failed": len(second_failed),
        "failed_retryable": sum(
            1 for failure in state.failures if may_heal(failure["status"], failure.get("error_code"))
        ),
    }


#: HTTP statuses of a refusal the service may get over by itself (timeout, throttling).
HEALING_STATUSES = frozenset({408, 429})


def may_heal(status: int | None, error_code: str | None = None) -> bool:
    """Whether a failed write may succeed unchanged later: no answer (transport error,
    ambiguous write, or a unit the hook gave up on after repeated interruptions: status 0,
    error code `INTERRUPTED`), a 5xx, a timeout or throttling beyond the wait budget. A 4xx
    other than those, or a row refused before sending, is about the row's data: retrying
    the same row cannot help."""
    if status is None or error_code == INTERRUPTED:
        return True
    return status >= 500 or status in HEALING_STATUSES
