"""What a user sees in the Airflow UI after ``make demo``, looked at in headless Chromium.

:func:`tour` opens each page, waits for what the page must show (its visible text, not just
"loaded"), reads what the test checks from the DOM (labels, form fields, graph nodes and
edges) and takes a screenshot. It runs against ``make airflow``'s stack
(:func:`devstack.demo.serve`) on the demo's state; the REST API says which runs to look at.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import httpx

from devstack.demo import ALL_DAGS

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.chromium import Chromium, Clip

#: The screenshots the README shows (docs/images/).
SHOTS = (
    "ui-dags",
    "ui-graph",
    "ui-report-log",
    "ui-params",
    "ui-assets",
    "ui-asset-graph",
    "ui-add-connection-dataverse",
    "ui-add-connection-fno",
)
#: The connection types of the add-connection form, by the name the form lists them under.
CONNECTION_TYPES = {
    "dynamics_dataverse": "Dynamics 365 Dataverse",
    "dynamics_fno": "Dynamics 365 Finance and Operations",
}
#: The two assets whose graph the tour reads: the customers accounts and contacts write, the
#: products the products DAG writes; orders, quotations and invoices look both up.
CUSTOMERS = "fno://dynamics_fno_default/CustomersV3"
PRODUCTS = "dataverse://dynamics_dataverse_default/products"


class FormField(TypedDict):
    """One input of a form as the DOM has it."""

    name: str
    label: str  # the text of the field's <label>, whitespace collapsed ("Tenant ID *")
    placeholder: str
    required: bool
    options: list[str]  # the values of the input's <datalist> (its pick list), if any


@dataclass
class AssetGraph:
    """An asset page's graph as drawn: nodes by their visible names (an asset's URI, a task
    as ``<dag_id>: <task_id>``) and the edges between them."""

    edges: set[tuple[str, str]] = field(default_factory=set)

    def producers(self, asset: str) -> set[str]:
        return {source for source, target in self.edges if target == asset}

    def consumers(self, asset: str) -> set[str]:
        return {target for source, target in self.edges if source == asset}


@dataclass
class TourResult:
    """What each page showed, for the test's assertions."""

    texts: dict[str, str] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)
    shots: dict[str, Path] = field(default_factory=dict)
    api: dict[str, Any] = field(default_factory=dict)
    forms: dict[str, list[FormField]] = field(default_factory=dict)  # connection type -> fields
    asset_graph: AssetGraph = field(default_factory=AssetGraph)


