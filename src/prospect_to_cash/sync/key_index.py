"""Sets and indexes of folded keys, kept as Arrow arrays, that the row rules
(:mod:`prospect_to_cash.sync.rules`) join a chunk against: a reference table by its match
columns, the keys an earlier task of the run wrote, the last state of a header's keys.

Arrow arrays rather than dicts of Python strings: a reference may be a whole target table
(products for price list items) and has to stay small beside the chunk being mapped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from prospect_to_cash.sync.errors import MappingError
from prospect_to_cash.sync.values import is_blank, map_values, memo_key, natural_key

if TYPE_CHECKING:
    from collections.abc import Sequence


def _fold_array(keys: list[str | None]) -> pa.Array:
    return pa.array(keys, type=pa.string())


class ReferenceIndex:
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


class KeySet:
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


class KeyStates:
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


def lookup_queries(values: Sequence[Any], *, single: bool) -> list[str | None]:
    """The folded key a lookup searches for, per row (None: every match value blank),
    once per distinct value: lookups mostly match on codes (currency, unit, group)."""
    if single:
        return map_values(values, lambda value: _lookup_query((value,)))
    return map_values(
        [tuple(memo_key(p) for p in parts) for parts in values],
        lambda key: _lookup_query([p if p.__class__ is str else p[1] for p in key]),
    )
