"""``make demo`` and ``make airflow``: the Prospect-to-cash flow through a real local Airflow.

:func:`run_demo` is the whole of ``make demo`` (the end-to-end test calls the same function):

1. start the emulators on free ports with their state in ``<state>/emulators`` (the demo
   world of ``emulators/seed/STORY.md`` is seeded on the first start only);
2. prepare ``<state>/airflow`` (SQLite, migrated once) and start the scheduler (LocalExecutor),
   dag-processor, api-server and triggerer, with the two Dynamics connections given as
   ``AIRFLOW_CONN_*`` variables built from the emulators' JSON line;
3. trigger one run of each of the seven P2C DAGs, all at once and for the same logical date,
   with ``full_refresh`` (the initial load of an integration: every row the templates'
   filters allow). The run-order sensors hold contacts, quotations, orders and invoices back
   until their prerequisite DAGs succeeded for that date; the progress lines show it;
4. trigger the reconciliation DAG, which writes its report next to the staging files;
5. print a summary per template and company (read / created / updated / unchanged /
   rejected), the writes the emulators counted, and where to look next; stop everything.

A second ``make demo`` on the same state triggers new runs for a new logical date. Before
they start it says what they will write given the data (:mod:`devstack.changes`): the Sales
rows the templates read that changed since the last run ended, counted over HTTPS (none
when nobody changed the emulators' data: then the runs find everything in sync and write
nothing, which the summary and the emulators' write counters both show), the F&O side
(read whole, written only where it differs) and the pending ledger's rows.

:func:`serve` is ``make airflow``: the same stack on the same state, left running for the
UI until Ctrl-C.

Both start from a state they can trust (:mod:`devstack.state`): one command per state
directory, what a killed earlier start left running stopped first, a watchdog that stops
everything if this command is killed, a half-migrated Airflow database rebuilt, and runs an
earlier start left running or queued marked failed before the scheduler could resume them.

The emulators' client secret only travels from their JSON line into the Airflow processes'
environment; it is never printed or logged here.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from devstack.airflow_stack import FINISHED, AirflowStack, ApiError, StackError
from devstack.changes import sales_changes_since
from devstack.connections import store_connections
from devstack.state import (
    DemoError,
    DemoPaths,
    demo_emulators,
    emulator_writes,
    finish_stale_runs,
    owned_state,
    prepare_airflow_home,
    seeded_before,
    serve_until_stopped,
    served_state,
    shown,
    stack_env,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from devstack.processes import PidFiles
    from emulators.client import EmulatorEndpoints

#: The seven template DAGs in run order (the order of the summary).
SYNC_DAGS = (
    "p2c_accounts",
    "p2c_products",
    "p2c_contacts",
    "p2c_sales_quotations",
    "p2c_sales_orders_fno_to_sales",
    "p2c_sales_orders_sales_to_fno",
    "p2c_sales_invoices",
)
RECONCILIATION_DAG = "p2c_reconciliation"
ALL_DAGS = (*SYNC_DAGS, RECONCILIATION_DAG)
SERVICES = {"dataverse": "Dataverse (Sales)", "fno": "Finance and Operations"}
#: Per-company counts shown in the summary, in this order.
SUMMARY_COUNTS = ("read", "skipped", "created", "updated", "unchanged", "rejected", "failed")
DEFAULT_UI_PORT = 8080
ACTIVE_TASK_STATES = ("queued", "running", "scheduled", "up_for_retry", "up_for_reschedule", "restarting")


def _print(line: str) -> None:
    print(line, flush=True)


# -- following the runs -----------------------------------------------------------------------------


def describe_phase(run_state: str, task_instances: Sequence[Mapping[str, Any]]) -> str | None:
    """What a DAG run is doing, in a few words, from its task instances (None: between
    tasks, nothing new to say)."""
    if run_state in ("queued", "success", "failed"):
        return run_state
    waiting = sorted(
        ti["task_id"].removeprefix("wait_for_")
        for ti in task_instances
        if ti["task_id"].startswith("wait_for_") and ti.get("state") not in ("success", "skipped")
    )
    if waiting:
        return f"waiting for {', '.join(waiting)}"
    active = [ti for ti in task_instances if ti.get("state") in ACTIVE_TASK_STATES]
    steps: list[str] = []
    for ti in active:
        parts = ti["task_id"].split(".")
        if len(parts) == 3 and parts[0] == "sync" and parts[1] not in steps:
            steps.append(parts[1])
    if steps:
        return f"syncing {' + '.join(steps)}"
    active_ids = {ti["task_id"] for ti in active}
    if active_ids & {"check_mapping", "company_pairs"}:
        return "checking the mapping against both services' $metadata"
    if "sync.report" in active_ids:
        return "writing the run summary"
    if active_ids & {"reconcile", "verdict"}:
        return "comparing every template's source and target"
    return None


def _local_stack(
    paths: DemoPaths,
    env: dict[str, str],
    pids: PidFiles,
    endpoints: EmulatorEndpoints,
    out: Callable[[str], None],
) -> AirflowStack:
    """The LocalExecutor stack of ``make demo`` and ``make airflow`` on a prepared home; once
    its API answers it finishes the runs a killed start left and stores the connections in
    the database (so the Connections page lists them and Test works)."""
    prepare_airflow_home(paths.airflow, env, out, pids)
    out("Starting Airflow: api-server, scheduler (LocalExecutor), dag-processor, triggerer")

    def before_scheduler(stack: AirflowStack) -> None:
        finish_stale_runs(stack, out)
        store_connections(stack, endpoints)

    return AirflowStack(paths.airflow, env, pids=pids, before_scheduler=before_scheduler)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class RunResult:
    """One DAG run of the demo: its state, timing and (for templates) counts per company."""

    dag_id: str
    run_id: str
    state: str = "queued"
    started: datetime | None = None
    finished: datetime | None = None
    companies: dict[str, dict[str, int]] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None

    @property
    def template(self) -> str:
        return self.dag_id.removeprefix("p2c_")

    @property
    def elapsed(self) -> float | None:
        if self.started and self.finished:
            return (self.finished - self.started).total_seconds()
        return None

    def total(self, *names: str) -> int:
        return sum(counts.get(name, 0) for counts in self.companies.values() for name in names)


def one_line_counts(run: RunResult) -> str:
    """``72 in sync after the run (52 created, 2 updated, 18 unchanged), 8 rejected``."""
    synced = run.total("created", "updated", "unchanged")
    text = (
        f"{synced} in target ({run.total('created')} created, {run.total('updated')} updated, "
        f"{run.total('unchanged')} unchanged)"
    )
    for name in ("rejected", "failed"):
        if run.total(name):
            text += f", {run.total(name)} {name}"
    return text


class RunWatcher:
    """Polls the REST API for a set of runs and prints one line per change of what a run
    is doing (queued, waiting for an upstream DAG, syncing a step, done)."""

    def __init__(
        self,
        stack: AirflowStack,
        runs: Mapping[str, RunResult],
        out: Callable[[str], None],
        clock_start: float,
    ) -> None:
        self.stack = stack
        self.runs = dict(runs)
        self.out = out
        self.clock_start = clock_start
        self.phases: dict[str, str] = {}
        self.width = max(len(dag_id) for dag_id in (*ALL_DAGS, *self.runs))

    def _line(self, dag_id: str, text: str) -> None:
        elapsed = round(time.monotonic() - self.clock_start)
        self.out(f"  [{elapsed // 60:2d}:{elapsed % 60:02d}] {dag_id:<{self.width}}  {text}")

    def poll(self) -> bool:
        """Check every unfinished run once; True when all have finished."""
        for dag_id, run in self.runs.items():
            if run.state in FINISHED:
                continue
            info = self.stack.api("GET", f"/dags/{dag_id}/dagRuns/{run.run_id}")
            run.state = info["state"]
            run.started = _parse_time(info.get("start_date")) or run.started
            run.finished = _parse_time(info.get("end_date"))
            tis = [] if run.state in FINISHED else self.stack.task_instances(dag_id, run.run_id)
            phase = describe_phase(run.state, tis)
            if run.state in FINISHED:
                collect_results(self.stack, run)
                phase = self._finished_text(run)
            if phase is not None and phase != self.phases.get(dag_id):
                self.phases[dag_id] = phase
                self._line(dag_id, phase)
        return all(run.state in FINISHED for run in self.runs.values())

    def _finished_text(self, run: RunResult) -> str:
        took = f" in {_duration(run.elapsed)}" if run.elapsed is not None else ""
        if run.state != "success":
            return f"FAILED{took}"
        if run.dag_id == RECONCILIATION_DAG and run.result:
            totals = run.result.get("totals", {})
            return f"done{took}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in totals.items())
        return f"done{took}: {one_line_counts(run)}"

    def wait(self, timeout: float, poll: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() > deadline:
                pending = [d for d, r in self.runs.items() if r.state not in FINISHED]
                raise DemoError(f"runs not finished within {_duration(timeout)}: {pending}")
            self.stack.check_alive()
            time.sleep(poll)


def collect_results(stack: AirflowStack, run: RunResult) -> None:
    """Read a finished run's results from XCom: the per-company ``sync.report`` of a
    template DAG, the ``reconcile`` result of the reconciliation DAG."""
    tis = stack.task_instances(run.dag_id, run.run_id)
    for ti in tis:
        if ti["state"] != "success":
            continue
        if ti["task_id"] == "sync.report":
            report = stack.xcom(run.dag_id, run.run_id, "sync.report", ti["map_index"])
            company = report["legal_entity"]
            run.companies[company] = {name: int(value) for name, value in report["counts"].items()}
            run.dead_letters.extend({"company": company, **item} for item in report.get("dead_letters", []))
        elif ti["task_id"] == "reconcile":
            run.result = stack.xcom(run.dag_id, run.run_id, "reconcile")
    run.dead_letters.sort(
        key=lambda item: (item["company"] != "usmf", item["company"], item["task"], item["kind"])
    )


# -- the demo ---------------------------------------------------------------------------------------


@dataclass
class DemoResult:
    """What one ``make demo`` did; :func:`format_summary` prints it, the e2e test checks it."""

    state_dir: Path
    first_start: bool
    earlier_runs: int
    logical_date: str
    runs: list[RunResult]
    reconciliation: RunResult | None
    writes: dict[str, int]
    tables_before: dict[str, dict[str, int]]
    tables_after: dict[str, dict[str, int]]
    elapsed: float
    airflow_elapsed: float

    @property
    def ok(self) -> bool:
        runs = [*self.runs, *([self.reconciliation] if self.reconciliation else [])]
        return bool(runs) and all(run.state == "success" for run in runs)

    def total(self, *names: str) -> int:
        return sum(run.total(*names) for run in self.runs)

    @property
    def wrote_nothing(self) -> bool:
        return self.ok and self.total("created", "updated", "failed") == 0 and not any(self.writes.values())


def _pending_rows(staging: Path) -> int:
    """Rows in every template's pending ledger (docs/sync.md, "Daily runs")."""
    from prospect_to_cash.sync.mapping import TEMPLATES
    from prospect_to_cash.sync.pending import ledgers
    from prospect_to_cash.sync.staging import as_path

    root = as_path(staging)
    return sum(len(ledger.read()) for name in TEMPLATES for ledger in ledgers(root, name))


