"""The daily-run section of docs/benchmarks.md, from ``python -m bench daily`` results
(`bench.daily`): a summary per scale, then a table per template."""

from __future__ import annotations

from typing import Any

_DAILY_INTRO = [
    "## Daily runs after 1 % changed",
    "",
    "`python -m bench daily` (100,000 rows per large table unless `--scale` says otherwise;",
    "`--templates` for a subset) seeds one world for the seven templates (the generator's streams,",
    "the target-side rows an earlier integration left included), runs the initial loads in the DAGs'",
    "run order (accounts, products, contacts, then the documents), runs each template's daily sync",
    "once with nothing changed (a quiet day: it takes in what later templates' initial loads wrote",
    "to its source, such as the invoices load closing Sales orders), then changes 1 % and deletes",
    "0.1 % of each template's source rows through the OData APIs with this package's hooks",
    "(`bench/mutations.py`: a field the mapping carries, on headers and lines of documents; deletes",
    "on rows whose delete leaves nothing behind), and runs each template's sync as the scheduler",
    "runs it (its data interval with `since_watermark`). Rows read and requests are the emulators'",
    "own counters (both services); the full refresh is a dry run of the same state (the same reads,",
    "no writes); the lower bound reads only the changed and deleted rows. Rows read per changed",
    "row divide by changed + deleted rows and include the reference rows the changes name and the",
    "pending ledger's re-reads, which the tables also show on their own: the ledger holds the rows",
    "the initial load rejected (the seeded world keeps some rejected for good: duplicate numbers,",
    "unknown codes, missing parents). Rows rejected for their own content are *parked*: read again",
    "only when they change (or the mapping does); the others (missing parents, refusals) are",
    "re-read by key on every run until they land or someone dismisses them.",
    "",
    "**Sales-sourced templates** (accounts, contacts, quotations, Sales-to-F&O orders) read the",
    "changed rows by Dataverse change tracking: one delta per template and task, read once and",
    "shared by the company pairs (deletes included, each counted once), then only the target keys",
    "and the reference rows those changes name: F&O customers by the customer numbers the changed",
    "orders and quotes look up (an account's or a contact's), products and units by the changed",
    "lines' values, the headers of changed lines. The goal is at most 3 rows read per changed row",
    "plus reference overhead; the column *own tables* counts only the rows read from the template's",
    "own sources and targets (the emulators count rows per entity set), the rest are references.",
    "Accounts reach it with references included. The others read, per changed row, the reference rows it",
    "names on both sides (a changed order line: its product on both sides and its header in Sales,",
    "which alone names its order number). Document lines are read in F&O by their whole key (order",
    "number and line number: one row per changed line, not every line of the order), and a line",
    "found there needs no F&O header read (its header is there); only new lines ask for theirs.",
    "The delta also carries what other writers changed in the same Sales tables since the last run",
    "(the F&O-to-Sales orders template writes Sales orders and lines): change tracking refuses",
    "`$filter`, so no reader can avoid them; the run reads and skips them. The column *changed by",
    "other writers* counts them (the rows the deltas returned besides the bench's changes, once per",
    "table) and the next one divides the rows read by every changed source row, theirs included.",
    "All of it grows with the changes, not with the tables.",
    "",
    "**F&O-sourced templates** (products, F&O-to-Sales orders, invoices) cannot get there through",
    "OData: F&O's standard entities have no change timestamp and no change tracking over OData, so",
    "each task reads its source whole (minimal `$select`, one company per pair): at 1 % changed",
    "that is about 100 rows read per changed row for every task that reads a source table, whatever",
    "the engine does. Products has two tasks on one source (about 200); F&O-to-Sales orders read",
    "headers, lines and the taxed headers (changes on headers and lines, about 100); invoices read",
    "the headers twice, the lines once and, for the orders they close, the F&O order headers whole",
    "(a source-side reference), while only the headers (a fifth as many rows as orders) change, so",
    "theirs is the highest ratio. What the engine saves is the work after the read: each row is",
    "reduced to a digest of its mapped columns and only rows whose digest changed are transformed",
    "and looked up, so the Sales side is read only for the changed keys and the run writes only",
    "the changes. Reaching O(changes) for them needs F&O's own incremental export: with",
    "`--fno-incremental-export` every task of the three reads a Data management export with change",
    "tracking, from a data project per task and company in the F&O emulator (the quiet day is each",
    "project's first export, a full push); rows exported count as read when the package is",
    "downloaded (`<entity set> (export)`). Filtered sources (F&O orders, the invoices' order-status",
    "task) read their exported rows again through OData by their whole key (a changed line by order",
    "number and line number, not every line of its order), and the invoices read only the F&O order",
    "headers their changed invoices name (a source-side reference scoped by the staged rows, as for",
    'change-tracked Sales sources). See docs/sync.md, "Incremental export from F&O".',
    "",
    "Sales keeps a quote read-only unless it is a Draft, and the Dataverse emulator refuses such",
    "edits as Sales does, so the bench edits a quote as a salesperson revises one: back to Draft,",
    "edited, then returned to the state and status reason it had; its header changes too, which",
    "the tables count among the rows other writers changed. Posted invoices are final in F&O,",
    "which the F&O emulator does not model: the bench's edit of an invoice header stands for what",
    "a day brings there (a new invoice). What a daily run reads depends on how many rows changed",
    "and how the source is read, not on why they changed.",
    "",
]


def _per(rows: int, changed: int) -> str:
    return f"{rows / max(changed, 1):,.1f}"


