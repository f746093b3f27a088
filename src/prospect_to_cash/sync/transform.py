"""Source rows → desired target rows → a plan (creates, updates, unchanged, rejects).

No hooks here: the rules work on staged rows, so they stay testable row by row and a
dry run shows exactly what a load would do.

Order of work for one task:

1. route: rows the task's ``route`` expression excludes are *skipped* (another task
   of the template takes them, e.g. contacts → contact persons or customers);
2. source keys: a missing or duplicated integration key rejects the row(s), never merges;
3. fields, in file order (second-pass fields last): value, value map, default, type;
   lookups join against staged reference tables;
4. validation: required, max length, value-map misses, dangling lookups, conversion;
5. parent hold-back: a line whose header was rejected or failed in this run is rejected
   with a reason naming the header;
6. diff against the snapshot (only the fields that changed go into an update).

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
    ARROW_TYPES,
    BAD_STATUSES,
    BIND_PREFIX,
    CHANGED,
    ID,
    OK_STATUSES,
    OUTCOME_CATEGORIES,
    OUTCOME_COLUMNS,
    OUTCOME_SCHEMA,
    PLAN_CATEGORIES,
    REASON,
    REF,
    SOURCE_KEY,
    TEXTS,
    compared_fields,
    field_schema,
    has_candidate_binds,
    plan_schemas,
    rejects_schema,
    written_fields,
)
from prospect_to_cash.sync.errors import DataError, MappingError
from prospect_to_cash.sync.mapping import COMPANY_FIELD, FieldMapping, Task
from prospect_to_cash.sync.staging import MemorySpill, Spill, chunk_rows, text_table
from prospect_to_cash.sync.values import (
    ConversionError,
    deterministic_id,
    is_blank,
    map_values,
    memo_key,
    natural_key,
    normalize,
    normalize_column,
    py,
    values_equal,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

# bookkeeping columns of the spilled rows (never in a plan file)
_POS, _ORDER = "__pos", "__order"
_SKEY_FOLD, _REF_FOLD = "__source_key_fold", "__ref_fold"
_PRE, _EMPTY_KEYS, _HOLD = "__pre_reasons", "__empty_target_keys", "__held_back"
_KEY_PREFIX, _SRC_PREFIX, _RAW_PREFIX = "__key__", "__src__", "__raw__"
#: Order keys: the phase of a row in its category (row rejects before ambiguous keys,
#: creates before updates in the second pass) above its source position.
_PHASE = 1 << 40


@dataclass
class TransformInputs:
    """What one task's transform needs, all already staged.

    :param source: raw source rows (text columns).
    :param snapshot: raw current target rows (text columns).
    :param references: raw reference tables by reference name.
    :param legal_entity: the company pair's F&O ``dataAreaId``.
    :param upstream: outcome frames of earlier tasks of the same run, by task name.
    """

    source: pd.DataFrame
    snapshot: pd.DataFrame
    references: dict[str, pd.DataFrame] = field(default_factory=dict)
    legal_entity: str = ""
    upstream: dict[str, pd.DataFrame] = field(default_factory=dict)


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

    def counts(self) -> dict[str, int]:
        return {
            "read": self.read,
            "skipped": self.skipped,
            "to_create": len(self.creates),
            "to_update": len(self.updates),
            "unchanged": len(self.unchanged),
            "rejected": len(self.rejects),
            "second_pass": len(self.second_pass),
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


# -- inputs and outputs -------------------------------------------------------------------------


class PlanInputs(Protocol):
    """Where the transform reads a task's staged rows, a chunk at a time.

    Every ``*_batches`` iterator yields at least one table (an empty one for no rows), so
    the checks that depend on columns alone run for empty inputs too.
    """

    legal_entity: str

    def source_rows(self) -> int: ...

    def source_batches(self, rows: int) -> Iterator[pa.Table]:
        """The source rows as text columns, at most ``rows`` per table."""
        ...

    def snapshot_rows(self) -> int: ...

    def snapshot_batches(self, rows: int) -> Iterator[pa.Table]:
        """The target snapshot as text columns, at most ``rows`` per table."""
        ...

    def reference(self, name: str, columns: Sequence[str] | None) -> pa.Table | None:
        """Reference table ``name`` with those of ``columns`` it has (None: not staged)."""
        ...

    def upstream(self, task: str, rows: int) -> Iterator[dict[str, list[Any]]] | None:
        """The outcome of an earlier task of the run (``__ref``, ``status``, ``reason``
        as lists, at most ``rows`` per batch), or None when there is none."""
        ...


class PlanSink(Protocol):
    """Receives the plan in its final row order, a bounded table at a time per category
    (:data:`PLAN_CATEGORIES`), each table in the category's schema (:func:`plan_schemas`)."""

    def write(self, category: str, table: pa.Table) -> None: ...


