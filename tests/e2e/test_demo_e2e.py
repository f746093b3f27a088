"""``make demo`` end to end: the same entry function, a real local Airflow, an isolated state.

One flow (about four minutes per demo run on two cores):

1. the emulators are started once on a fresh state directory with ``--seed demo`` and the
   raw seed rows are read over HTTPS with the test's own reader (httpx + msal), before
   anything is synced;
2. :func:`devstack.demo.run_demo` runs on that state, exactly what ``make demo`` calls;
3. the emulators are started again on the state and both services are read back;
4. :func:`run_demo` runs a second time on the same state.

Steps 1-3 are the session's ``local_executor_run`` (tests/e2e/conftest.py), which the Celery
stack's test compares its end state with; step 4 is this module's.

The final state is compared with expectations derived from the seed rows and the facts of
``emulators/seed/STORY.md`` without the package's transform code: the per-template checks
of ``tests/support/story_checks.py`` (written from the templates' documented rules) run
against the state the demo left, plus STORY.md's row counts. The second run must write
nothing, by its own counts and by the emulators' write counters.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pyarrow.parquet as pq
import pytest

from devstack.airflow_stack import free_port
from devstack.demo import ALL_DAGS, SYNC_DAGS, DemoResult, format_summary, run_demo, serve
from prospect_to_cash.get_provider_info import get_provider_info
from tests.support import story_checks, ui_tour
from tests.support.chromium import Chromium, chromium_path
from tests.support.emulators import acquire_token, start_emulators
from tests.support.run_books import declared_upstreams

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.demo_flow import LocalRun

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
COMPANIES = {"usmf", "demf"}
PROGRESS = re.compile(r"^\s+\[\s*\d+:\d\d\] (p2c_\w+)\s+(.*)$")
#: Rows each template adds to its target in the demo world (emulators/seed/STORY.md).
STORY_NEW_ROWS = {
    ("fno", "CustomersV3"): 52 + 12,  # new accounts + new contact customers (persons)
    ("fno", "CDSContactPersons"): 30,
    ("dataverse", "products"): 28,
    ("fno", "CDSSalesQuotationHeaders"): 12,
    ("dataverse", "salesorders"): 18 - 2,  # 18 synced F&O orders, 2 already in Sales
    ("fno", "CDSSalesOrderHeaders"): 14,
    ("dataverse", "invoices"): 6,
}


@dataclass
class DemoFlow:
    state: Path
    secret: str
    first: DemoResult
    first_output: list[str]
    second: DemoResult
    second_output: list[str]
    synced: story_checks.StoryState  # the seed rows before, both services after


def _issued_token(state: Path) -> str:
    """A bearer token the emulators issue on the demo's state, as the scan's positive control."""
    running = start_emulators(state / "emulators")
    try:
        return acquire_token(running.endpoints, "fno")
    finally:
        running.stop()


#: A JWT (what Entra ID and the emulators issue): header and claims are base64url JSON.
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.(eyJ[A-Za-z0-9_-]{8,})\.[A-Za-z0-9_-]{16,}")


def _tenant_of(claims_part: bytes) -> str | None:
    """The ``tid`` claim of a JWT's middle part (no signature check: this only recognises it)."""
    try:
        claims = json.loads(base64.urlsafe_b64decode(claims_part + b"=" * (-len(claims_part) % 4)))
    except ValueError:
        return None
    return claims.get("tid") if isinstance(claims, dict) else None


def _bearer_tokens(data: bytes, tenant: str) -> int:
    """How many tokens of the emulators' tenant ``data`` holds (Airflow's own JWTs do not count)."""
    return sum(1 for match in JWT.finditer(data) if _tenant_of(match.group(1)) == tenant)


def _parquet_text(path: Path) -> bytes:
    """Every value of a Parquet file as text, so compression cannot hide what it holds."""
    table = pq.read_table(path)
    return "\n".join(str(value) for column in table.columns for value in column.to_pylist()).encode()


@pytest.fixture(scope="module")
def demo(local_executor_run: LocalRun) -> DemoFlow:
    """The session's first demo run, then a second one on the same state."""
    first = local_executor_run
    second_output: list[str] = []
    second = run_demo(first.state, out=second_output.append)
    second_output.append(format_summary(second))
    return DemoFlow(
        first.state, first.secret, first.result, first.output, second, second_output, first.synced
    )


def _progress(output: list[str]) -> list[tuple[str, str]]:
    return [match.groups() for line in output if (match := PROGRESS.match(line))]


# -- first run ------------------------------------------------------------------------------------


