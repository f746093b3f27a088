"""The seven DAGs on the distributed stack: Airflow on Postgres with the CeleryExecutor, Redis as
the broker and two Celery workers (``devstack/celery_stack.py``, ``make airflow-celery``).

One module-scoped flow on a fresh demo world: both services are read over HTTPS with the test's
own reader, the seven DAGs are triggered at once for one logical date with ``full_refresh`` (as
``make demo`` does; the run-order sensors hold each until its prerequisites succeeded), both
services are read again after the runs. The state they leave must be exactly the state the
LocalExecutor run leaves: the session's ``make demo`` run on the same seed world
(``local_executor_run``, tests/e2e/conftest.py, shared with tests/e2e/test_demo_e2e.py) is
read back whole, and both end states are compared row by row with
``tests/support/service_state.py`` (every entity set of both services, every column but
Dataverse's write times, F&O party numbers by the customer that owns them). The
per-template checks derived from the seed rows (``tests/support/story_checks.py``), the rows
STORY.md announces per target, and the accounts template's counts are checked as well.
Where each task ran comes from the task instances' host names in the Airflow database (REST
API): each worker reports its own.

Needs Debian's ``postgresql`` and ``redis-server`` (``make celery-packages``): skipped without
them, failed in CI (``P2C_REQUIRE_CELERY_STACK=1``, set by ``.ci/run``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psycopg2
import pytest
import redis

from devstack.airflow_stack import airflow_env, connection_env
from devstack.celery_stack import WORKERS, celery_stack, missing_packages
from devstack.demo import SYNC_DAGS, RunResult, RunWatcher
from devstack.processes import PidFiles
from tests.conftest import TEST_CONFIG
from tests.e2e.test_demo_e2e import STORY_NEW_ROWS
from tests.support import story_checks
from tests.support.emulators import start_emulators
from tests.support.service_state import ServiceState, every_entity_set
from tests.support.world import ODataReader, business_units

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.support.demo_flow import LocalRun

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1800)]

COMPANIES = {"usmf", "demf"}


@dataclass
class CeleryRun:
    """What the flow saw: the runs, where their tasks ran, both services before and after."""

    base: Path
    runs: dict[str, RunResult]
    hosts: dict[str, dict[str, str]]  # dag_id -> task_id[map_index] -> host name
    failures: list[str]
    synced: story_checks.StoryState
    tables_before: dict[str, dict[str, int]]
    tables_after: dict[str, dict[str, int]]
    services_before: ServiceState  # every entity set of both services, the seed world
    services_after: ServiceState  # the same after the seven runs
    secrets: dict[str, str]  # what must never be written: name -> value
    recorded: set[str]  # the processes recorded while the stack ran
    left_running: dict[str, Any]  # what still ran after the stack stopped
    servers: dict[str, int]  # postgres / redis -> port
    timings: dict[str, float]  # seconds: stack up (servers, migration, Airflow), runs, whole flow


def _require_packages() -> None:
    missing = missing_packages()
    if not missing:
        return
    message = f"Debian packages missing: {', '.join(missing)} (make celery-packages installs them)"
    if os.environ.get("P2C_REQUIRE_CELERY_STACK"):
        pytest.fail(message)
    pytest.skip(message)


def _password(url: str) -> str:
    password = urlsplit(url.removeprefix("db+")).password
    assert password, "the stack's servers are password-protected"
    return password


@pytest.fixture(scope="module")
def celery_run(tmp_path_factory: pytest.TempPathFactory) -> CeleryRun:
    _require_packages()
    started = time.monotonic()
    base = tmp_path_factory.mktemp("celery-stack")
    running = start_emulators(base / "emulators", "--seed", "demo", config=TEST_CONFIG)
    reader = ODataReader(running.endpoints)
    try:
        before = story_checks.snapshot(reader)
        companies = business_units(reader)
        tables_before = running.tables()
        services_before = ServiceState.read(reader, every_entity_set(reader))
        env = airflow_env(
            base / "airflow",
            staging_root=base / "staging",
            connections=connection_env(running.endpoints),
            use_job_schedule=False,  # only the runs triggered below
            extra={
                "P2C_RUN_ORDER_POKE_SECONDS": "2",
                # the DAG files do not change during the test: parse them once, not every 30 s
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            },
        )
        pids = PidFiles(base / "pids")
        timings: dict[str, float] = {}
        with celery_stack(base / "airflow", env, pids=pids) as stack:
            timings["stack up"] = time.monotonic() - started
            recorded = {record.name for record in pids.records()}
            servers = {
                "postgres": int(urlsplit(stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).port or 0),
                "redis": int(urlsplit(stack.env["AIRFLOW__CELERY__BROKER_URL"]).port or 0),
            }
            secrets = {
                "postgres password": _password(stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]),
                "redis password": _password(stack.env["AIRFLOW__CELERY__BROKER_URL"]),
                "client secret": running.endpoints.client_secret,
            }
            stack.wait_for_dags(SYNC_DAGS, timeout=180)
            for dag_id in SYNC_DAGS:
                stack.unpause(dag_id)
            logical_date = (
                datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
            )
            runs = {dag_id: RunResult(dag_id, f"celery__{logical_date}") for dag_id in SYNC_DAGS}
            for dag_id, run in runs.items():
                stack.api(
                    "POST",
                    f"/dags/{dag_id}/dagRuns",
                    json={
                        "dag_run_id": run.run_id,
                        "logical_date": logical_date,
                        "conf": {"full_refresh": True},
                    },
                )
            triggered = time.monotonic()
            RunWatcher(stack, runs, lambda line: None, triggered).wait(1200)  # a loaded machine
            timings["seven runs"] = time.monotonic() - triggered
            hosts = {
                dag_id: {
                    f"{ti['task_id']}[{ti['map_index']}]": ti["hostname"] or ""
                    for ti in stack.task_instances(dag_id, run.run_id)
                }
                for dag_id, run in runs.items()
            }
            failures = [
                stack.failed_task_logs(d, r.run_id, lines=25) for d, r in runs.items() if r.state != "success"
            ]
        left_running = pids.alive()
        after = story_checks.snapshot(reader)
        services_after = ServiceState.read(reader, every_entity_set(reader))
        tables_after = running.tables()
    finally:
        reader.close()
        running.stop()
    return CeleryRun(
        base=base,
        runs=runs,
        hosts=hosts,
        failures=failures,
        synced=story_checks.StoryState(before=before, after=after, companies=companies),
        tables_before=tables_before,
        tables_after=tables_after,
        services_before=services_before,
        services_after=services_after,
        secrets=secrets,
        recorded=recorded,
        left_running=left_running,
        servers=servers,
        timings={**timings, "whole flow": time.monotonic() - started},
    )


def test_the_seven_dags_succeed_on_celery_for_both_companies(celery_run: CeleryRun) -> None:
    assert not celery_run.failures, "\n".join(celery_run.failures)
    assert {dag_id: run.state for dag_id, run in celery_run.runs.items()} == dict.fromkeys(
        SYNC_DAGS, "success"
    )
    for dag_id, run in celery_run.runs.items():
        assert set(run.companies) == COMPANIES, dag_id
    accounts = celery_run.runs["p2c_accounts"]
    assert accounts.total("created", "updated", "unchanged") == 72  # STORY.md, as on the LocalExecutor
    assert accounts.total("rejected") == 8
    assert sum(run.total("failed") for run in celery_run.runs.values()) == 0


def test_the_tasks_ran_in_both_workers_and_only_there(celery_run: CeleryRun) -> None:
    by_run = {dag_id: set(tasks.values()) for dag_id, tasks in celery_run.hosts.items()}
    every = set().union(*by_run.values())
    assert every == set(WORKERS), every  # no task ran anywhere else (the scheduler, the triggerer)
    # one run's tasks in both workers: its mapped steps run per company, side by side
    both = [dag_id for dag_id, hosts in by_run.items() if hosts == set(WORKERS)]
    assert both, celery_run.hosts
    print(f"runs whose tasks ran in both workers: {both}")


def test_final_state_is_exactly_what_the_local_executor_run_leaves(
    celery_run: CeleryRun, local_executor_run: LocalRun
) -> None:
    reference = local_executor_run.services
    assert local_executor_run.result.ok, "\n".join(local_executor_run.output[-60:])
    assert celery_run.services_after.differences(reference) == []
    # the comparison sees what the runs wrote: the seed world differs from the reference
    # in every entity set STORY.md says the templates grow
    seed = {line.split(": ", 1)[0] for line in celery_run.services_before.differences(reference, limit=1)}
    assert {f"{service}:{entity_set}" for service, entity_set in STORY_NEW_ROWS} <= seed


@pytest.mark.parametrize("check", story_checks.CHECKS, ids=lambda check: check.__name__)
def test_final_state_passes_the_checks_derived_from_the_seed_rows(
    celery_run: CeleryRun, check: Callable[[story_checks.StoryState], None]
) -> None:
    check(celery_run.synced)


def test_each_target_grew_by_the_rows_story_md_announces(celery_run: CeleryRun) -> None:
    before, after = celery_run.tables_before, celery_run.tables_after
    grown = {key: after[key[0]][key[1]] - before[key[0]][key[1]] for key in STORY_NEW_ROWS}
    assert grown == STORY_NEW_ROWS
    for service in ("dataverse", "fno"):
        for entity_set, count in before[service].items():
            assert after[service][entity_set] >= count, f"{service} {entity_set} lost rows"


def test_nothing_is_left_running_and_no_secret_is_written(celery_run: CeleryRun) -> None:
    assert celery_run.recorded >= {"postgres", "redis", "api-server", "scheduler", *WORKERS}
    assert celery_run.left_running == {}
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host="127.0.0.1", port=celery_run.servers["postgres"], connect_timeout=3)
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.1", port=celery_run.servers["redis"], socket_timeout=3).ping()
    store = celery_run.base / "emulators" / "credentials.json"  # the emulators keep their secret
    files = [path for path in celery_run.base.rglob("*") if path.is_file() and path != store]
    logs = {path.name for path in files if path.suffix == ".log"}
    assert {"postgres.log", "redis.log", "db-migrate.log", *(f"{name}.log" for name in WORKERS)} <= logs
    for name, value in celery_run.secrets.items():
        found = [
            str(path.relative_to(celery_run.base)) for path in files if value.encode() in path.read_bytes()
        ]
        assert not found, f"{name} written to {found}"
    print(
        "celery flow: " + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in celery_run.timings.items())
    )
