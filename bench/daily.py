"""``python -m bench daily``: what each template's daily run costs after 1 % of the rows changed.

Seeds one world for the templates asked for and the ones they need first (``--scale`` rows
per large table: the generator's streams, target-side rows included), runs the initial
loads in the DAGs' run order (accounts, products, contacts, then the documents), then
changes 1 % and deletes 0.1 % of each template's source rows through the services' OData
APIs (our hooks, TLS verified; :mod:`bench.mutations`), and measures each template with
the emulators' own counters: its daily run as the scheduler starts it (its data interval
with ``since_watermark``: Dataverse change tracking where the table allows it, the whole
source for F&O), a full refresh of the same state (a dry run: the same reads, no writes),
and the lower bound, reading only the changed rows. Measures whatever the engine does,
so a rerun after engine changes updates the tables.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypedDict

import yaml
from airflow.sdk import ObjectStoragePath

from bench import emulator
from bench.mutations import MUTATIONS, Mutated, mutate
from bench.seeding import seed_tables
from prospect_to_cash.dags.run_books import RUN_BOOKS
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.sync.changes import DELTA_FILE
from prospect_to_cash.sync.contracts import SyncHooks, Window
from prospect_to_cash.sync.environment import ENVIRONMENT_FILE_VARIABLE, load_environment
from prospect_to_cash.sync.mapping import load_template
from prospect_to_cash.sync.pending import ledgers
from prospect_to_cash.sync.runner import run_company_pairs
from prospect_to_cash.sync.staging import TaskStaging

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from prospect_to_cash.sync.contracts import PairsResult

log = logging.getLogger("bench")
CONN_IDS = {"dataverse": "p2c_bench_daily_dataverse", "fno": "p2c_bench_daily_fno"}
COMPANIES = ("usmf", "demf")
TEMPLATES = tuple(MUTATIONS)

#: The generator's streams (besides the reference tables) each template's world needs:
#: its source, and the target-side rows an earlier integration left (existing customers,
#: contact persons, products, the Sales copies of F&O orders).
STREAMS: dict[str, tuple[str, ...]] = {
    "accounts": ("accounts", "fno_customers"),
    "contacts": ("contacts", "fno_contact_persons"),
    "products": ("fno_products", "dataverse_products"),
    "sales_quotations": ("quotes",),
    "sales_orders_sales_to_fno": ("sales_orders",),
    "sales_orders_fno_to_sales": ("fno_orders",),  # F&O orders, their invoices, Sales copies
    "sales_invoices": ("fno_orders",),
}


class ServiceCounters(TypedDict):
    rows_read: int
    requests: int


class Measured(TypedDict):
    """One measured sync run: the emulators' counters, wall time and the engine's counts."""

    seconds: float
    rows_read: int
    requests: int
    by_service: dict[str, ServiceCounters]
    #: rows returned per ``service:entity set`` (the emulators' ``rows_read_by_set``)
    by_entity_set: dict[str, int]
    counts: dict[str, int]


class TemplateResult(TypedDict):
    """One template's figures, as stored in ``bench/results/daily-*.json``."""

    title: str
    source_system: str
    mutations: list[Mutated]
    changed: int
    deleted: int
    initial: Measured
    daily: Measured
    full_refresh: Measured
    pending_at_start: int
    pending_rereads: int
    #: the template's own tables (``service:entity set`` of its tasks' sources and targets);
    #: rows read from any other are reference reads
    own_tables: list[str]
    lower_bound_rows: int
    rows_read_per_changed_row: float
    full_refresh_rows_read_per_changed_row: float
    #: rows the daily run's deltas returned besides the bench's changes: what other writers
    #: (another template, a user) changed in the same Sales tables; None: no delta read
    other_writers: int | None
    #: rows read per changed source row, the other writers' changes included
    rows_read_per_source_change: float | None


def run_order(templates: Sequence[str]) -> list[str]:
    """``templates`` and every template they wait for (the DAGs' upstream), in run order."""
    by_dag = {spec.dag_id: name for name, spec in RUN_BOOKS.items()}
    needed: set[str] = set()
    todo = list(templates)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(by_dag[dag] for dag in RUN_BOOKS[name].upstream)
    ordered: list[str] = []
    while len(ordered) < len(needed):  # RUN_BOOKS order, each after its upstream
        for name in RUN_BOOKS:
            upstream = {by_dag[dag] for dag in RUN_BOOKS[name].upstream}
            if name in needed and name not in ordered and upstream <= set(ordered):
                ordered.append(name)
    return ordered


