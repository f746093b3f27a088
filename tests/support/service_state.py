"""Both services' data read back whole over verified HTTPS, for tests that compare the end
states of two runs (a faulty run with a clean one, interval-by-interval runs with one full
refresh): one reading, one canonical row form and one difference report for all of them.

A state is a multiset of canonical rows per entity set, so a duplicated row shows, and
rows are paired by their identity where one is known, so a changed row shows as the
columns that differ rather than as one missing and one extra row.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from prospect_to_cash.sync.mapping import load_all

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tests.support.world import ODataReader

#: (service, entity set)
EntitySet = tuple[str, str]

#: Columns Dataverse fills in itself at write time (when, not what): audit timestamps, the
#: row version, and ``overriddencreatedon``, which holds the real creation time once a
#: create sets ``createdon``. Retries and run splits move them; nothing else may differ.
WRITE_TIME_COLUMNS: dict[str, frozenset[str]] = {
    "dataverse": frozenset({"createdon", "modifiedon", "versionnumber", "overriddencreatedon"}),
    "fno": frozenset(),
}


def every_entity_set(reader: ODataReader) -> dict[EntitySet, tuple[str, ...] | None]:
    """Every entity set both service documents list, without a known row identity."""
    return {(service, name): None for service in ("dataverse", "fno") for name in reader.entity_sets(service)}


def target_entity_sets() -> dict[EntitySet, tuple[str, ...]]:
    """Every entity set a template writes, with the columns that identify its rows: the
    GUID on Dataverse (deterministic or seeded), the target key on F&O."""
    sets: dict[EntitySet, tuple[str, ...]] = {}
    for template in load_all().values():
        for task in template.tasks:
            target = task.target
            identity = (target.primary_id,) if target.primary_id else tuple(target.key)
            sets[(task.target_system, target.entity_set)] = identity
    return sets


def _parties_by_customer(customers: list[dict[str, Any]]) -> dict[str, str]:
    """F&O party number -> the customer that owns it. F&O numbers a new customer's party
    from a global number sequence (``PartyNumber``, DirPartyTable) in the order creates
    arrive: retries, parallel batches and run splits change that order, not which customer
    has which party. Rows compare by the owner instead, so a contact person pointing at the
    wrong customer's party still shows."""
    return {
        str(row["PartyNumber"]): f"<party of {row['dataAreaId']}/{row['CustomerAccount']}>"
        for row in customers
        if row.get("PartyNumber")
    }


class ServiceState:
    """Canonical rows per ``service:entity set``. Not a dataclass: hypothesis prints the
    arguments of a failing example, and thousands of rows would bury the message."""

    def __init__(self, rows: dict[str, Counter[str]], identities: dict[str, tuple[str, ...] | None]) -> None:
        self.rows = rows
        self.identities = identities

    def __repr__(self) -> str:
        return f"ServiceState({sum(sum(c.values()) for c in self.rows.values())} rows)"

    def count(self, service: str, entity_set: str) -> int:
        return sum(self.rows[f"{service}:{entity_set}"].values())

    @classmethod
    def read(cls, reader: ODataReader, sets: Mapping[EntitySet, tuple[str, ...] | None]) -> ServiceState:
        """Read ``sets`` whole (every column, every company) from both services."""
        raw = {key: reader.rows(key[0], key[1]) for key in sets}
        customers = raw.get(("fno", "CustomersV3"))
        if customers is None:
            customers = reader.rows("fno", "CustomersV3", ("PartyNumber", "dataAreaId", "CustomerAccount"))
        parties = _parties_by_customer(customers)
        rows: dict[str, Counter[str]] = {}
        for (service, name), found in raw.items():
            ignored = WRITE_TIME_COLUMNS[service]
            canonical: Counter[str] = Counter()
            for row in found:
                kept = {k: v for k, v in row.items() if k not in ignored}
                if service == "fno":
                    for column, value in kept.items():
                        if column.endswith("PartyNumber") and str(value) in parties:
                            kept[column] = parties[str(value)]
                canonical[json.dumps(kept, sort_keys=True, default=str)] += 1
            rows[f"{service}:{name}"] = canonical
        return cls(rows, {f"{service}:{name}": identity for (service, name), identity in sets.items()})

    def differences(self, expected: ServiceState, *, limit: int = 5) -> list[str]:
        """What this state has that ``expected`` has not, per entity set: rows missing,
        extra or duplicated, and for rows of the same identity the columns that differ."""
        problems: list[str] = []
        for name in sorted(set(expected.rows) | set(self.rows)):
            want, got = expected.rows.get(name, Counter()), self.rows.get(name, Counter())
            missing, extra = want - got, got - want
            if not missing and not extra:
                continue
            lines = _paired(missing, extra, expected.identities.get(name))
            problems += [f"{name}: {line}" for line in lines[:limit]]
            if len(lines) > limit:
                problems.append(f"{name}: {len(lines)} differences in all")
        return problems


def _paired(missing: Counter[str], extra: Counter[str], identity: tuple[str, ...] | None) -> list[str]:
    def key(row: str) -> str | None:
        if identity is None:
            return None
        values = json.loads(row)
        return "|".join(str(values.get(c)) for c in identity)

    extra_by_key = {key(row): row for row in extra if key(row) is not None}
    lines: list[str] = []
    paired: set[str] = set()
    for row, count in missing.items():
        other = extra_by_key.get(key(row)) if key(row) is not None else None
        if other is not None and missing[row] == extra[other] == 1:
            mine, theirs = json.loads(other), json.loads(row)
            changed = {
                c: (mine.get(c), theirs.get(c))
                for c in mine.keys() | theirs.keys()
                if mine.get(c) != theirs.get(c)
            }
            lines.append(f"{key(row)} differs (found, expected): {changed}")
            paired.add(other)
        else:
            lines.append(f"missing {count}x {row[:300]}")
    lines += [f"extra {count}x {row[:300]}" for row, count in extra.items() if row not in paired]
    return lines
