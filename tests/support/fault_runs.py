"""Whole-template runs the way Airflow runs them, under seeded emulator faults, and the
counters that show the faults fired (issue 15, point 1).

* :class:`FaultMix`: which emulator fault kinds share a fault rate; :meth:`FaultMix.config`
  turns a rate of requests into the emulators' ``faults`` settings.
* :func:`run_like_airflow`: the seven templates in run order, every step of every mapping
  task as the DAG's tasks run it (``check_mapping``, extract, transform, load), each step
  retried like an Airflow task (``retries`` more attempts, fresh hooks each time); a load
  that left writes the service may heal raises like ``MappingLoadOperator`` does.

The end states are compared with :class:`tests.support.service_state.ServiceState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from prospect_to_cash.sync import runner
from prospect_to_cash.sync.contracts import SyncOptions
from prospect_to_cash.sync.errors import ServiceFailures
from prospect_to_cash.sync.mapping import TEMPLATES, load_template
from prospect_to_cash.sync.metadata_check import check_template

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from prospect_to_cash.sync.contracts import SyncHooks
    from prospect_to_cash.sync.mapping import Template

#: The DAGs' ``default_args["retries"]`` (prospect_to_cash.dags.factory).
AIRFLOW_RETRIES = 2

#: Every fault the emulators inject, before or after the service acted.
ALL_KINDS = ("throttle", "unavailable", "reset", "reset_after", "unavailable_after", "revoke_token", "slow")


@dataclass(frozen=True)
class FaultMix:
    """Emulator fault kinds that share a fault rate equally."""

    name: str
    kinds: tuple[str, ...]

    def config(self, rate: float, seed: int, *, slow_ms: float = 300.0) -> dict[str, Any]:
        """The emulators' ``faults`` settings under which about ``rate`` of all requests meet
        at least one of the kinds (each kind draws on its own: ``1 - (1 - r) ** n = rate``)."""
        each = 1.0 - (1.0 - rate) ** (1.0 / len(self.kinds))
        faults: dict[str, Any] = {"seed": seed, "slow_ms": slow_ms, "retry_after_seconds": 1}
        for kind in ALL_KINDS:
            faults[kind] = {"rate": each if kind in self.kinds else 0.0, "next_n": 0}
        return {"faults": faults}


MIXES: dict[str, FaultMix] = {
    mix.name: mix
    for mix in (
        # 429 with Retry-After, 503, resets before and after the service acted, revoked
        # tokens and slow answers, in equal parts
        FaultMix("all", ALL_KINDS),
        # only writes applied with their answer lost: F&O has no upsert, the hardest case
        FaultMix("answers-lost", ("reset_after", "unavailable_after")),
        # refusals before the service acted: throttling, outages, dropped connections, 401s
        FaultMix("refused", ("throttle", "unavailable", "reset", "revoke_token")),
    )
}


@dataclass
class AirflowLikeRun:
    """What a run of the seven templates took: attempts per step and what failed."""

    attempts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: rows each (template, task, company) rejected before writing, from its last transform
    rejected: dict[str, int] = field(default_factory=dict)
    #: rows the service refused for good in each step's last load
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def retries(self) -> int:
        return sum(count - 1 for count in self.attempts.values())

    def attempt(self, step: str, call: Callable[[], Any], retries: int) -> Any:
        """Run ``call`` like an Airflow task with ``retries`` retries; raise the last error."""
        for number in range(1, retries + 2):
            self.attempts[step] = number
            try:
                return call()
            except Exception as exc:  # an Airflow task fails on any exception, then retries
                self.errors.append(f"{step} attempt {number}: {type(exc).__name__}: {exc}")
                if number > retries:
                    raise
        raise AssertionError("unreachable")


def _check_mapping(template: Template, make_hooks: Callable[[], SyncHooks]) -> Any:
    """The DAG's ``check_mapping`` task: the mapping against both services' ``$metadata``."""
    return check_template(template, make_hooks(), raise_on_problems=True)


def _load_like_the_operator(template: str, task: str, company: str, options: SyncOptions) -> Any:
    """``runner.load``, failing like ``MappingLoadOperator`` when writes the service may
    heal are left, so that Airflow retries the load (the journal resends only those)."""
    result = runner.load(template, task, legal_entity=company, options=options)
    retryable = result["counts"].get("failed_retryable", 0)
    if retryable:
        raise ServiceFailures(f"{template}/{task} [{company}]: {retryable} write(s) failed at the service")
    return result


def run_like_airflow(
    make_hooks: Callable[[], SyncHooks],
    staging_root: str,
    run_id: str,
    companies: Sequence[str],
    *,
    retries: int = AIRFLOW_RETRIES,
    templates: Sequence[str] = TEMPLATES,
) -> AirflowLikeRun:
    """Every template in run order (or those of ``templates``), step by step as the DAGs run
    them, each step a task that Airflow retries with fresh hooks (a new task process gets new
    hooks)."""
    run = AirflowLikeRun()

    def step(call: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        """One attempt of a step: fresh options and hooks, like a new task process."""

        def attempt() -> Any:
            options = SyncOptions(run_id=run_id, staging_root=staging_root, hooks=make_hooks())
            return call(*args, options=options)

        return attempt

    for name in templates:
        template = load_template(name)
        run.attempt(
            f"{name}/check_mapping",
            partial(_check_mapping, template, make_hooks),
            retries,
        )
        for company in companies:
            for task in template.tasks:
                where = f"{name}/{task.name}/{company}"
                read = partial(runner.extract_and_snapshot, name, task.name, legal_entity=company)
                plan = partial(runner.transform, name, task.name, legal_entity=company)
                run.attempt(f"{where}/extract", step(read), retries)
                planned = run.attempt(f"{where}/transform", step(plan), retries)
                loaded = run.attempt(
                    f"{where}/load", step(_load_like_the_operator, name, task.name, company), retries
                )
                run.rejected[where] = int(planned["counts"].get("rejected", 0))
                run.failed[where] = int(loaded["counts"].get("failed", 0))
    return run


def faults_fired(counters: dict[str, Any]) -> tuple[int, int]:
    """(faults fired, requests) from one service's admin counters."""
    faults = sum(int(n) for n in counters.get("faults", {}).values())
    return faults, int(counters.get("requests_total", 0))


def staging_url(path: Path) -> str:
    return f"file://{path}"