def test_every_dag_and_the_reconciliation_succeed_for_both_companies(demo: DemoFlow) -> None:
    result = demo.first
    assert result.ok, "\n".join(demo.first_output[-60:])
    assert [run.dag_id for run in result.runs] == list(SYNC_DAGS)
    for run in result.runs:
        assert run.state == "success", run.dag_id
        assert set(run.companies) == COMPANIES, run.dag_id
        assert run.elapsed is not None
        assert run.elapsed > 0
    assert result.total("failed") == 0
    assert result.earlier_runs == 0
    assert not result.first_start  # the stores were seeded by the snapshot's start above
    accounts = result.runs[0]
    assert accounts.total("created", "updated", "unchanged") == 72  # STORY.md: accounts.sync
    assert accounts.total("rejected") == 8  # no number 2, shared number 4, Atlantis 2
    assert result.writes["dataverse"] > 0
    assert result.writes["fno"] > 0


def test_the_run_order_holds_each_dag_until_its_prerequisites_are_done(demo: DemoFlow) -> None:
    events = _progress(demo.first_output)
    done_at = {dag_id: i for i, (dag_id, text) in enumerate(events) if text.startswith("done")}
    assert set(done_at) >= set(SYNC_DAGS)
    for dag_id, upstream in declared_upstreams().items():
        first_sync = min(
            i for i, (d, text) in enumerate(events) if d == dag_id and text.startswith("syncing")
        )
        for prerequisite in upstream:
            assert done_at[prerequisite] < first_sync, f"{dag_id} synced before {prerequisite} was done"
        if upstream:
            waits = [text for d, text in events if d == dag_id and text.startswith("waiting for")]
            assert waits, f"{dag_id} never reported waiting for {upstream}"


@pytest.mark.parametrize("check", story_checks.CHECKS, ids=lambda check: check.__name__)
def test_final_state_matches_what_the_seed_rows_call_for(
    demo: DemoFlow, check: Callable[[story_checks.StoryState], None]
) -> None:
    check(demo.synced)


def test_each_target_grew_by_the_rows_story_md_announces(demo: DemoFlow) -> None:
    before, after = demo.first.tables_before, demo.first.tables_after
    for (service, entity_set), new_rows in STORY_NEW_ROWS.items():
        assert after[service][entity_set] - before[service][entity_set] == new_rows, (service, entity_set)
    for service in ("dataverse", "fno"):
        for entity_set, count in before[service].items():
            assert after[service][entity_set] >= count, f"{service} {entity_set} lost rows"


def test_reconciliation_finds_everything_in_sync_but_the_rejects(demo: DemoFlow) -> None:
    run = demo.first.reconciliation
    assert run is not None
    assert run.result is not None
    totals = run.result["totals"]
    assert totals["missing"] == 0
    assert totals["different"] == 0
    assert totals["orphaned"] == 0
    assert totals["in_sync"] > 0
    assert totals["rejected"] == demo.first.total("rejected")
    html = Path(run.result["paths"]["local_html"])
    data = json.loads(Path(run.result["paths"]["local_json"]).read_text())
    assert html.parent == demo.state / "reports" / "reconciliation"
    assert "<html" in html.read_text()[:500].casefold()
    assert data["totals"] == totals
    assert str(html.relative_to(demo.state)) in demo.first_output[-1]


def test_dead_letter_files_hold_the_rejected_rows_with_reasons(demo: DemoFlow) -> None:
    listed = [(run.template, item) for run in demo.first.runs for item in run.dead_letters]
    assert sum(item["rows"] for _, item in listed) == demo.first.total("rejected") + demo.first.total(
        "failed"
    )
    for template, item in listed:
        path = Path(str(item["path"]).removeprefix("file://"))
        assert path.is_relative_to(demo.state / "staging" / template)
        rows = pq.read_table(path).to_pylist()
        assert len(rows) == item["rows"]
        assert all(row["reason"] for row in rows)
        assert f"{template}/{item['task']}" in demo.first_output[-1]
        assert f"{item['company']} {item['rows']}" in demo.first_output[-1]
    assert "staging/<template>/" in demo.first_output[-1]


# -- second run -----------------------------------------------------------------------------------


def test_second_run_on_the_same_state_writes_nothing_and_says_so(demo: DemoFlow) -> None:
    result = demo.second
    assert result.ok, "\n".join(demo.second_output[-60:])
    assert result.earlier_runs == 1  # the first demo's run of p2c_accounts
    assert result.total("created", "updated", "failed") == 0
    assert result.total("unchanged") == demo.first.total("created", "updated", "unchanged")
    assert result.writes == {"dataverse": 0, "fno": 0}
    assert result.wrote_nothing
    assert result.tables_after == result.tables_before == demo.first.tables_after
    summary = demo.second_output[-1]
    assert "Nothing was written" in summary
    assert "Dataverse (Sales) 0, Finance and Operations 0" in summary
    said = re.search(
        r"no Sales row the templates read changed since then, so expect nothing written from Sales; "
        r"F&O rows are read whole and written to Sales only where they differ; (\d+) pending row\(s\)",
        "\n".join(demo.second_output),
    )
    assert said is not None
    assert int(said.group(1)) == demo.first.total("pending")  # what the first run left pending
    assert result.reconciliation is not None
    assert result.reconciliation.result is not None
    assert result.reconciliation.result["totals"] == demo.first.reconciliation.result["totals"]  # type: ignore[union-attr]