def _service_rows(measured: dict[str, Any], service: str) -> int:
    return int(measured.get("by_service", {}).get(service, {}).get("rows_read", 0))


def _own_rows(s: dict[str, Any], run_name: str = "daily") -> int | None:
    """Rows a run read from the template's own tables (sources and targets); None for
    results stored before the emulators counted rows per entity set."""
    by_set = s[run_name].get("by_entity_set")
    if by_set is None or "own_tables" not in s:
        return None
    return sum(rows for name, rows in by_set.items() if name in s["own_tables"])


def _variant(run: dict[str, Any]) -> str:
    """How the run read F&O sources, for its headings (`--fno-incremental-export`)."""
    return ", F&O sources by incremental export" if run.get("fno_incremental_export") else ""


def _daily_summary(run: dict[str, Any]) -> list[str]:
    lines = [
        f"### All templates at {run['scale']:,} rows per large table{_variant(run)}",
        "",
        f"`{run['command']}` ({run['started']} to {run['finished']}); run order "
        f"{', '.join(run.get('run_order', []))}.",
        "",
        "| Template | Source | Changed | Deleted | Daily rows read | per changed row "
        "| of them own tables, per changed row | Changed by other writers "
        "| per changed source row, theirs included | of them pending re-reads | Full refresh rows read "
        "| per changed row | Daily requests | Daily wall s | Full refresh wall s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in run["scenarios"].items():
        changed = s["changed"] + s["deleted"]
        daily, full = s["daily"], s["full_refresh"]
        own = _own_rows(s)
        others = s.get("other_writers")  # the deltas' rows the bench did not change
        lines.append(
            f"| {name} | {'Sales' if s['source_system'] == 'dataverse' else 'F&O'} | {s['changed']:,} "
            f"| {s['deleted']:,} | {daily['rows_read']:,} | {_per(daily['rows_read'], changed)} "
            f"| {'n/a' if own is None else _per(own, changed)} "
            f"| {'n/a' if others is None else f'{others:,}'} "
            f"| {'n/a' if others is None else _per(daily['rows_read'], changed + others)} "
            f"| {s['pending_rereads']:,} | {full['rows_read']:,} | {_per(full['rows_read'], changed)} "
            f"| {daily['requests']:,} | {daily['seconds']:.1f} | {full['seconds']:.1f} |"
        )
    return [*lines, ""]


def _daily_template(run: dict[str, Any], s: dict[str, Any]) -> list[str]:
    changed = s["changed"] + s["deleted"]
    changes = "; ".join(
        f"{m['task']} ({m['entity_set']}.{m['field']}): {m['changed']:,} changed, {m['deleted']:,} deleted "
        f"of {m['rows']:,} rows" + (f", {m['refused']:,} refused" if m["refused"] else "")
        for m in s["mutations"]
    )
    lines = [
        f"### {s['title']}: {run['scale']:,} rows per large table{_variant(run)}",
        "",
        f"Changes: {changes}.",
        "",
        "| Run | Rows read | from Sales | from F&O | Rows read per changed row | Requests | Wall s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = (
        ("Daily (scheduled run)", s["daily"]),
        ("Full refresh, same state (dry run)", s["full_refresh"]),
    )
    for label, r in rows:
        lines.append(
            f"| {label} | {r['rows_read']:,} | {_service_rows(r, 'dataverse'):,} "
            f"| {_service_rows(r, 'fno'):,} | {_per(r['rows_read'], changed)} | {r['requests']:,} "
            f"| {r['seconds']:.1f} |"
        )
    lines.append(f"| Lower bound (the changed and deleted rows) | {s['lower_bound_rows']:,} | | | 1.0 | | |")
    lines.append("")
    rereads, waiting = s["pending_rereads"], s["pending_at_start"]
    without = s["daily"]["rows_read"] - rereads
    if rereads:
        lines.append(
            f"Pending ledger at the start of the daily run: {waiting:,} entries, {rereads:,} of them re-read "
            f"by key (fixed backlog cost); without them the daily run read {without:,} rows, "
            f"{_per(without, changed)} per changed row."
        )
    elif waiting and s["source_system"] == "dataverse":
        lines.append(
            f"Pending ledger at the start of the daily run: {waiting:,} entries, all parked "
            "(rejected for their own content): none read again until they change."
        )
    else:
        lines.append(
            f"Pending ledger at the start of the daily run: {waiting:,} entries"
            + (", read anyway with the whole source (no re-reads of their own)." if waiting else ".")
        )
    by_set = s["daily"].get("by_entity_set")
    if by_set:
        own = set(s.get("own_tables", ()))
        lines += [
            "",
            "Daily run's rows read by entity set (own tables in bold): "
            + ", ".join(
                f"{'**' if name in own else ''}{name}{'**' if name in own else ''} {rows:,}"
                for name, rows in sorted(by_set.items(), key=lambda item: -item[1])
            )
            + ".",
        ]
    counts = s["daily"]["counts"]
    lines += [
        "",
        "Daily run's counts: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if v) + ".",
        "",
    ]
    return lines


def daily_section(runs: list[dict[str, Any]]) -> list[str]:
    """A summary per scale, then one table per template: the daily run against a full refresh
    and the lower bound (reading only the changed rows), from `bench.daily`."""
    if not runs:
        return []
    lines = list(_DAILY_INTRO)
    for run in runs:
        lines += _daily_summary(run)
        for s in run["scenarios"].values():
            lines += _daily_template(run, s)
    return lines
