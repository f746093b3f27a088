"""The pieces of ``make demo`` that need no running stack: progress phrases, the summary,
the environment of the Airflow processes, the DAG list and the command line. Seconds."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from devstack.__main__ import build_parser
from devstack.airflow_stack import AirflowStack, StackError
from devstack.changes import sales_changes_since
from devstack.demo import (
    ALL_DAGS,
    SYNC_DAGS,
    DemoResult,
    RunResult,
    dead_letter_lines,
    describe_phase,
    format_summary,
    one_line_counts,
    second_run_line,
    summary_table,
)
from devstack.state import PRELOAD_DIR, DemoError, DemoPaths, serve_until_stopped, stack_env, state_lock
from emulators.client import EmulatorEndpoints, RunningEmulators
from prospect_to_cash.sync.mapping import TEMPLATES
from tests.support.run_books import declared_upstreams
from tests.support.world import ODataReader

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-client-secret-never-printed"
T0 = datetime(2026, 11, 24, 5, 0, tzinfo=timezone.utc)


def _endpoints(tmp_path: Path) -> EmulatorEndpoints:
    line = json.dumps(
        {
            "dataverse_url": "https://localhost:1001",
            "fno_url": "https://localhost:1002",
            "authority": "https://localhost:1000/tenant-guid",
            "tenant_id": "tenant-guid",
            "client_id": "client-guid",
            "client_secret": SECRET,
            "ca_bundle": str(tmp_path / "ca.pem"),
            "admin": {"dataverse": "https://localhost:1001/_admin", "fno": "https://localhost:1002/_admin"},
            "pid": 42,
            "state_dir": str(tmp_path),
            "ports": {"entra": 1000},
        }
    )
    return EmulatorEndpoints.from_json(line)


# -- the DAGs the demo runs -----------------------------------------------------------------------


def test_the_demo_runs_every_template_dag_in_run_order() -> None:
    upstreams = declared_upstreams()
    assert set(SYNC_DAGS) == set(upstreams)
    for position, dag_id in enumerate(SYNC_DAGS):
        assert set(upstreams[dag_id]) <= set(SYNC_DAGS[:position]), dag_id
    assert sorted(run.removeprefix("p2c_") for run in SYNC_DAGS) == sorted(TEMPLATES)
    assert ALL_DAGS[-1] == "p2c_reconciliation"
    assert (ROOT / "dags" / "p2c_reconciliation.py").exists()


# -- progress ---------------------------------------------------------------------------------------


def _ti(task_id: str, state: str | None, map_index: int = -1) -> dict[str, object]:
    return {"task_id": task_id, "state": state, "map_index": map_index}


def test_phase_of_a_run_waiting_for_its_upstream_dags() -> None:
    tis = [
        _ti("wait_for_p2c_products", "deferred"),
        _ti("wait_for_p2c_accounts", "success"),
        _ti("check_mapping", None),
    ]
    assert describe_phase("running", tis) == "waiting for p2c_products"
    tis[0]["state"] = "success"
    tis[2]["state"] = "running"
    assert describe_phase("running", tis) == "checking the mapping against both services' $metadata"


def test_phase_names_the_steps_in_progress_and_is_silent_between_tasks() -> None:
    tis = [
        _ti("check_mapping", "success"),
        _ti("sync.customers.extract", "success", 0),
        _ti("sync.customers.transform", "running", 0),
        _ti("sync.customers.extract", "queued", 1),
    ]
    assert describe_phase("running", tis) == "syncing customers"
    tis.append(_ti("sync.contacts.extract", "running", 0))
    assert describe_phase("running", tis) == "syncing customers + contacts"
    between = [_ti("check_mapping", "success"), _ti("sync.customers.extract", "success", 0)]
    assert describe_phase("running", between) is None
    assert describe_phase("running", [_ti("sync.report", "running", 0)]) == "writing the run summary"
    assert describe_phase("queued", []) == "queued"
    assert describe_phase("failed", tis) == "failed"


# -- summary ----------------------------------------------------------------------------------------


def _run(dag_id: str, usmf: dict[str, int], demf: dict[str, int], seconds: int = 75) -> RunResult:
    run = RunResult(
        dag_id, "p2c_demo__x", state="success", started=T0, finished=T0 + timedelta(seconds=seconds)
    )
    run.companies = {"demf": demf, "usmf": usmf}
    return run


def _result(tmp_path: Path, *, writes: dict[str, int], runs: list[RunResult]) -> DemoResult:
    reconciliation = RunResult("p2c_reconciliation", "p2c_demo__x", state="success", started=T0, finished=T0)
    reconciliation.result = {
        "totals": {"in_sync": 10, "missing": 0},
        "paths": {
            "html": f"file://{tmp_path}/staging/reconciliation/r/report.html",
            "local_html": str(tmp_path / "reports" / "reconciliation" / "report.html"),
            "local_json": str(tmp_path / "reports" / "reconciliation" / "report.json"),
        },
    }
    return DemoResult(
        state_dir=tmp_path,
        first_start=False,
        earlier_runs=7,
        logical_date="2026-11-24T05:00:00Z",
        runs=runs,
        reconciliation=reconciliation,
        writes=writes,
        tables_before={},
        tables_after={},
        elapsed=200.0,
        airflow_elapsed=150.0,
    )


def test_summary_has_a_row_per_template_and_company_and_totals() -> None:
    counts = {"read": 40, "created": 26, "updated": 1, "unchanged": 9, "rejected": 4, "skipped": 0}
    runs = [_run("p2c_accounts", counts, {**counts, "created": 25}), _run("p2c_products", counts, counts, 5)]
    lines = summary_table(runs)
    assert lines[0].split() == ["template", "company", "read", "skipped", "created", "updated",
                                "unchanged", "rejected", "failed", "time"]  # fmt: skip
    body = [line.split() for line in lines[2:-2]]
    assert body[0] == ["accounts", "usmf", "40", "0", "26", "1", "9", "4", "0", "1m", "15s"]
    assert body[1] == ["demf", "40", "0", "25", "1", "9", "4", "0"]  # usmf first, then the others
    assert body[2][0] == "products"
    assert body[2][-1] == "5s"
    assert lines[-1].split() == ["all", "templates", "160", "0", "103", "4", "36", "16", "0"]
    assert one_line_counts(runs[0]) == "71 in target (51 created, 2 updated, 18 unchanged), 8 rejected"


def test_a_failed_run_without_counts_is_shown_as_failed() -> None:
    run = RunResult("p2c_contacts", "r", state="failed", started=T0, finished=T0 + timedelta(seconds=3))
    assert "3s FAILED" in summary_table([run])[2]


def test_summary_says_nothing_was_written_only_when_counts_and_counters_agree(tmp_path: Path) -> None:
    unchanged = {"read": 40, "unchanged": 36, "rejected": 4}
    quiet = _result(
        tmp_path, writes={"dataverse": 0, "fno": 0}, runs=[_run("p2c_accounts", unchanged, unchanged)]
    )
    text = format_summary(quiet)
    assert quiet.wrote_nothing
    assert "Nothing was written" in text
    assert "Dataverse (Sales) 0, Finance and Operations 0" in text
    assert "reports/reconciliation/report.html" in text
    assert "make airflow" in text
    # the emulators counted a write the summary does not explain: no claim of "nothing written"
    noisy = _result(
        tmp_path, writes={"dataverse": 1, "fno": 0}, runs=[_run("p2c_accounts", unchanged, unchanged)]
    )
    assert not noisy.wrote_nothing
    assert "Nothing was written" not in format_summary(noisy)
    created = {**unchanged, "created": 1}
    busy = _result(
        tmp_path, writes={"dataverse": 0, "fno": 0}, runs=[_run("p2c_accounts", created, unchanged)]
    )
    assert not busy.wrote_nothing


def test_summary_lists_dead_letter_files_by_template_task(tmp_path: Path) -> None:
    run = _run("p2c_accounts", {"rejected": 4}, {"rejected": 3})
    staging = tmp_path / "staging" / "accounts" / "p2c_demo__x"
    run.dead_letters = [
        {
            "company": company,
            "task": "customers",
            "kind": "rejected",
            "path": f"file://{staging / company / 'customers' / 'deadletter' / 'rejected.parquet'}",
            "rows": rows,
        }
        for company, rows in (("usmf", 4), ("demf", 3))
    ]
    text = format_summary(_result(tmp_path, writes={"dataverse": 0, "fno": 3}, runs=[run]))
    pattern = tmp_path / "staging" / "<template>" / "p2c_demo__x" / "<company>" / "<task>" / "deadletter"
    assert f"Dead-letter files      {pattern}/<kind>.parquet" in text
    assert "    accounts/customers  rejected: usmf 4, demf 3" in text
    assert "pandas.read_parquet" in text


def test_dead_letters_outside_the_staging_layout_are_listed_one_by_one(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.parquet"
    item = {"company": "usmf", "task": "customers", "kind": "failed", "path": str(elsewhere), "rows": 2}
    lines = dead_letter_lines([("accounts", item)])
    assert lines[1] == f"    accounts/customers [usmf] 2 failed: {elsewhere}"


# -- environment of the Airflow processes -----------------------------------------------------------


def test_stack_env_carries_connections_staging_and_the_preload(tmp_path: Path) -> None:
    paths = DemoPaths(tmp_path / "state")
    base = {"PATH": "/usr/bin", "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "P2C_SCHEDULE": "x"}
    env = stack_env(paths, _endpoints(tmp_path), base=base)
    assert env["AIRFLOW_HOME"] == str(paths.airflow.resolve())
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"  # the caller's Airflow does not leak in
    assert "P2C_SCHEDULE" not in env
    assert env["P2C_STAGING_ROOT"] == f"file://{paths.staging.resolve()}"
    assert env["P2C_RUN_ORDER_POKE_SECONDS"] == "5"
    assert env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "False"
    db = paths.airflow.resolve() / "airflow.db"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{db}?timeout=60"
    assert env["PYTHONPATH"].split(":")[:2] == [str(PRELOAD_DIR), str(ROOT)]
    dataverse = json.loads(env["AIRFLOW_CONN_DYNAMICS_DATAVERSE_DEFAULT"])
    assert dataverse["host"] == "https://localhost:1001"
    assert dataverse["password"] == SECRET
    assert json.loads(env["AIRFLOW_CONN_DYNAMICS_FNO_DEFAULT"])["extra"]["default_company"] == "usmf"
    holding_secret = {name for name, value in env.items() if SECRET in value}
    assert holding_secret == {"AIRFLOW_CONN_DYNAMICS_DATAVERSE_DEFAULT", "AIRFLOW_CONN_DYNAMICS_FNO_DEFAULT"}
    assert "PYTHONPYCACHEPREFIX" not in env


def test_stack_env_keeps_a_bytecode_cache_when_the_caller_forbids_bytecode_files(tmp_path: Path) -> None:
    paths = DemoPaths(tmp_path / "state")
    env = stack_env(paths, _endpoints(tmp_path), base={"PYTHONDONTWRITEBYTECODE": "1"}, use_job_schedule=True)
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"] == str(paths.pycache.resolve())
    assert env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "True"


def test_endpoints_never_show_the_secret(tmp_path: Path) -> None:
    endpoints = _endpoints(tmp_path)
    assert SECRET not in repr(endpoints)
    assert SECRET not in str(endpoints)


def test_preload_imports_libraries_in_the_scheduler_only(monkeypatch: pytest.MonkeyPatch) -> None:
    module = str(PRELOAD_DIR / "airflow_local_settings.py")
    monkeypatch.setattr(sys, "argv", ["airflow", "api-server"])
    assert runpy.run_path(module)["__all__"] == []
    imported: list[str] = []
    monkeypatch.setattr("importlib.import_module", imported.append)
    monkeypatch.setattr(sys, "argv", ["airflow", "scheduler"])
    runpy.run_path(module)
    assert imported[:2] == ["pandas", "pyarrow"]
    assert not any(name.startswith(("prospect_to_cash", "airflow")) for name in imported)


def test_one_demo_or_stack_per_state_directory(tmp_path: Path) -> None:
    paths = DemoPaths(tmp_path / "state")
    with state_lock(paths), pytest.raises(DemoError, match=r"in use by pid \d+"), state_lock(paths):
        pass  # pragma: no cover - the second lock must not be granted
    with state_lock(paths):  # released again
        pass


class _ServedStack:
    """What :func:`serve_until_stopped` asks of a stack: wait for its DAGs, its URL, whether it
    is alive; Ctrl-C arrives during the ``interrupted_at``-th check."""

    base_url = "http://127.0.0.1:8099"

    def __init__(self, interrupted_at: int | None = None) -> None:
        self.waited: list[tuple[tuple[str, ...], float]] = []
        self.checks = 0
        self.interrupted_at = interrupted_at

    def wait_for_dags(self, dag_ids: tuple[str, ...], timeout: float) -> None:
        self.waited.append((tuple(dag_ids), timeout))

    def check_alive(self) -> None:
        self.checks += 1
        if self.checks == self.interrupted_at:
            raise KeyboardInterrupt


def test_a_served_stack_says_where_to_look_and_runs_until_stopped(tmp_path: Path) -> None:
    """``make airflow`` and ``make airflow-celery`` print the same head, their own lines, and
    stop on ``until()`` or Ctrl-C with their own last line."""
    cases = ((_ServedStack(), lambda: True, 0, []), (_ServedStack(interrupted_at=1), None, 1, [""]))
    for stack, until, checks, last in cases:
        said: list[str] = []
        serve_until_stopped(
            stack,  # type: ignore[arg-type]
            _endpoints(tmp_path),
            ALL_DAGS,
            details=["Workers:      w1, w2"],
            stopping="Stopping",
            out=said.append,
            until=until,
        )
        assert stack.waited == [(ALL_DAGS, 300)]
        assert stack.checks == checks
        assert said == [
            "",
            "Airflow UI:   http://127.0.0.1:8099  (no login: local all-admins mode, this machine only)",
            "Emulators:    Dataverse https://localhost:1001  F&O https://localhost:1002",
            "Workers:      w1, w2",
            *last,
            "Stopping",
        ]


# -- command line -----------------------------------------------------------------------------------


def test_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    demo = build_parser().parse_args(["demo"])
    assert (demo.command, demo.state_dir, demo.timeout) == ("demo", Path("state"), 1800)
    monkeypatch.setenv("AIRFLOW_PORT", "8099")
    stack = build_parser().parse_args(["airflow", "--state-dir", "/tmp/x"])
    assert (stack.command, stack.state_dir, stack.port) == ("airflow", Path("/tmp/x"), 8099)


def test_make_targets_call_the_demo_entry_point() -> None:
    makefile = (ROOT / "Makefile").read_text()
    demo = makefile.split("\ndemo: $(STAMP)\n", 1)[1].split("\n", 1)[0]
    assert demo.strip() == "$(BIN)/python -m devstack demo --state-dir $(DEMO_STATE)"
    stack = makefile.split("\nairflow: $(STAMP)\n", 1)[1].split("\n", 1)[0]
    assert "-m devstack airflow --state-dir $(DEMO_STATE)" in stack
    assert "DEMO_STATE ?= state\n" in makefile


class _ExitingStack(AirflowStack):
    """A stack whose "scheduler" is a process that prints a line and exits 1 at once."""

    def _launch(self, component: str, *, mode: str) -> None:
        with (self.log_dir / f"{component}.log").open(mode) as log_file:
            self.processes[component] = subprocess.Popen(
                [sys.executable, "-c", "import sys; print('StaleDataError: dag_run'); sys.exit(1)"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )


def test_a_component_that_dies_is_restarted_until_it_keeps_dying(tmp_path: Path) -> None:
    stack = _ExitingStack(
        tmp_path,
        {"AIRFLOW__API__BASE_URL": "http://127.0.0.1:9"},
        components=["scheduler"],
        max_restarts=2,
    )
    stack.log_dir.mkdir(parents=True)
    stack._launch("scheduler", mode="wb")
    try:
        stack.processes["scheduler"].wait(10)
        stack.check_alive()  # first death: restarted
        stack.processes["scheduler"].wait(10)
        stack.check_alive()  # second death: restarted
        assert len(stack.restarts) == 2
        assert "scheduler exited with 1" in stack.restarts[0]
        stack.processes["scheduler"].wait(10)
        dying = r"(?s)scheduler exited with 1 \(after 2 restarts\).*StaleDataError"
        with pytest.raises(StackError, match=dying):
            stack.check_alive()
        # the log keeps every life of the component, not only the last one
        assert (stack.log_dir / "scheduler.log").read_text().count("StaleDataError") == 3
    finally:
        stack.stop()


# -- the second run's expectation -------------------------------------------------------------------


def test_a_second_run_on_unchanged_data_expects_nothing_from_sales() -> None:
    line = second_run_line(7, "2026-12-05T09:00:00Z", {"accounts": 0, "contacts": 0}, 3)
    assert line == (
        "  This state was synced before (7 earlier run(s), the last ended 2026-12-05T09:00:00Z): "
        "no Sales row the templates read changed since then, so expect nothing written from Sales; "
        "F&O rows are read whole and written to Sales only where they differ; 3 pending row(s) "
        "(rejected or failed before) are tried again and, unchanged, rejected again."
    )


def test_a_second_run_after_changes_names_them() -> None:
    line = second_run_line(7, "2026-12-05T09:00:00Z", {"accounts": 2, "contacts": 0, "salesorders": 1}, 0)
    assert "3 Sales row(s) the templates read changed since then (accounts 2, salesorders 1): " in line
    assert "expect them written where they differ from F&O" in line


def test_sales_changes_are_counted_over_https(emulators: RunningEmulators) -> None:
    """The counts the demo prints, against the test's own reading of the seed rows."""
    since = "2026-11-02T12:00:00Z"
    reader = ODataReader(emulators.endpoints)
    try:
        expected = {
            name: sum(
                1
                for row in reader.rows("dataverse", name, ["modifiedon", "statecode"])
                if row["statecode"] == 0 and row["modifiedon"] > since
            )
            for name in ("accounts", "contacts")
        }
    finally:
        reader.close()
    counted = sales_changes_since(emulators.endpoints, since)
    assert set(counted) == {
        "accounts",
        "contacts",
        "quotes",
        "quotedetails",
        "salesorders",
        "salesorderdetails",
    }
    assert {name: counted[name] for name in expected} == expected
    assert all(expected.values()), "the seed has accounts and contacts changed after the 2nd day's noon"
    assert set(sales_changes_since(emulators.endpoints, "2026-12-01T00:00:00Z").values()) == {0}
