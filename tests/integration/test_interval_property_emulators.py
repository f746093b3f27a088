"""The property that pins the rules across runs (issue 17): for any split of the demo
world's change window into consecutive intervals, the seven templates run interval by
interval in run order end in exactly the state one full refresh ends in, on both
services (read back over HTTPS, every target entity set, every column).

Each example runs against a fresh demo world (its own emulator process). By default the
daily split (the seed's three days, always run) and one drawn split of one to three cuts
at whole hours (derandomized: the same draw in every run, so CI is repeatable);
``P2C_PROPERTY_EXAMPLES=<n>`` draws ``n`` at random (hypothesis, no example database).
"""

from __future__ import annotations

import itertools
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest
from airflow.sdk import ObjectStoragePath
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devstack.airflow_stack import connection_env
from prospect_to_cash.sync.contracts import Window
from prospect_to_cash.sync.mapping import TEMPLATES
from prospect_to_cash.sync.runner import run_company_pairs
from tests.conftest import TEST_CONFIG
from tests.support.emulators import start_emulators
from tests.support.service_state import ServiceState, target_entity_sets
from tests.support.world import ODataReader

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: The seed's change window: three days (emulators/seed/STORY.md, "Timestamps").
SEED_START = datetime(2026, 11, 1, tzinfo=timezone.utc)
SEED_HOURS = 72
EXAMPLES = int(os.environ.get("P2C_PROPERTY_EXAMPLES", "1"))


@dataclass
class World:
    """A fresh demo world and the connections that reach it."""

    reader: ODataReader
    conn: dict[str, str]

    def run(self, root: ObjectStoragePath, run_id: str, window: Window) -> None:
        for template in TEMPLATES:
            run_company_pairs(
                template,
                run_id=run_id,
                staging_root=root,
                window=window,
                dataverse_conn_id=self.conn["dataverse"],
                fno_conn_id=self.conn["fno"],
                max_rejected="100%",
                check_metadata=False,
            )


#: Each world's number: its own state directory and connection ids.
_WORLD_NUMBERS = itertools.count(1)


@contextmanager
def demo_world(base: Path) -> Iterator[World]:
    """A fresh emulator process seeded with the demo, with connections of its own."""
    number = next(_WORLD_NUMBERS)
    conn = {"dataverse": f"p2c_prop_{number}_dataverse", "fno": f"p2c_prop_{number}_fno"}
    running = start_emulators(base / f"world-{number}", "--seed", "demo", config=TEST_CONFIG)
    reader = ODataReader(running.endpoints)
    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            for name, value in connection_env(running.endpoints, conn_ids=conn).items():
                monkeypatch.setenv(name, value)
            yield World(reader, conn)
    finally:
        reader.close()
        running.stop()


@pytest.fixture(scope="module")
def full_refresh_state(tmp_path_factory: pytest.TempPathFactory) -> ServiceState:
    logging.getLogger("prospect_to_cash").setLevel(logging.ERROR)
    base = tmp_path_factory.mktemp("full-refresh")
    with demo_world(base) as world:
        world.run(ObjectStoragePath(f"file://{base / 'staging'}"), "full", Window(full_refresh=True))
        return ServiceState.read(world.reader, target_entity_sets())


def intervals(cuts: list[int]) -> list[tuple[datetime, datetime]]:
    """Consecutive intervals covering the seed window, cut at those hours."""
    bounds = [0, *sorted(set(cuts)), SEED_HOURS]
    return [
        (SEED_START + timedelta(hours=a), SEED_START + timedelta(hours=b))
        for a, b in itertools.pairwise(bounds)
    ]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=EXAMPLES <= 1,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(cuts=[24, 48])  # one run per day, the scheduler's split
@given(cuts=st.lists(st.integers(min_value=1, max_value=SEED_HOURS - 1), min_size=1, max_size=3, unique=True))
def test_interval_by_interval_ends_where_one_full_refresh_ends(
    cuts: list[int],
    full_refresh_state: ServiceState,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.mktemp("intervals")
    with demo_world(base) as world:
        root = ObjectStoragePath(f"file://{base / 'staging'}")
        for number, (start, end) in enumerate(intervals(cuts)):
            world.run(root, f"interval-{number}", Window.of(start, end))
        state = ServiceState.read(world.reader, target_entity_sets())
    assert state.differences(full_refresh_state) == [], f"cuts at hours {sorted(cuts)}"
