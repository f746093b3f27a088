"""Seed only the tables a benchmark needs, by streaming the generator's batches.

Seeding the whole world at a million rows per large table takes many minutes and
gigabytes; a template's initial load needs its source table plus the small reference
tables. The generator's per-table methods are pure streams of bounded batches, so the
harness calls just those and writes them straight into the stores. Target tables stay
empty: the benchmark measures an *initial* load.
"""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING

from emulators.seed.generator import Generator
from emulators.server import open_stores

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

#: Generator methods by name, each yielding `(service, entity_set, rows)` batches.
REFERENCE_STREAMS = ("dataverse_reference", "fno_reference")
DATABASE_FILES = ("dataverse.sqlite", "fno.sqlite")


def seed_tables(state_dir: Path, scale: int, streams: Iterable[str], random_seed: int = 2026) -> dict:
    """Write the reference tables plus the named generator streams into fresh stores.

    :param state_dir: emulator state directory; its databases must not exist yet.
    :param scale: rows per large table (the seed's ``--scale N``).
    :param streams: generator methods to run besides the reference tables, e.g.
        ``["fno_products"]`` for the products template.
    :return: ``{"rows": {entity_set: count}, "seconds": float}``.
    """
    for name in DATABASE_FILES:
        if (state_dir / name).exists():
            raise FileExistsError(f"{state_dir / name} exists; seed into a fresh directory")
    generator = Generator(scale, random_seed)
    stores = open_stores(state_dir)
    counts: dict[str, int] = {}
    started = time.perf_counter()
    try:
        for stream in (*REFERENCE_STREAMS, *streams):
            for service, entity_set, rows in getattr(generator, stream)():
                stores[service].insert_many(entity_set, rows)
                counts[entity_set] = counts.get(entity_set, 0) + len(rows)
        for store in stores.values():
            # fold the WAL into the main file so a plain file copy is the whole database
            store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        for store in stores.values():
            store.close()
    return {"rows": counts, "seconds": round(time.perf_counter() - started, 2)}


def copy_state(seeded: Path, target: Path) -> None:
    """A private copy of the seeded databases for one contender (same data, fresh state)."""
    target.mkdir(parents=True, exist_ok=False)
    for name in DATABASE_FILES:
        shutil.copy2(seeded / name, target / name)