def title(template: str) -> str:
    """``Accounts (Sales to Fin and Ops): accounts -> CustomersV3``."""
    spec = RUN_BOOKS[template]
    sets = list(dict.fromkeys(f"{step.source} -> {step.target}" for step in spec.steps))
    return f"{spec.title}: {', '.join(sets)}"


def _hooks() -> SyncHooks:
    return SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN_IDS["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN_IDS["fno"]),
    )


def _measured(running: emulator.Emulators, label: str, run: Callable[[], PairsResult]) -> Measured:
    running.reset()
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    counters = running.counters()
    if result["failed"]:
        raise RuntimeError(f"{label}: company pairs failed: {result['failed']}")
    by_service = {
        service: ServiceCounters(
            rows_read=int(c.get("rows_read", 0)), requests=int(c.get("requests_total", 0))
        )
        for service, c in counters.items()
    }
    by_entity_set = {
        f"{service}:{entity_set}": int(rows)
        for service, c in counters.items()
        for entity_set, rows in sorted(c.get("rows_read_by_set", {}).items())
    }
    out = Measured(
        seconds=round(seconds, 2),
        rows_read=sum(s["rows_read"] for s in by_service.values()),
        requests=sum(s["requests"] for s in by_service.values()),
        by_service=by_service,
        by_entity_set=by_entity_set,
        counts=dict(result["counts"]),
    )
    log.info("%s: %s", label, {k: v for k, v in out.items() if k not in ("by_service", "by_entity_set")})
    return out


def own_tables(template: str) -> list[str]:
    """``service:entity set`` of the template's sources and targets (every task's)."""
    loaded = load_template(template)
    source, target = loaded.source_system, loaded.target_system
    tables = [f"{source}:{task.source.entity_set}" for task in loaded.tasks]
    tables += [f"{target}:{task.target.entity_set}" for task in loaded.tasks]
    return sorted(set(tables))


def _pending(root: str, template: str, exported: Sequence[str] = ()) -> tuple[int, int]:
    """Entries in the template's pending ledgers, and how many of them a daily run re-reads
    by key: those of tasks whose source is read by change (a whole read carries them; an
    export, ``exported``, does not), less the parked ones (rejected for their own content:
    read again only when they change)."""
    by_change = {t.name for t in load_template(template).tasks if t.source.change_field} | set(exported)
    total = rereads = 0
    for ledger in ledgers(ObjectStoragePath(root), template):
        entries = ledger.read()
        total += len(entries)
        if ledger.task in by_change:
            rereads += sum(1 for entry in entries if not entry.get("parked"))
    return total, rereads


def other_writers(root: str, template: str, run_id: str, mutated: Sequence[Mutated]) -> int | None:
    """Rows the run's Dataverse deltas returned that the bench did not change: other writers'
    changes to the same source tables since the last run (the F&O-to-Sales orders load
    writes Sales order lines). Change tracking refuses ``$filter``, so every reader of the
    table gets them; the run reads them and skips them (another business unit, outside the
    mapping's filter, or routed out). Counted once per source table (``returned`` of
    ``source/delta.json``): the company pairs share a delta, and two tasks reading one table
    (contacts) get the same rows. None when no task read a delta."""
    changed: dict[str, int] = {}
    for m in mutated:
        changed[m["entity_set"]] = changed.get(m["entity_set"], 0) + m["changed"]
    returned: dict[str, int] = {}
    for task in load_template(template).tasks:
        for company in COMPANIES:
            staging = TaskStaging(ObjectStoragePath(root), template, run_id, company, task.name)
            if staging.exists("source", DELTA_FILE, ".json"):
                state = staging.read_json("source", DELTA_FILE)
                if not state["whole"]:  # a whole read is the table, not changes
                    table = state["entity_set"]
                    returned[table] = max(returned.get(table, 0), int(state["returned"]))
    if not returned:
        return None
    return sum(max(rows - changed.get(table, 0), 0) for table, rows in returned.items())


def export_tasks(templates: Sequence[str]) -> dict[str, dict[str, str]]:
    """Template -> {task: source entity set} of the tasks whose mapping can read an F&O
    incremental export (the environment's ``defaults.incremental_exports``)."""
    known = load_environment().data.get("defaults", {}).get("incremental_exports", {})
    return {
        name: {task: load_template(name).task(task).source.entity_set for task in known[name]}
        for name in templates
        if name in known
    }


def _project(template: str, task: str, company: str) -> str:
    return f"P2C-{template}-{task}-{company}".upper()


