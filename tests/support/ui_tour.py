"""What a user sees in the Airflow UI after ``make demo``, looked at in headless Chromium.

:func:`tour` opens each page, waits for what the page must show (its visible text, not just
"loaded"), checks it and takes a screenshot. It runs against ``make airflow``'s stack
(:func:`devstack.demo.serve`) on the demo's state; the REST API says which runs to look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from devstack.demo import ALL_DAGS

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.chromium import Chromium

#: The screenshots the README shows (docs/images/).
SHOTS = ("ui-dags", "ui-graph", "ui-report-log", "ui-params", "ui-assets", "ui-connection-form")


@dataclass
class TourResult:
    """What each page showed, for the test's assertions."""

    texts: dict[str, str] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)
    shots: dict[str, Path] = field(default_factory=dict)
    api: dict[str, Any] = field(default_factory=dict)


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

    # the connection form of both Dynamics connection types, fields labelled
    for index, conn_type in enumerate(("Dynamics 365 Dataverse", "Dynamics 365 Finance and Operations")):
        browser.open(f"{base}/connections")
        browser.wait_for(["dynamics_dataverse_default", "dynamics_fno_default"], timeout=60)
        browser.click('button[aria-label="Edit Connection"]', index=index)
        result.texts[f"connection-{index}"] = browser.wait_for([conn_type, "Extra Fields"], timeout=60)
        result.labels[conn_type] = [label.replace("\n", " ").strip() for label in browser.labels() if label]
        if index == 1:
            result.shots["ui-connection-form"] = browser.screenshot(shots / "ui-connection-form.png")
    return result
