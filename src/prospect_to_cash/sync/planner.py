"""The out-of-core planner: one task's desired rows against its target → a plan
(creates, updates, unchanged, rejects, second pass), in memory bounded by the chunk size.

The row rules (:mod:`prospect_to_cash.sync.rules`) decide each source row; this module
decides what only the whole task can: duplicate source keys, several source rows for one
target row, and the diff against the snapshot (only the fields that changed go into an
update).

Memory stays bounded by the chunk size (``chunk_rows``, see
:func:`~prospect_to_cash.sync.staging.chunk_rows`), not by the size of the task. The
work goes through a :class:`~prospect_to_cash.sync.staging.Spill` (the task's staging
``work`` area, so Azure storage works as a local disk does; or memory):

- *map*: the source is read ``chunk_rows`` rows at a time; steps 1-5 run per chunk (the
  rules are per row). The mapped rows are kept in source order, and what the decisions
  need of them is spread over ``B = ceil(max(source rows, snapshot rows) / chunk_rows)``
  buckets by a stable hash of the folded target key; the folded source keys go to
  buckets of their own;
- *snapshot*: normalized chunk by chunk into the same buckets by the same hash, so a
  target key's desired and current rows always meet in one bucket;
- duplicate source keys are counted per bucket of source keys (exact: one key, one
  bucket); only the keys seen twice or more are kept;
- *decide*: bucket by bucket, duplicate keys, target duplicates and the diff; each row's
  decision goes to the chunk the row came from;
- *emit*: chunk by chunk, rows and decisions joined into the plan files, so the plan is
  the same, row for row, whatever the chunk size.

Held whole, as compact Arrow: the reference tables (only the columns lookups use), the
folded keys of upstream outcomes (``created_by``, parent hold-back), the keys seen twice
and, for self-referencing tasks, the folded keys of the task's own rows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from prospect_to_cash.sync import diff as differ
from prospect_to_cash.sync.columns import (
    BIND_PREFIX,
    CHANGED,
    EMPTY_KEYS,
    HOLD,
    ID,
    KEY_PREFIX,
    OUTCOME_CATEGORIES,
    OUTCOME_COLUMNS,
    OUTCOME_SCHEMA,
    PLAN_CATEGORIES,
    POS,
    PRE,
    REASON,
    REF,
    REF_FOLD,
    SKEY_FOLD,
    SOURCE_KEY,
    SRC_PREFIX,
    TEXTS,
    compared_fields,
    field_schema,
    plan_schemas,
    rejects_schema,
)
from prospect_to_cash.sync.company_scope import created_row_id
from prospect_to_cash.sync.frame_inputs import FrameInputs, TransformInputs
from prospect_to_cash.sync.key_index import KeyStates
from prospect_to_cash.sync.read_only import ClosedTargets
from prospect_to_cash.sync.rules import PlanInputs, RowRules
from prospect_to_cash.sync.staging import MemorySpill, Spill, chunk_rows
from prospect_to_cash.sync.target_rows import snapshot_table, snapshot_values
from prospect_to_cash.sync.values import (
    py,
    values_equal,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from prospect_to_cash.sync.mapping import Task


@dataclass
class Plan:
    """The transform's result for one task. Frames hold normalized, typed values.

    :param stats: how the work was cut (``chunk_rows``, ``chunks``, ``buckets``) and the
        most rows held at once per phase (``largest_chunk`` mapped or emitted,
        ``largest_bucket`` and ``largest_snapshot_bucket`` decided).
    """

    task: Task
    creates: pd.DataFrame
    updates: pd.DataFrame
    unchanged: pd.DataFrame
    rejects: pd.DataFrame
    second_pass: pd.DataFrame
    read: int
    skipped: int
    stats: dict[str, int] = field(default_factory=dict)
    rounded: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "read": self.read,
            "skipped": self.skipped,
            "to_create": len(self.creates),
            "to_update": len(self.updates),
            "unchanged": len(self.unchanged),
            "rejected": len(self.rejects),
            "second_pass": len(self.second_pass),
            "rounded": sum(self.rounded.values()),
        }

    def outcome(self) -> pd.DataFrame:
        """One row per source row that reached a decision: ref, status, reason, id."""
        parts = [_outcome_part(getattr(self, category), status) for category, status in OUTCOME_CATEGORIES]
        return pd.concat(parts, ignore_index=True)


def _outcome_part(frame: pd.DataFrame, status: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            REF: frame[REF].astype(object) if REF in frame else pd.Series(dtype=object),
            "status": [status] * len(frame),
            "reason": frame[REASON].astype(object) if REASON in frame else [None] * len(frame),
            "id": frame[ID].astype(object) if ID in frame else [None] * len(frame),
            SOURCE_KEY: frame[SOURCE_KEY].astype(object) if SOURCE_KEY in frame else [None] * len(frame),
        },
        columns=list(OUTCOME_COLUMNS),
    )


class PlanSink(Protocol):
    """Receives the plan in its final row order, a bounded table at a time per category
    (:data:`PLAN_CATEGORIES`), each table in the category's schema (:func:`plan_schemas`)."""

    def write(self, category: str, table: pa.Table) -> None: ...


