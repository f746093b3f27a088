"""Desired rows against the target's current rows: creates, updates, unchanged.

Both frames hold normalized values (see :mod:`values`) under the target field names and
carry a natural-key column. An update names only the fields that differ, so the write
touches nothing else and a concurrent edit to another field in the target survives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prospect_to_cash.sync.values import py, values_equal

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    import pandas as pd


@dataclass
class Update:
    desired_row: int
    snapshot_row: int
    changed: list[str]


@dataclass
class DiffResult:
    """Row positions into the desired frame (and the snapshot frame for matches)."""

    creates: list[int] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    unchanged: list[tuple[int, int]] = field(default_factory=list)
    ambiguous: dict[int, int] = field(default_factory=dict)  # desired row -> target rows with its key


def fold(key: Any) -> str:
    """Keys match case-insensitively: both services compare keys that way."""
    return str(key).casefold()


def index_by_key(keys: Sequence[Any]) -> dict[str, list[int]]:
    index: dict[str, list[int]] = {}
    for position, key in enumerate(keys):
        if key is None:
            continue
        index.setdefault(fold(key), []).append(position)
    return index


def changed_fields(
    desired: dict[str, Any],
    current: dict[str, Any],
    compare: Sequence[str],
    ignore_null: Collection[str] = (),
) -> list[str]:
    """The compared fields whose normalized values differ.

    :param ignore_null: fields where a desired null means "leave as is" (lookups the
        engine never clears).
    """
    changed = []
    for name in compare:
        wanted = py(desired.get(name))
        if wanted is None and name in ignore_null:
            continue
        if not values_equal(wanted, py(current.get(name))):
            changed.append(name)
    return changed


def diff(
    desired: pd.DataFrame,
    snapshot: pd.DataFrame,
    *,
    key: str,
    compare: Sequence[str],
    ignore_null: Collection[str] = (),
) -> DiffResult:
    """Classify every desired row.

    :param key: the natural-key column present in both frames.
    :param compare: the fields whose difference makes an update.
    :returns: positions; a desired key found more than once in the snapshot is
        ``ambiguous`` (the caller rejects it rather than guess which row to change).
    """

    def columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
        return {name: frame[name].tolist() for name in compare if name in frame.columns}

    snapshot_keys = snapshot[key].tolist() if len(snapshot) else []
    return diff_columns(
        desired[key].tolist(),
        columns(desired),
        snapshot_keys,
        columns(snapshot) if len(snapshot) else {},
        compare=compare,
        ignore_null=ignore_null,
    )


def diff_columns(
    desired_keys: Sequence[Any],
    desired: Mapping[str, Sequence[Any]],
    snapshot_keys: Sequence[Any],
    snapshot: Mapping[str, Sequence[Any]],
    *,
    compare: Sequence[str],
    ignore_null: Collection[str] = (),
) -> DiffResult:
    """:func:`diff` over columns (lists by field name) instead of frames: what the
    transform calls bucket by bucket, without building a frame per bucket.

    A compared field missing from a side counts as null there.
    """
    result = DiffResult()
    snapshot_index = index_by_key(snapshot_keys)
    absent = [None] * max(len(desired_keys), len(snapshot_keys))
    wanted_columns = [(name, desired.get(name, absent)) for name in compare]
    current_columns = [(name, snapshot.get(name, absent)) for name in compare]
    ignored = set(ignore_null)
    for position, row_key in enumerate(desired_keys):
        matches = snapshot_index.get(fold(row_key), [])
        if not matches:
            result.creates.append(position)
            continue
        if len(matches) > 1:
            result.ambiguous[position] = len(matches)
            continue
        match = matches[0]
        changed = []
        for (name, wanted_values), (_, current_values) in zip(wanted_columns, current_columns, strict=True):
            wanted = py(wanted_values[position])
            if wanted is None and name in ignored:
                continue
            if not values_equal(wanted, py(current_values[match])):
                changed.append(name)
        if changed:
            result.updates.append(Update(position, match, changed))
        else:
            result.unchanged.append((position, match))
    return result


def apply(
    snapshot: pd.DataFrame, desired: pd.DataFrame, result: DiffResult, *, key: str, compare: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The target as it would be after the plan, keyed by folded key (used by tests and
    the dry-run preview): creates add rows, updates overwrite the changed fields only."""
    state: dict[str, dict[str, Any]] = {}
    for row in snapshot.to_dict("records") if len(snapshot) else []:
        state[fold(row[key])] = dict(row)
    desired_records = desired.to_dict("records")
    for position in result.creates:
        row = desired_records[position]
        state[fold(row[key])] = {name: row.get(name) for name in [key, *compare]}
    for update in result.updates:
        row = desired_records[update.desired_row]
        target = state[fold(row[key])]
        for name in update.changed:
            target[name] = row.get(name)
    return state