def _api(base: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{base}/api/v2{path}", params=params, timeout=30)
    response.raise_for_status()
    return response.json()


def _page(browser: Chromium, result: TourResult, name: str, url: str, needles: list[str], shots: Path) -> str:
    browser.open(url)
    text = browser.wait_for(needles, timeout=90)
    result.texts[name] = text
    result.shots[name] = browser.screenshot(shots / f"{name}.png")
    return text


#: The hue (oklch) of the badge next to a run in the "success" state: Airflow's green.
SUCCESS_HUES = range(120, 170)


def _badge_hues(browser: Chromium, run_id: str) -> list[float]:
    """The hue of the state badge beside each link to ``run_id`` on the DAG list."""
    script = f"""[...document.querySelectorAll('a[href$="/runs/{run_id}"]')].map(a => {{
        const colors = [...a.parentElement.querySelectorAll('*')]
            .map(x => getComputedStyle(x).backgroundColor);
        const badge = colors.find(c => c.startsWith('oklch('));
        return badge ? parseFloat(badge.slice(6, -1).split(' ')[2]) : -1; }})"""
    return list(browser.evaluate(script))


def tour(browser: Chromium, base: str, shots: Path) -> TourResult:
    """Every page of the issue's list, in order; raises when a page lacks what it must show."""
    result = TourResult()
    dags = {dag["dag_id"]: dag for dag in _api(base, "/dags", limit=100)["dags"]}
    names = [dags[dag_id]["dag_display_name"] for dag_id in ALL_DAGS]
    latest = {
        dag_id: _api(base, f"/dags/{dag_id}/dagRuns", order_by="-run_after", limit=1)["dag_runs"][0]
        for dag_id in ALL_DAGS
    }
    result.api["latest_runs"] = latest

    # the DAG list: the eight DAGs by their display names, tagged, each last run green
    _page(browser, result, "ui-dags", f"{base}/dags", [*names, "8 Dags"], shots)
    run_ids = {run["dag_run_id"] for run in latest.values()}
    result.api["badge_hues"] = [hue for run_id in sorted(run_ids) for hue in _badge_hues(browser, run_id)]

    # a template DAG's graph with its task group expanded: extract -> transform -> load per step
    browser.evaluate("localStorage.setItem('default_dag_view', JSON.stringify('graph'))")
    browser.open(f"{base}/dags/p2c_sales_orders_fno_to_sales")
    browser.wait_for(["company_pairs", "check_mapping"], timeout=90)
    browser.click('button[aria-label="Expand all task groups"]')
    result.texts["ui-graph"] = browser.wait_for(["order_headers", "extract", "transform", "load"], timeout=60)
    result.shots["ui-graph"] = browser.screenshot(shots / "ui-graph.png")

    # a finished run's report task log (the first company's mapped instance)
    run_id = latest["p2c_accounts"]["dag_run_id"]
    _page(
        browser,
        result,
        "ui-report-log",
        f"{base}/dags/p2c_accounts/runs/{run_id}/tasks/sync.report/mapped/0",
        ["accounts [usmf]: 4 rejected", "TOTAL", "unchanged", "pending ledger", "Done. Returned value was"],
        shots,
    )

    # the Params form (the trigger dialog)
    browser.open(f"{base}/dags/p2c_accounts")
    browser.wait_for(["Trigger"], timeout=60)
    browser.click('button[aria-label="Trigger Dag"]')
    result.texts["ui-params"] = browser.wait_for(["Run Parameters", "Dry run", "Max failed rows"], timeout=60)
    result.labels["ui-params"] = browser.labels()
    result.shots["ui-params"] = browser.screenshot(shots / "ui-params.png")

    # the asset list: the entity sets of both systems, each produced by a sync DAG
    _page(
        browser,
        result,
        "ui-assets",
        f"{base}/assets",
        [
            "dataverse://dynamics_dataverse_default/accounts",
            "fno://dynamics_fno_default/CustomersV3",
            "dataverse://dynamics_dataverse_default/salesorders",
            "dataverse://dynamics_dataverse_default/invoices",
        ],
        shots,
    )

    # the asset graph of the products asset (the whole P2C lineage: producers and consumers)
    assets = {asset["uri"]: asset["id"] for asset in _api(base, "/assets", limit=100)["assets"]}
    result.asset_graph = _asset_graph(
        browser, f"{base}/assets/{assets[PRODUCTS]}", shots / "ui-asset-graph.png"
    )
    result.shots["ui-asset-graph"] = shots / "ui-asset-graph.png"

    # the add-connection form of both Dynamics connection types, the type chosen in the form
    for conn_type, shown in CONNECTION_TYPES.items():
        result.forms[conn_type] = _add_connection_form(browser, base, shown)
        name = "ui-add-connection-" + conn_type.removeprefix("dynamics_")
        if conn_type == "dynamics_fno":  # the extra fields: the tenant id marked required
            browser.mouse_click('[role=dialog] button[data-part=item-trigger][id$=":trigger:Extra Fields"]')
            result.texts[name] = browser.wait_for(["Tenant ID", "Default company"], timeout=30)
        else:  # the standard fields, their placeholders showing
            result.texts[name] = browser.wait_for(["Environment URL", "Client secret"], timeout=30)
        browser.settle()
        result.shots[name] = browser.screenshot(shots / f"{name}.png")
    return result


#: Every named input of the open dialog with the <label> of its field and its pick list.
FORM_FIELDS = """[...document.querySelectorAll('[role=dialog] input[name], [role=dialog] textarea[name]')]
    .map(e => {
        let box = e.parentElement;
        while (box && !box.querySelector('label')) box = box.parentElement;
        const label = box ? box.querySelector('label').innerText.replace(/\\s+/g, ' ').trim() : '';
        const options = e.list ? [...e.list.options].map(o => o.value) : [];
        return {name: e.name, label, placeholder: e.placeholder, required: e.required, options};
    })"""


def _add_connection_form(browser: Chromium, base: str, shown: str) -> list[FormField]:
    """Admin -> Connections -> Add Connection, the type typed into its picker and chosen."""
    browser.open(f"{base}/connections")
    browser.wait_for(["Add Connection", "dynamics_fno_default"], timeout=60)
    browser.click_text("Add Connection")
    browser.wait_for(["Select Connection Type"], timeout=30)
    browser.type_into("[role=dialog] input[role=combobox]", shown)
    browser.wait_for([shown], timeout=30)  # the picker's option
    browser.click_text(shown, "[role=option]")
    browser.wait_for(["Standard Fields", "Extra Fields", "Environment URL"], timeout=30)
    return list(browser.evaluate(FORM_FIELDS))


#: The graph's nodes (type and visible lines) by id, and each edge's accessible name.
GRAPH = """(() => {
    const nodes = {};
    document.querySelectorAll('.react-flow__node').forEach(n => {
        const kind = [...n.classList].find(c => c.startsWith('react-flow__node-')).slice(17);
        nodes[n.dataset.id] = [kind, n.innerText.split('\\n').map(s => s.trim()).filter(Boolean)];
    });
    const edges = [...document.querySelectorAll('.react-flow__edge')].map(e => e.getAttribute('aria-label'));
    return {nodes, edges};
})()"""
EDGE = re.compile(r"^Edge from (\S+) to (\S+)$")
#: A viewport wide enough for the whole lineage at a legible zoom (the graph fits itself in).
WIDE = (4800, 1400)


def _node_name(kind: str, lines: list[str]) -> str:
    if kind == "task":  # task id, then its DAG
        return f"{lines[-1]}: {lines[0]}"
    return lines[0]


def _loose_ends(drawn: dict[str, Any]) -> set[str]:
    """Node ids the drawn edges name that are not drawn (yet)."""
    ends = {end for label in drawn["edges"] if (match := EDGE.match(label or "")) for end in match.groups()}
    return ends - set(drawn.get("nodes", {}))


def _name_from_id(node_id: str) -> str:
    """An undrawn node's name from its id, as `_node_name` names a drawn one: React Flow ids a
    task ``task:<dag id>__SEPARATOR__<task id>``; anything else keeps its id."""
    kind, _, rest = node_id.partition(":")
    dag, separator, task = rest.partition("__SEPARATOR__")
    return f"{dag}: {task}" if kind == "task" and separator else node_id


def _asset_graph(browser: Chromium, url: str, shot: Path) -> AssetGraph:
    """An asset page's *Task Dependencies* graph: read from the DOM once it is drawn and
    stable, and shot around the customers and products assets with their neighbours."""
    browser.resize(*WIDE)
    try:
        browser.open(url)
        browser.wait_for(["Task Dependencies", PRODUCTS], timeout=60)
        browser.click_text("Task Dependencies")
        drawn: dict[str, Any] = {"edges": []}
        # until two readings a second apart agree and every edge's ends are drawn (the graph
        # lays itself out in steps), or three agree: React Flow may leave a node it judges
        # off screen undrawn while drawing its edges (seen once: an extract task)
        stable = 0
        for _ in range(60):
            time.sleep(1)
            seen = browser.evaluate(GRAPH)
            stable = stable + 1 if seen["edges"] and seen == drawn else 0
            drawn = seen
            if (stable and not _loose_ends(seen)) or stable >= 3:
                break
        nodes = {node_id: _node_name(kind, lines) for node_id, (kind, lines) in drawn["nodes"].items()}
        named = {**{end: _name_from_id(end) for end in _loose_ends(drawn)}, **nodes}
        graph = AssetGraph()
        for label in drawn["edges"]:
            match = EDGE.match(label or "")
            if match is None:
                raise AssertionError(f"an edge without a readable name: {label!r}")
            graph.edges.add((named[match.group(1)], named[match.group(2)]))
        browser.screenshot(shot, clip=_around(browser, nodes, graph))
        return graph
    finally:
        browser.resize(browser.width, browser.height)


def _around(browser: Chromium, nodes: dict[str, str], graph: AssetGraph) -> Clip:
    """The page rectangle holding both assets, who writes them and who reads them (the
    reconciliation, drawn far to the right, aside)."""
    names = {CUSTOMERS, PRODUCTS}
    for asset in (CUSTOMERS, PRODUCTS):
        names |= graph.producers(asset) | graph.consumers(asset)
    ids = [node_id for node_id, name in nodes.items() if name in names and "p2c_reconciliation" not in name]
    boxes = browser.evaluate(
        f"""{json.dumps(ids)}.map(id => {{
            const r = document.querySelector(`.react-flow__node[data-id="${{id}}"]`).getBoundingClientRect();
            return [r.left, r.top, r.right, r.bottom]; }})"""
    )
    margin = 24
    left, top = min(b[0] for b in boxes) - margin, min(b[1] for b in boxes) - margin
    right, bottom = max(b[2] for b in boxes) + margin, max(b[3] for b in boxes) + margin
    return {"x": max(left, 0), "y": max(top, 0), "width": right - left, "height": bottom - top, "scale": 1.25}