# -- buckets -------------------------------------------------------------------------------------


def _buckets(folds: list[str | None], positions: Sequence[int], count: int) -> np.ndarray:
    """The bucket of each row: a stable hash of its folded key (pandas' keyed SipHash,
    the same in every process), or its position when it has no key."""
    if count == 1:
        return np.zeros(len(folds), dtype=np.int64)
    hashed = pd.util.hash_array(np.array(["" if f is None else f for f in folds], dtype=object))
    buckets = (hashed % np.uint64(count)).astype(np.int64)
    for row, fold in enumerate(folds):
        if fold is None:
            buckets[row] = positions[row] % count
    return buckets


def _scatter(spill: Spill, prefix: str, table: pa.Table, buckets: np.ndarray, count: int) -> None:
    """Append each bucket's rows (in their order) to file ``<prefix>-<bucket>``."""
    if table.num_rows == 0:
        return
    order = np.argsort(buckets, kind="stable")
    ordered = table.take(pa.array(order))
    bounds = np.searchsorted(buckets[order], np.arange(count + 1), side="left")
    for bucket in range(count):
        low, high = int(bounds[bucket]), int(bounds[bucket + 1])
        if high > low:
            spill.append(_bucket_name(prefix, bucket), ordered.slice(low, high - low))


def _bucket_name(prefix: str, bucket: int) -> str:
    return f"{prefix}-{bucket:06d}"


# -- the whole task ---------------------------------------------------------------------------------

# a decision per mapped row, made bucket by bucket and read back chunk by chunk
_CODE, _REJECT_PHASE, _SECOND, _SECOND_PHASE = "__code", "__reject_phase", "__second", "__second_phase"
_CREATE, _UPDATE, _UNCHANGED, _REJECT, _NOTHING = 0, 1, 2, 3, 4
_DECISIONS = pa.schema(
    [
        (POS, pa.int64()),
        (_CODE, pa.int8()),
        (_REJECT_PHASE, pa.int8()),  # rows refused in transform, then ambiguous keys, then update-only
        (REASON, pa.string()),
        (ID, pa.string()),
        (CHANGED, TEXTS),
        (_SECOND, TEXTS),  # fields the second pass writes (null: none)
        (_SECOND_PHASE, pa.int8()),  # second pass: created rows, then updated, then unchanged
    ]
)
_STATUS = {_CREATE: "create", _UPDATE: "update", _UNCHANGED: "unchanged", _REJECT: "rejected"}
_CATEGORY = {_CREATE: "creates", _UPDATE: "updates", _UNCHANGED: "unchanged"}


@dataclass
class PlanResult:
    """What :func:`plan_task` reports besides the files: counts, the first rows of every
    category (samples, log lines) and how the work was cut (:attr:`Plan.stats`)."""

    counts: dict[str, int]
    heads: dict[str, list[dict[str, Any]]]
    stats: dict[str, int]
    #: decimal values rounded to the places the target keeps, per target field
    rounded: dict[str, int] = field(default_factory=dict)