def _slices(table: pa.Table, rows: int) -> Iterator[pa.Table]:
    if table.num_rows == 0:
        yield table
        return
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)


class FrameInputs:
    """:class:`PlanInputs` over frames already in memory (:class:`TransformInputs`).

    Values are taken as staging would have written them (text), so a plan of frames and
    a plan of staged files are the same plan.
    """

    def __init__(self, inputs: TransformInputs) -> None:
        self.inputs = inputs
        self.legal_entity = inputs.legal_entity
        self._source = text_table(inputs.source.reset_index(drop=True))
        self._snapshot = text_table(inputs.snapshot.reset_index(drop=True))

    def source_rows(self) -> int:
        return self._source.num_rows

    def source_batches(self, rows: int) -> Iterator[pa.Table]:
        return _slices(self._source, rows)

    def snapshot_rows(self) -> int:
        return self._snapshot.num_rows

    def snapshot_batches(self, rows: int) -> Iterator[pa.Table]:
        return _slices(self._snapshot, rows)

    def reference(self, name: str, columns: Sequence[str] | None) -> pa.Table | None:
        frame = self.inputs.references.get(name)
        if frame is None:
            return None
        if columns is not None:
            frame = frame[[c for c in dict.fromkeys(columns) if c in frame.columns]]
        return text_table(frame.reset_index(drop=True))

    def upstream(self, task: str, rows: int) -> Iterator[dict[str, list[Any]]] | None:
        frame = self.inputs.upstream.get(task)
        if frame is None:
            return None
        return _frame_batches(frame, rows)


def _frame_batches(frame: pd.DataFrame, rows: int) -> Iterator[dict[str, list[Any]]]:
    for start in range(0, len(frame), rows):
        piece = frame.iloc[start : start + rows]
        yield {
            name: piece[name].tolist() if name in piece.columns else [None] * len(piece)
            for name in (REF, "status", "reason")
        }


# -- lookups ----------------------------------------------------------------------------------


def _fold_array(keys: list[str | None]) -> pa.Array:
    return pa.array(keys, type=pa.string())


class _ReferenceIndex:
    """A reference table indexed by the folded text of its match columns.

    Kept as Arrow arrays (unique folded keys, first position, count), not a dict of
    Python strings: a reference may be a whole target table (products for price list
    items) and has to stay small beside the chunk being mapped.
    """

    def __init__(self, table: pa.Table, match: Sequence[str], sort_by: Sequence[str], rows: int) -> None:
        missing = [c for c in [*match, *sort_by] if c not in table.column_names]
        if missing:
            raise MappingError(f"reference frame lacks columns {missing}")
        if sort_by and table.num_rows:
            # a stable sort with nulls last, as pandas' sort_values(kind="stable") did
            order = pc.sort_indices(table, sort_keys=[(c, "ascending", "at_end") for c in sort_by])
            table = table.take(order)
        self.table = table
        key_parts: list[pa.Array] = []
        position_parts: list[pa.Array] = []
        for start in range(0, table.num_rows, rows):
            piece = table.slice(start, rows)
            columns = [piece.column(c).to_pylist() for c in match]
            keys: list[str] = []
            positions: list[int] = []
            for offset, parts in enumerate(zip(*columns, strict=True)):
                if any(is_blank(p) for p in parts):
                    continue
                keys.append(natural_key(parts).casefold())
                positions.append(start + offset)
            key_parts.append(pa.array(keys, type=pa.string()))
            position_parts.append(pa.array(positions, type=pa.int64()))
        keyed = pa.table(
            {
                "key": pa.chunked_array(key_parts, type=pa.string()),
                "position": pa.chunked_array(position_parts, type=pa.int64()),
            }
        )
        grouped = keyed.group_by("key", use_threads=False).aggregate(
            [("position", "min"), ("position", "count")]
        )
        self.keys = grouped.column("key").combine_chunks()
        self.first = grouped.column("position_min").to_numpy()
        self.count = grouped.column("position_count").to_numpy()

    def find(self, queries: list[str | None]) -> tuple[list[int | None], list[int]]:
        """Per folded key: the position of its first row (None: no row) and how many rows."""
        hits = pc.index_in(_fold_array(queries), value_set=self.keys).to_pylist()
        first = [None if h is None else int(self.first[h]) for h in hits]
        counts = [0 if h is None else int(self.count[h]) for h in hits]
        return first, counts

    def values(self, column: str, positions: list[int | None]) -> list[Any]:
        return self.table.column(column).take(pa.array(positions, type=pa.int64())).to_pylist()


