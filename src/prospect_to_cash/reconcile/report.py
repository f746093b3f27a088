"""The reconciliation report: one JSON document, rendered as one self-contained HTML page.

The HTML has no external assets and makes no requests (a Content-Security-Policy says so
to the browser): inline CSS, an SVG chart drawn here, and a few lines of inline script
for filtering. Every value from the data passes through :func:`html.escape`; the script
never reads data from anywhere but the escaped DOM, so record data cannot inject markup.

Both files are written through :class:`ObjectStoragePath` under the staging root
(``<root>/reconciliation/<run_id>/report.{html,json}`` plus ``latest.json`` pointing at
the newest), and optionally to a local folder.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from prospect_to_cash.reconcile.classify import DIFFERENT, LABELS, ORPHANED, REJECTED, STATUSES
from prospect_to_cash.sync.staging import as_path, safe_segment

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow.sdk import ObjectStoragePath

REPORT_FOLDER = "reconciliation"
HTML_NAME, JSON_NAME, LATEST_NAME = "report.html", "report.json", "latest.json"
#: Rows shown per task table in the HTML; the JSON always holds every row.
DEFAULT_ROW_LIMIT = 500
COLORS = {
    "in_sync": "#2e7d32",
    "missing": "#1565c0",
    "different": "#e67700",
    "orphaned": "#7b1fa2",
    "rejected": "#c62828",
}
#: Drill-down order: what needs a person first, in-sync rows last.
_ROW_ORDER = {status: position for position, status in enumerate((REJECTED, ORPHANED, DIFFERENT, "missing"))}
SYSTEMS = {"dataverse": "Sales (Dataverse)", "fno": "Finance and Operations"}


def schema() -> dict[str, Any]:
    text = resources.files("prospect_to_cash.reconcile").joinpath("report.schema.json").read_text()
    return json.loads(text)


def validate(document: dict[str, Any]) -> None:
    """Raise :class:`jsonschema.ValidationError` when the document breaks its schema."""
    jsonschema.Draft202012Validator(schema()).validate(document)


def e(value: Any) -> str:
    """Escaped text for element content and quoted attributes (None shows as nothing)."""
    return "" if value is None else html.escape(str(value), quote=True)


# -- pieces ----------------------------------------------------------------------------------

_CSS = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);
  margin:0;background:#fff}
header{background:#0b3d62;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header .meta{font-size:13px;opacity:.9}
header code{color:#fff}
main{padding:18px 28px;max-width:1400px}
h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:150px;
  border-top:5px solid var(--c)}
.card .n{font-size:26px;font-weight:600}
.card .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.zero{color:#b0b8c1}
.badge{display:inline-block;border-radius:10px;padding:0 8px;color:#fff;font-size:12px;white-space:nowrap}
.errors{background:#fdecea;border:1px solid #f5c2c0;border-radius:6px;padding:8px 14px;margin:12px 0}
.note{color:var(--muted);font-size:13px;margin:2px 0}
details.company{border:1px solid var(--line);border-radius:6px;margin:8px 0;padding:4px 12px}
details.company>summary{cursor:pointer;font-weight:600;padding:4px 0}
table.diff{margin:0;width:auto}
table.diff td,table.diff th{border:none;padding:0 10px 0 0;font-size:12px}
td.was{background:#fff1f0}
td.want{background:#eaf7ec}
.toolbar{position:sticky;top:0;background:#fff;border-bottom:1px solid var(--line);padding:8px 0;z-index:2;
  display:flex;flex-wrap:wrap;gap:14px;align-items:center}
.toolbar input[type=search]{padding:4px 8px;min-width:260px}
.more{color:var(--muted);font-style:italic}
table.rows td code{white-space:nowrap}
svg text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;fill:var(--ink)}
footer{color:var(--muted);font-size:12px;padding:18px 28px}
"""

