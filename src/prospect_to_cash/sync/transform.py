"""Source rows → desired target rows → a plan (creates, updates, unchanged, rejects).

Everything here is pure pandas/Python over staged frames: no I/O, no hooks. That keeps
the rules testable row by row and lets a dry run show exactly what a load would do.

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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from prospect_to_cash.sync import diff as differ
from prospect_to_cash.sync.errors import DataError, MappingError
from prospect_to_cash.sync.mapping import COMPANY_FIELD, FieldMapping, Task
from prospect_to_cash.sync.values import (
    ConversionError,
    column_values,
    deterministic_id,
    is_blank,
    natural_key,
    normalize,
    py,
    values_equal,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

REF, ID, SOURCE_KEY, CHANGED, REASON, ROW = "__ref", "__id", "__source_key", "__changed", "__reason", "__row"
BIND_PREFIX = "__bind__"

#: Outcome statuses that mean "this row is (or will be) in the target as wanted".
OK_STATUSES = frozenset({"create", "created", "update", "updated", "unchanged"})
#: Outcome statuses that hold back dependent rows (lines of a failed header).
BAD_STATUSES = frozenset({"rejected", "failed"})

_ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int64(),
    "option": pa.int64(),
    "decimal": pa.float64(),
    "bool": pa.bool_(),
    "datetime": pa.string(),
    "date": pa.string(),
    "guid": pa.string(),
    "enum": pa.string(),
}


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
    """The transform's result for one task. Frames hold normalized, typed values."""

    task: Task
    creates: pd.DataFrame
    updates: pd.DataFrame
    unchanged: pd.DataFrame
    rejects: pd.DataFrame
    second_pass: pd.DataFrame
    read: int
    skipped: int

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
        parts = [
            _outcome_part(self.creates, "create"),
            _outcome_part(self.updates, "update"),
            _outcome_part(self.unchanged, "unchanged"),
            _outcome_part(self.rejects, "rejected"),
        ]
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
        columns=[REF, "status", "reason", "id", SOURCE_KEY],
    )


def field_schema(task: Task, *, extra: Sequence[tuple[str, pa.DataType]] = ()) -> pa.Schema:
    """Arrow schema of plan frames: bookkeeping columns, then the written fields."""
    columns: list[tuple[str, pa.DataType]] = [
        (REF, pa.string()),
        (ID, pa.string()),
        (SOURCE_KEY, pa.string()),
    ]
    columns.extend(extra)
    for mapping in written_fields(task):
        columns.append((mapping.target, _ARROW_TYPES[mapping.type]))
        if _has_candidate_binds(mapping):
            columns.append((BIND_PREFIX + mapping.target, pa.string()))
    if task.target_system == "fno" and COMPANY_FIELD in task.target.key and not task.field(COMPANY_FIELD):
        columns.insert(3, (COMPANY_FIELD, pa.string()))
    return pa.schema(columns)


def rejects_schema(task: Task) -> pa.Schema:
    return pa.schema(
        [(REF, pa.string()), (SOURCE_KEY, pa.string()), (REASON, pa.string()), (ROW, pa.string())]
        + [(name, pa.string()) for name in task.source.key]
    )


def written_fields(task: Task) -> list[FieldMapping]:
    return [f for f in task.fields if f.write]


def compared_fields(task: Task) -> list[str]:
    """Fields that decide an update: written on every run, not keys, not second pass."""
    keys = set(task.target.key)
    return [f.target for f in task.fields if f.compared and not f.second_pass and f.target not in keys]


def _has_candidate_binds(mapping: FieldMapping) -> bool:
    return mapping.lookup is not None and any(c.bind is not None for c in mapping.lookup.candidates)


# -- lookups ----------------------------------------------------------------------------------