class _KeySet:
    """A set of folded keys as one Arrow array (upstream outcomes, a task's own keys)."""

    def __init__(self, parts: Sequence[pa.Array] = ()) -> None:
        if parts:
            self.values = pc.unique(pa.chunked_array(list(parts), type=pa.string()).combine_chunks())
        else:
            self.values = pa.array([], type=pa.string())

    def __len__(self) -> int:
        return len(self.values)

    def contains(self, queries: list[str | None]) -> list[bool]:
        if not len(self.values):
            return [False] * len(queries)
        return pc.is_in(_fold_array(queries), value_set=self.values).to_pylist()


class _States:
    """Last status and reason per folded key of the rows of a header task that went bad."""

    def __init__(self, keys: list[str], statuses: list[Any], reasons: list[Any]) -> None:
        table = pa.table(
            {
                "key": pa.array(keys, type=pa.string()),
                "position": pa.array(range(len(keys)), type=pa.int64()),
            }
        )
        last = table.group_by("key", use_threads=False).aggregate([("position", "max")])
        self.keys = last.column("key").combine_chunks()
        positions = last.column("position_max").to_pylist()
        self.states = [(statuses[p], reasons[p]) for p in positions]

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, queries: list[str | None]) -> list[tuple[Any, Any] | None]:
        hits = pc.index_in(_fold_array(queries), value_set=self.keys).to_pylist()
        return [None if h is None else self.states[h] for h in hits]


def _lookup_query(parts: Sequence[Any]) -> str | None:
    return None if all(is_blank(p) for p in parts) else natural_key(parts).casefold()


def _lookup_queries(values: Sequence[Any], *, single: bool) -> list[str | None]:
    """The folded key a lookup searches for, per row (None: every match value blank),
    once per distinct value: lookups mostly match on codes (currency, unit, group)."""
    if single:
        return map_values(values, lambda value: _lookup_query((value,)))
    return map_values(
        [tuple(memo_key(p) for p in parts) for parts in values],
        lambda key: _lookup_query([p if p.__class__ is str else p[1] for p in key]),
    )


@dataclass
class _Evaluation:
    values: list[Any]
    binds: list[str | None] | None = None
    errors: dict[int, str] = field(default_factory=dict)


def _describe(entity_set: str, columns: Sequence[str], parts: Sequence[Any]) -> str:
    pairs = ", ".join(f"{c}={p!r}" for c, p in zip(columns, parts, strict=True))
    return f"{entity_set} with {pairs}"


def _finisher(mapping: FieldMapping, system: str | None) -> Any:
    """Value map, default, type, then the field's own checks, for one value: pure, so
    a column pays it once per distinct value."""

    def finish(value: Any) -> tuple[Any, tuple[str, ...]]:
        problems: list[str] = []
        if mapping.value_map is not None and not is_blank(value):
            mapped, miss = mapping.value_map.translate(value)
            if miss:
                name = mapping.value_map.name
                problems.append(f"value {py(value)!r} of {mapping.target} has no entry in value map {name!r}")
            value = mapped
        if is_blank(value) and mapping.default is not None:
            value = mapping.default
        try:
            value = normalize(value, mapping.type, scale=mapping.scale, system=system)
        except ConversionError as exc:
            problems.append(f"{mapping.target}: {exc}")
            return None, tuple(problems)
        if mapping.required and value is None:
            problems.append(f"required field {mapping.target} is empty")
        if mapping.max_length is not None and isinstance(value, str) and len(value) > mapping.max_length:
            problems.append(
                f"{mapping.target} is {len(value)} characters, at most {mapping.max_length} allowed"
            )
        return value, tuple(problems)

    if mapping.type != "string" or mapping.value_map is not None:
        return finish
    limit = mapping.max_length

    def finish_text(value: Any) -> tuple[Any, tuple[str, ...]]:
        # non-blank text of a plain text field is its own normal form (names, numbers,
        # descriptions: the columns too varied for the memo)
        if value.__class__ is str and value and not value.isspace():
            if limit is not None and len(value) > limit:
                return value, (f"{mapping.target} is {len(value)} characters, at most {limit} allowed",)
            return value, ()
        return finish(value)

    return finish_text


# -- map: the rules, one chunk of source rows at a time ----------------------------------------