#: Rows of each category :class:`PlanResult` keeps (samples show 3; the log names 20 rejects).
HEAD_ROWS = 20


class _CountingSink:
    """Counts what reaches the real sink and keeps the first rows of each category."""

    def __init__(self, sink: PlanSink) -> None:
        self.sink = sink
        self.counts = dict.fromkeys(PLAN_CATEGORIES, 0)
        self.heads: dict[str, list[dict[str, Any]]] = {name: [] for name in PLAN_CATEGORIES}

    def write(self, category: str, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.counts[category] += table.num_rows
        head = self.heads[category]
        if len(head) < HEAD_ROWS:
            head.extend(table.slice(0, HEAD_ROWS - len(head)).to_pylist())
        self.sink.write(category, table)


class _Planner:
    """The phases of :func:`plan_task` over one spill: map, snapshot, decide, emit."""

    def __init__(self, task: Task, inputs: PlanInputs, spill: Spill, rows: int) -> None:
        self.task = task
        self.inputs = inputs
        self.spill = spill
        self.rows = rows
        self.buckets = max(1, math.ceil(max(inputs.source_rows(), inputs.snapshot_rows()) / rows))
        self.transformer = RowRules(task, inputs, rows)
        #: writes to rows Sales keeps read-only (a closed order, or a line of one) are refused
        self.closed = ClosedTargets(task, inputs.reference) if task.target.read_only_when else None
        self.schemas = plan_schemas(task)
        #: the desired values a decision compares (target duplicates, diff, second pass)
        self.decided = [
            f.name
            for f in self.schemas["creates"]
            if f.name not in (REF, ID, SOURCE_KEY) and not f.name.startswith(BIND_PREFIX)
        ]
        self.chunk_starts: list[int] = []  # source position of each chunk's first row
        self.chunk_groups: list[int | None] = []  # its row group in "rows" (None: route kept none)
        self.stats = {
            "chunk_rows": rows,
            "buckets": self.buckets,
            "chunks": 0,
            "largest_chunk": 0,
            "largest_bucket": 0,
            "largest_snapshot_bucket": 0,
        }
        self.read = 0
        self.skipped = 0

    def run(self, sink: PlanSink) -> PlanResult:
        self._map()
        self._snapshot()
        duplicates = self._duplicate_source_keys()
        for bucket in range(self.buckets):
            self._decide(bucket, duplicates)
        self.spill.finish()
        counting = _CountingSink(sink)
        self._emit(counting)
        counts = {
            "read": self.read,
            "skipped": self.skipped,
            "to_create": counting.counts["creates"],
            "to_update": counting.counts["updates"],
            "unchanged": counting.counts["unchanged"],
            "rejected": counting.counts["rejects"],
            "second_pass": counting.counts["second_pass"],
            "rounded": sum(self.transformer.rounded.values()),
        }
        return PlanResult(
            counts=counts,
            heads=counting.heads,
            stats=dict(self.stats),
            rounded=dict(sorted(self.transformer.rounded.items())),
        )

    # map: every chunk in source order, and its rows spread over the buckets -------------------
    def _map(self) -> None:
        transformer = self.transformer
        if transformer.needs_own_keys():
            transformer.collect_own_keys(self.inputs.source_batches(self.rows))
        start = 0
        for raw in self.inputs.source_batches(self.rows):
            self.stats["chunks"] += 1
            self.stats["largest_chunk"] = max(self.stats["largest_chunk"], raw.num_rows)
            mapped = transformer.map_chunk(raw, start)
            self.chunk_starts.append(start)
            start += raw.num_rows
            self.read += raw.num_rows
            self.skipped += raw.num_rows - mapped.num_rows
            if not mapped.num_rows:
                self.chunk_groups.append(None)
                continue
            self.chunk_groups.append(sum(g is not None for g in self.chunk_groups))
            self.spill.append("rows", mapped)  # one row group per chunk, in source order
            positions = mapped.column(POS).to_pylist()
            decided = mapped.select(
                [POS, SOURCE_KEY, SKEY_FOLD, REF, REF_FOLD, PRE, EMPTY_KEYS, HOLD, *self.decided]
            )
            by_ref = _buckets(mapped.column(REF_FOLD).to_pylist(), positions, self.buckets)
            _scatter(self.spill, "map", decided, by_ref, self.buckets)
            keyed = mapped.select([SKEY_FOLD]).filter(pc.is_valid(mapped.column(SKEY_FOLD)))
            by_key = _buckets(keyed.column(SKEY_FOLD).to_pylist(), [0] * keyed.num_rows, self.buckets)
            _scatter(self.spill, "keys", keyed, by_key, self.buckets)
        self.spill.finish()
        transformer.raise_fatal()

    def _snapshot(self) -> None:
        for raw in self.inputs.snapshot_batches(self.rows):
            table = snapshot_table(self.task, raw, self.inputs.legal_entity)
            buckets = _buckets(table.column(REF_FOLD).to_pylist(), [0] * table.num_rows, self.buckets)
            _scatter(self.spill, "snap", table, buckets, self.buckets)
        self.spill.finish()

    def _duplicate_source_keys(self) -> KeyStates:
        """Folded source keys that occur more than once among the routed rows, with their
        count: exact, since every row of one key is in one bucket of keys."""
        keys: list[str] = []
        counts: list[int] = []
        for bucket in range(self.buckets):
            table = self.spill.read(_bucket_name("keys", bucket))
            if table is None:
                continue
            tally = pc.value_counts(table.column(SKEY_FOLD))
            repeated = tally.filter(pc.greater(tally.field("counts"), 1))
            keys.extend(repeated.field("values").to_pylist())
            counts.extend(repeated.field("counts").to_pylist())
        return KeyStates(keys, counts, [None] * len(counts))

    # decide: one bucket at a time ----------------------------------------------------------
    def _decide(self, bucket: int, duplicates: KeyStates) -> None:
        """Duplicate keys, target duplicates and the diff for the rows of one bucket; the
        decisions go to the chunk each row came from."""
        task = self.task
        mapped = self.spill.read(_bucket_name("map", bucket))
        if mapped is None:
            return
        snapshot = self.spill.read(_bucket_name("snap", bucket))
        self.stats["largest_bucket"] = max(self.stats["largest_bucket"], mapped.num_rows)
        self.stats["largest_snapshot_bucket"] = max(
            self.stats["largest_snapshot_bucket"], snapshot.num_rows if snapshot is not None else 0
        )
        count = mapped.num_rows
        positions = mapped.column(POS).to_pylist()
        source_keys = mapped.column(SOURCE_KEY).to_pylist()
        refs = mapped.column(REF).to_pylist()
        empties = mapped.column(EMPTY_KEYS).to_pylist()
        holds = mapped.column(HOLD).to_pylist()
        seen = duplicates.find(mapped.column(SKEY_FOLD).to_pylist())
        label = "+".join(task.source.key)
        reasons: list[list[str]] = []
        for row, pre in enumerate(mapped.column(PRE).to_pylist()):
            why = list(pre)
            if seen[row] is not None:
                key, times = source_keys[row], seen[row][0]
                why.append(f"duplicate source key {label}={key!r} ({times} rows): rejected, not merged")
            empty = empties[row]
            if empty and not any(f"required field {k} is empty" in r for r in why for k in empty):
                why.append(f"target key {'+'.join(empty)} is empty")
            if holds[row] is not None:
                why.append(holds[row])
            reasons.append(why)
        self.skipped += self._target_duplicates(mapped, refs, reasons)

        code: list[int] = [_NOTHING] * count
        reject_phase: list[int | None] = [None] * count
        reason: list[str | None] = [None] * count
        ids: list[Any] = [None] * count
        changed: list[list[str] | None] = [None] * count
        second_changed: list[list[str] | None] = [None] * count
        second_phase: list[int | None] = [None] * count
        for row in range(count):
            if reasons[row]:
                code[row], reject_phase[row], reason[row] = _REJECT, 0, "; ".join(reasons[row])

        valid = [row for row in range(count) if not reasons[row] and refs[row] is not None]
        compare = compared_fields(task)
        second = [f.target for f in task.fields if f.second_pass and f.write]
        taken = mapped.take(pa.array(valid, type=pa.int64()))
        desired = {name: taken.column(name).to_pylist() for name in [*compare, *second]}
        current: dict[str, list[Any]] = {}
        snapshot_refs: list[Any] = []
        snapshot_ids: list[Any] = []
        if snapshot is not None:
            current = {name: snapshot_values(snapshot, name) for name in [*compare, *second]}
            snapshot_refs = snapshot.column(REF).to_pylist()
            snapshot_ids = snapshot.column(ID).to_pylist()
        result = differ.diff_columns(
            [refs[row] for row in valid],
            desired,
            snapshot_refs,
            current,
            compare=compare,
            ignore_null={f.target for f in task.fields if f.is_bind},
        )

        for position, matches in result.ambiguous.items():
            row = valid[position]
            code[row], reject_phase[row] = _REJECT, 1
            reason[row] = f"target has {matches} rows with key {refs[row]!r}"
        closed: dict[int, str] = {}
        if self.closed is not None:
            writes = [(valid[p], None) for p in result.creates]
            writes += [(valid[u.desired_row], u.snapshot_row) for u in result.updates]
            closed = self.closed.refused(writes, mapped, snapshot)
            for row, why in closed.items():
                code[row], reject_phase[row], reason[row] = _REJECT, 1, why
        second_rows: list[tuple[int, int, int | None, int]] = []  # row, desired position, snapshot row, phase
        for position in result.creates:
            row = valid[position]
            if row in closed:
                continue
            if "create" not in task.target.operations:
                code[row], reject_phase[row] = _REJECT, 2
                reason[row] = f"{task.target.entity_set} row {refs[row]!r} not found (this task only updates)"
                continue
            code[row] = _CREATE
            if task.target_system == "dataverse":
                ids[row] = created_row_id(task, self.inputs.legal_entity, refs[row])
            second_rows.append((row, position, None, 0))
        for update in result.updates:
            row = valid[update.desired_row]
            if row in closed:
                continue
            if "update" not in task.target.operations:
                self.skipped += 1
                continue
            code[row], ids[row], changed[row] = _UPDATE, snapshot_ids[update.snapshot_row], update.changed
            second_rows.append((row, update.desired_row, update.snapshot_row, 1))
        for position, snapshot_row in result.unchanged:
            row = valid[position]
            code[row], ids[row] = _UNCHANGED, snapshot_ids[snapshot_row]
            second_rows.append((row, position, snapshot_row, 2))

        # second pass: self-references written once every row of the first pass exists
        for row, position, snapshot_row, phase in second_rows if second else ():
            fields = []
            for name in second:
                wanted = py(desired[name][position])
                now = (
                    py(current[name][snapshot_row]) if snapshot_row is not None and name in current else None
                )
                if wanted is not None and not values_equal(wanted, now):
                    fields.append(name)
            if fields:
                second_changed[row], second_phase[row] = fields, phase

        decisions = pa.table(
            {
                POS: pa.array(positions, type=pa.int64()),
                _CODE: pa.array(code, type=pa.int8()),
                _REJECT_PHASE: pa.array(reject_phase, type=pa.int8()),
                REASON: pa.array(reason, type=pa.string()),
                ID: pa.array(ids, type=pa.string()),
                CHANGED: pa.array(changed, type=TEXTS),
                _SECOND: pa.array(second_changed, type=TEXTS),
                _SECOND_PHASE: pa.array(second_phase, type=pa.int8()),
            },
            schema=_DECISIONS,
        )
        chunks = (
            np.searchsorted(np.array(self.chunk_starts, dtype=np.int64), np.array(positions), side="right")
            - 1
        )
        _scatter(self.spill, "decisions", decisions, chunks, len(self.chunk_starts))

    def _target_duplicates(self, mapped: pa.Table, refs: list[str | None], reasons: list[list[str]]) -> int:
        """Two source rows for one target row: identical wishes collapse into one (many
        invoices mark one order Invoiced); conflicting ones are all rejected."""
        groups: dict[str, list[int]] = {}
        for row, fold in enumerate(mapped.column(REF_FOLD).to_pylist()):
            if fold is not None and not reasons[row]:
                groups.setdefault(fold, []).append(row)
        collapsed = 0
        for rows in groups.values():
            if len(rows) < 2:
                continue
            records = mapped.select(self.decided).take(pa.array(rows, type=pa.int64())).to_pylist()
            first = records[0]
            identical = all(
                values_equal(first[name], other[name]) for other in records[1:] for name in self.decided
            )
            if identical:
                for other in rows[1:]:
                    refs[other] = None  # not written, not rejected: the first row carries it
                collapsed += len(rows) - 1
            else:
                for row in rows:
                    reasons[row].append(
                        f"duplicate target key {refs[row]!r} ({len(rows)} source rows disagree)"
                    )
        return collapsed

    # emit: chunk by chunk in source order ------------------------------------------------------
    def _emit(self, sink: _CountingSink) -> None:
        """Rows and decisions of each chunk, joined, into the categories in source order.

        Rows whose category comes later in a file (rejected for an ambiguous key after the
        rows refused outright; the second pass of updated rows after that of created ones)
        and the outcome (created, then updated, ...) wait in the spill until their turn.
        """
        if self.spill.exists("rows"):
            with self.spill.open("rows") as stored:
                for chunk, group in enumerate(self.chunk_groups):
                    if group is None:
                        continue
                    rows = stored.read_row_group(group)
                    decisions = self.spill.read(_bucket_name("decisions", chunk))
                    assert decisions is not None
                    decisions = decisions.take(pc.sort_indices(decisions, sort_keys=[(POS, "ascending")]))
                    if decisions.column(POS).to_pylist() != rows.column(POS).to_pylist():
                        raise AssertionError(f"chunk {chunk}: decisions do not match its rows")
                    self._emit_chunk(sink, rows, decisions)
        self.spill.finish()
        for phase in (1, 2):
            for table in self.spill.row_groups(f"later-rejects-{phase}"):
                sink.write("rejects", table)
            for table in self.spill.row_groups(f"later-second_pass-{phase}"):
                sink.write("second_pass", table)
        for name in ("create", "update", "unchanged", "rejected-0", "rejected-1", "rejected-2"):
            for table in self.spill.row_groups(f"outcome-{name}"):
                sink.write("planned", table)

    def _emit_chunk(self, sink: _CountingSink, rows: pa.Table, decisions: pa.Table) -> None:
        codes = decisions.column(_CODE).to_numpy()
        for code, category in _CATEGORY.items():
            picked = np.flatnonzero(codes == code)
            if len(picked):
                table = self._plan_rows(category, rows, decisions, picked)
                sink.write(category, table)
                self.spill.append(f"outcome-{_STATUS[code]}", _outcome_table(table, _STATUS[code]))
        phases = decisions.column(_REJECT_PHASE).to_numpy(zero_copy_only=False)
        for phase in (0, 1, 2):
            picked = np.flatnonzero((codes == _REJECT) & (phases == phase))
            if not len(picked):
                continue
            table = self._reject_rows(rows, decisions, picked)
            if phase == 0:
                sink.write("rejects", table)
            else:
                self.spill.append(f"later-rejects-{phase}", table)
            self.spill.append(f"outcome-rejected-{phase}", _outcome_table(table, "rejected"))
        second = decisions.column(_SECOND_PHASE).to_numpy(zero_copy_only=False)
        for phase in (0, 1, 2):
            picked = np.flatnonzero(second == phase)
            if not len(picked):
                continue
            table = self._plan_rows("second_pass", rows, decisions, picked)
            if phase == 0:
                sink.write("second_pass", table)
            else:
                self.spill.append(f"later-second_pass-{phase}", table)

    def _plan_rows(self, category: str, rows: pa.Table, decisions: pa.Table, picked: np.ndarray) -> pa.Table:
        index = pa.array(picked, type=pa.int64())
        taken = rows.take(index)
        chosen = decisions.take(index)
        schema = self.schemas[category]
        arrays = []
        for column in schema:
            if column.name == ID:
                arrays.append(chosen.column(ID))
            elif column.name == CHANGED:
                arrays.append(chosen.column(_SECOND if category == "second_pass" else CHANGED))
            else:
                arrays.append(taken.column(column.name))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _reject_rows(self, rows: pa.Table, decisions: pa.Table, picked: np.ndarray) -> pa.Table:
        index = pa.array(picked, type=pa.int64())
        taken = rows.take(index)
        phase = decisions.column(_REJECT_PHASE)[int(picked[0])].as_py()
        if phase == 0:  # refused outright: the raw row goes into the dead letter
            sources = [c for c in rows.column_names if c.startswith(SRC_PREFIX)]
            records = taken.select(sources).to_pylist()
            raw = pa.array(
                [
                    json.dumps({name[len(SRC_PREFIX) :]: py(v) for name, v in record.items()}, default=str)
                    for record in records
                ],
                type=pa.string(),
            )
            keys = [taken.column(KEY_PREFIX + column) for column in self.task.source.key]
        else:
            raw = pa.nulls(len(picked), type=pa.string())
            keys = [pa.nulls(len(picked), type=pa.string()) for _ in self.task.source.key]
        arrays = [
            taken.column(REF),
            taken.column(SOURCE_KEY),
            decisions.take(index).column(REASON),
            raw,
            *keys,
        ]
        return pa.Table.from_arrays(arrays, schema=self.schemas["rejects"])


def _outcome_table(table: pa.Table, status: str) -> pa.Table:
    nothing = pa.nulls(table.num_rows, type=pa.string())
    columns = {
        REF: table.column(REF),
        "status": pa.array([status] * table.num_rows, type=pa.string()),
        "reason": table.column(REASON) if REASON in table.column_names else nothing,
        "id": table.column(ID) if ID in table.column_names else nothing,
        SOURCE_KEY: table.column(SOURCE_KEY),
    }
    return pa.table(columns, schema=OUTCOME_SCHEMA)


def plan_task(
    task: Task, inputs: PlanInputs, *, spill: Spill, sink: PlanSink, rows: int | None = None
) -> PlanResult:
    """Transform and diff one task chunk by chunk, handing the plan to ``sink`` in order.

    :param spill: where the buckets go (cleared by the caller, e.g. ``with spill:``).
    :param rows: the chunk size; default :func:`~prospect_to_cash.sync.staging.chunk_rows`.
    :raises DataError: a lookup declared ``on_missing: fail`` missed (before anything
        reaches the sink).
    """
    return _Planner(task, inputs, spill, chunk_rows(rows)).run(sink)


class _CollectingSink:
    def __init__(self) -> None:
        self.tables: dict[str, list[pa.Table]] = {name: [] for name in PLAN_CATEGORIES}

    def write(self, category: str, table: pa.Table) -> None:
        self.tables[category].append(table)

    def frame(self, category: str, columns: Sequence[str]) -> pd.DataFrame:
        tables = self.tables[category]
        data: dict[str, list[Any]] = {c: [] for c in columns}
        for table in tables:
            for c in columns:
                data[c].extend(table.column(c).to_pylist())
        return pd.DataFrame(data, columns=list(columns), dtype=object)


def build_plan(task: Task, inputs: TransformInputs, *, chunk_rows: int | None = None) -> Plan:
    """Transform and diff one task held in memory. Raises :class:`DataError` when a lookup
    declared ``on_missing: fail`` misses (the task must fail visibly, not drop rows).

    :param chunk_rows: rows handled at once (default as for staged runs); the plan is the
        same whatever it is.
    """
    sink = _CollectingSink()
    with MemorySpill() as spill:
        result = plan_task(task, FrameInputs(inputs), spill=spill, sink=sink, rows=chunk_rows)
    columns = [f.name for f in field_schema(task)]
    return Plan(
        task=task,
        creates=sink.frame("creates", columns),
        updates=sink.frame("updates", [*columns, CHANGED]),
        unchanged=sink.frame("unchanged", columns),
        rejects=sink.frame("rejects", [f.name for f in rejects_schema(task)]),
        second_pass=sink.frame("second_pass", [*columns, CHANGED]),
        read=result.counts["read"],
        skipped=result.counts["skipped"],
        stats=result.stats,
        rounded=result.rounded,
    )
