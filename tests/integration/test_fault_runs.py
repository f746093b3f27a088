"""The seven templates under seeded emulator faults end in exactly the fault-free state.

A fault-free run of the demo world is the reference: both services read whole afterwards
(every entity set, every column, service-assigned timestamps aside). Each faulty run starts
the same seed world in a fresh emulator process, injects a fault mix into a share of all
requests to both services, runs every template step by step as the DAGs do (each step an
Airflow task with the DAGs' 2 retries), and must end with the same rows in both services:
nothing missing, extra, duplicated or different.

Small by default (mix ``all`` at 10 % and 20 %, seed 1). Larger loops, e.g.::

    P2C_FAULT_MIXES=all,answers-lost,refused P2C_FAULT_RATES=0.1,0.2,0.33 \\
    P2C_FAULT_SEEDS=1,2,3 .venv/bin/pytest -q tests/integration/test_fault_runs.py

Each case prints one line (``-s``) with the faults fired and the retries taken; the table
in docs/reliability.md is made of those lines.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING

import pytest

from devstack.airflow_stack import connection_env
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.hooks._http import RetryPolicy
from prospect_to_cash.sync.runner import SyncHooks
from tests.conftest import TEST_CONFIG
from tests.support.emulators import start_emulators
from tests.support.fault_runs import (
    AIRFLOW_RETRIES,
    MIXES,
    AirflowLikeRun,
    faults_fired,
    run_like_airflow,
    staging_url,
)
from tests.support.service_state import ServiceState, every_entity_set
from tests.support.world import ODataReader

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMPANIES = ("usmf", "demf")
CONN = {"dataverse": "p2c_faults_dataverse", "fno": "p2c_faults_fno"}
# The product's policy with shorter backoffs (0.05 s doubling to 0.5 s instead of 1 s to
# 60 s), so a few hundred faults fit in make test; Retry-After is honoured as sent (1 s).
QUICK = RetryPolicy(backoff_base=0.05, backoff_max=0.5)


@dataclass(frozen=True)
class FaultCase:
    mix: str
    rate: float
    seed: int

    @property
    def label(self) -> str:
        return f"{self.mix}-{round(self.rate * 100)}pct-seed{self.seed}"


def _cases() -> list[FaultCase]:
    mixes = os.environ.get("P2C_FAULT_MIXES", "all").split(",")
    rates = [float(r) for r in os.environ.get("P2C_FAULT_RATES", "0.1,0.2").split(",")]
    seeds = [int(s) for s in os.environ.get("P2C_FAULT_SEEDS", "1").split(",")]
    unknown = set(mixes) - set(MIXES)
    if unknown:
        raise ValueError(f"P2C_FAULT_MIXES: unknown {sorted(unknown)}; known: {sorted(MIXES)}")
    return [FaultCase(m, r, s) for m, r, s in product(mixes, rates, seeds)]


@dataclass
class _World:
    """One emulator process with the demo seed world and the connections to it."""

    running: RunningEmulators
    variables: dict[str, str]

    @classmethod
    def start(cls, state: Path) -> _World:
        running = start_emulators(state, "--seed", "demo", config=TEST_CONFIG)
        variables = connection_env(running.endpoints, conn_ids=CONN)
        os.environ.update(variables)
        return cls(running, variables)

    def hooks(self) -> SyncHooks:
        """Fresh hooks, as a new Airflow task process makes them."""
        return SyncHooks(
            dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"], retry=QUICK),
            fno=FinanceOperationsHook(fno_conn_id=CONN["fno"], retry=QUICK),
        )

    def run(self, staging: Path, run_id: str) -> AirflowLikeRun:
        return run_like_airflow(self.hooks, staging_url(staging), run_id, COMPANIES)

    def state(self) -> ServiceState:
        reader = ODataReader(self.running.endpoints)  # new tokens: faults revoke old ones
        try:
            return ServiceState.read(reader, every_entity_set(reader))
        finally:
            reader.close()

    def stop(self) -> None:
        for name in self.variables:
            os.environ.pop(name, None)
        self.running.stop()


@dataclass(frozen=True)
class _Reference:
    state: ServiceState
    run: AirflowLikeRun


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Reference]:
    """The fault-free run of the seed world, and both services' state after it."""
    logging.getLogger("prospect_to_cash").setLevel(logging.ERROR)
    logging.getLogger("airflow.task.hooks").setLevel(logging.ERROR)
    base = tmp_path_factory.mktemp("fault-free")
    world = _World.start(base / "emulators")
    try:
        run = world.run(base / "staging", "clean")
        yield _Reference(world.state(), run)
    finally:
        world.stop()


def test_the_fault_free_run_needs_no_retry_and_writes(reference: _Reference) -> None:
    assert reference.run.errors == []
    assert reference.run.retries == 0
    assert sum(reference.run.failed.values()) == 0
    # the demo story's rejects (STORY.md): accounts 8, products 4, contacts 4
    assert sum(reference.run.rejected.values()) == 16
    # the reference is the synced world, not the seed: e.g. 52 customers were created
    assert reference.state.count("fno", "CustomersV3") == 98


@pytest.mark.parametrize("case", _cases(), ids=lambda case: case.label)
def test_templates_under_faults_end_in_the_fault_free_state(
    reference: _Reference, case: FaultCase, tmp_path: Path
) -> None:
    world = _World.start(tmp_path / "emulators")
    try:
        settings = MIXES[case.mix].config(case.rate, case.seed)
        for service in ("dataverse", "fno"):
            with world.running.admin(service) as admin:
                admin.patch_config(settings)
        run = world.run(tmp_path / "staging", "faulty")
        counters = world.running.counters()
        for service in ("dataverse", "fno"):
            with world.running.admin(service) as admin:
                admin.patch_config(MIXES[case.mix].config(0.0, case.seed))
        state = world.state()
    finally:
        world.stop()

    fired = {service: faults_fired(counters[service]) for service in counters}
    faults = sum(f for f, _ in fired.values())
    requests = sum(r for _, r in fired.values())
    kinds = sorted({k for c in counters.values() for k in c.get("faults", {})})
    print(
        f"\nFAULT-RUN {case.label}: {faults} faults in {requests} requests "
        f"({faults / max(requests, 1):.1%}; kinds {', '.join(kinds)}); "
        f"{run.retries} Airflow retries in {len(run.attempts)} steps; "
        f"most attempts of one step {max(run.attempts.values())}"
        + "".join(f"\n  retried after: {error}" for error in run.errors)
    )
    # the faults really happened, at about the rate asked for
    assert requests > 300
    assert case.rate / 2 <= faults / requests <= case.rate * 1.6, (faults, requests)
    if case.mix == "all":
        assert len(kinds) >= 6, kinds
    # within the retries the DAGs give (each step at most 1 + AIRFLOW_RETRIES attempts)
    assert max(run.attempts.values()) <= AIRFLOW_RETRIES + 1
    # nothing refused for good (checked first: a write failed for good can make a later
    # task reject rows that look up its row), and the same rows rejected before writing
    assert sum(run.failed.values()) == 0, {step: n for step, n in run.failed.items() if n}
    assert run.rejected == reference.run.rejected
    # and both services hold exactly what the fault-free run left
    assert state.differences(reference.state) == []
