"""``python -m devstack backfill``: backfill the seven P2C DAGs on the local stack, safely.

Airflow's own loop (``for dag in ...; airflow backfill create ...``) trips over three things
on the local stack (SQLite, one scheduler):

* creating a backfill while the scheduler writes answers 503 "Database is locked. Backfill
  creation is not supported on SQLite under concurrent access": each creation is retried
  here (:data:`LOCK_RETRIES`); should the scheduler die of the same race (``StaleDataError``),
  the stack's supervisor (``make airflow``, ``AirflowStack.check_alive``) starts it again;
* a paused DAG runs nothing, not even a backfill, and unpausing a DAG with
  ``catchup=False`` starts a scheduled run of its latest complete interval at once. That
  run would race the backfill of the same DAG (``max_active_runs`` does not count backfill
  runs): both loads would write the same rows and the pending ledger at the same time. So
  the seven DAGs are unpaused together first and the runs that starts are waited for; only
  then does the first backfill begin. A backfill over an interval that already has a run
  leaves that run as it is (``reprocess_behavior`` ``none``);
* the run order: the backfills are created in the DAGs' run order, and the run-order
  sensors hold each downstream run until its upstream runs of the same interval succeeded,
  so the seven backfills pipeline (contacts of day 1 runs beside accounts of day 2).
  ``--one-at-a-time`` creates each backfill only when every run of the previous one has
  finished, and stops at the first failed run (slower, and the gentlest on SQLite).

Usage, next to a running ``make airflow`` (same state directory)::

    python -m devstack backfill --from 2026-11-01 --to 2026-11-03 [--dag p2c_accounts ...] [--one-at-a-time]

``--from``/``--to`` are the first and last *logical dates* (interval starts) to run, as in
``airflow backfill create``. Each run stages under ``<template>/<interval start>__backfill/``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from devstack.airflow_stack import FINISHED, AirflowStack, ApiError, StackError
from devstack.demo import SYNC_DAGS

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

#: Attempts at creating one backfill while SQLite answers 503 "Database is locked".
LOCK_RETRIES = 20
LOCK_WAIT_SECONDS = 3.0
#: Seconds the scheduler gets to create the run an unpause makes due (catchup=False).
UNPAUSE_GRACE_SECONDS = 30.0


@dataclass
class BackfillOutcome:
    """What one DAG's backfill did: its id (None: every interval had a run already) and the
    state of each run in the range by logical date (``2026-11-01 success``)."""

    dag_id: str
    backfill_id: int | None
    runs: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(state == "success" for state in self.runs.values())


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # as Airflow reads it


def _day(logical_date: str) -> str:
    return logical_date[:19].replace("T00:00:00", "")


def runs_in_range(stack: AirflowStack, dag_id: str, from_date: str, to_date: str) -> list[dict[str, Any]]:
    """The DAG's runs whose logical date is in ``[from_date, to_date]``, of any run type."""
    low, high = _moment(from_date), _moment(to_date)
    return [
        run
        for run in stack.dag_runs(dag_id)
        if run["logical_date"] and low <= _moment(run["logical_date"]) <= high
    ]


def wait_for_unpause_runs(
    stack: AirflowStack,
    dag_ids: Sequence[str],
    out: Callable[[str], None],
    timeout: float,
    *,
    grace: float = UNPAUSE_GRACE_SECONDS,
) -> None:
    """Unpause ``dag_ids`` together, then wait until none has an unfinished run that is not
    a backfill's (the scheduled run the unpause started, a manual run someone triggered).
    A DAG that was paused and has a run due gets up to ``grace`` seconds for the scheduler
    to create that run, so the backfill cannot start before it appears."""
    before = {dag_id: {run["dag_run_id"] for run in stack.dag_runs(dag_id)} for dag_id in dag_ids}
    due = set()
    now = datetime.now(timezone.utc)
    for dag_id in dag_ids:
        dag = stack.api("GET", f"/dags/{dag_id}")
        after = dag.get("next_dagrun_run_after")
        if dag.get("is_paused") and after and _moment(after) <= now:
            due.add(dag_id)
        stack.unpause(dag_id)
    started = time.monotonic()
    reported: set[str] = set()
    while True:
        stack.check_alive()
        runs = {dag_id: stack.dag_runs(dag_id) for dag_id in dag_ids}
        busy = {
            (dag_id, run["dag_run_id"])
            for dag_id, found in runs.items()
            for run in found
            if run["run_type"] != "backfill" and run["state"] not in FINISHED
        }
        due -= {dag_id for dag_id, found in runs.items() if {r["dag_run_id"] for r in found} - before[dag_id]}
        if not busy and (not due or time.monotonic() - started > grace):
            return
        for dag_id, run_id in sorted(busy):
            if run_id not in reported:
                reported.add(run_id)
                out(f"  waiting for {dag_id} {run_id} (started by the unpause or by hand) to finish first")
        if time.monotonic() - started > timeout:
            raise StackError(f"runs still unfinished after {timeout:g}s: {sorted(busy)}")
        time.sleep(2)


