"""Target snapshots and lookups scoped to the run: which keys a windowed run reads.

A daily run that moves 1 % of the rows needs the target rows of that 1 % and the reference
rows its lookups find, not the whole tables. After the extract staged the source rows,
`target_scope` and `reference_scope` name one target column and the values the run's rows
carry in it; the hooks read those in chunked key filters (`iter_pages_by_keys`). Reading a
superset is safe (rows the run does not touch are never compared), so one column of a
multi-column key or match is enough.

Where every column of the target key can be derived for each source row (an order line:
its order's number through the source-side header reference, its line number copied), the
snapshot reads by the whole key (`RowScope`): the changed lines only, not every line of
their orders. A lookup into the parent's target table that returns the very column it
matches on (the line's ``SalesOrderNumber`` found among the F&O headers) only checks that
the parent exists there; a target line of that parent proves it, so that reference is read
after the rows, for the parents no target row names (`implied_references`).

Whole reads stay where they are cheaper or where no column can be derived: full refreshes,
more than `SCOPED_READ_MAX_KEYS` keys, keys that a value map, an expression or a lookup
through an unscoped reference computes (units by name and unit group, price lists by a
mapped currency: small tables, the run's fixed reference overhead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prospect_to_cash.sync.values import ConversionError, is_blank, normalize, py

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import pandas as pd

    from prospect_to_cash.sync.context import SyncContext
    from prospect_to_cash.sync.mapping import LookupCandidate, Reference, Task

#: Distinct keys above which a windowed run reads the table whole. A scoped read costs one
#: request per 50 keys on F&O (500 on Dataverse), a whole read one per 10,000 (5,000) rows:
#: at 5,000 keys that is 100 requests on F&O, what a whole read of a 1M-row table costs,
#: while reading 200 times fewer rows (measured in docs/benchmarks.md, `bench daily`).
SCOPED_READ_MAX_KEYS = 5_000


@dataclass(frozen=True)
class KeyScope:
    """Read only the rows whose ``column`` is one of ``values``."""

    column: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class RowScope:
    """Read only the rows whose ``columns`` together equal one of ``rows`` (a composite
    key: an order line by order number and line number)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


def windowed(ctx: SyncContext) -> bool:
    """The extract of this run read a change window (not a full refresh) and staged it."""
    if not ctx.staging.exists("source", "window", ".json") or not ctx.staging.exists("source", "rows"):
        return False
    return not ctx.staging.read_json("source", "window").get("full_refresh", True)


def _plain_source(task: Task, name: str) -> str | None:
    """The source column that ``name`` (a field or a source column) carries unchanged."""
    mapping = task.field(name)
    if mapping is None:
        return name if name in task.source_columns else None
    unchanged = mapping.value_map is None and mapping.default is None and mapping.type in ("string", "guid")
    return mapping.source if mapping.source and unchanged else None


def _distinct(frame: pd.DataFrame, column: str) -> tuple[str, ...]:
    values = (py(v) for v in frame[column].tolist())
    return tuple(dict.fromkeys(str(v) for v in values if not is_blank(v)))


def _name_values(ctx: SyncContext, name: str, source: pd.DataFrame) -> tuple[str, ...] | None:
    """The values ``name`` takes over the run's source rows, where that is knowable before
    the transform: a source column (or a field copying one), or a field looked up in
    source-side references by such a column (an account's parent account number; an
    order's customer number, found among accounts or contacts: the union of what every
    candidate can return); else None."""
    task = ctx.task
    plain = _plain_source(task, name)
    if plain is not None:
        return _distinct(source, plain) if plain in source.columns else None
    mapping = task.field(name)
    lookup = mapping.lookup if mapping is not None else None
    if lookup is None or not lookup.candidates or mapping is None or mapping.value_map is not None:
        return None
    values: dict[str, None] = {}
    for candidate in lookup.candidates:
        found = _candidate_values(ctx, candidate, source)
        if found is None:
            return None
        values.update(dict.fromkeys(found))
    return tuple(values)