class _Transformer:
    """The per-row rules of one task (fields, lookups, route, keys, hold-back) over one
    chunk at a time, with what the whole task shares (reference indexes, upstream keys,
    the task's own keys) built once."""

    def __init__(self, task: Task, inputs: PlanInputs, rows: int) -> None:
        self.task = task
        self.inputs = inputs
        self.rows = rows
        self.fatal_rows: dict[int, str] = {}
        self.fatal: set[str] = set()
        self.own_keys: _KeySet | None = None
        self._tables: dict[str, pa.Table | None] = {}
        self._indexes: dict[tuple[str, tuple[str, ...], tuple[str, ...]], _ReferenceIndex] = {}
        self._upstream_ok: dict[str, _KeySet] = {}
        self._parent_states: _States | None = None
        self._parent_loaded = False

    # value of one field -------------------------------------------------------------------
    def evaluate(self, mapping: FieldMapping, namespace: dict[str, list[Any]], length: int) -> _Evaluation:
        if mapping.kind == "source":
            assert mapping.source is not None
            if mapping.source not in namespace:
                raise MappingError(
                    f"task {self.task.name!r}, field {mapping.target!r}: source column {mapping.source!r} "
                    "was not extracted"
                )
            return _Evaluation(list(namespace[mapping.source]))
        if mapping.kind in ("constant", "env"):
            # env values were resolved from the environment when the mapping loaded
            return _Evaluation([mapping.constant] * length)
        if mapping.kind == "expr":
            assert mapping.expr is not None
            values, errors = mapping.expr.evaluate(namespace, length)
            return _Evaluation(values, errors=errors)
        return self.resolve_lookup(mapping, namespace, length)

    def _reference_table(self, name: str) -> pa.Table | None:
        if name not in self._tables:
            try:
                columns: Sequence[str] | None = self.task.reference_columns(name)
            except KeyError:
                columns = None
            self._tables[name] = self.inputs.reference(name, columns)
        return self._tables[name]

    def _index(
        self, mapping: FieldMapping, reference: str, match: Sequence[str], returns: str
    ) -> _ReferenceIndex:
        assert mapping.lookup is not None
        table = self._reference_table(reference)
        if table is None:
            raise MappingError(
                f"task {self.task.name!r}, field {mapping.target!r}: reference {reference!r} was not staged"
            )
        key = (reference, tuple(match), tuple(mapping.lookup.sort_by))
        index = self._indexes.get(key)
        if index is None:
            index = _ReferenceIndex(table, match, mapping.lookup.sort_by, self.rows)
            self._indexes[key] = index
        if returns not in index.table.column_names:
            raise MappingError(
                f"task {self.task.name!r}, field {mapping.target!r}: reference {reference!r} "
                f"has no column {returns!r}"
            )
        return index

    def resolve_lookup(
        self, mapping: FieldMapping, namespace: dict[str, list[Any]], length: int
    ) -> _Evaluation:
        lookup = mapping.lookup
        assert lookup is not None
        upstream_ok = self.upstream_ok(lookup.created_by) if lookup.created_by else _KeySet()
        own_keys = self.own_keys if lookup.self_reference and mapping.second_pass else None
        own_keys = own_keys if own_keys is not None else _KeySet()
        prepared = []
        for candidate in lookup.candidates:
            columns = list(candidate.match)
            index = self._index(mapping, candidate.reference, columns, candidate.returns)
            inputs = []
            errors: dict[int, str] = {}
            for expression in candidate.match.values():
                values, expr_errors = expression.evaluate(namespace, length)
                inputs.append(values)
                errors.update(expr_errors)
            reference = self.task.reference(candidate.reference)
            rows_parts = list(zip(*inputs, strict=True)) if inputs else [()] * length
            queries = _lookup_queries(inputs[0] if len(inputs) == 1 else rows_parts, single=len(inputs) == 1)
            first, counts = index.find(queries)
            found = index.values(candidate.returns, first)
            planned = [
                a or b for a, b in zip(upstream_ok.contains(queries), own_keys.contains(queries), strict=True)
            ]
            prepared.append(
                (candidate, reference, columns, rows_parts, queries, errors, counts, found, planned)
            )

        result = _Evaluation([None] * length, [None] * length if has_candidate_binds(mapping) else None)
        for row in range(length):
            described = []
            had_input = False
            resolved = False
            for (
                candidate,
                reference,
                columns,
                rows_parts,
                queries,
                errors,
                counts,
                found,
                planned,
            ) in prepared:
                if row in errors:
                    result.errors[row] = errors[row]
                    resolved = True
                    break
                if queries[row] is None:  # every match value blank: the next candidate
                    continue
                parts = rows_parts[row]
                had_input = True
                matches = counts[row]
                if matches > 1 and lookup.pick == "unique":
                    result.errors[row] = (
                        f"ambiguous lookup {mapping.target}: {matches} rows of "
                        f"{_describe(reference.entity_set, columns, parts)}"
                    )
                    resolved = True
                    break
                if matches:
                    result.values[row] = found[row]
                    if result.binds is not None and candidate.bind is not None:
                        result.binds[row] = f"{candidate.bind.navigation}|{candidate.bind.entity_set}"
                    resolved = True
                    break
                if planned[row]:
                    result.values[row] = self._planned_value(reference.side, reference.entity_set, parts)
                    if result.binds is not None and candidate.bind is not None:
                        result.binds[row] = f"{candidate.bind.navigation}|{candidate.bind.entity_set}"
                    resolved = True
                    break
                described.append(_describe(reference.entity_set, columns, parts))
            if resolved or not had_input:
                continue
            message = f"dangling lookup {mapping.target}: no {' or '.join(described)}"
            if lookup.on_missing == "null":
                continue
            if lookup.on_missing == "fail":
                self.fatal_rows[row] = (
                    f"task {self.task.name!r}, field {mapping.target!r}: no {' or '.join(described)}"
                )
                continue
            result.errors[row] = message
        return result

    def _planned_value(self, side: str, entity_set: str, parts: Sequence[Any]) -> Any:
        """The value a lookup would have found once the planned row exists: the
        deterministic GUID on a Dataverse target, else the key itself."""
        system = self.task.target_system if side == "target" else self.task.source_system
        if system == "dataverse":
            return deterministic_id(entity_set, natural_key(parts))
        return py(parts[0]) if len(parts) == 1 else natural_key(parts)

    def upstream_ok(self, task_name: str) -> _KeySet:
        """Folded keys an earlier task of the run wrote or plans to write."""
        if task_name not in self._upstream_ok:
            parts = []
            batches = self.inputs.upstream(task_name, self.rows)
            for batch in batches or ():
                parts.append(
                    pa.array(
                        [
                            str(ref).casefold()
                            for ref, status in zip(batch[REF], batch["status"], strict=True)
                            if ref is not None and not is_blank(ref) and status in OK_STATUSES
                        ],
                        type=pa.string(),
                    )
                )
            self._upstream_ok[task_name] = _KeySet(parts)
        return self._upstream_ok[task_name]

    def parent_states(self) -> _States | None:
        """Keys of the header task's rejected or failed rows (last word per key)."""
        if not self._parent_loaded:
            self._parent_loaded = True
            parent = self.task.parent
            batches = self.inputs.upstream(parent.task, self.rows) if parent is not None else None
            if batches is not None:
                keys: list[str] = []
                statuses: list[Any] = []
                reasons: list[Any] = []
                for batch in batches:
                    for ref, status, reason in zip(batch[REF], batch["status"], batch["reason"], strict=True):
                        if not is_blank(ref) and status in BAD_STATUSES:
                            keys.append(str(ref).casefold())
                            statuses.append(status)
                            reasons.append(reason)
                self._parent_states = _States(keys, statuses, reasons)
        return self._parent_states

    # the fields of a chunk ----------------------------------------------------------------
    def evaluate_fields(
        self,
        namespace: dict[str, list[Any]],
        reasons: list[list[str]],
        length: int,
        *,
        first_pass_only: bool = False,
    ) -> tuple[dict[str, list[Any]], dict[str, list[str | None]]]:
        """Every field in file order (second-pass fields last): value, map, default, type."""
        task = self.task
        desired: dict[str, list[Any]] = {}
        binds: dict[str, list[str | None]] = {}
        ordered = [f for f in task.fields if not f.second_pass]
        if not first_pass_only:
            ordered += [f for f in task.fields if f.second_pass]
        for mapping in ordered:
            evaluation = self.evaluate(mapping, namespace, length)
            for row, message in evaluation.errors.items():
                reasons[row].append(message)
            system = task.target_system if mapping.write else None
            final: list[Any] = []
            for row, (value, problems) in enumerate(
                map_values(evaluation.values, _finisher(mapping, system))
            ):
                if problems:
                    reasons[row].extend(problems)
                final.append(value)
            namespace[mapping.target] = final
            if mapping.write:
                desired[mapping.target] = final
            if evaluation.binds is not None:
                binds[mapping.target] = evaluation.binds
        return desired, binds

    def needs_own_keys(self) -> bool:
        return any(
            f.second_pass and f.lookup is not None and f.lookup.self_reference for f in self.task.fields
        )

    def collect_own_keys(self, batches: Iterator[pa.Table]) -> None:
        """The folded keys of every row whose first-pass fields hold (the whole task, route
        or not): a second-pass self-reference (parent account) may point at any of them."""
        natural = self.task.natural_key
        parts: list[pa.Array] = []
        for raw in batches:
            length = raw.num_rows
            namespace = self._namespace(raw)
            reasons: list[list[str]] = [[] for _ in range(length)]
            desired, _ = self.evaluate_fields(namespace, reasons, length, first_pass_only=True)
            if not all(k in desired for k in natural):
                self.own_keys = _KeySet()
                return
            parts.append(
                pa.array(
                    [
                        natural_key([desired[k][row] for k in natural]).casefold()
                        for row in range(length)
                        if not reasons[row]
                    ],
                    type=pa.string(),
                )
            )
        self.fatal_rows = {}
        self.own_keys = _KeySet(parts)

    def _namespace(self, raw: pa.Table) -> dict[str, list[Any]]:
        """The chunk's source columns as lists, the names expressions and fields read."""
        missing_columns = [c for c in self.task.source_columns if c not in raw.column_names]
        if missing_columns:
            raise MappingError(f"task {self.task.name!r}: source rows lack columns {missing_columns}")
        return {c: raw.column(c).to_pylist() for c in raw.column_names}

    def map_chunk(self, raw: pa.Table, start: int) -> pa.Table:
        """One chunk of source rows (``start`` is the position of its first row) → the
        rows the route keeps, with their desired values and everything the later phases
        need: keys, the reasons found so far, and the raw row for the dead letter."""
        task = self.task
        length = raw.num_rows
        namespace = self._namespace(raw)
        self.fatal_rows = {}
        reasons: list[list[str]] = [[] for _ in range(length)]
        desired, binds = self.evaluate_fields(namespace, reasons, length)

        # route: rows another task of the template takes are skipped, whatever they hold
        kept = list(range(length))
        if task.route is not None:
            keep, errors = task.route.evaluate(namespace, length)
            if errors:
                raise DataError(f"task {task.name!r}: route failed: {next(iter(errors.values()))}")
            kept = [row for row, flag in enumerate(keep) if flag is True]
        self.fatal.update(self.fatal_rows[row] for row in kept if row in self.fatal_rows)
        if len(kept) < length:
            raw = raw.take(pa.array(kept, type=pa.int64()))
            namespace = {c: [values[i] for i in kept] for c, values in namespace.items()}
            desired = {c: [values[i] for i in kept] for c, values in desired.items()}
            binds = {c: [values[i] for i in kept] for c, values in binds.items()}
            reasons = [reasons[i] for i in kept]
        count = len(kept)

        # source keys: blanks now; duplicates once every chunk is in (they span chunks)
        key_columns = task.source.key
        source_keys: list[str] = []
        source_folds: list[str | None] = []
        for row in range(count):
            parts = [namespace[c][row] for c in key_columns]
            complete = True
            for column, part in zip(key_columns, parts, strict=True):
                if is_blank(part):
                    reasons[row].append(f"source key {column} is empty")
                    complete = False
            key = natural_key(parts)
            source_keys.append(key)
            source_folds.append(key.casefold() if complete else None)
        if task.target_system == "fno" and COMPANY_FIELD in task.target.key and COMPANY_FIELD not in desired:
            desired[COMPANY_FIELD] = [self.inputs.legal_entity] * count

        # target keys: an empty one is reported after the duplicate check, as it always was
        natural = task.natural_key
        refs: list[str | None] = []
        empties: list[list[str] | None] = []
        for row in range(count):
            parts = [desired[k][row] for k in natural]
            empty = [k for k, p in zip(natural, parts, strict=True) if is_blank(p)]
            if empty:
                refs.append(None)
                empties.append(empty)
            else:
                refs.append(natural_key(parts))
                empties.append(None)

        arrays: dict[str, pa.Array] = {
            _POS: pa.array([start + row for row in kept], type=pa.int64()),
            SOURCE_KEY: pa.array(source_keys, type=pa.string()),
            _SKEY_FOLD: pa.array(source_folds, type=pa.string()),
            REF: pa.array(refs, type=pa.string()),
            _REF_FOLD: pa.array([None if r is None else r.casefold() for r in refs], type=pa.string()),
            _PRE: pa.array(reasons, type=TEXTS),
            _EMPTY_KEYS: pa.array(empties, type=TEXTS),
            _HOLD: pa.array(self._hold_back(namespace, count), type=pa.string()),
        }
        for name, values in desired.items():
            mapping = task.field(name)
            arrays[name] = pa.array(values, type=ARROW_TYPES[mapping.type] if mapping else pa.string())
        for name, values in binds.items():
            arrays[BIND_PREFIX + name] = pa.array(values, type=pa.string())
        for column in key_columns:
            arrays[_KEY_PREFIX + column] = pa.array(
                [None if is_blank(v) else str(py(v)) for v in namespace[column]], type=pa.string()
            )
        for column in raw.column_names:
            arrays[_SRC_PREFIX + column] = raw.column(column)
        return pa.table(arrays)

    def _hold_back(self, namespace: dict[str, list[Any]], length: int) -> list[str | None]:
        """A line whose header was rejected or failed in this run is not written half-done."""
        parent_spec = self.task.parent
        held: list[str | None] = [None] * length
        if parent_spec is None:
            return held
        states = self.parent_states()
        if states is None or not len(states):
            return held
        keys: list[str | None] = []
        for row in range(length):
            parts = [namespace[name][row] for name in parent_spec.match]
            keys.append(None if any(is_blank(p) for p in parts) else natural_key(parts))
        found = states.find([None if k is None else k.casefold() for k in keys])
        for row, state in enumerate(found):
            if state is not None:
                why = py(state[1]) or "no reason given"
                held[row] = f"held back: {parent_spec.label} {keys[row]} was {state[0]} ({why})"
        return held

    def raise_fatal(self) -> None:
        if self.fatal:
            fatal = sorted(self.fatal)
            more = f" (+{len(fatal) - 10} more)" if len(fatal) > 10 else ""
            raise DataError("; ".join(fatal[:10]) + more)