class _ReferenceIndex:
    """A reference table indexed by the folded text of its match columns."""

    def __init__(self, frame: pd.DataFrame, match: Sequence[str], sort_by: Sequence[str]) -> None:
        missing = [c for c in [*match, *sort_by] if c not in frame.columns]
        if missing:
            raise MappingError(f"reference frame lacks columns {missing}")
        if sort_by and len(frame):
            frame = frame.sort_values(list(sort_by), kind="stable", na_position="last")
        self.frame = frame.reset_index(drop=True)
        self.index: dict[str, list[int]] = {}
        columns = [column_values(self.frame, c) for c in match]
        for position in range(len(self.frame)):
            parts = [col[position] for col in columns]
            if any(is_blank(p) for p in parts):
                continue
            self.index.setdefault(natural_key(parts).casefold(), []).append(position)

    def find(self, parts: Sequence[Any]) -> list[int]:
        return self.index.get(natural_key(parts).casefold(), [])

    def value(self, position: int, column: str) -> Any:
        return py(self.frame.at[position, column])


@dataclass
class _Evaluation:
    values: list[Any]
    binds: list[str | None] | None = None
    errors: dict[int, str] = field(default_factory=dict)


def _describe(entity_set: str, columns: Sequence[str], parts: Sequence[Any]) -> str:
    pairs = ", ".join(f"{c}={p!r}" for c, p in zip(columns, parts, strict=True))
    return f"{entity_set} with {pairs}"