def _logical_date() -> str:
    """One logical date for all seven runs of a demo (the sensors pair runs by it): now, to
    the second, so every demo gets its own and never one in the future."""
    return datetime.now(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _trigger(stack: AirflowStack, dag_id: str, run_id: str, logical_date: str, conf: dict[str, Any]) -> None:
    try:
        stack.api(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": logical_date, "conf": conf},
        )
    except ApiError as exc:
        if not (exc.status == 409 and exc.retried):
            raise
        # an attempt that got no answer in time did create the run (this run id is new)


def _set_paused(stack: AirflowStack, dag_ids: Sequence[str], paused: bool) -> None:
    for dag_id in dag_ids:
        stack.api("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})


def _last_sync_end(stack: AirflowStack) -> str | None:
    """When the latest earlier run of any of the seven DAGs ended (UTC), if one did."""
    ends = []
    for dag_id in SYNC_DAGS:
        latest = stack.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 1, "order_by": "-run_after"})
        ends += [moment for run in latest["dag_runs"] if (moment := _parse_time(run.get("end_date")))]
    if not ends:
        return None
    last = max(ends)  # to the next whole second: the filter compares seconds, the runs' writes came before
    return (last.replace(microsecond=0) + timedelta(seconds=1 if last.microsecond else 0)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def second_run_line(earlier: int, since: str | None, changes: Mapping[str, int] | None, pending: int) -> str:
    """What a demo on a state synced before will write, given the data: the Sales rows the
    templates read that changed since the last run ended (counted before this run), the F&O
    side (read whole: only rows that differ are written) and the pending ledger's rows."""
    head = f"  This state was synced before ({earlier} earlier run(s)"
    head += f", the last ended {since})" if since else ")"
    if changes is None:
        sales = "Sales rows changed since then are written"
    elif not sum(changes.values()):
        sales = "no Sales row the templates read changed since then, so expect nothing written from Sales"
    else:
        listed = ", ".join(f"{name} {count}" for name, count in sorted(changes.items()) if count)
        sales = (
            f"{sum(changes.values())} Sales row(s) the templates read changed since then ({listed}): "
            "expect them written where they differ from F&O"
        )
    return (
        f"{head}: {sales}; F&O rows are read whole and written to Sales only where they differ; "
        f"{pending} pending row(s) (rejected or failed before) are tried again and, unchanged, "
        "rejected again."
    )


def _earlier_runs(stack: AirflowStack) -> int:
    """Successful earlier runs of the first DAG (a killed demo's runs synced only part)."""
    runs = stack.api("GET", f"/dags/{SYNC_DAGS[0]}/dagRuns", params={"limit": 1, "state": "success"})
    return int(runs["total_entries"])


def run_demo(
    state_dir: Path | str = "state",
    *,
    out: Callable[[str], None] = _print,
    run_timeout: float = 1800,
) -> DemoResult:
    """Everything ``make demo`` does (see the module docstring); returns what happened.

    :param state_dir: emulator data, the Airflow home, staging and reports live here; a
        second call on the same directory finds everything in sync.
    :param run_timeout: seconds the seven runs and the reconciliation may take together.
    """
    started = time.monotonic()
    paths = DemoPaths(Path(state_dir).resolve())
    paths.logs.mkdir(parents=True, exist_ok=True)
    out("Prospect to cash demo: Dynamics 365 Sales <-> Finance and Operations through Apache Airflow")
    with owned_state(paths, out) as pids:
        return _run_demo(paths, pids, out, run_timeout, started)


def _run_demo(
    paths: DemoPaths, pids: PidFiles, out: Callable[[str], None], run_timeout: float, started: float
) -> DemoResult:
    first_start = not seeded_before(paths.emulators)
    out(
        "Starting the Dynamics emulators"
        + (
            " and seeding the demo world (emulators/seed/STORY.md)"
            if first_start
            else f" on {shown(paths.emulators)}"
        )
    )
    with demo_emulators(paths, pids) as emulators:
        endpoints = emulators.endpoints
        out(
            f"  Dataverse {endpoints.dataverse_url}  F&O {endpoints.fno_url}  "
            f"(Entra ID {endpoints.authority})"
        )
        tables_before = emulators.tables()
        env = stack_env(paths, endpoints)
        stack = _local_stack(paths, env, pids, endpoints, out)
        with stack:
            out(
                f"  Airflow {version('apache-airflow')} is up at {stack.base_url} "
                f"({_duration(time.monotonic() - started)} since the start)"
            )
            stack.wait_for_dags(ALL_DAGS, timeout=300)
            earlier = _earlier_runs(stack)
            if earlier:
                since = _last_sync_end(stack)
                changes = sales_changes_since(endpoints, since) if since else None
                out(second_run_line(earlier, since, changes, _pending_rows(paths.staging)))
            logical_date = _logical_date()
            stamp = logical_date.replace("-", "").replace(":", "")
            runs = {dag_id: RunResult(dag_id, f"p2c_demo__{stamp}") for dag_id in SYNC_DAGS}
            emulators.reset_counters()
            _set_paused(stack, ALL_DAGS, False)
            airflow_started = time.monotonic()
            try:
                out(
                    f"Running the seven P2C DAGs (full refresh, logical date {logical_date}); "
                    "the run-order sensors hold each one until its prerequisites succeeded:"
                )
                for dag_id, run in runs.items():
                    _trigger(stack, dag_id, run.run_id, logical_date, {"full_refresh": True})
                RunWatcher(stack, runs, out, started).wait(run_timeout)
                out("Reconciling source and target (dry run of every template, report in HTML and JSON):")
                reconciliation = RunResult(RECONCILIATION_DAG, f"p2c_demo__{stamp}")
                _trigger(
                    stack,
                    RECONCILIATION_DAG,
                    reconciliation.run_id,
                    logical_date,
                    {"output_dir": str(paths.reports)},
                )
                RunWatcher(stack, {RECONCILIATION_DAG: reconciliation}, out, started).wait(run_timeout)
                airflow_elapsed = time.monotonic() - airflow_started
                writes = emulator_writes(emulators)
                failures = [
                    stack.failed_task_logs(run.dag_id, run.run_id, lines=25)
                    for run in [*runs.values(), reconciliation]
                    if run.state != "success"
                ]
                for text in failures:
                    out(text)
            finally:
                # nothing runs behind the user's back when they browse the same state later
                with contextlib.suppress(StackError, httpx.HTTPError):
                    _set_paused(stack, ALL_DAGS, True)
            out("Stopping Airflow and the emulators")
        tables_after = emulators.tables()
    return DemoResult(
        state_dir=paths.root,
        first_start=first_start,
        earlier_runs=earlier,
        logical_date=logical_date,
        runs=list(runs.values()),
        reconciliation=reconciliation,
        writes=writes,
        tables_before=tables_before,
        tables_after=tables_after,
        elapsed=time.monotonic() - started,
        airflow_elapsed=airflow_elapsed,
    )


# -- the summary ------------------------------------------------------------------------------------


def summary_table(runs: Sequence[RunResult]) -> list[str]:
    """One row per template and company, a total per template, and the grand total."""
    header = ["template", "company", *SUMMARY_COUNTS, "time"]
    rows: list[list[str]] = []
    grand = dict.fromkeys(SUMMARY_COUNTS, 0)
    for run in runs:
        took = _duration(run.elapsed) if run.elapsed is not None else "-"
        if not run.companies:
            rows.append([run.template, "-", *("-" for _ in SUMMARY_COUNTS), f"{took} {run.state.upper()}"])
            continue
        for index, (company, counts) in enumerate(
            sorted(run.companies.items(), key=lambda kv: kv[0] != "usmf")
        ):
            rows.append(
                [
                    run.template if index == 0 else "",
                    company,
                    *(str(counts.get(name, 0)) for name in SUMMARY_COUNTS),
                    took if index == 0 else "",
                ]
            )
        for name in SUMMARY_COUNTS:
            grand[name] += run.total(name)
    rows.append(["all templates", "", *(str(grand[name]) for name in SUMMARY_COUNTS), ""])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def render(row: list[str]) -> str:
        cells = [cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        return "  " + "  ".join(cells).rstrip()

    rule = "  " + "-" * (sum(widths) + 2 * (len(widths) - 1))
    return [render(header), rule, *(render(row) for row in rows[:-1]), rule, render(rows[-1])]


def format_summary(result: DemoResult) -> str:
    """The end of ``make demo``: counts, the writes the emulators saw, and where to look next."""
    lines = [
        "",
        f"Summary (logical date {result.logical_date}, full refresh; counts per template and company):",
    ]
    lines += summary_table(result.runs)
    writes = ", ".join(f"{SERVICES[s]} {n}" for s, n in result.writes.items())
    lines.append("")
    lines.append(f"Writes the emulators counted during the runs: {writes}.")
    if result.wrote_nothing:
        lines.append(
            "Nothing was written: every row the templates select was already in sync "
            f"({result.total('unchanged')} unchanged, 0 created, 0 updated)."
        )
    if result.reconciliation is not None and result.reconciliation.result:
        totals = result.reconciliation.result.get("totals", {})
        lines.append(
            "Reconciliation: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in totals.items()) + "."
        )
    lines.append(
        f"Finished in {_duration(result.elapsed)} (Airflow runs {_duration(result.airflow_elapsed)})."
        + ("" if result.ok else " SOME RUNS FAILED: see the task logs above.")
    )
    lines += ["", "Where to look next:"]
    paths = DemoPaths(result.state_dir)
    report = result.reconciliation.result if result.reconciliation else None
    if report:
        local = report.get("paths", {})
        lines.append(f"  Reconciliation report  {shown(local.get('local_html', local.get('html', '')))}")
        lines.append(f"{'':25}{shown(local.get('local_json', local.get('json', '')))} (same data as JSON)")
    dead = [(run.template, item) for run in result.runs for item in run.dead_letters]
    if dead:
        lines += dead_letter_lines(dead)
    else:
        lines.append("  Dead-letter files      none in this run")
    lines.append(
        f"  Airflow UI             make airflow, then http://127.0.0.1:{DEFAULT_UI_PORT} "
        "(no login: local all-admins mode); same state, these runs and their logs"
    )
    lines.append(
        f"  Logs                   {shown(paths.airflow / 'logs')} (Airflow), {shown(paths.logs)} (emulators)"
    )
    own = (paths.emulators, paths.airflow, paths.staging, paths.reports.parent, paths.logs)
    lines.append(f"  Start again from zero  rm -rf {' '.join(shown(path) for path in own)}")
    return "\n".join(lines)


def dead_letter_lines(dead: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """The dead-letter files of a demo: one folder pattern, then one line per template task
    with the rows per company (the files follow the staging layout of docs/sync.md:
    ``<root>/<template>/<run_id>/<company>/<task>/deadletter/<kind>.parquet``)."""
    paths = [Path(str(item["path"]).removeprefix("file://")) for _, item in dead]
    layout_ok = all(
        len(path.parts) > 6
        and path.parent.name == "deadletter"
        and (path.parents[1].name, path.parents[2].name, path.parents[4].name)
        == (item["task"], item["company"], template)
        for path, (template, item) in zip(paths, dead, strict=True)
    )
    run_ids = {path.parents[3].name for path in paths} if layout_ok else set()
    lines = []
    if layout_ok and len(run_ids) == 1:
        root = paths[0].parents[5]
        pattern = (
            root / "<template>" / run_ids.pop() / "<company>" / "<task>" / "deadletter" / "<kind>.parquet"
        )
        lines.append(f"  Dead-letter files      {shown(pattern)}")
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for template, item in dead:
            key = (f"{template}/{item['task']}", item["task"], item["kind"])
            grouped.setdefault(key, []).append(f"{item['company']} {item['rows']}")
        width = max(len(name) for name, _, _ in grouped)
        for (name, _, kind), companies in grouped.items():
            lines.append(f"    {name:<{width}}  {kind}: {', '.join(companies)}")
    else:
        lines.append("  Dead-letter files")
        for (template, item), path in zip(dead, paths, strict=True):
            lines.append(
                f"    {template}/{item['task']} [{item['company']}] {item['rows']} {item['kind']}: "
                f"{shown(path)}"
            )
    lines.append(
        '    each row with its reason; read one with .venv/bin/python -c "import pandas, sys; '
        'print(pandas.read_parquet(sys.argv[1]).to_string())" <file>'
    )
    return lines


# -- make airflow -----------------------------------------------------------------------------------


def serve(
    state_dir: Path | str = "state",
    *,
    port: int = DEFAULT_UI_PORT,
    out: Callable[[str], None] = _print,
    until: Callable[[], bool] | None = None,
) -> int:
    """``make airflow``: the demo's emulators and Airflow on the same state, running until
    Ctrl-C or SIGTERM (the command line turns both into ``KeyboardInterrupt``), or until
    ``until()`` is true, for tests. The scheduler's own schedule is on, as in production;
    the DAGs stay paused until you unpause them."""
    with served_state(state_dir, port, out, command="make airflow (or --port)") as served:
        paths, endpoints = served.paths, served.endpoints
        stack = _local_stack(paths, served.env, served.pids, endpoints, out)
        with stack:
            serve_until_stopped(
                stack,
                endpoints,
                ALL_DAGS,
                details=[
                    "Connections:  dynamics_dataverse_default, dynamics_fno_default "
                    "(Admin -> Connections: Test)",
                    f"State:        {shown(paths.root)} (Airflow home {shown(paths.airflow)})",
                    "Try: Dags -> p2c_accounts -> Trigger, or a backfill of 2026-11-01..2026-11-03 "
                    "(the seed's days)",
                    "     on each DAG; Assets shows the entity graph. Ctrl-C stops everything.",
                ],
                stopping="Stopping Airflow and the emulators",
                out=out,
                until=until,
            )
    return 0
