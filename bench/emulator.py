"""The emulators for one contender, on top of :mod:`emulators.client`.

Each contender gets its own emulator process on a private copy of the seeded data, so
no run sees another's writes, counters or service-protection windows. The process is a
child of the harness that dies with it; its stderr goes to a log file next to its state
directory. What this module adds to the shared client is the harness's view: endpoints as
the plain dict a contender's JSON spec carries, and the ``AIRFLOW_CONN_*`` variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devstack.airflow_stack import connection_env
from emulators.client import SERVICES, AdminClient, RunningEmulators, die_with_parent, start_emulators

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

__all__ = ["SERVICES", "Emulators", "die_with_parent", "start"]

#: Seconds for the JSON line: copying and opening a large seeded state takes a while.
START_TIMEOUT = 120.0
#: Admin calls count rows of million-row tables.
ADMIN_TIMEOUT = 60.0


@dataclass
class Emulators:
    """A running emulator process as the harness uses it."""

    running: RunningEmulators

    @property
    def endpoints(self) -> dict[str, Any]:
        """The JSON line as a dict (it goes into the contender's spec file)."""
        return self.running.endpoints.to_dict()

    @property
    def process(self) -> subprocess.Popen[str]:
        return self.running.process

    @property
    def ca_bundle(self) -> str:
        return self.running.endpoints.ca_bundle

    def admin(self, service: str) -> AdminClient:
        return self.running.admin(service, timeout=ADMIN_TIMEOUT)

    def connection_env(self, conn_ids: dict[str, str]) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` variables the way production defines the two connections."""
        return connection_env(self.running.endpoints, conn_ids=conn_ids)

    def counters(self) -> dict[str, dict[str, Any]]:
        """Each service's admin counters (requests, writes, rows read, 429s)."""
        return self.running.counters()

    def reset(self) -> None:
        """Counters to zero and limit windows empty, before each contender's measured run."""
        self.running.reset_counters()
        self.running.reset_limits()

    def stop(self) -> None:
        self.running.stop()


def start(state_dir: Path, config: dict[str, Any]) -> Emulators:
    """Run ``python -m emulators serve`` on free ports with ``config`` merged over the defaults."""
    running = start_emulators(
        state_dir,
        config=config,
        timeout=START_TIMEOUT,
        log_path=state_dir.parent / f"{state_dir.name}-emulators.log",
        parent_death_signal=True,  # a killed harness (CI timeout) leaves no emulator behind
    )
    return Emulators(running)