def _export_setup(tasks: dict[str, dict[str, str]], work: Path) -> tuple[dict[str, Any], Path]:
    """The emulator's data projects (one per template task and company, as a user sets them
    up in F&O) and an environment override naming them in each company pair's defaults."""
    projects = {
        _project(name, task, company): entity_set
        for name, by_task in tasks.items()
        for task, entity_set in by_task.items()
        for company in COMPANIES
    }
    pairs = copy.deepcopy(load_environment().data["company_pairs"])
    for pair in pairs:
        company = pair["legal_entity"].lower()
        exports = {
            name: {task: _project(name, task, company) for task in by_task} for name, by_task in tasks.items()
        }
        pair.setdefault("defaults", {})["incremental_exports"] = exports
    override = work / "fno-incremental-export.yaml"
    override.write_text(yaml.safe_dump({"company_pairs": pairs}))
    return {"fno": {"dmf": {"projects": projects}}}, override


def run(
    templates: Sequence[str], scale: int, work: Path, *, fno_incremental_export: bool = False
) -> dict[str, Any]:
    """Seed one world, load it, let a quiet day pass, change it, then measure each template's
    daily run against a full refresh; returns the seeding figures and a `TemplateResult` per
    template asked. ``fno_incremental_export``: F&O-sourced tasks that can read a Data
    management incremental export do (the quiet day is then each project's full push)."""
    order = run_order(templates)
    state = work / "state"
    state.mkdir(parents=True)
    streams = list(dict.fromkeys(s for name in order for s in STREAMS[name]))
    seeded = seed_tables(state, scale, streams)
    log.info("seeded %s in %.1f s", seeded["rows"], seeded["seconds"])
    exported = export_tasks(order) if fno_incremental_export else {}
    config: dict[str, Any] = {}
    if exported:
        config, override = _export_setup(exported, work)
        os.environ[ENVIRONMENT_FILE_VARIABLE] = str(override)
    running = emulator.start(state, config)
    root = f"file://{work / 'staging'}"
    try:
        os.environ.update(running.connection_env(CONN_IDS))

        def sync(template: str, run_id: str, window: Window, *, dry_run: bool = False) -> PairsResult:
            return run_company_pairs(
                template,
                legal_entities=list(COMPANIES),
                run_id=run_id,
                staging_root=root,
                hooks=_hooks(),
                window=window,
                dry_run=dry_run,
                max_rejected="100%",
                max_failed="100%",
                raise_on_failure=False,
            )

        initial = {
            name: _measured(
                running, f"{name} initial", lambda n=name: sync(n, "initial", Window(full_refresh=True))
            )
            for name in order
        }
        # A quiet day first: each template's scheduled run picks up what the later templates'
        # initial loads wrote to its source (the invoices load closes Sales orders, the F&O
        # orders load writes Sales order lines), so the measured day holds that day's changes
        # only, as every day after the first does.
        loaded = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
        for name in order:
            sync(name, "settle", Window.of(loaded - timedelta(days=1), loaded, since_watermark=True))
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
        mutated = {name: mutate(name, _hooks(), COMPANIES) for name in order if name in templates}
        end = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
        scheduled = Window.of(start, end, since_watermark=True)
        pending = {name: _pending(root, name, list(exported.get(name, {}))) for name in mutated}
        daily = {
            name: _measured(running, f"{name} daily", lambda n=name: sync(n, "daily", scheduled))
            for name in order
            if name in mutated
        }
        full = {
            name: _measured(
                running,
                f"{name} full",
                lambda n=name: sync(n, "full", Window(full_refresh=True), dry_run=True),
            )
            for name in daily
        }
    finally:
        running.stop()
    results: dict[str, TemplateResult] = {}
    for name in daily:
        changed = sum(m["changed"] for m in mutated[name])
        deleted = sum(m["deleted"] for m in mutated[name])
        per = max(changed + deleted, 1)
        others = other_writers(root, name, "daily", mutated[name])
        results[name] = TemplateResult(
            title=title(name),
            source_system=RUN_BOOKS[name].source_system,
            mutations=mutated[name],
            changed=changed,
            deleted=deleted,
            initial=initial[name],
            daily=daily[name],
            full_refresh=full[name],
            pending_at_start=pending[name][0],
            pending_rereads=pending[name][1],
            own_tables=own_tables(name)
            + sorted({f"fno:{e} (export)" for e in exported.get(name, {}).values()}),
            lower_bound_rows=changed + deleted,
            rows_read_per_changed_row=round(daily[name]["rows_read"] / per, 2),
            full_refresh_rows_read_per_changed_row=round(full[name]["rows_read"] / per, 2),
            other_writers=others,
            rows_read_per_source_change=(
                None if others is None else round(daily[name]["rows_read"] / (per + others), 2)
            ),
        )
    return {"seeded": seeded, "run_order": order, "templates": results}
