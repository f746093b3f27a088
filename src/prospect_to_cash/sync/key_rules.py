"""Rules that hold across runs: a run decides every key it reads over the whole source.

The planner rejects every row of a source key that occurs more than once, and the rules
that follow from it (the lines of a rejected header are held back, a key shared by two
rows is never merged), but it can only count the rows it was given. A full refresh gives
it the whole source; a daily run only its change window. Two Sales accounts sharing a
number, entered on different days, would then each look unique in their own run: the
first creates the customer and the second silently overwrites it.

So the extract completes every key it read: after the window (and the pending ledger's
re-reads), it reads, by key, the other source rows that share a key with a row of the
window but lie outside it (same source filter and company scope, chunked key filters
like the ledger's). The planner then sees every row of each of its keys, as a full
refresh would, and rejects them all; a key that became ambiguous after it was synced
stops updating its target row and stays in the dead letter and the pending ledger, with
the duplicate as the reason, until the source is fixed.

Only sources read by a change window need this: a source without a change field (the
F&O entities) and a full refresh are read whole.

A delta (`prospect_to_cash.sync.changes`) has no window clause to leave its own rows out,
so its key reads name the rows already in hand instead (``<primary_id> ne <id>``): they
were read moments ago, and reading them back would only cost a second transfer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prospect_to_cash.hooks.odata import and_filters, format_key_value
from prospect_to_cash.sync.values import is_blank, natural_key, py

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import pandas as pd

#: Keys asked for per request (keeps the URL well under the services' limits).
KEYS_PER_READ = 40


def fold(values: Sequence[Any]) -> str:
    """The key as the planner compares it (Dataverse's ``eq`` on text ignores case too)."""
    return natural_key(values).casefold()


def key_filters(
    columns: Sequence[str],
    keys: Sequence[Sequence[Any]],
    *scope: str | None,
    besides: tuple[str, Mapping[str, Sequence[str]]] | None = None,
) -> list[str]:
    """Filters that read the rows of ``keys`` (``columns`` in order), ``KEYS_PER_READ``
    keys per filter, each and-ed with ``scope`` (source filter, outside the window,
    company). ``besides`` (primary id column, folded key -> ids) leaves out the rows of
    each key already in hand."""
    filters = []
    for start in range(0, len(keys), KEYS_PER_READ):
        chunk = keys[start : start + KEYS_PER_READ]
        terms = [
            and_filters(*(f"{c} eq {format_key_value(v)}" for c, v in zip(columns, key, strict=True)))
            for key in chunk
        ]
        held: list[str] = []
        if besides is not None:
            column, ids = besides
            held = [f"{column} ne {format_key_value(i)}" for key in chunk for i in ids.get(fold(key), ())]
        filters.append(and_filters(*scope, " or ".join(f"({t})" for t in terms), *held))
    return filters


@dataclass
class KeySharers:
    """The source keys a windowed read saw, and the reads of their rows outside the window.

    :param columns: the task's source key columns.
    :param scope: what every source read of the task is and-ed with: its source filter,
        the outside-of-the-window condition and the company scope.
    :param complete: folded keys whose outside rows are read anyway (the pending ledger's).
    :param primary_id: with a delta (no window clause), the column naming each row: the
        reads leave out the rows `observe` saw (None: the scope leaves them out).
    """

    columns: tuple[str, ...]
    scope: tuple[str | None, ...]
    complete: set[str] = field(default_factory=set)
    wanted: dict[str, list[Any]] = field(default_factory=dict)
    primary_id: str | None = None
    in_hand: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        columns: Sequence[str],
        scope: Sequence[str | None],
        pending: Iterable[Sequence[Any]],
        primary_id: str | None = None,
    ) -> KeySharers:
        return cls(tuple(columns), tuple(scope), {fold(key) for key in pending}, primary_id=primary_id)

    def observe(self, page: pd.DataFrame) -> None:
        """Note the keys of a page of the window (blank keys are rejected anyway)."""
        if page.empty:
            return
        ids = page[self.primary_id].tolist() if self.primary_id else [None] * len(page)
        keys = zip(*(page[c].tolist() for c in self.columns), strict=True)
        for parts, row_id in zip(keys, ids, strict=True):
            values = [py(p) for p in parts]
            if any(is_blank(v) for v in values):
                continue
            folded = fold(values)
            if folded not in self.complete and folded not in self.wanted:
                self.wanted[folded] = values
            if folded in self.wanted and not is_blank(row_id):
                self.in_hand.setdefault(folded, []).append(str(row_id).lower())

    def want(self, values: Sequence[Any]) -> None:
        """Read the rows of a key besides those `observe` found (a parked duplicate whose
        twin was deleted)."""
        folded = fold(values)
        if folded not in self.complete:
            self.wanted.setdefault(folded, list(values))

    def filters(self) -> list[str]:
        """The reads of the rows outside the window (or the delta's rows in hand) that share
        a key seen in it."""
        besides = (self.primary_id, self.in_hand) if self.primary_id else None
        return key_filters(self.columns, list(self.wanted.values()), *self.scope, besides=besides)