# -- make airflow -----------------------------------------------------------------------------------


def test_make_airflow_serves_the_demo_state_until_stopped(demo: DemoFlow) -> None:
    port = free_port()
    seen: dict[str, Any] = {}
    output: list[str] = []

    def browsed() -> bool:
        """What a user sees first: the UI page and the demo's runs of p2c_accounts."""
        base = f"http://127.0.0.1:{port}"
        seen["ui"] = httpx.get(f"{base}/", timeout=10, follow_redirects=True)
        seen["runs"] = httpx.get(f"{base}/api/v2/dags/p2c_accounts/dagRuns", timeout=10).json()
        return True

    assert serve(demo.state, port=port, out=output.append, until=browsed) == 0
    assert seen["ui"].status_code == 200
    assert "<html" in seen["ui"].text[:500].casefold()
    assert seen["runs"]["total_entries"] == 2  # the two demo runs, same state
    assert f"http://127.0.0.1:{port}" in "\n".join(output)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)  # stopped on the way out


# -- secrets ----------------------------------------------------------------------------------------


def test_the_client_secret_is_never_printed_or_written(demo: DemoFlow) -> None:
    assert len(demo.secret) >= 32
    for line in [*demo.first_output, *demo.second_output]:
        assert demo.secret not in line
    assert demo.first.tables_after  # the fixture ran; the scan below covers what it wrote
    secret = demo.secret.encode()
    store = demo.state / "emulators" / "credentials.json"  # where the emulators keep the secret
    files = [path for path in demo.state.rglob("*") if path.is_file() and path != store]
    assert store.is_file()
    assert secret in store.read_bytes()  # the scan would find it: the bytes are the same
    # every file, whatever its kind (logs, staging parquet, SQLite databases, reports), as bytes
    # and, for Parquet (staging, dead letters), as decoded values too
    contents = {path: path.read_bytes() for path in files}
    for path in files:
        if path.suffix == ".parquet":
            contents[path] += b"\n" + _parquet_text(path)
    leaks = [str(path.relative_to(demo.state)) for path, data in contents.items() if secret in data]
    assert not leaks, f"client secret found in {leaks}"
    # nor any bearer token the emulators issued during the runs
    token = _issued_token(demo.state).encode()
    tenant = _tenant_of(token.split(b".")[1])
    assert tenant
    assert _bearer_tokens(b"Authorization: Bearer " + token, tenant) == 1  # the scan finds them
    tokens = sorted(
        str(path.relative_to(demo.state)) for path, data in contents.items() if _bearer_tokens(data, tenant)
    )
    assert not tokens, f"bearer token found in {tokens}"
    scanned = {path.suffix for path in files}
    assert {".log", ".json", ".html", ".parquet", ".db"} <= scanned, scanned
    assert any(path.name == "airflow.db" for path in files)  # XCom, asset events, task instances


# -- the UI, looked at ------------------------------------------------------------------------------


def test_the_ui_shows_the_demo_in_headless_chromium(demo: DemoFlow, tmp_path: Path) -> None:
    """``make airflow`` on the demo's state, looked at in Debian's Chromium (tests/support/ui_tour.py).
    Screenshots go to ``P2C_UI_SCREENSHOTS`` (docs/images/ to refresh the README's) or tmp."""
    if chromium_path() is None:
        if os.environ.get("P2C_REQUIRE_CHROMIUM"):
            pytest.fail("P2C_REQUIRE_CHROMIUM is set but chromium is not installed")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    port = free_port()
    shots = Path(os.environ.get("P2C_UI_SCREENSHOTS") or tmp_path / "shots")
    seen: list[ui_tour.TourResult] = []

    def look() -> bool:
        with Chromium(tmp_path / "chromium-profile") as browser:
            seen.append(ui_tour.tour(browser, f"http://127.0.0.1:{port}", shots))
        return True

    assert serve(demo.state, port=port, out=[].append, until=look) == 0
    check_tour(seen[0])


