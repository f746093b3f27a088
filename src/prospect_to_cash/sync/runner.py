"""Entry points the DAG layer calls: extract, snapshot, transform, load, run_task, run_template.

Each takes one template, one task (except ``run_template``) and one company pair (the F&O
legal entity; its business unit comes from the environment), so the DAG can fan out per
pair. Each returns a small JSON-serializable dict: staging paths as strings and integer
counts, never data. Steps find each other's output by the staging layout, so they can
run as separate Airflow tasks or in one call.

Idempotence and resumability:

* Dataverse creates carry a deterministic primary key (uuid5 of entity set + natural
  key); a create repeated after a crash answers "already exists" and is turned into an
  update of that same row, so no second row can appear.
* F&O creates are only planned for keys the snapshot shows absent; an "already exists"
  answer on a retry is resolved by reading the row and updating what differs.
* ``load`` journals every batch's outcomes; a retried load skips operations already
  confirmed, and a fresh run re-plans from a new snapshot, so a rerun after success
  writes nothing.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from prospect_to_cash.hooks.operations import WriteKind, WriteOperation, WriteOutcome
from prospect_to_cash.sync import deadletter
from prospect_to_cash.sync.errors import SyncError
from prospect_to_cash.sync.mapping import COMPANY_FIELD, FieldMapping, Task, Template, load_template
from prospect_to_cash.sync.staging import TaskStaging, as_path, write_run_summary
from prospect_to_cash.sync.transform import (
    BIND_PREFIX,
    CHANGED,
    ID,
    REASON,
    REF,
    ROW,
    SOURCE_KEY,
    Plan,
    TransformInputs,
    build_plan,
    field_schema,
)
from prospect_to_cash.sync.values import is_blank, normalize, py, values_equal

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from prospect_to_cash.sync.environment import CompanyPair

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
SAMPLE_SIZE = 3
PLANNED, OUTCOME = "planned", "outcome"
OUTCOME_SCHEMA = pa.schema(
    [
        (REF, pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("id", pa.string()),
        (SOURCE_KEY, pa.string()),
    ]
)
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


# -- hooks -------------------------------------------------------------------------------------


@dataclass
class SyncHooks:
    """The two hooks the engine talks through (tests pass in-memory stand-ins)."""

    dataverse: Any = None
    fno: Any = None
    dataverse_conn_id: str = "dynamics_dataverse_default"
    fno_conn_id: str = "dynamics_fno_default"

    def for_system(self, system: str) -> Any:
        if system == "dataverse":
            if self.dataverse is None:
                from prospect_to_cash.hooks.dataverse import DataverseHook

                self.dataverse = DataverseHook(dataverse_conn_id=self.dataverse_conn_id)
            return self.dataverse
        if system == "fno":
            if self.fno is None:
                from prospect_to_cash.hooks.fno import FinanceOperationsHook

                self.fno = FinanceOperationsHook(fno_conn_id=self.fno_conn_id)
            return self.fno
        raise ValueError(f"unknown system {system!r}")


@dataclass
class _Context:
    template: Template
    task: Task
    pair: CompanyPair
    staging: TaskStaging
    hooks: SyncHooks
    run_id: str
    options: dict[str, Any] = field(default_factory=dict)


def resolve_template(template: str | Template, legal_entity: str, options: dict[str, Any]) -> Template:
    """The template compiled for this company (its pair's defaults and value maps)."""
    if not isinstance(template, str):
        environment = template.environment
        if environment is not None and (environment.legal_entity or "").casefold() == legal_entity.casefold():
            return template
        template = template.path
    return load_template(
        template,
        mappings_dir=options.get("mappings_dir"),
        environment_file=options.get("environment_file"),
        legal_entity=legal_entity,
    )


def _context(
    template: str | Template, task: str, legal_entity: str, run_id: str, options: dict[str, Any]
) -> _Context:
    loaded = resolve_template(template, legal_entity, options)
    assert loaded.environment is not None
    pair = loaded.environment.company_pair(legal_entity)
    hooks = options.get("hooks") or SyncHooks(
        dataverse_conn_id=options.get("dataverse_conn_id", "dynamics_dataverse_default"),
        fno_conn_id=options.get("fno_conn_id", "dynamics_fno_default"),
    )
    staging = TaskStaging(
        root=as_path(options.get("staging_root")),
        template=loaded.name,
        run_id=run_id,
        company=pair.legal_entity,
        task=loaded.task(task).name,
    )
    return _Context(loaded, loaded.task(task), pair, staging, hooks, run_id, options)


def company_pairs(
    *, mappings_dir: str | None = None, environment_file: str | None = None
) -> list[dict[str, Any]]:
    """The company pairs of the environment, for the DAG layer to fan out over
    (``[{"legal_entity": "usmf", "business_unit": "Contoso US", ...}, ...]``)."""
    from prospect_to_cash.sync.environment import load_environment

    return [pair.to_dict() for pair in load_environment(mappings_dir, environment_file).company_pairs]


# -- reading -----------------------------------------------------------------------------------


def odata_literal(value: Any) -> str:
    """An OData literal for a key or filter value: quoted text (quotes doubled), bare numbers."""
    value = py(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _utc(moment: datetime | str) -> str:
    value = normalize(moment, "datetime")
    assert value is not None
    return value


def combine_filters(*parts: str | None) -> str | None:
    kept = [p.strip() for p in parts if p and p.strip()]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else " and ".join(f"({p})" for p in kept)


def _pages(
    ctx: _Context, system: str, entity_set: str, select: Sequence[str], filter: str | None
) -> Iterator[pd.DataFrame]:
    hook = ctx.hooks.for_system(system)
    page_size = ctx.options.get("page_size")
    kwargs: dict[str, Any] = {"select": list(select), "filter": filter}
    if page_size:
        kwargs["page_size"] = page_size
    if system == "fno":
        kwargs["companies"] = [ctx.pair.legal_entity]
    return hook.iter_pages(entity_set, **kwargs)


def _stream(
    ctx: _Context,
    area: str,
    name: str,
    system: str,
    entity_set: str,
    select: Sequence[str],
    filter: str | None,
) -> tuple[str, int]:
    with ctx.staging.page_writer(area, name, select) as writer:
        for page in _pages(ctx, system, entity_set, select, filter):
            writer.write(page)
    return str(writer.path), writer.rows


def _business_unit_filter(ctx: _Context) -> str | None:
    pair = ctx.pair
    if pair.business_unit_id:
        return f"_owningbusinessunit_value eq {pair.business_unit_id}"
    if not pair.business_unit:
        return None
    hook = ctx.hooks.for_system("dataverse")
    found: list[str] = []
    for page in hook.iter_pages(
        "businessunits",
        select=["businessunitid", "name"],
        filter=f"name eq {odata_literal(pair.business_unit)}",
    ):
        found.extend(str(v) for v in page["businessunitid"].tolist())
    if len(found) != 1:
        raise SyncError(
            f"business unit {pair.business_unit!r} of legal entity {pair.legal_entity!r}: "
            f"found {len(found)} rows, expected 1"
        )
    return f"_owningbusinessunit_value eq {found[0]}"


def _source_filter(
    ctx: _Context, start: datetime | str | None, end: datetime | str | None, full_refresh: bool
) -> str | None:
    task = ctx.task
    window = None
    if task.source.change_field and not full_refresh and (start or end):
        bounds = []
        if start:
            bounds.append(f"{task.source.change_field} ge {_utc(start)}")
        if end:
            bounds.append(f"{task.source.change_field} lt {_utc(end)}")
        window = " and ".join(bounds)
    company = None
    if task.source_system == "dataverse" and task.source.company_scope == "business_unit":
        company = _business_unit_filter(ctx)
    return combine_filters(task.source.filter, window, company)


def _reference_columns(ctx: _Context, name: str) -> list[str]:
    return list(ctx.task.reference_columns(name))


def _stage_references(ctx: _Context, side: str) -> dict[str, Any]:
    system = ctx.task.source_system if side == "source" else ctx.task.target_system
    area = "source" if side == "source" else "target"
    staged: dict[str, Any] = {}
    for reference in ctx.task.references:
        if reference.side != side:
            continue
        path, rows = _stream(
            ctx,
            area,
            f"ref-{reference.name}",
            system,
            reference.entity_set,
            _reference_columns(ctx, reference.name),
            reference.filter,
        )
        staged[reference.name] = {"path": path, "rows": rows}
    return staged


def _base_result(ctx: _Context, step: str) -> dict[str, Any]:
    return {
        "template": ctx.template.name,
        "task": ctx.task.name,
        "legal_entity": ctx.pair.legal_entity,
        "run_id": ctx.run_id,
        "step": step,
        "staging": str(ctx.staging.base),
    }


def extract(
    template: str | Template,
    task: str,
    *,
    legal_entity: str,
    run_id: str,
    data_interval_start: datetime | str | None = None,
    data_interval_end: datetime | str | None = None,
    full_refresh: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Read the source rows of the window (Dataverse ``modifiedon`` within the data
    interval; F&O entities without a change timestamp whole) and the source-side
    reference tables, page by page into staging.

    :param full_refresh: ignore the window and read every row the filter allows.
    :param options: ``staging_root``, ``mappings_dir``, ``environment_file``, ``hooks``,
        ``dataverse_conn_id``, ``fno_conn_id``, ``page_size``.
    """
    ctx = _context(template, task, legal_entity, run_id, options)
    query = _source_filter(ctx, data_interval_start, data_interval_end, full_refresh)
    path, rows = _stream(
        ctx,
        "source",
        "rows",
        ctx.task.source_system,
        ctx.task.source.entity_set,
        ctx.task.source_columns,
        query,
    )
    references = _stage_references(ctx, "source")
    log.info(
        "%s/%s [%s]: extracted %d rows from %s",
        ctx.template.name,
        ctx.task.name,
        legal_entity,
        rows,
        ctx.task.source.entity_set,
    )
    result = _base_result(ctx, "extract")
    result.update(
        path=path,
        read=rows,
        references={name: item["path"] for name, item in references.items()},
        full_refresh=full_refresh,
    )
    return result


def snapshot(
    template: str | Template, task: str, *, legal_entity: str, run_id: str, **options: Any
) -> dict[str, Any]:
    """Read the target's current rows (keys and compared fields) and the target-side
    reference tables into staging."""
    ctx = _context(template, task, legal_entity, run_id, options)
    path, rows = _stream(
        ctx,
        "target",
        "rows",
        ctx.task.target_system,
        ctx.task.target.entity_set,
        ctx.task.snapshot_columns,
        ctx.task.target.filter,
    )
    references = _stage_references(ctx, "target")
    log.info(
        "%s/%s [%s]: snapshot of %d %s rows",
        ctx.template.name,
        ctx.task.name,
        legal_entity,
        rows,
        ctx.task.target.entity_set,
    )
    result = _base_result(ctx, "snapshot")
    result.update(path=path, rows=rows, references={name: item["path"] for name, item in references.items()})
    return result


# -- transform ---------------------------------------------------------------------------------


def _upstream_outcomes(ctx: _Context) -> dict[str, pd.DataFrame]:
    """Outcomes of the tasks this one depends on, from the same run's staging."""
    names = set()
    if ctx.task.parent is not None:
        names.add(ctx.task.parent.task)
    for mapping in ctx.task.fields:
        if mapping.lookup is not None and mapping.lookup.created_by:
            names.add(mapping.lookup.created_by)
    outcomes = {}
    for name in names:
        sibling = ctx.staging.sibling(name)
        for kind in (OUTCOME, PLANNED):
            frame = sibling.read_frame_if_exists("plan", kind)
            if frame is not None:
                outcomes[name] = frame
                break
    return outcomes


def _samples(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    head = frame.head(SAMPLE_SIZE)
    if columns is not None:
        head = head[[c for c in columns if c in head.columns]]
    return json.loads(head.to_json(orient="records", date_format="iso", default_handler=str))


def transform(
    template: str | Template, task: str, *, legal_entity: str, run_id: str, **options: Any
) -> dict[str, Any]:
    """Map, look up, validate and diff; write the plan and the rejected rows to staging."""
    ctx = _context(template, task, legal_entity, run_id, options)
    staging = ctx.staging
    references = {}
    for reference in ctx.task.references:
        area = "source" if reference.side == "source" else "target"
        references[reference.name] = staging.read_frame(area, f"ref-{reference.name}")
    inputs = TransformInputs(
        source=staging.read_frame("source", "rows"),
        snapshot=staging.read_frame("target", "rows"),
        references=references,
        legal_entity=ctx.pair.legal_entity,
        upstream=_upstream_outcomes(ctx),
    )
    plan = build_plan(ctx.task, inputs)
    return _write_plan(ctx, plan)


def _write_plan(ctx: _Context, plan: Plan) -> dict[str, Any]:
    staging = ctx.staging
    schema = field_schema(ctx.task)
    with_changes = field_schema(ctx.task, extra=[(CHANGED, pa.list_(pa.string()))])
    paths = {
        "creates": staging.write_frame("plan", "creates", plan.creates, schema),
        "updates": staging.write_frame("plan", "updates", plan.updates, with_changes),
        "unchanged": staging.write_frame("plan", "unchanged", plan.unchanged, schema),
        "second_pass": staging.write_frame("plan", "second_pass", plan.second_pass, with_changes),
        "planned": staging.write_frame("plan", PLANNED, plan.outcome(), OUTCOME_SCHEMA),
    }
    # a new plan makes any earlier load outcome and journal of this run stale
    for stale in [*staging.list("plan", "journal-"), *staging.list("plan", OUTCOME)]:
        stale.unlink()
    rejected = [
        {"ref": r[REF], "source_key": r[SOURCE_KEY], "reason": r[REASON], "row": r.get(ROW)}
        for r in plan.rejects.to_dict("records")
    ]
    paths["rejected"] = deadletter.write_rejected(staging, rejected)
    counts = plan.counts()
    summary = {"counts": counts, "samples": _plan_samples(ctx.task, plan)}
    paths["summary"] = staging.write_json("plan", "summary", summary)
    log.info(
        "%s/%s [%s]: plan %s",
        ctx.template.name,
        ctx.task.name,
        ctx.pair.legal_entity,
        ", ".join(f"{k}={v}" for k, v in counts.items()),
    )
    for reject in rejected[:20]:
        log.warning(
            "%s/%s rejected %s: %s",
            ctx.template.name,
            ctx.task.name,
            reject["ref"] or reject["source_key"],
            reject["reason"],
        )
    result = _base_result(ctx, "transform")
    result.update(paths=paths, counts=counts)
    return result


def _plan_samples(task: Task, plan: Plan) -> dict[str, list[dict[str, Any]]]:
    columns = [REF, ID, *[f.target for f in task.fields if f.write]]
    return {
        "create": _samples(plan.creates, columns),
        "update": _samples(plan.updates, [*columns, CHANGED]),
        "unchanged": _samples(plan.unchanged, [REF, ID]),
        "rejected": _samples(plan.rejects, [REF, SOURCE_KEY, REASON]),
    }


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


def _journal(ctx: _Context, state: _LoadState, outcomes: list[tuple[_Pending, WriteOutcome]]) -> None:
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


def _resolve_fno_existing(ctx: _Context, pending: _Pending) -> WriteOutcome:
    """An F&O create answered "already exists" (a retry after a lost answer): read the
    row, and update whatever differs from the plan."""
    task = ctx.task
    key = pending.operation.key
    query = " and ".join(f"{name} eq {odata_literal(value)}" for name, value in key.items())
    rows = []
    for page in _pages(ctx, "fno", task.target.entity_set, list(task.snapshot_columns), query):
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


def _resolve_dataverse_existing(ctx: _Context, pending: _Pending) -> WriteOutcome:
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


def _write_batches(ctx: _Context, state: _LoadState, pending: list[_Pending], batch_size: int) -> None:
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
    ctx = _context(template, task, legal_entity, run_id, options)
    staging = ctx.staging
    summary = staging.read_json("plan", "summary")
    result = _base_result(ctx, "load")
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


# -- whole task / whole template ------------------------------------------------------------------


def run_task(
    template: str | Template,
    task: str,
    *,
    legal_entity: str,
    run_id: str,
    data_interval_start: datetime | str | None = None,
    data_interval_end: datetime | str | None = None,
    full_refresh: bool = False,
    dry_run: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Extract, snapshot, transform and load one task; returns the load's result plus
    the staging paths of every step."""
    loaded = resolve_template(template, legal_entity, options)
    common = {"legal_entity": legal_entity, "run_id": run_id, **options}
    extracted = extract(
        loaded,
        task,
        data_interval_start=data_interval_start,
        data_interval_end=data_interval_end,
        full_refresh=full_refresh,
        **common,
    )
    snapped = snapshot(loaded, task, **common)
    planned = transform(loaded, task, **common)
    loaded_result = load(loaded, task, dry_run=dry_run, **common)
    loaded_result["paths"] = {
        **loaded_result.get("paths", {}),
        "source": extracted["path"],
        "target": snapped["path"],
        **{f"plan_{k}": v for k, v in planned["paths"].items()},
    }
    return loaded_result


def run_template(
    template: str | Template,
    *,
    legal_entity: str,
    run_id: str,
    data_interval_start: datetime | str | None = None,
    data_interval_end: datetime | str | None = None,
    full_refresh: bool = False,
    dry_run: bool = False,
    check_metadata: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Every task of a template in file order (headers before lines) for one company pair.

    :param check_metadata: compare the mapping with both services' ``$metadata`` first
        and stop before anything is read or written when they disagree.
    """
    loaded = resolve_template(template, legal_entity, options)
    hooks = options.pop("hooks", None) or SyncHooks(
        dataverse_conn_id=options.get("dataverse_conn_id", "dynamics_dataverse_default"),
        fno_conn_id=options.get("fno_conn_id", "dynamics_fno_default"),
    )
    if check_metadata:
        from prospect_to_cash.sync.metadata_check import check_template

        check_template(loaded, hooks, raise_on_problems=True)
    tasks: dict[str, Any] = {}
    totals: dict[str, int] = {}
    for task in loaded.tasks:
        result = run_task(
            loaded,
            task.name,
            legal_entity=legal_entity,
            run_id=run_id,
            data_interval_start=data_interval_start,
            data_interval_end=data_interval_end,
            full_refresh=full_refresh,
            dry_run=dry_run,
            hooks=hooks,
            **options,
        )
        tasks[task.name] = result
        for name, value in result["counts"].items():
            totals[name] = totals.get(name, 0) + int(value)
    summary = {
        "template": loaded.name,
        "legal_entity": legal_entity,
        "run_id": run_id,
        "dry_run": dry_run,
        "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "counts": totals,
        "tasks": {name: {"counts": r["counts"], "paths": r.get("paths", {})} for name, r in tasks.items()},
    }
    summary["summary_path"] = write_run_summary(
        as_path(options.get("staging_root")), loaded.name, run_id, legal_entity, summary
    )
    if dry_run:
        summary["samples"] = {name: r.get("samples", {}) for name, r in tasks.items()}
    return summary