def _candidate_values(
    ctx: SyncContext, candidate: LookupCandidate, source: pd.DataFrame
) -> tuple[str, ...] | None:
    """What one lookup candidate into a staged source-side reference returns for the run's
    source rows; None when that is not knowable before the transform."""
    task = ctx.task
    if task.reference(candidate.reference).side != "source" or len(candidate.match) != 1:
        return None
    ((column, expression),) = candidate.match.items()
    by = _plain_source(task, expression.text.strip())
    if (
        by is None
        or by not in source.columns
        or not ctx.staging.exists("source", f"ref-{candidate.reference}")
    ):
        return None
    staged = ctx.staging.read_frame("source", f"ref-{candidate.reference}")
    if staged.empty:
        return ()  # the reference holds no row for the run's keys
    wanted = set(_distinct(source, by))
    rows = staged.loc[[str(py(v)) in wanted for v in staged[column].tolist()]]
    return _distinct(rows, candidate.returns)


def _bounded(column: str, values: tuple[str, ...]) -> KeyScope | None:
    return KeyScope(column, values) if len(values) <= SCOPED_READ_MAX_KEYS else None


def reference_scope(ctx: SyncContext, reference: Reference, source: pd.DataFrame) -> KeyScope | None:
    """The rows of a target-side reference this run's lookups can find: one match column
    that every lookup through it fills straight from a source column; else None (whole)."""
    task = ctx.task
    chosen: tuple[str, str] | None = None
    for mapping in task.fields:
        for candidate in mapping.lookup.candidates if mapping.lookup else ():
            if candidate.reference != reference.name:
                continue
            plain = [
                (column, expression.text.strip())
                for column, expression in candidate.match.items()
                if len(expression.names) == 1 and expression.text.strip() in expression.names
            ]
            if not plain or (chosen is not None and chosen not in plain):
                return None
            chosen = chosen or plain[0]
    values = _name_values(ctx, chosen[1], source) if chosen is not None else None
    return None if chosen is None or values is None else _bounded(chosen[0], values)


def _fold(value: Any) -> str:
    """How a key value is matched across tables (both services compare text ignoring case)."""
    return str(py(value)).casefold()


def _implied_match(ctx: SyncContext, name: str) -> tuple[str, str] | None:
    """(reference, expression name) when key field ``name`` is looked up in a target-side
    reference that gives back the very column it matches on and nothing else is read from
    it: the lookup only checks that the parent exists, and its value is the expression's."""
    task = ctx.task
    mapping = task.field(name)
    lookup = mapping.lookup if mapping is not None else None
    if mapping is None or lookup is None or len(lookup.candidates) != 1 or mapping.value_map is not None:
        return None
    candidate = lookup.candidates[0]
    reference = task.reference(candidate.reference)
    if reference.side != "target" or len(candidate.match) != 1 or lookup.sort_by:
        return None
    ((column, expression),) = candidate.match.items()
    text = expression.text.strip()
    if column != candidate.returns or text not in expression.names or len(expression.names) != 1:
        return None
    if set(task.reference_columns(reference.name)) != {column}:
        return None
    return reference.name, text


def implied_references(ctx: SyncContext) -> dict[str, str]:
    """Target-side references a key field only checks for existence (`_implied_match`):
    ``{reference: key field}``. A target row of that key proves the parent is there."""
    found: dict[str, str] = {}
    for key in ctx.task.natural_key:
        match = _implied_match(ctx, key)
        if match is not None:
            found.setdefault(match[0], key)
    return found