def check_tour(result: ui_tour.TourResult) -> None:
    """What each page of the tour must have shown (also run by hand against ``make airflow``)."""
    # every DAG's latest run succeeded, and the list shows each with Airflow's green badge
    assert {dag_id: run["state"] for dag_id, run in result.api["latest_runs"].items()} == dict.fromkeys(
        ALL_DAGS, "success"
    )
    assert len(result.api["badge_hues"]) == len(ALL_DAGS)
    assert all(hue in ui_tour.SUCCESS_HUES for hue in result.api["badge_hues"]), result.api["badge_hues"]
    assert result.texts["ui-dags"].count("prospect-to-cash") == len(ALL_DAGS)
    # the graph: each mapping step of the template as extract -> transform -> load
    graph = result.texts["ui-graph"].splitlines()
    for step in ("order_headers", "order_lines", "order_freight_tax"):
        assert step in graph
    assert [line for line in graph if line.startswith("extract")] == ["extract [0]"] * 3
    assert [line for line in graph if line.startswith("load")] == ["load [0]"] * 3
    # the report log's count table and the note on the rejected rows
    assert "accounts [usmf]: 4 rejected and 0 failed of 40 read" in result.texts["ui-report-log"]
    # the Params form: every Param labelled, none starred as required
    params = [label for label in result.labels["ui-params"] if label]
    for label in ("Full refresh", "Dry run", "Companies", "Window start (UTC)", "Max rejected rows"):
        assert label in params
    assert [label for label in params if label.endswith("*")] == []
    # the asset graph: customers (accounts, contacts) and products into quotations, orders and
    # invoices, each task named with its DAG, the reconciliation reading all of them
    lineage = result.asset_graph
    assert lineage.producers(ui_tour.CUSTOMERS) == {
        "p2c_accounts: sync.customers.load",
        "p2c_contacts: sync.contact_customers.load",
    }
    assert lineage.consumers(ui_tour.CUSTOMERS) == {
        "p2c_contacts: sync.contact_persons.load",
        "p2c_sales_quotations: sync.quote_headers.load",
        "p2c_sales_orders_sales_to_fno: sync.order_headers.load",
        "p2c_reconciliation: reconcile",
    }
    assert lineage.producers(ui_tour.PRODUCTS) == {"p2c_products: sync.products.load"}
    assert lineage.consumers(ui_tour.PRODUCTS) == {
        "p2c_products: sync.price_list_items.load",
        "p2c_sales_quotations: sync.quote_lines.load",
        "p2c_sales_orders_sales_to_fno: sync.order_lines.load",
        "p2c_sales_orders_fno_to_sales: sync.order_lines.load",
        "p2c_sales_invoices: sync.invoice_lines.load",
        "p2c_reconciliation: reconcile",
    }
    orders, invoices = (
        f"dataverse://dynamics_dataverse_default/{name}" for name in ("salesorders", "invoices")
    )
    assert lineage.producers(invoices) == {"p2c_sales_invoices: sync.invoice_headers.load"}
    assert "p2c_sales_invoices: sync.invoice_headers.load" in lineage.consumers(orders)
    # the add-connection form of both types: labelled fields, the tenant id required, the
    # placeholders the provider declares (an extra field offers its one as the pick list:
    # Airflow 3.3's form shows "Start typing to see options" in the box of such a field)
    declared = {item["connection-type"]: item for item in get_provider_info()["connection-types"]}
    for conn_type, form in result.forms.items():
        behaviour, extra = declared[conn_type]["ui-field-behaviour"], declared[conn_type]["conn-fields"]
        relabel, placeholders = behaviour["relabeling"], behaviour["placeholders"]
        fields = {field["name"]: field for field in form}
        standard = ["connection_id", "description", "host", "login", "password"]
        assert list(fields) == [*standard, *(f"element_{name}" for name in extra)], conn_type
        assert not set(behaviour["hidden-fields"]) & set(fields)  # schema, port, extra
        for name in ("host", "login", "password"):
            assert (fields[name]["label"], fields[name]["placeholder"]) == (relabel[name], placeholders[name])
        for name, spec in extra.items():
            field = fields[f"element_{name}"]
            assert field["label"] == spec["label"] + (" *" if name == "tenant_id" else ""), field
            assert field["options"] == [placeholders[name]], field
            assert field["placeholder"] == "Start typing to see options"
        assert {name for name, field in fields.items() if field["required"]} == {
            "connection_id",
            "element_tenant_id",
        }
        assert fields["element_tenant_id"]["label"] == "Tenant ID *"
    assert "This field is required" in result.texts["ui-add-connection-fno"]  # tenant id, empty
    names = {conn_type: [field["name"] for field in form] for conn_type, form in result.forms.items()}
    assert names["dynamics_fno"][-1] == "element_default_company"  # F&O's own field
    assert "element_default_company" not in names["dynamics_dataverse"]
    assert sorted(path.name for path in result.shots.values()) == sorted(
        f"{name}.png" for name in ui_tour.SHOTS
    )
    assert all(path.stat().st_size > 10_000 for path in result.shots.values())