# -- the snapshot ----------------------------------------------------------------------------------


def _normalize_snapshot(
    task: Task, raw: pa.Table, legal_entity: str
) -> tuple[dict[str, list[Any]], dict[str, dict[int, str]]]:
    """Raw target rows under target field names, normalized like the desired rows, plus
    ``__ref`` and ``__id``; and per field the rows whose value could not be converted
    (kept as read, so that they differ from any wanted value)."""
    if task.target_system == "fno" and COMPANY_FIELD in raw.column_names and legal_entity:
        company = legal_entity.casefold()
        mask = [str(v).casefold() == company for v in raw.column(COMPANY_FIELD).to_pylist()]
        raw = raw.filter(pa.array(mask, type=pa.bool_()))
    data: dict[str, list[Any]] = {}
    unconverted: dict[str, dict[int, str]] = {}
    for mapping in written_fields(task):
        column = mapping.snapshot_column
        if column not in raw.column_names:
            continue
        data[mapping.target], unconverted[mapping.target] = normalize_column(
            raw.column(column).to_pylist(),
            mapping.type,
            scale=mapping.scale,
            system=task.target_system,
            keep_unconvertible=True,
        )
    length = raw.num_rows
    missing = [k for k in task.natural_key if k not in data]
    if missing:
        raise MappingError(f"task {task.name!r}: snapshot lacks key columns {missing}")
    keys = [data[k] for k in task.natural_key]
    data[REF] = [
        None if any(is_blank(column[r]) for column in keys) else natural_key([column[r] for column in keys])
        for r in range(length)
    ]
    primary = task.target.primary_id
    data[ID] = (
        [py(v) for v in raw.column(primary).to_pylist()]
        if primary and primary in raw.column_names
        else [None] * length
    )
    return data, unconverted