def _row_values(
    ctx: SyncContext, name: str, source: pd.DataFrame, references: Mapping[str, pd.DataFrame]
) -> list[Any] | None:
    """What ``name`` (a key field) is for each source row (None where a row has none), where
    that is knowable before the transform: a copied column (text, or a whole number), a
    lookup into a staged source-side reference by such a column, or a lookup into a read
    target-side reference (``references``) or one that only checks existence; else None."""
    task = ctx.task
    plain = _plain_source(task, name)
    if plain is not None:
        return [None if is_blank(py(v)) else str(py(v)) for v in source[plain]] if plain in source else None
    mapping = task.field(name)
    if mapping is None:
        return None
    if mapping.source and mapping.type == "int" and mapping.value_map is None and mapping.default is None:
        if mapping.source not in source.columns:
            return None
        try:
            return [None if is_blank(py(v)) else normalize(v, "int") for v in source[mapping.source]]
        except ConversionError:
            return None  # the transform rejects such rows; read by the other columns
    implied = _implied_match(ctx, name)
    if implied is not None:
        return _row_values(ctx, implied[1], source, references)
    lookup = mapping.lookup
    if lookup is None or len(lookup.candidates) != 1 or mapping.value_map is not None:
        return None
    candidate = lookup.candidates[0]
    if len(candidate.match) != 1:
        return None
    ((column, expression),) = candidate.match.items()
    if task.reference(candidate.reference).side == "source":
        by = _plain_source(task, expression.text.strip())
        if by is None or not ctx.staging.exists("source", f"ref-{candidate.reference}"):
            return None
        found = ctx.staging.read_frame("source", f"ref-{candidate.reference}")
        wanted = [None if is_blank(py(v)) else v for v in source[by]] if by in source.columns else None
    else:
        text = expression.text.strip()
        if candidate.reference not in references or text not in expression.names:
            return None
        found = references[candidate.reference]
        wanted = _row_values(ctx, text, source, references)
    if wanted is None or column not in found.columns or candidate.returns not in found.columns:
        return None
    table: dict[str, Any] = {}
    for match, value in zip(found[column].tolist(), found[candidate.returns].tolist(), strict=True):
        if not is_blank(py(match)) and not is_blank(py(value)):
            table.setdefault(_fold(match), str(py(value)))
    return [None if value is None else table.get(_fold(value)) for value in wanted]


def row_scope(
    ctx: SyncContext, source: pd.DataFrame, references: Mapping[str, pd.DataFrame]
) -> RowScope | None:
    """The target rows of this run's source rows by their whole key, where every key column
    can be derived for each row (`_row_values`) and the key has more than one column; rows
    missing a part have no target row to compare with (`key_rows` orders the columns)."""
    task = ctx.task
    if len(task.natural_key) < 2:
        return None
    columns: list[tuple[str, list[Any]]] = []
    for key in task.natural_key:
        values = _row_values(ctx, key, source, references)
        mapping = task.field(key)
        if values is None or mapping is None:
            return None
        columns.append((mapping.snapshot_column, values))
    rows = [
        row for row in zip(*(values for _, values in columns), strict=True) if all(v is not None for v in row)
    ]
    return key_rows(tuple(name for name, _ in columns), rows)


def key_rows(columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> RowScope | None:
    """The distinct ``rows`` of ``columns`` as a `RowScope`, None above
    `SCOPED_READ_MAX_KEYS`. The column with the fewest distinct values comes first: the
    filters group the rows under its values, fewer groups, shorter filters
    (``(LineCreationSequenceNumber eq 1 and (SalesOrderNumber eq 'A' or ...))``)."""
    distinct = list(dict.fromkeys(rows))
    if len(distinct) > SCOPED_READ_MAX_KEYS:
        return None
    order = sorted(range(len(columns)), key=lambda i: len({_fold(row[i]) for row in distinct}))
    return RowScope(tuple(columns[i] for i in order), tuple(tuple(row[i] for i in order) for row in distinct))


def target_scope(
    ctx: SyncContext, source: pd.DataFrame, references: Mapping[str, pd.DataFrame]
) -> KeyScope | RowScope | None:
    """The target rows this run's source rows can be: by their whole key (`row_scope`), else
    by the first key field filled straight from a source column, or by one looked up in a
    scoped reference (a line by its header's id: ``references`` holds the scoped
    references' staged rows)."""
    rows = row_scope(ctx, source, references)
    if rows is not None:
        return rows
    task = ctx.task
    for key in task.natural_key:
        mapping = task.field(key)
        if mapping is None:
            continue
        values = _name_values(ctx, key, source)
        if values is not None:
            return _bounded(mapping.snapshot_column, values)
        lookup = mapping.lookup
        if lookup is None or len(lookup.candidates) != 1 or lookup.candidates[0].reference not in references:
            continue
        found = references[lookup.candidates[0].reference]
        returns = lookup.candidates[0].returns
        if returns not in found.columns:
            continue
        # headers this run created are in the reference already (read after their load);
        # headers it only plans (a dry run) have no lines in the target yet
        return _bounded(mapping.snapshot_column, _distinct(found, returns))
    return None