def create_backfill(
    stack: AirflowStack, dag_id: str, from_date: str, to_date: str, *, retry_wait: float = LOCK_WAIT_SECONDS
) -> dict[str, Any]:
    """Create one backfill, retrying while SQLite is locked (HTTP 503); a creation whose
    answer was lost is found again instead of failing on "already running" (HTTP 409)."""
    for attempt in range(LOCK_RETRIES):
        try:
            return stack.backfill(dag_id, from_date, to_date)
        except ApiError as exc:
            if exc.status == 409 and exc.retried:
                running = _active_backfills(stack, dag_id)
                if running:
                    return running[-1]
            if exc.status != 503 or attempt == LOCK_RETRIES - 1:
                raise
        except StackError:
            if attempt == LOCK_RETRIES - 1:
                raise
        time.sleep(retry_wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _active_backfills(stack: AirflowStack, dag_id: str) -> list[dict[str, Any]]:
    found = stack.api("GET", "/backfills", params={"dag_id": dag_id, "limit": 100})["backfills"]
    return [b for b in found if not b.get("completed_at")]


def wait_for_backfill(
    stack: AirflowStack, dag_id: str, backfill_id: int, span: tuple[str, str], timeout: float
) -> dict[str, str]:
    """Until the backfill is completed and every run in ``span`` finished; their states."""
    deadline = time.monotonic() + timeout
    while True:
        stack.check_alive()
        completed = stack.api("GET", f"/backfills/{backfill_id}").get("completed_at")
        runs = {_day(r["logical_date"]): r["state"] for r in runs_in_range(stack, dag_id, *span)}
        if completed and all(state in FINISHED for state in runs.values()):
            return runs
        if time.monotonic() > deadline:
            raise StackError(f"{dag_id}: backfill {backfill_id} not finished after {timeout:g}s: {runs}")
        time.sleep(2)


def backfill_dags(
    stack: AirflowStack,
    from_date: str,
    to_date: str,
    *,
    dag_ids: Sequence[str] = SYNC_DAGS,
    one_at_a_time: bool = False,
    out: Callable[[str], None] = print,
    timeout: float = 3600,
) -> list[BackfillOutcome]:
    """Backfill ``dag_ids`` from ``from_date`` to ``to_date`` in run order, after the runs an
    unpause starts. By default every backfill is created at once (each creation retried on
    SQLite's lock) and the run-order sensors pipeline them: a downstream run of a day starts
    when its upstream runs of that day succeeded. ``one_at_a_time`` creates each backfill
    only when every run of the one before finished, and stops at the first failed run."""
    order = [dag_id for dag_id in SYNC_DAGS if dag_id in dag_ids] + [d for d in dag_ids if d not in SYNC_DAGS]
    out(f"Unpausing {len(order)} DAG(s); a run the unpause starts finishes before any backfill")
    wait_for_unpause_runs(stack, order, out, timeout)
    outcomes = []
    for dag_id in order:
        outcome = _start(stack, dag_id, from_date, to_date)
        outcomes.append(outcome)
        if one_at_a_time:
            _finish(stack, outcome, from_date, to_date, out, timeout)
            if not outcome.ok:
                out(f"Stopped: {dag_id} has a failed run; fix it, clear the run, then backfill what follows.")
                return outcomes
    if not one_at_a_time:
        for outcome in outcomes:
            _finish(stack, outcome, from_date, to_date, out, timeout)
    return outcomes


def _start(stack: AirflowStack, dag_id: str, from_date: str, to_date: str) -> BackfillOutcome:
    try:
        created = create_backfill(stack, dag_id, from_date, to_date)
    except ApiError as exc:
        if exc.status != 422 or "No runs to create" not in str(exc):
            raise
        return BackfillOutcome(dag_id, None)  # every interval in the range has a run already
    return BackfillOutcome(dag_id, int(created["id"]))


def _finish(
    stack: AirflowStack,
    outcome: BackfillOutcome,
    from_date: str,
    to_date: str,
    out: Callable[[str], None],
    timeout: float,
) -> None:
    if outcome.backfill_id is None:
        runs = runs_in_range(stack, outcome.dag_id, from_date, to_date)
        outcome.runs = {_day(r["logical_date"]): r["state"] for r in runs}
    else:
        outcome.runs = wait_for_backfill(
            stack, outcome.dag_id, outcome.backfill_id, (from_date, to_date), timeout
        )
    out(f"  {outcome.dag_id}: " + ", ".join(f"{day} {state}" for day, state in sorted(outcome.runs.items())))


def local_stack(port: int) -> AirflowStack:
    """A client of the running ``make airflow`` on ``port`` (starts and stops nothing)."""
    from pathlib import Path

    return AirflowStack(Path("."), {"AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}, components=())