class _Transformer:
    def __init__(self, task: Task, inputs: TransformInputs) -> None:
        self.task = task
        self.inputs = inputs
        self.fatal_rows: dict[int, str] = {}
        self._own_keys: set[str] = set()

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

    def resolve_lookup(
        self, mapping: FieldMapping, namespace: dict[str, list[Any]], length: int
    ) -> _Evaluation:
        lookup = mapping.lookup
        assert lookup is not None
        prepared = []
        for candidate in lookup.candidates:
            frame = self.inputs.references.get(candidate.reference)
            if frame is None:
                raise MappingError(
                    f"task {self.task.name!r}, field {mapping.target!r}: reference {candidate.reference!r} "
                    "was not staged"
                )
            columns = list(candidate.match)
            index = _ReferenceIndex(frame, columns, lookup.sort_by)
            if candidate.returns not in index.frame.columns:
                raise MappingError(
                    f"task {self.task.name!r}, field {mapping.target!r}: reference {candidate.reference!r} "
                    f"has no column {candidate.returns!r}"
                )
            inputs = []
            errors: dict[int, str] = {}
            for expression in candidate.match.values():
                values, expr_errors = expression.evaluate(namespace, length)
                inputs.append(values)
                errors.update(expr_errors)
            reference = self.task.reference(candidate.reference)
            prepared.append((candidate, reference, columns, index, inputs, errors))

        result = _Evaluation([None] * length, [None] * length if _has_candidate_binds(mapping) else None)
        upstream_ok = self._upstream_ok(lookup.created_by) if lookup.created_by else set()
        own_keys = self._own_keys if lookup.self_reference else set()
        for row in range(length):
            described = []
            had_input = False
            resolved = False
            for candidate, reference, columns, index, inputs, errors in prepared:
                if row in errors:
                    result.errors[row] = errors[row]
                    resolved = True
                    break
                parts = [values[row] for values in inputs]
                if all(is_blank(p) for p in parts):
                    continue
                had_input = True
                matches = index.find(parts)
                if len(matches) > 1 and lookup.pick == "unique":
                    result.errors[row] = (
                        f"ambiguous lookup {mapping.target}: {len(matches)} rows of "
                        f"{_describe(reference.entity_set, columns, parts)}"
                    )
                    resolved = True
                    break
                if matches:
                    result.values[row] = index.value(matches[0], candidate.returns)
                    if result.binds is not None and candidate.bind is not None:
                        result.binds[row] = f"{candidate.bind.navigation}|{candidate.bind.entity_set}"
                    resolved = True
                    break
                folded = natural_key(parts).casefold()
                if folded in upstream_ok or folded in own_keys:
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

    def _upstream_ok(self, task_name: str) -> set[str]:
        outcome = self.inputs.upstream.get(task_name)
        if outcome is None or not len(outcome):
            return set()
        return {
            str(ref).casefold()
            for ref, status in zip(outcome[REF].tolist(), outcome["status"].tolist(), strict=True)
            if ref is not None and not is_blank(ref) and status in OK_STATUSES
        }

    # the whole task -----------------------------------------------------------------------
    def run(self) -> Plan:
        task = self.task
        source = self.inputs.source.reset_index(drop=True)
        read = len(source)
        namespace: dict[str, list[Any]] = {c: column_values(source, c) for c in source.columns}
        missing_columns = [c for c in task.source_columns if c not in namespace]
        if missing_columns:
            raise MappingError(f"task {task.name!r}: source rows lack columns {missing_columns}")
        reasons: list[list[str]] = [[] for _ in range(read)]
        desired, binds = self._evaluate_fields(namespace, reasons, read)

        # route: rows another task of the template takes are skipped, whatever they hold
        kept = list(range(read))
        if task.route is not None:
            keep, errors = task.route.evaluate(namespace, read)
            if errors:
                raise DataError(f"task {task.name!r}: route failed: {next(iter(errors.values()))}")
            kept = [row for row, flag in enumerate(keep) if flag is True]
        skipped = read - len(kept)
        fatal = sorted({self.fatal_rows[row] for row in kept if row in self.fatal_rows})
        if fatal:
            more = f" (+{len(fatal) - 10} more)" if len(fatal) > 10 else ""
            raise DataError("; ".join(fatal[:10]) + more)
        if skipped:
            source = source.iloc[kept].reset_index(drop=True)
            namespace = {c: [values[i] for i in kept] for c, values in namespace.items()}
            desired = {c: [values[i] for i in kept] for c, values in desired.items()}
            binds = {c: [values[i] for i in kept] for c, values in binds.items()}
            reasons = [reasons[i] for i in kept]
        length = len(kept)

        source_keys = self._check_source_keys(namespace, reasons, length)
        if task.target_system == "fno" and COMPANY_FIELD in task.target.key and COMPANY_FIELD not in desired:
            desired[COMPANY_FIELD] = [self.inputs.legal_entity] * length
        refs = self._target_keys(desired, reasons, length)
        self._hold_back_orphans(namespace, reasons, length)
        skipped += self._check_target_duplicates(desired, refs, reasons, length)

        valid = [row for row in range(length) if not reasons[row] and refs[row] is not None]
        rejected = [row for row in range(length) if reasons[row]]
        desired_frame = self._desired_frame(desired, binds, refs, source_keys, valid)
        rejects = self._rejects_frame(source, namespace, refs, source_keys, reasons, rejected)
        return self._diff(desired_frame, rejects, read, skipped)

    def _evaluate_fields(
        self, namespace: dict[str, list[Any]], reasons: list[list[str]], length: int
    ) -> tuple[dict[str, list[Any]], dict[str, list[str | None]]]:
        """Every field in file order (second-pass fields last): value, map, default, type."""
        task = self.task
        desired: dict[str, list[Any]] = {}
        binds: dict[str, list[str | None]] = {}
        ordered = [f for f in task.fields if not f.second_pass] + [f for f in task.fields if f.second_pass]
        for mapping in ordered:
            if mapping.second_pass and not self._own_keys and all(k in desired for k in task.natural_key):
                self._own_keys = {
                    natural_key([desired[k][row] for k in task.natural_key]).casefold()
                    for row in range(length)
                    if not reasons[row]
                }
            evaluation = self.evaluate(mapping, namespace, length)
            for row, message in evaluation.errors.items():
                reasons[row].append(message)
            system = task.target_system if mapping.write else None
            final: list[Any] = []
            for row, value in enumerate(evaluation.values):
                final.append(self._finish_value(mapping, value, reasons[row], system))
            namespace[mapping.target] = final
            if mapping.write:
                desired[mapping.target] = final
            if evaluation.binds is not None:
                binds[mapping.target] = evaluation.binds
        return desired, binds

    @staticmethod
    def _finish_value(mapping: FieldMapping, value: Any, reasons: list[str], system: str | None) -> Any:
        """Value map, default, type, then the field's own checks."""
        if mapping.value_map is not None and not is_blank(value):
            mapped, miss = mapping.value_map.translate(value)
            if miss:
                name = mapping.value_map.name
                reasons.append(f"value {py(value)!r} of {mapping.target} has no entry in value map {name!r}")
            value = mapped
        if is_blank(value) and mapping.default is not None:
            value = mapping.default
        try:
            value = normalize(value, mapping.type, scale=mapping.scale, system=system)
        except ConversionError as exc:
            reasons.append(f"{mapping.target}: {exc}")
            return None
        if mapping.required and value is None:
            reasons.append(f"required field {mapping.target} is empty")
        if mapping.max_length is not None and isinstance(value, str) and len(value) > mapping.max_length:
            reasons.append(
                f"{mapping.target} is {len(value)} characters, at most {mapping.max_length} allowed"
            )
        return value

    def _check_source_keys(
        self, namespace: dict[str, list[Any]], reasons: list[list[str]], length: int
    ) -> list[str]:
        """A missing or duplicated integration key rejects the rows: never merged."""
        key_columns = self.task.source.key
        source_keys: list[str] = []
        for row in range(length):
            parts = [namespace[c][row] for c in key_columns]
            for column, part in zip(key_columns, parts, strict=True):
                if is_blank(part):
                    reasons[row].append(f"source key {column} is empty")
            source_keys.append(natural_key(parts))
        counts: dict[str, int] = {}
        complete = [all(not is_blank(namespace[c][row]) for c in key_columns) for row in range(length)]
        for row, key in enumerate(source_keys):
            if complete[row]:
                counts[key.casefold()] = counts.get(key.casefold(), 0) + 1
        label = "+".join(key_columns)
        for row, key in enumerate(source_keys):
            seen = counts.get(key.casefold(), 0) if complete[row] else 0
            if seen > 1:
                reasons[row].append(
                    f"duplicate source key {label}={key!r} ({seen} rows): rejected, not merged"
                )
        return source_keys

    def _target_keys(
        self, desired: dict[str, list[Any]], reasons: list[list[str]], length: int
    ) -> list[str | None]:
        natural = self.task.natural_key
        refs: list[str | None] = []
        for row in range(length):
            parts = [desired[k][row] for k in natural]
            empty = [k for k, p in zip(natural, parts, strict=True) if is_blank(p)]
            if empty:
                if not any(f"required field {k} is empty" in r for r in reasons[row] for k in empty):
                    reasons[row].append(f"target key {'+'.join(empty)} is empty")
                refs.append(None)
            else:
                refs.append(natural_key(parts))
        return refs

    def _hold_back_orphans(
        self, namespace: dict[str, list[Any]], reasons: list[list[str]], length: int
    ) -> None:
        """A line whose header was rejected or failed in this run is not written half-done."""
        parent_spec = self.task.parent
        if parent_spec is None:
            return
        parent = self.inputs.upstream.get(parent_spec.task)
        if parent is None or not len(parent):
            return
        states = {
            str(ref).casefold(): (status, reason)
            for ref, status, reason in zip(
                parent[REF].tolist(), parent["status"].tolist(), parent["reason"].tolist(), strict=True
            )
            if not is_blank(ref) and status in BAD_STATUSES
        }
        for row in range(length):
            parts = [namespace[name][row] for name in parent_spec.match]
            if any(is_blank(p) for p in parts):
                continue
            key = natural_key(parts)
            state = states.get(key.casefold())
            if state is not None:
                why = py(state[1]) or "no reason given"
                reasons[row].append(f"held back: {parent_spec.label} {key} was {state[0]} ({why})")

    def _check_target_duplicates(
        self, desired: dict[str, list[Any]], refs: list[str | None], reasons: list[list[str]], length: int
    ) -> int:
        """Two source rows for one target row: identical wishes collapse into one (many
        invoices mark one order Invoiced); conflicting ones are all rejected."""
        groups: dict[str, list[int]] = {}
        for row, ref in enumerate(refs):
            if ref is not None and not reasons[row]:
                groups.setdefault(ref.casefold(), []).append(row)
        collapsed = 0
        for rows in groups.values():
            if len(rows) < 2:
                continue
            first = rows[0]
            identical = all(
                values_equal(desired[name][first], desired[name][other])
                for other in rows[1:]
                for name in desired
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

    def _desired_frame(
        self,
        desired: dict[str, list[Any]],
        binds: dict[str, list[str | None]],
        refs: list[str | None],
        source_keys: list[str],
        rows: list[int],
    ) -> pd.DataFrame:
        data: dict[str, list[Any]] = {
            REF: [refs[r] for r in rows],
            ID: [None] * len(rows),
            SOURCE_KEY: [source_keys[r] for r in rows],
        }
        for name, values in desired.items():
            data[name] = [values[r] for r in rows]
        for name, values in binds.items():
            data[BIND_PREFIX + name] = [values[r] for r in rows]
        return pd.DataFrame(data, dtype=object)

    def _rejects_frame(
        self,
        source: pd.DataFrame,
        namespace: dict[str, list[Any]],
        refs: list[str | None],
        source_keys: list[str],
        reasons: list[list[str]],
        rows: list[int],
    ) -> pd.DataFrame:
        records = source.to_dict("records")
        data: dict[str, list[Any]] = {
            REF: [refs[r] for r in rows],
            SOURCE_KEY: [source_keys[r] for r in rows],
            REASON: ["; ".join(reasons[r]) for r in rows],
            ROW: [json.dumps({k: py(v) for k, v in records[r].items()}, default=str) for r in rows],
        }
        for column in self.task.source.key:
            data[column] = [
                None if is_blank(namespace[column][r]) else str(py(namespace[column][r])) for r in rows
            ]
        return pd.DataFrame(data, dtype=object)

    def _snapshot_frame(self) -> pd.DataFrame:
        """The snapshot under target field names, normalized like the desired rows."""
        task = self.task
        raw = self.inputs.snapshot.reset_index(drop=True)
        if task.target_system == "fno" and COMPANY_FIELD in raw.columns and self.inputs.legal_entity:
            company = self.inputs.legal_entity.casefold()
            mask = [str(v).casefold() == company for v in raw[COMPANY_FIELD].tolist()]
            raw = raw.loc[pd.Series(mask, index=raw.index, dtype=bool)].reset_index(drop=True)
        data: dict[str, list[Any]] = {}
        for mapping in written_fields(task):
            column = mapping.snapshot_column
            if column not in raw.columns:
                continue
            normalized = []
            for value in column_values(raw, column):
                try:
                    normalized.append(
                        normalize(value, mapping.type, scale=mapping.scale, system=task.target_system)
                    )
                except ConversionError:
                    normalized.append(py(value))
            data[mapping.target] = normalized
        length = len(raw)
        missing = [k for k in task.natural_key if k not in data]
        if missing:
            raise MappingError(f"task {task.name!r}: snapshot lacks key columns {missing}")
        data[REF] = [
            None
            if any(is_blank(data[k][r]) for k in task.natural_key)
            else natural_key([data[k][r] for k in task.natural_key])
            for r in range(length)
        ]
        primary = task.target.primary_id
        data[ID] = column_values(raw, primary) if primary and primary in raw.columns else [None] * length
        return pd.DataFrame(data, dtype=object)

    def _diff(self, desired: pd.DataFrame, rejects: pd.DataFrame, read: int, skipped: int) -> Plan:
        task = self.task
        snapshot = self._snapshot_frame()
        compare = compared_fields(task)
        ignore_null = {f.target for f in task.fields if f.is_bind}
        result = differ.diff(desired, snapshot, key=REF, compare=compare, ignore_null=ignore_null)
        desired_records = desired.to_dict("records")
        snapshot_ids = snapshot[ID].tolist() if len(snapshot) else []
        snapshot_records = snapshot.to_dict("records") if len(snapshot) else []
        extra_rejects = []
        for position, count in result.ambiguous.items():
            row = desired_records[position]
            extra_rejects.append(
                {
                    REF: row[REF],
                    SOURCE_KEY: row[SOURCE_KEY],
                    REASON: f"target has {count} rows with key {row[REF]!r}",
                }
            )
        creates = [(p, dict(desired_records[p])) for p in result.creates]
        if "create" not in task.target.operations:
            extra_rejects.extend(
                {
                    REF: r[REF],
                    SOURCE_KEY: r[SOURCE_KEY],
                    REASON: f"{task.target.entity_set} row {r[REF]!r} not found (this task only updates)",
                }
                for _, r in creates
            )
            creates = []
        for _, row in creates:
            if task.target_system == "dataverse":
                row[ID] = deterministic_id(task.target.entity_set, row[REF])
        updates = []
        for update in result.updates:
            row = dict(desired_records[update.desired_row])
            row[ID] = snapshot_ids[update.snapshot_row]
            row[CHANGED] = update.changed
            updates.append((update.desired_row, update.snapshot_row, row))
        if "update" not in task.target.operations:
            skipped += len(updates)
            updates = []
        unchanged = []
        for position, snapshot_row in result.unchanged:
            row = dict(desired_records[position])
            row[ID] = snapshot_ids[snapshot_row]
            unchanged.append((position, snapshot_row, row))

        # second pass: self-references written once every row of the first pass exists
        second = [f.target for f in task.fields if f.second_pass and f.write]
        second_rows = []
        if second:
            candidates = [(row, {}) for _, row in creates]
            candidates += [(row, snapshot_records[s]) for _, s, row in [*updates, *unchanged]]
            for row, current in candidates:
                changed = [
                    name
                    for name in second
                    if py(row.get(name)) is not None
                    and not values_equal(py(row.get(name)), py(current.get(name)))
                ]
                if changed:
                    entry = dict(row)
                    entry[CHANGED] = changed
                    second_rows.append(entry)

        if extra_rejects:
            rejects = pd.concat([rejects, pd.DataFrame(extra_rejects, dtype=object)], ignore_index=True)
        columns = [field.name for field in field_schema(task)]
        return Plan(
            task=task,
            creates=_frame([r for _, r in creates], columns),
            updates=_frame([r for _, _, r in updates], [*columns, CHANGED]),
            unchanged=_frame([r for _, _, r in unchanged], columns),
            rejects=_frame(rejects.to_dict("records"), [field.name for field in rejects_schema(task)]),
            second_pass=_frame(second_rows, [*columns, CHANGED]),
            read=read,
            skipped=skipped,
        )


def _frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: [r.get(c) for r in records] for c in columns}, columns=columns, dtype=object)


def build_plan(task: Task, inputs: TransformInputs) -> Plan:
    """Transform and diff one task. Raises :class:`DataError` when a lookup declared
    ``on_missing: fail`` misses (the task must fail visibly, not drop rows)."""
    return _Transformer(task, inputs).run()


def snapshot_frame(task: Task, snapshot: pd.DataFrame, legal_entity: str = "") -> pd.DataFrame:
    """Raw target rows as the diff sees them: normalized written fields under their target
    names, plus the natural key (``__ref``) and the primary id (``__id``).

    Public so that a report comparing the plan with the target (reconciliation) shows the
    very values the diff compared, instead of normalizing a second way. F&O rows of other
    companies are dropped when ``legal_entity`` is given.
    """
    inputs = TransformInputs(source=pd.DataFrame(), snapshot=snapshot, legal_entity=legal_entity)
    return _Transformer(task, inputs)._snapshot_frame()
