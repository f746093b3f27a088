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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prospect_to_cash.hooks.odata import and_filters, format_key_value
from prospect_to_cash.sync.values import is_blank, natural_key, py

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import pandas as pd

#: Keys asked for per request (keeps the URL well under the services' limits).
KEYS_PER_READ = 40


def fold(values: Sequence[Any]) -> str:
    """The key as the planner compares it (Dataverse's ``eq`` on text ignores case too)."""
    return natural_key(values).casefold()


def key_filters(columns: Sequence[str], keys: Sequence[Sequence[Any]], *scope: str | None) -> list[str]:
    """Filters that read the rows of ``keys`` (``columns`` in order), ``KEYS_PER_READ``
    keys per filter, each and-ed with ``scope`` (source filter, outside the window,
    company)."""
    filters = []
    for start in range(0, len(keys), KEYS_PER_READ):
        terms = [
            and_filters(*(f"{c} eq {format_key_value(v)}" for c, v in zip(columns, key, strict=True)))
            for key in keys[start : start + KEYS_PER_READ]
        ]
        filters.append(and_filters(*scope, " or ".join(f"({t})" for t in terms)))
    return filters


@dataclass
class KeySharers:
    """The source keys a windowed read saw, and the reads of their rows outside the window.

    :param columns: the task's source key columns.
    :param scope: what every source read of the task is and-ed with: its source filter,
        the outside-of-the-window condition and the company scope.
    :param complete: folded keys whose outside rows are read anyway (the pending ledger's).
    """

    columns: tuple[str, ...]
    scope: tuple[str | None, ...]
    complete: set[str] = field(default_factory=set)
    wanted: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, columns: Sequence[str], scope: Sequence[str | None], pending: Iterable[Sequence[Any]]
    ) -> KeySharers:
        return cls(tuple(columns), tuple(scope), {fold(key) for key in pending})

    def observe(self, page: pd.DataFrame) -> None:
        """Note the keys of a page of the window (blank keys are rejected anyway)."""
        if page.empty:
            return
        for parts in zip(*(page[c].tolist() for c in self.columns), strict=True):
            values = [py(p) for p in parts]
            if any(is_blank(v) for v in values):
                continue
            folded = fold(values)
            if folded not in self.complete and folded not in self.wanted:
                self.wanted[folded] = values

    def filters(self) -> list[str]:
        """The reads of the rows outside the window that share a key seen in it."""
        return key_filters(self.columns, list(self.wanted.values()), *self.scope)