def _snapshot_table(task: Task, raw: pa.Table, legal_entity: str) -> pa.Table:
    """One chunk of the snapshot as the buckets hold it: rows with a key only, each field
    typed, plus its unconvertible raw text beside it (``__raw__<field>``)."""
    data, unconverted = _normalize_snapshot(task, raw, legal_entity)
    rows = [r for r, ref in enumerate(data[REF]) if ref is not None]
    arrays: dict[str, pa.Array] = {
        REF: pa.array([data[REF][r] for r in rows], type=pa.string()),
        _REF_FOLD: pa.array([data[REF][r].casefold() for r in rows], type=pa.string()),
        ID: pa.array([data[ID][r] for r in rows], type=pa.string()),
    }
    for mapping in written_fields(task):
        if mapping.target not in data:
            continue
        values, bad = data[mapping.target], unconverted[mapping.target]
        arrays[mapping.target] = pa.array(
            [None if r in bad else values[r] for r in rows], type=ARROW_TYPES[mapping.type]
        )
        arrays[_RAW_PREFIX + mapping.target] = pa.array(
            [None if r not in bad else str(values[r]) for r in rows], type=pa.string()
        )
    return pa.table(arrays)


def _snapshot_values(table: pa.Table, name: str) -> list[Any]:
    """A field of a snapshot bucket: the typed value, or the raw text it could not be
    converted from (None for every row when the target does not have the field)."""
    if name not in table.column_names:
        return [None] * table.num_rows
    values = table.column(name).to_pylist()
    raw = table.column(_RAW_PREFIX + name).to_pylist()
    return [r if r is not None else v for v, r in zip(values, raw, strict=True)]


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
        (_POS, pa.int64()),
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
        self.transformer = _Transformer(task, inputs, rows)
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
        }
        return PlanResult(counts=counts, heads=counting.heads, stats=dict(self.stats))

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
            positions = mapped.column(_POS).to_pylist()
            decided = mapped.select(
                [_POS, SOURCE_KEY, _SKEY_FOLD, REF, _REF_FOLD, _PRE, _EMPTY_KEYS, _HOLD, *self.decided]
            )
            by_ref = _buckets(mapped.column(_REF_FOLD).to_pylist(), positions, self.buckets)
            _scatter(self.spill, "map", decided, by_ref, self.buckets)
            keyed = mapped.select([_SKEY_FOLD]).filter(pc.is_valid(mapped.column(_SKEY_FOLD)))
            by_key = _buckets(keyed.column(_SKEY_FOLD).to_pylist(), [0] * keyed.num_rows, self.buckets)
            _scatter(self.spill, "keys", keyed, by_key, self.buckets)
        self.spill.finish()
        transformer.raise_fatal()

    def _snapshot(self) -> None:
        for raw in self.inputs.snapshot_batches(self.rows):
            table = _snapshot_table(self.task, raw, self.inputs.legal_entity)
            buckets = _buckets(table.column(_REF_FOLD).to_pylist(), [0] * table.num_rows, self.buckets)
            _scatter(self.spill, "snap", table, buckets, self.buckets)
        self.spill.finish()

    def _duplicate_source_keys(self) -> _States:
        """Folded source keys that occur more than once among the routed rows, with their
        count: exact, since every row of one key is in one bucket of keys."""
        keys: list[str] = []
        counts: list[int] = []
        for bucket in range(self.buckets):
            table = self.spill.read(_bucket_name("keys", bucket))
            if table is None:
                continue
            tally = pc.value_counts(table.column(_SKEY_FOLD))
            repeated = tally.filter(pc.greater(tally.field("counts"), 1))
            keys.extend(repeated.field("values").to_pylist())
            counts.extend(repeated.field("counts").to_pylist())
        return _States(keys, counts, [None] * len(counts))

    # decide: one bucket at a time ----------------------------------------------------------
    def _decide(self, bucket: int, duplicates: _States) -> None:
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
        positions = mapped.column(_POS).to_pylist()
        source_keys = mapped.column(SOURCE_KEY).to_pylist()
        refs = mapped.column(REF).to_pylist()
        empties = mapped.column(_EMPTY_KEYS).to_pylist()
        holds = mapped.column(_HOLD).to_pylist()
        seen = duplicates.find(mapped.column(_SKEY_FOLD).to_pylist())
        label = "+".join(task.source.key)
        reasons: list[list[str]] = []
        for row, pre in enumerate(mapped.column(_PRE).to_pylist()):
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
            current = {name: _snapshot_values(snapshot, name) for name in [*compare, *second]}
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
        second_rows: list[tuple[int, int, int | None, int]] = []  # row, desired position, snapshot row, phase
        for position in result.creates:
            row = valid[position]
            if "create" not in task.target.operations:
                code[row], reject_phase[row] = _REJECT, 2
                reason[row] = f"{task.target.entity_set} row {refs[row]!r} not found (this task only updates)"
                continue
            code[row] = _CREATE
            if task.target_system == "dataverse":
                ids[row] = deterministic_id(task.target.entity_set, refs[row])
            second_rows.append((row, position, None, 0))
        for update in result.updates:
            row = valid[update.desired_row]
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
                _POS: pa.array(positions, type=pa.int64()),
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
        for row, fold in enumerate(mapped.column(_REF_FOLD).to_pylist()):
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
                    decisions = decisions.take(pc.sort_indices(decisions, sort_keys=[(_POS, "ascending")]))
                    if decisions.column(_POS).to_pylist() != rows.column(_POS).to_pylist():
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
            sources = [c for c in rows.column_names if c.startswith(_SRC_PREFIX)]
            records = taken.select(sources).to_pylist()
            raw = pa.array(
                [
                    json.dumps({name[len(_SRC_PREFIX) :]: py(v) for name, v in record.items()}, default=str)
                    for record in records
                ],
                type=pa.string(),
            )
            keys = [taken.column(_KEY_PREFIX + column) for column in self.task.source.key]
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
    )


def snapshot_frame(task: Task, snapshot: pd.DataFrame, legal_entity: str = "") -> pd.DataFrame:
    """Raw target rows as the diff sees them: normalized written fields under their target
    names, plus the natural key (``__ref``) and the primary id (``__id``).

    Public so that a report comparing the plan with the target (reconciliation) shows the
    very values the diff compared, instead of normalizing a second way. F&O rows of other
    companies are dropped when ``legal_entity`` is given.
    """
    data, _ = _normalize_snapshot(task, text_table(snapshot.reset_index(drop=True)), legal_entity)
    return pd.DataFrame(data, dtype=object)
