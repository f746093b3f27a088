"""Shared fixtures: the emulators as a real subprocess over real HTTPS.

- `emulators` (session): one instance for the whole run, seeded with the demo data. Tests
  that change settings use `AdminClient.overrides(...)` so nothing leaks into the next test.
- `fresh_emulators` (function): a separate, empty instance for tests that need isolation
  (restarts, persistence, destructive limits).
- `start_emulators` (function): a factory for instances with custom arguments or config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.support.emulators import (
    AdminClient,
    EmulatorEndpoints,
    RunningEmulators,
    acquire_token,
    start_emulators,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

# Small but non-zero costs: fast tests that still exercise the cost model.
TEST_CONFIG: dict[str, Any] = {
    "dataverse": {"cost": {"request_latency_ms": 1.0, "operation_ms": 0.05}},
    "fno": {"cost": {"request_latency_ms": 1.0, "operation_ms": 0.05}},
}


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulators]:
    """The shared emulator instance, with the demo data."""
    state_dir = tmp_path_factory.mktemp("emulators") / "state"
    running = start_emulators(state_dir, "--seed", "demo", config=TEST_CONFIG)
    try:
        yield running
    finally:
        code = running.stop()
        if code not in (0, None):
            print(f"emulators exited with {code}\n{running.stderr_tail()}")


@pytest.fixture
def start_emulators_factory(tmp_path: Path) -> Iterator[Callable[..., RunningEmulators]]:
    """Start extra instances (`factory(*cli_args, config=..., state_dir=...)`); all stopped after the test."""
    started: list[RunningEmulators] = []

    def factory(
        *args: str, config: dict[str, Any] | None = None, state_dir: Path | None = None
    ) -> RunningEmulators:
        directory = state_dir or tmp_path / f"state{len(started)}"
        running = start_emulators(directory, *args, config=TEST_CONFIG if config is None else config)
        started.append(running)
        return running

    yield factory
    for running in started:
        running.stop()


@pytest.fixture
def fresh_emulators(start_emulators_factory: Callable[..., RunningEmulators]) -> RunningEmulators:
    """A separate, empty instance for this test only."""
    return start_emulators_factory()


@pytest.fixture
def endpoints(emulators: RunningEmulators) -> EmulatorEndpoints:
    return emulators.endpoints


@pytest.fixture
def dataverse_admin(emulators: RunningEmulators) -> Iterator[AdminClient]:
    with emulators.admin("dataverse") as admin:
        yield admin


@pytest.fixture
def fno_admin(emulators: RunningEmulators) -> Iterator[AdminClient]:
    with emulators.admin("fno") as admin:
        yield admin


@pytest.fixture
def bearer_token(endpoints: EmulatorEndpoints) -> Callable[[str], str]:
    """`bearer_token("dataverse")` → an access token for that service, obtained with msal."""

    def get(service: str = "dataverse") -> str:
        return acquire_token(endpoints, service)

    return get