_SCRIPT = """
(function(){
  var boxes=document.querySelectorAll('input[data-filter-status]');
  var search=document.getElementById('filter-text');
  function apply(){
    var shown={};boxes.forEach(function(b){shown[b.getAttribute('data-filter-status')]=b.checked;});
    var text=(search.value||'').toLowerCase();
    document.querySelectorAll('tr[data-status]').forEach(function(row){
      var ok=shown[row.getAttribute('data-status')]&&(!text||row.textContent.toLowerCase().indexOf(text)>=0);
      row.hidden=!ok;
    });
  }
  boxes.forEach(function(b){b.addEventListener('change',apply);});
  search.addEventListener('input',apply);
  apply();
})();
"""


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{COLORS[status]}">{e(LABELS[status])}</span>'


def _cards(totals: dict[str, int]) -> str:
    total = sum(totals.values())
    cards = [
        f'<div class="card" style="--c:#0b3d62"><div class="n">{total:,}</div><div class="l">rows</div></div>'
    ]
    for status in STATUSES:
        share = f"{100 * totals[status] / total:.1f} %" if total else "-"
        cards.append(
            f'<div class="card" style="--c:{COLORS[status]}" data-card="{status}">'
            f'<div class="n">{totals[status]:,}</div><div class="l">{e(LABELS[status])} · {share}</div></div>'
        )
    return '<div class="cards">' + "".join(cards) + "</div>"


