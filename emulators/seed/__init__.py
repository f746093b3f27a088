"""Deterministic seed data for the emulators: the demo story and scale runs.

`generate` streams `(service, entity_set, rows)` batches in dependency order, rows in
the store representation of docs/design.md; `seed_store` writes them. What the demo
contains, and what each template should sync, skip and reject, is in STORY.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulators.seed.generator import BATCH_SIZE, Generator, Plan

if TYPE_CHECKING:
    from collections.abc import Iterator

    from emulators.store import Store

__all__ = ["BATCH_SIZE", "Plan", "generate", "seed_store"]


def generate(scale: str | int, random_seed: int = 2026) -> Iterator[tuple[str, str, list[dict]]]:
    """Yield the seeded world batch by batch (at most BATCH_SIZE rows per batch).

    :param scale: ``"demo"`` for the Prospect-to-cash story, or N rows per large table.
    :param random_seed: the same scale and seed give byte-identical rows.
    """
    return Generator(scale, random_seed).batches()


def seed_store(stores: dict[str, Store], scale: str | int, random_seed: int = 2026) -> dict[str, int]:
    """Write the seeded world into the stores (``{"dataverse": ..., "fno": ...}``).

    :return: rows written per entity set.
    """
    counts: dict[str, int] = {}
    for service, entity_set, rows in generate(scale, random_seed):
        stores[service].insert_many(entity_set, rows)
        counts[entity_set] = counts.get(entity_set, 0) + len(rows)
    return counts
