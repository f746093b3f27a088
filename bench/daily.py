"""``python -m bench daily``: what a daily run costs after 1 % of the rows changed.

Seeds a world (``--scale`` rows per large table), runs each template's initial load, then
changes 1 % and deletes 0.1 % of the source rows through the services' OData APIs (our
hooks, TLS verified), and measures with the emulators' own counters: the daily run as the
scheduler starts it (its data interval, ``since_watermark``: Dataverse change tracking where
the table allows it, the watermark otherwise), a full refresh of the same state (a dry
run: the same reads, no writes), and the lower bound, reading only the changed rows.
Measures whatever the engine does, so a rerun after engine changes updates the table.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from bench import emulator
from bench.seeding import seed_tables
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.hooks.operations import WriteKind, WriteOperation
from prospect_to_cash.sync.contracts import SyncHooks, Window
from prospect_to_cash.sync.runner import run_company_pairs

if TYPE_CHECKING:
    from pathlib import Path

    from bench.scenarios import Scenario

log = logging.getLogger("bench")
CONN_IDS = {"dataverse": "p2c_bench_daily_dataverse", "fno": "p2c_bench_daily_fno"}
#: Every 100th source row changes, every 1000th (another one) is deleted.
CHANGE_EVERY, DELETE_EVERY = 100, 1000


@dataclass(frozen=True)
class Mutation:
    """How a scenario's source rows are changed and deleted through the public API."""

    key: tuple[str, ...]
    field: str
    value: str
    filter: str | None = None


MUTATIONS = {
    "accounts": Mutation(("accountid",), "telephone1", "+1 555 0199", "statecode eq 0"),
    "products": Mutation(("dataAreaId", "ProductNumber"), "ProductDescription", "changed by bench daily"),
}


def _hooks() -> SyncHooks:
    return SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=CONN_IDS["dataverse"]),
        fno=FinanceOperationsHook(fno_conn_id=CONN_IDS["fno"]),
    )


def _mutate(scenario: Scenario, hooks: SyncHooks) -> dict[str, int]:
    """Change 1 % and delete 0.1 % of the scenario's source rows (disjoint rows)."""
    service, entity_set = scenario.source
    mutation = MUTATIONS[scenario.template]
    hook = hooks.for_system(service)
    extra: dict[str, Any] = {"companies": list(scenario.companies)} if service == "fno" else {}
    keys: list[dict[str, Any]] = []
    for page in hook.iter_pages(entity_set, select=list(mutation.key), filter=mutation.filter, **extra):
        keys.extend(page.to_dict("records"))
    operations = []
    for index, key in enumerate(keys):
        if index % DELETE_EVERY == DELETE_EVERY // 2:
            operations.append(WriteOperation(WriteKind.DELETE, entity_set, key, {}, f"d{index}"))
        elif index % CHANGE_EVERY == 0:
            body = {mutation.field: f"{mutation.value} {index}"}
            operations.append(WriteOperation(WriteKind.UPDATE, entity_set, key, body, f"u{index}"))
    outcomes = list(hook.write(operations))
    done = {o.ref for o in outcomes if o.ok}
    return {
        "rows": len(keys),
        "changed": sum(1 for o in operations if o.kind == WriteKind.UPDATE and o.ref in done),
        "deleted": sum(1 for o in operations if o.kind == WriteKind.DELETE and o.ref in done),
        "refused": len(operations) - len(done),
    }


def _measured(running: emulator.Emulators, label: str, run: Any) -> dict[str, Any]:
    running.reset()
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    counters = running.counters()
    out = {
        "seconds": round(seconds, 2),
        "rows_read": sum(int(c.get("rows_read", 0)) for c in counters.values()),
        "requests": sum(int(c.get("requests_total", 0)) for c in counters.values()),
        "by_service": {
            s: {"rows_read": c.get("rows_read"), "requests": c.get("requests_total")}
            for s, c in counters.items()
        },
        "counts": result["counts"],
    }
    log.info("%s: %s", label, {k: v for k, v in out.items() if k != "by_service"})
    return out


def run_scenario(scenario: Scenario, scale: int, work: Path) -> dict[str, Any]:
    """Seed, load, change, then measure the daily run against the full refresh."""
    state = work / "state"
    state.mkdir(parents=True)
    seeded = seed_tables(state, scale, scenario.streams)
    running = emulator.start(state, {})
    try:
        os.environ.update(running.connection_env(CONN_IDS))
        root = f"file://{work / 'staging'}"
        companies = list(scenario.companies)

        def sync(run_id: str, window: Window, *, dry_run: bool = False) -> Any:
            return run_company_pairs(
                scenario.template,
                legal_entities=companies,
                run_id=run_id,
                staging_root=root,
                hooks=_hooks(),
                window=window,
                dry_run=dry_run,
                max_rejected="100%",
                max_failed="100%",
                raise_on_failure=False,
            )

        initial = _measured(
            running, f"{scenario.template} initial", lambda: sync("initial", Window(full_refresh=True))
        )
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
        mutated = _mutate(scenario, _hooks())
        end = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
        scheduled = Window.of(start, end, since_watermark=True)
        daily = _measured(running, f"{scenario.template} daily", lambda: sync("daily", scheduled))
        full = _measured(
            running,
            f"{scenario.template} full",
            lambda: sync("full", Window(full_refresh=True), dry_run=True),
        )
    finally:
        running.stop()
    changed = max(mutated["changed"] + mutated["deleted"], 1)
    return {
        "title": scenario.title,
        "source": list(scenario.source),
        "seeded": seeded["rows"],
        "mutated": mutated,
        "initial": initial,
        "daily": daily,
        "full_refresh": full,
        "lower_bound_rows": mutated["changed"],
        "rows_read_per_changed_row": round(daily["rows_read"] / changed, 2),
        "full_refresh_rows_read_per_changed_row": round(full["rows_read"] / changed, 2),
    }
