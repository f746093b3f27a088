"""``make demo``'s flow as the end-to-end tests share it (fixtures in tests/e2e/conftest.py).

:func:`local_run` is the LocalExecutor run of the seven DAGs on a fresh demo world: the
seed rows are read over HTTPS with the test's own reader before anything is synced,
:func:`devstack.demo.run_demo` (what ``make demo`` calls) runs on that state, and both
services are read back whole. It is the reference the Celery stack's run is compared
with (tests/e2e/test_celery_stack.py), so the session makes it once for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from devstack.demo import DemoResult, format_summary, run_demo
from tests.support import story_checks
from tests.support.emulators import start_emulators
from tests.support.service_state import ServiceState, every_entity_set
from tests.support.world import ODataReader, business_units

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class Reading:
    """Both services as the test's own reader saw them at one moment."""

    story: story_checks.Snapshot  # the columns the story checks derive from
    companies: dict[str, str]  # business unit id -> legal entity
    secret: str  # the emulators' client secret, for the no-leak scans
    services: ServiceState | None  # every entity set, every column (when asked for)


def read_services(state: Path, *extra: str, whole: bool = False) -> Reading:
    """Start the emulators on a demo state, read both services over HTTPS, stop."""
    running = start_emulators(state / "emulators", *extra)
    try:
        reader = ODataReader(running.endpoints)
        try:
            services = ServiceState.read(reader, every_entity_set(reader)) if whole else None
            return Reading(
                story_checks.snapshot(reader),
                business_units(reader),
                running.endpoints.client_secret,
                services,
            )
        finally:
            reader.close()
    finally:
        running.stop()


@dataclass(frozen=True)
class LocalRun:
    """The first ``make demo`` on a fresh demo world, and both services after it."""

    state: Path
    secret: str
    result: DemoResult
    output: list[str]  # what it printed, the summary last
    synced: story_checks.StoryState  # the seed rows before, both services after
    services: ServiceState  # every entity set of both services after the run


def local_run(state: Path) -> LocalRun:
    """Seed a demo world in ``state``, run the demo on it once, read both services back."""
    before = read_services(state, "--seed", "demo")
    output: list[str] = []
    result = run_demo(state, out=output.append)
    output.append(format_summary(result))
    after = read_services(state, whole=True)
    assert after.services is not None
    synced = story_checks.StoryState(before=before.story, after=after.story, companies=before.companies)
    return LocalRun(state, before.secret, result, output, synced, after.services)
