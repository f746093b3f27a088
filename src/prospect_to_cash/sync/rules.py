"""The row rules of one task: source rows → the desired target rows, a chunk at a time.

No hooks and no files here: the rules read staged rows through :class:`PlanInputs`, so
they stay testable row by row and a dry run shows exactly what a load would do. For each
chunk of source rows, in this order:

1. route: rows the task's ``route`` expression excludes are *skipped* (another task
   of the template takes them, e.g. contacts → contact persons or customers);
2. source keys: a missing integration key rejects the row, never merges;
3. fields, in file order (second-pass fields last): value, value map, default, type;
   lookups join against staged reference tables (indexed once per task);
4. validation: required, max length, value-map misses, dangling lookups, conversion;
5. parent hold-back: a line whose header was rejected or failed in this run is rejected
   with a reason naming the header.

Duplicate keys across chunks and the diff against the target are the planner's
(:mod:`prospect_to_cash.sync.planner`), which calls :class:`RowRules` chunk by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from prospect_to_cash.sync.columns import (
    ARROW_TYPES,
    BAD_STATUSES,
    BIND_PREFIX,
    EMPTY_KEYS,
    HOLD,
    KEY_PREFIX,
    OK_STATUSES,
    POS,
    PRE,
    REF,
    REF_FOLD,
    SKEY_FOLD,
    SOURCE_KEY,
    SRC_PREFIX,
    TEXTS,
    has_candidate_binds,
)
from prospect_to_cash.sync.company_scope import company_row_id
from prospect_to_cash.sync.errors import DataError, MappingError
from prospect_to_cash.sync.key_index import KeySet, KeyStates, ReferenceIndex, lookup_queries
from prospect_to_cash.sync.limits import RECORD_CURRENCY, rows_by_places, text_limit, unknown_currency_warning
from prospect_to_cash.sync.mapping import COMPANY_FIELD, FieldMapping, Task
from prospect_to_cash.sync.read_only import is_closed_reason
from prospect_to_cash.sync.values import (
    ConversionError,
    deterministic_id,
    is_blank,
    map_values,
    natural_key,
    normalize,
    py,
    rounded_positions,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from prospect_to_cash.sync.sides import Reference


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
        if limit is not None and isinstance(value, str) and len(value) > limit:
            problems.append(f"{mapping.target} is {len(value)} characters, at most {limit} allowed")
        elif mapping.limits is not None and (beyond := mapping.limits.problem(value)):
            problems.append(beyond)  # the target's $metadata: numbers and dates
        return value, tuple(problems)

    limit = text_limit(mapping)
    if mapping.type != "string" or mapping.value_map is not None:
        return finish

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


class RowRules:
    """The per-row rules of one task (fields, lookups, route, keys, hold-back) over one
    chunk at a time, with what the whole task shares (reference indexes, upstream keys,
    the task's own keys) built once."""

    def __init__(self, task: Task, inputs: PlanInputs, rows: int) -> None:
        self.task = task
        self.inputs = inputs
        self.rows = rows
        self.fatal_rows: dict[int, str] = {}
        self.fatal: set[str] = set()
        self.own_keys: KeySet | None = None
        self._tables: dict[str, pa.Table | None] = {}
        self._indexes: dict[tuple[str, tuple[str, ...], tuple[str, ...]], ReferenceIndex] = {}
        self._upstream_ok: dict[str, KeySet] = {}
        self._parent_states: KeyStates | None = None
        self._parent_loaded = False
        #: decimal values rounded to the target's places, per target field, over kept rows
        self.rounded: dict[str, int] = {}
        self._chunk_rounded: dict[str, list[int]] = {}
        self._unknown_currency_logged = False

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
    ) -> ReferenceIndex:
        assert mapping.lookup is not None
        table = self._reference_table(reference)
        if table is None:
            raise MappingError(
                f"task {self.task.name!r}, field {mapping.target!r}: reference {reference!r} was not staged"
            )
        key = (reference, tuple(match), tuple(mapping.lookup.sort_by))
        index = self._indexes.get(key)
        if index is None:
            index = ReferenceIndex(table, match, mapping.lookup.sort_by, self.rows)
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
        upstream_ok = self.upstream_ok(lookup.created_by) if lookup.created_by else KeySet()
        own_keys = self.own_keys if lookup.self_reference and mapping.second_pass else None
        own_keys = own_keys if own_keys is not None else KeySet()
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
            queries = lookup_queries(inputs[0] if len(inputs) == 1 else rows_parts, single=len(inputs) == 1)
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
                    result.values[row] = self._planned_value(reference, parts)
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

    def _planned_value(self, reference: Reference, parts: Sequence[Any]) -> Any:
        """The value a lookup would have found once the planned row exists: the
        deterministic GUID on a Dataverse target (within the company where the reference
        is company-scoped, as `company_scope.created_row_id` creates it), else the key."""
        side = reference.side
        system = self.task.target_system if side == "target" else self.task.source_system
        if system == "dataverse" and reference.company_scope == "business_unit":
            return company_row_id(reference.entity_set, self.inputs.legal_entity, natural_key(parts))
        if system == "dataverse":
            return deterministic_id(reference.entity_set, natural_key(parts))
        return py(parts[0]) if len(parts) == 1 else natural_key(parts)

    def upstream_ok(self, task_name: str) -> KeySet:
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
            self._upstream_ok[task_name] = KeySet(parts)
        return self._upstream_ok[task_name]

    def parent_states(self) -> KeyStates | None:
        """Keys of the header task's rejected or failed rows (last word per key), not closed ones."""
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
                        if not is_blank(ref) and status in BAD_STATUSES and not is_closed_reason(reason):
                            keys.append(str(ref).casefold())
                            statuses.append(status)
                            reasons.append(reason)
                self._parent_states = KeyStates(keys, statuses, reasons)
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
            self._chunk_rounded = {}
        by_currency: list[tuple[FieldMapping, list[Any]]] = []
        for mapping in ordered:
            evaluation = self.evaluate(mapping, namespace, length)
            for row, message in evaluation.errors.items():
                reasons[row].append(message)
            system = task.target_system if mapping.write else None
            if mapping.currency_places is not None and mapping.write:
                by_currency.append((mapping, evaluation.values))
            final: list[Any] = []
            for row, (value, problems) in enumerate(
                map_values(evaluation.values, _finisher(mapping, system))
            ):
                if problems:
                    reasons[row].extend(problems)
                final.append(value)
            if (
                mapping.type == "decimal"
                and mapping.write
                and mapping.value_map is None
                and not first_pass_only
            ):
                self._chunk_rounded[mapping.target] = rounded_positions(evaluation.values, final)
            namespace[mapping.target] = final
            if mapping.write:
                desired[mapping.target] = final
            if evaluation.binds is not None:
                binds[mapping.target] = evaluation.binds
        for mapping, before in by_currency:  # once every row's currency is known
            final = self._round_by_currency(mapping, before, namespace)
            namespace[mapping.target] = desired[mapping.target] = final
            if mapping.target in self._chunk_rounded and not first_pass_only:
                self._chunk_rounded[mapping.target] = rounded_positions(before, final)
        return desired, binds

    def _round_by_currency(
        self, mapping: FieldMapping, before: list[Any], namespace: dict[str, list[Any]]
    ) -> list[Any]:
        """A column that follows the record currency, each row rounded from its value before
        rounding to its own currency's places (`prospect_to_cash.sync.limits.rows_by_places`);
        the field's problems were found on the first rounding and do not depend on places."""
        currency = self.task.field(RECORD_CURRENCY)
        record = namespace.get(RECORD_CURRENCY) if currency is not None and currency.write else None
        final = list(namespace[mapping.target])
        groups, unknown = rows_by_places(mapping, record, before)
        for kept, rows in groups.items():
            finish = _finisher(replace(mapping, scale=kept), self.task.target_system)
            for row, (value, _) in zip(rows, map_values([before[r] for r in rows], finish), strict=True):
                final[row] = value
        if unknown and not self._unknown_currency_logged:
            self._unknown_currency_logged = True
            unknown_currency_warning(self.task.target.entity_set, mapping)
        return final

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
                self.own_keys = KeySet()
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
        self.own_keys = KeySet(parts)

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
        kept_rows = set(kept)
        for target, positions in self._chunk_rounded.items():
            if count := sum(1 for row in positions if row in kept_rows):
                self.rounded[target] = self.rounded.get(target, 0) + count
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
            POS: pa.array([start + row for row in kept], type=pa.int64()),
            SOURCE_KEY: pa.array(source_keys, type=pa.string()),
            SKEY_FOLD: pa.array(source_folds, type=pa.string()),
            REF: pa.array(refs, type=pa.string()),
            REF_FOLD: pa.array([None if r is None else r.casefold() for r in refs], type=pa.string()),
            PRE: pa.array(reasons, type=TEXTS),
            EMPTY_KEYS: pa.array(empties, type=TEXTS),
            HOLD: pa.array(self._hold_back(namespace, count), type=pa.string()),
        }
        for name, values in desired.items():
            mapping = task.field(name)
            arrays[name] = pa.array(values, type=ARROW_TYPES[mapping.type] if mapping else pa.string())
        for name, values in binds.items():
            arrays[BIND_PREFIX + name] = pa.array(values, type=pa.string())
        for column in key_columns:
            arrays[KEY_PREFIX + column] = pa.array(
                [None if is_blank(v) else str(py(v)) for v in namespace[column]], type=pa.string()
            )
        for column in raw.column_names:
            arrays[SRC_PREFIX + column] = raw.column(column)
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