def chart_svg(templates: list[dict[str, Any]]) -> str:
    """Stacked bars, one per template, each 100 % wide (small templates stay readable);
    the row count is written at the end of the bar, every segment has a tooltip."""
    label_width, bar_width, row_height, top = 300, 560, 30, 34
    height = top + row_height * max(len(templates), 1) + 10
    width = label_width + bar_width + 90
    parts = [
        f'<svg id="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Rows per template and status">'
    ]
    x = label_width
    for status in STATUSES:
        parts.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{COLORS[status]}"/>')
        parts.append(f'<text x="{x + 16}" y="16">{e(LABELS[status])}</text>')
        x += 16 + 7 * len(LABELS[status]) + 18
    for index, template in enumerate(templates):
        y = top + index * row_height
        totals = template["totals"]
        total = sum(totals.values())
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">{e(template["title"])}</text>'
        )
        if not total:
            parts.append(
                f'<rect x="{label_width}" y="{y}" width="{bar_width}" height="20" fill="#eef1f4"/>'
                f'<text x="{label_width + 8}" y="{y + 15}">no rows</text>'
            )
            continue
        offset = 0.0
        for status in STATUSES:
            if not totals[status]:
                continue
            segment = bar_width * totals[status] / total
            parts.append(
                f'<rect class="seg" data-status="{status}" x="{label_width + offset:.2f}" y="{y}" '
                f'width="{segment:.2f}" height="20" fill="{COLORS[status]}">'
                f"<title>{e(template['title'])}: {e(LABELS[status])} {totals[status]:,}</title></rect>"
            )
            offset += segment
        parts.append(f'<text x="{label_width + bar_width + 8}" y="{y + 15}">{total:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _count_cells(counts: dict[str, Any]) -> str:
    return "".join(f'<td class="num{" zero" if not counts[s] else ""}">{counts[s]:,}</td>' for s in STATUSES)


def _company_label(company: str) -> str:
    return "all companies (shared table)" if company == "*" else company


def _anchor(*parts: str) -> str:
    return "s-" + "-".join(safe_segment(p) for p in parts)


def _summary_table(templates: list[dict[str, Any]]) -> str:
    head = "".join(f'<th class="num">{e(LABELS[s])}</th>' for s in STATUSES)
    rows = []
    for template in templates:
        for section in template["sections"]:
            anchor = _anchor(template["template"], section["company"])
            flag = ' <span class="badge" style="background:#c62828">error</span>' if section["errors"] else ""
            rows.append(
                f'<tr><td><a href="#{anchor}">{e(template["title"])}</a></td>'
                f"<td>{e(_company_label(section['company']))}{flag}</td>{_count_cells(section['totals'])}</tr>"
            )
    return (
        f'<table id="summary"><thead><tr><th>Template</th><th>Company</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _details(row: dict[str, Any]) -> str:
    parts = []
    if row["differences"]:
        lines = "".join(
            f'<tr><th scope="row"><code>{e(d["field"])}</code></th><td class="was">{e(d["actual"])}</td>'
            f'<td class="want">{e(d["expected"])}</td></tr>'
            for d in row["differences"]
        )
        parts.append(
            '<table class="diff"><thead><tr><th>field</th><th>target now</th><th>source says</th>'
            "</tr></thead>"
            f"<tbody>{lines}</tbody></table>"
        )
    if row["reason"]:
        parts.append(f'<div class="reason">{e(row["reason"])}</div>')
    if row.get("source_row"):
        pairs = ", ".join(f"{e(k)}={e(v)}" for k, v in row["source_row"].items() if v is not None)
        parts.append(f"<details><summary>source row</summary><code>{pairs}</code></details>")
    return "".join(parts)


def _task_table(task: dict[str, Any], row_limit: int) -> str:
    rows = sorted(task["rows"], key=lambda r: _ROW_ORDER.get(r["status"], len(_ROW_ORDER)))
    shown = rows[:row_limit]
    body = "".join(
        f'<tr data-status="{e(r["status"])}"><td>{_badge(r["status"])}</td>'
        f"<td><code>{e(r['key'])}</code></td>"
        f"<td><code>{e(r['source_key'])}</code></td><td><code>{e(r['target_id'])}</code></td>"
        f"<td>{_details(r)}</td></tr>"
        for r in shown
    )
    more = ""
    if len(rows) > len(shown):
        more = f'<p class="more">{len(shown):,} of {len(rows):,} rows shown; every row is in report.json.</p>'
    if not rows:
        return '<p class="note">No rows.</p>'
    return (
        '<table class="rows"><thead><tr><th>Status</th><th>Target key</th><th>Source key</th>'
        f"<th>Target id</th><th>Details</th></tr></thead><tbody>{body}</tbody></table>{more}"
    )


def _task_block(task: dict[str, Any], row_limit: int) -> str:
    counts = task["counts"]
    read = "" if counts["read"] is None else f" · read {counts['read']:,}, skipped {counts['skipped']:,}"
    if counts.get("pending"):
        read += f", pending {counts['pending']:,} (python -m prospect_to_cash.sync pending)"
    summary = ", ".join(f"{LABELS[s].lower()} {counts[s]:,}" for s in STATUSES if counts[s])
    notes = "".join(f'<p class="note">{e(n)}</p>' for n in task["notes"])
    return (
        f'<h3>{e(task["task"])} <span class="note">{e(SYSTEMS[task["source_system"]])} '
        f"<code>{e(task['source_entity_set'])}</code> → {e(SYSTEMS[task['target_system']])} "
        f"<code>{e(task['target_entity_set'])}</code>{e(read)}</span></h3>"
        f'<p class="note">{e(summary or "nothing to compare")}</p>{notes}{_task_table(task, row_limit)}'
    )


def _drilldown(template: dict[str, Any], row_limit: int) -> str:
    sections = []
    for section in template["sections"]:
        problems = sum(section["totals"][s] for s in STATUSES if s != "in_sync") or section["errors"]
        errors = "".join(f'<div class="errors">{e(message)}</div>' for message in section["errors"])
        tasks = "".join(_task_block(task, row_limit) for task in section["tasks"])
        summary = ", ".join(f"{LABELS[s].lower()} {section['totals'][s]:,}" for s in STATUSES)
        sections.append(
            f'<details class="company" id="{_anchor(template["template"], section["company"])}"'
            f"{' open' if problems else ''}><summary>{e(_company_label(section['company']))} "
            f'<span class="note">{e(summary)}</span></summary>{errors}{tasks}</details>'
        )
    direction = f"{SYSTEMS[template['source_system']]} → {SYSTEMS[template['target_system']]}"
    return (
        f'<section class="template" id="t-{e(safe_segment(template["template"]))}">'
        f'<h2>{e(template["title"])} <span class="note">{e(direction)} · '
        f"<code>{e(template['template'])}</code></span></h2>{''.join(sections)}</section>"
    )


def _environment(document: dict[str, Any]) -> str:
    env = document["environment"]
    pairs = ", ".join(
        f"{p['legal_entity']} ↔ {p['business_unit'] or 'all of Sales'}" for p in env["company_pairs"]
    )
    items = [
        ("Generated", document["generated_at"]),
        ("Run", document["run_id"]),
        ("Sales (Dataverse)", f"{env['dataverse']['url'] or 'unknown'} ({env['dataverse']['conn_id']})"),
        ("Finance and Operations", f"{env['fno']['url'] or 'unknown'} ({env['fno']['conn_id']})"),
        ("Company pairs", pairs),
        ("Staging", env["staging_root"]),
    ]
    return " · ".join(f"{e(name)}: <code>{e(value)}</code>" for name, value in items)


def render_html(document: dict[str, Any], *, row_limit: int = DEFAULT_ROW_LIMIT) -> str:
    """The whole report as one HTML page (UTF-8, no external references)."""
    errors = ""
    if document["errors"]:
        items = "".join(
            f"<li><b>{e(err['template'])}</b> [{e(err['company'])}]"
            f"{' ' + e(err['task']) if err['task'] else ''}: {e(err['message'])}</li>"
            for err in document["errors"]
        )
        errors = f'<div class="errors" id="errors"><b>Not reconciled</b><ul>{items}</ul></div>'
    filters = "".join(
        f'<label><input type="checkbox" data-filter-status="{s}"{"" if s == "in_sync" else " checked"}> '
        f"{_badge(s)}</label>"
        for s in STATUSES
    )
    body = "".join(_drilldown(t, row_limit) for t in document["templates"])
    csp = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>P2C reconciliation {e(document['generated_at'])}</title><style>{_CSS}</style></head><body>"
        "<header><h1>Prospect-to-cash reconciliation</h1>"
        f'<div class="meta">{_environment(document)}</div></header>'
        f"<main>{errors}<h2>Totals</h2>{_cards(document['totals'])}"
        f"<h2>Per template</h2>{chart_svg(document['templates'])}"
        f"<h2>Per template and company</h2>{_summary_table(document['templates'])}"
        '<h2>Rows</h2><div class="toolbar"><input type="search" id="filter-text" '
        f'placeholder="Filter by key, field, value or reason" aria-label="Filter rows">{filters}</div>'
        f"{body}</main>"
        "<footer>Statuses: <b>in sync</b> the target holds what the source says; <b>missing</b> a sync would "
        "create it; <b>different</b> a sync would update the fields shown; <b>orphaned</b> the target row is "
        "in the integration's scope but no source row maps to it; <b>rejected</b> the templates cannot sync "
        "the source row (reason shown). The same data is in report.json.</footer>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


# -- writing ---------------------------------------------------------------------------------


def _write_text(path: ObjectStoragePath | Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
    return str(path)


def write_report(
    document: dict[str, Any],
    *,
    staging_root: Any = None,
    output_dir: str | Path | None = None,
    row_limit: int = DEFAULT_ROW_LIMIT,
) -> dict[str, str]:
    """Validate, render and write both files; returns their paths (``html``, ``json``,
    ``latest`` and, with ``output_dir``, ``local_html`` / ``local_json``)."""
    validate(document)
    page = render_html(document, row_limit=row_limit)
    data = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    folder = as_path(staging_root) / REPORT_FOLDER / safe_segment(document["run_id"])
    paths = {
        "html": _write_text(folder / HTML_NAME, page),
        "json": _write_text(folder / JSON_NAME, data),
    }
    latest = {
        "run_id": document["run_id"],
        "generated_at": document["generated_at"],
        "html": paths["html"],
        "json": paths["json"],
        "totals": document["totals"],
    }
    paths["latest"] = _write_text(
        as_path(staging_root) / REPORT_FOLDER / LATEST_NAME, json.dumps(latest, indent=1) + "\n"
    )
    if output_dir is not None:
        local = Path(output_dir)
        paths["local_html"] = _write_text(local / HTML_NAME, page)
        paths["local_json"] = _write_text(local / JSON_NAME, data)
    return paths


def rows_of(document: dict[str, Any]) -> Iterable[tuple[str, str, str, dict[str, Any]]]:
    """Every row with its template, company and task (for tests and other consumers)."""
    for template in document["templates"]:
        for section in template["sections"]:
            for task in section["tasks"]:
                for row in task["rows"]:
                    yield template["template"], section["company"], task["task"], row
