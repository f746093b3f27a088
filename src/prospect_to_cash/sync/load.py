"""The load step: write a task's plan through its target hook, journal every outcome, and
run the second pass for self-references.

Idempotence and resumability:

* Dataverse creates carry a deterministic primary key (uuid5 of entity set + natural
  key); a create repeated after a crash answers "already exists" and is turned into an
  update of that same row, so no second row can appear.
* F&O creates are only planned for keys the snapshot shows absent; an "already exists"
  answer on a retry is resolved by reading the row and updating what differs.
* Outcomes are journaled as they arrive; a retried load skips operations already
  confirmed, and a fresh run re-plans from a new snapshot, so a rerun after success
  writes nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from prospect_to_cash.hooks.operations import WriteKind, WriteOperation, WriteOutcome
from prospect_to_cash.sync import deadletter
from prospect_to_cash.sync.context import (
    OUTCOME,
    OUTCOME_SCHEMA,
    PLANNED,
    SyncContext,
    base_result,
    make_context,
    odata_literal,
    read_pages,
)
from prospect_to_cash.sync.errors import SyncError
from prospect_to_cash.sync.mapping import COMPANY_FIELD, FieldMapping, Task, Template
from prospect_to_cash.sync.transform import BIND_PREFIX, CHANGED, ID, REF, SOURCE_KEY
from prospect_to_cash.sync.values import is_blank, normalize, py, values_equal

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prospect_to_cash.sync.staging import TaskStaging

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
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
_ALREADY_EXISTS = re.compile(r"already exists|duplicate key|matching key values", re.IGNORECASE)


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
    row: dict[str, Any]


@dataclass
class _LoadState:
    journal_index: int
    done: set[tuple[str, str]]
    failures: list[dict[str, Any]] = field(default_factory=list)
    results: dict[tuple[str, str], bool] = field(default_factory=dict)


def _journal(ctx: SyncContext, state: _LoadState, outcomes: list[tuple[_Pending, WriteOutcome]]) -> None:
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
    ctx.staging.write_frame("plan", f"journal-{state.journal_index:06d}", frame, JOURNAL_SCHEMA)
    state.journal_index += 1


def _already_exists(outcome: WriteOutcome) -> bool:
    return outcome.status in (409, 412) or bool(_ALREADY_EXISTS.search(outcome.message or ""))


def _resolve_fno_existing(ctx: SyncContext, pending: _Pending) -> WriteOutcome:
    """An F&O create answered "already exists" (a retry after a lost answer): read the
    row, and update whatever differs from the plan."""
    task = ctx.task
    key = pending.operation.key
    query = " and ".join(f"{name} eq {odata_literal(value)}" for name, value in key.items())
    rows = []
    for page in read_pages(ctx, "fno", task.target.entity_set, list(task.snapshot_columns), query):
        rows.extend(page.to_dict("records"))
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


def _resolve_dataverse_existing(ctx: SyncContext, pending: _Pending) -> WriteOutcome:
    """A Dataverse create with our deterministic id answered "already exists": that row is
    ours from an earlier attempt, so send the same body as an update."""
    update = WriteOperation(
        WriteKind.UPDATE,
        pending.operation.entity_set,
        pending.operation.key,
        pending.operation.body,
        pending.operation.ref,
    )
    return next(iter(ctx.hooks.for_system("dataverse").write([update])))


def _write_batches(ctx: SyncContext, state: _LoadState, pending: list[_Pending], batch_size: int) -> None:
    hook = ctx.hooks.for_system(ctx.task.target_system)
    todo = [p for p in pending if (p.phase, p.operation.ref) not in state.done]
    for phase, ref in {(p.phase, p.operation.ref) for p in pending} & state.done:
        state.results[(phase, ref)] = True
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        by_ref = {p.operation.ref: p for p in batch}
        answered: list[tuple[_Pending, WriteOutcome]] = []
        for outcome in hook.write([p.operation for p in batch]):
            item = by_ref.get(outcome.ref)
            if item is None:
                raise SyncError(f"hook answered for unknown ref {outcome.ref!r}")
            if not outcome.ok and item.operation.kind == WriteKind.CREATE and _already_exists(outcome):
                resolver = (
                    _resolve_dataverse_existing
                    if ctx.task.target_system == "dataverse"
                    else _resolve_fno_existing
                )
                outcome = resolver(ctx, item)
            answered.append((item, outcome))
        missing = set(by_ref) - {p.operation.ref for p, _ in answered}
        if missing:
            raise SyncError(f"hook gave no outcome for {len(missing)} operations, e.g. {sorted(missing)[:3]}")
        _journal(ctx, state, answered)
        for item, outcome in answered:
            state.results[(item.phase, item.operation.ref)] = outcome.ok
            if not outcome.ok:
                state.failures.append(
                    {
                        "ref": item.operation.ref,
                        "source_key": item.row.get(SOURCE_KEY),
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


def _read_plan(staging: TaskStaging, name: str) -> list[dict[str, Any]]:
    frame = staging.read_frame_if_exists("plan", name)
    return [] if frame is None else frame.to_dict("records")


def load(
    template: str | Template,
    task: str,
    *,
    legal_entity: str,
    run_id: str,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    **options: Any,
) -> dict[str, Any]:
    """Write the plan through the hook: creates and updates, then the second pass.

    :param dry_run: report the plan (counts and samples) without writing anything.
    :param batch_size: operations handed to the hook per call; each call's outcomes are
        journaled before the next, so a retried load resumes after the last batch.
    """
    ctx = make_context(template, task, legal_entity, run_id, options)
    staging = ctx.staging
    summary = staging.read_json("plan", "summary")
    result = base_result(ctx, "load")
    if dry_run:
        result.update(dry_run=True, counts=summary["counts"], samples=summary["samples"])
        log.info(
            "%s/%s [%s]: dry run, nothing written: %s",
            ctx.template.name,
            ctx.task.name,
            legal_entity,
            summary["counts"],
        )
        return result

    journal = staging.read_many(staging.list("plan", "journal-"))
    done: set[tuple[str, str]] = set()
    if journal is not None and len(journal):
        done = {
            (p, r) for p, r, ok in zip(journal["phase"], journal["ref"], journal["ok"], strict=True) if ok
        }
    state = _LoadState(journal_index=len(staging.list("plan", "journal-")), done=done)

    task_spec = ctx.task
    creates, updates = _read_plan(staging, "creates"), _read_plan(staging, "updates")
    create_names = _create_fields(task_spec)
    pending: list[_Pending] = []
    for row in creates:
        body = _body(task_spec, row, create_names, skip_none=True)
        if (
            task_spec.target_system == "dataverse"
            and task_spec.target.company_scope == "owner"
            and ctx.pair.owner
        ):
            body["ownerid@odata.bind"] = ctx.pair.owner
        pending.append(
            _Pending(
                WriteOperation(
                    WriteKind.CREATE, task_spec.target.entity_set, _key(task_spec, row), body, row[REF]
                ),
                "load",
                row,
            )
        )
    for row in updates:
        changed = _names(row[CHANGED])
        body = _body(task_spec, row, changed, skip_none=False)
        pending.append(
            _Pending(
                WriteOperation(
                    WriteKind.UPDATE, task_spec.target.entity_set, _key(task_spec, row), body, row[REF]
                ),
                "load",
                row,
            )
        )
    _write_batches(ctx, state, pending, batch_size)

    # second pass: self-references, only for rows whose first pass is in place
    planned = staging.read_frame("plan", PLANNED)
    bad_refs = {
        str(r).casefold()
        for r, s in zip(planned[REF], planned["status"], strict=True)
        if s == "rejected" and not is_blank(r)
    }
    bad_refs |= {ref.casefold() for (phase, ref), ok in state.results.items() if phase == "load" and not ok}
    second: list[_Pending] = []
    for row in _read_plan(staging, "second_pass"):
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
            state.results[("second_pass", row[REF])] = False
            changed = [n for n in changed if n not in blocked]
        if changed:
            body = _body(task_spec, row, changed, skip_none=False)
            second.append(
                _Pending(
                    WriteOperation(
                        WriteKind.UPDATE, task_spec.target.entity_set, _key(task_spec, row), body, row[REF]
                    ),
                    "second_pass",
                    row,
                )
            )
    _write_batches(ctx, state, second, batch_size)

    outcome = _final_outcome(planned, state)
    paths = {
        "outcome": staging.write_frame("plan", OUTCOME, outcome, OUTCOME_SCHEMA),
        "failed": deadletter.write_failed(staging, state.failures),
    }
    counts = _counts(summary["counts"], outcome, state)
    staging.write_json("plan", "load-summary", {"counts": counts})
    log.info(
        "%s/%s [%s]: %s",
        ctx.template.name,
        ctx.task.name,
        legal_entity,
        ", ".join(f"{k}={v}" for k, v in counts.items()),
    )
    for failure in state.failures[:20]:
        log.warning(
            "%s/%s failed %s: %s", ctx.template.name, ctx.task.name, failure["ref"], failure["reason"]
        )
    result.update(dry_run=False, paths=paths, counts=counts)
    return result


def _final_outcome(planned: pd.DataFrame, state: _LoadState) -> pd.DataFrame:
    statuses, reasons = [], []
    failures = {(f.get("stage", "load"), f["ref"]): f["reason"] for f in state.failures}
    for ref, status, reason in zip(planned[REF], planned["status"], planned["reason"], strict=True):
        if status in ("create", "update"):
            ok = state.results.get(("load", ref), False)
            statuses.append(("created" if status == "create" else "updated") if ok else "failed")
            reasons.append(None if ok else failures.get(("load", ref), "not written"))
        else:
            statuses.append(status)
            reasons.append(py(reason))
    outcome = planned.copy()
    outcome["status"] = statuses
    outcome["reason"] = reasons
    return outcome


def _counts(plan_counts: dict[str, int], outcome: pd.DataFrame, state: _LoadState) -> dict[str, int]:
    status = outcome["status"].tolist()
    second = [ok for (phase, _), ok in state.results.items() if phase == "second_pass"]
    return {
        "read": int(plan_counts["read"]),
        "skipped": int(plan_counts["skipped"]),
        "created": status.count("created"),
        "updated": status.count("updated"),
        "unchanged": status.count("unchanged"),
        "rejected": status.count("rejected"),
        "failed": status.count("failed"),
        "second_pass_updated": sum(1 for ok in second if ok),
        "second_pass_failed": sum(1 for ok in second if not ok),
    }
