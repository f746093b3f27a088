"""Reconciliation over HTTPS against the emulators with the demo world.

The accounts template is synced by the engine, then both sides drift (a customer deleted
and one renamed in F&O, a phone changed in Sales, an externally maintained customer and a
product nobody owns added). The report's counts are then checked against expectations
computed here from the raw rows read over HTTPS, not from the engine. The HTML report is
opened in headless Chromium, and the command line runs with ``AIRFLOW_CONN_*`` variables.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

from devstack.airflow_stack import connection_env
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.hooks.operations import WriteKind, WriteOperation
from prospect_to_cash.reconcile import run_reconciliation
from prospect_to_cash.reconcile.report import rows_of, validate
from prospect_to_cash.sync.runner import SyncHooks, run_template
from tests.conftest import TEST_CONFIG
from tests.support.emulators import start_emulators

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
COMPANIES = ("usmf", "demf")
CONN = {"dataverse": "p2c_reconcile_it_dataverse", "fno": "p2c_reconcile_it_fno"}
ORPHAN, FNO_ONLY, ORPHAN_PRODUCT = "ORPHAN-0001", "FNOONLY-0001", "ORPHAN-P0001"


def _connections(running: RunningEmulators) -> dict[str, str]:
    """Airflow connections as production defines them (AIRFLOW_CONN_* JSON)."""
    return connection_env(running.endpoints, conn_ids=CONN)


@dataclass
class World:
    running: RunningEmulators
    variables: dict[str, str]
    hooks: SyncHooks
    document: dict[str, Any]
    paths: dict[str, str]
    drift: dict[str, str]
    tmp: Path


def _rows(hook: Any, entity_set: str, select: list[str], **kwargs: Any) -> list[dict[str, Any]]:
    return [
        row
        for page in hook.iter_pages(entity_set, select=select, **kwargs)
        for row in page.to_dict("records")
    ]


def _write(hook: Any, *operations: WriteOperation) -> None:
    outcomes = list(hook.write(list(operations)))
    assert all(o.ok for o in outcomes), [(o.status, o.message) for o in outcomes]


def _drift(hooks: SyncHooks) -> dict[str, str]:
    """Change both sides behind the engine's back; returns which account got what."""
    customers = sorted(
        r["CustomerAccount"]
        for r in _rows(
            hooks.fno,
            "CustomersV3",
            ["CustomerAccount"],
            filter="IsExternallyMaintained eq Microsoft.Dynamics.DataEntities.NoYes'Yes' "
            "and PartyType eq 'Organization'",
            companies=["usmf"],
        )
    )
    deleted, renamed, phoned = customers[0], customers[1], customers[2]
    _write(
        hooks.fno,
        WriteOperation(
            WriteKind.DELETE, "CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": deleted}, {}, "d"
        ),
        WriteOperation(
            WriteKind.UPDATE,
            "CustomersV3",
            {"dataAreaId": "usmf", "CustomerAccount": renamed},
            {"OrganizationName": "Renamed in F&O <b>&amp;</b>"},
            "r",
        ),
    )
    for number, external in ((ORPHAN, "Yes"), (FNO_ONLY, "No")):
        _write(
            hooks.fno,
            WriteOperation(
                WriteKind.CREATE,
                "CustomersV3",
                {"dataAreaId": "usmf", "CustomerAccount": number},
                {
                    "dataAreaId": "usmf",
                    "CustomerAccount": number,
                    "OrganizationName": f"{number} Corp",
                    "PartyType": "Organization",
                    "CustomerGroupId": "10",
                    "IsExternallyMaintained": external,
                },
                number,
            ),
        )
    (customer,) = _rows(
        hooks.fno,
        "CustomersV3",
        ["PrimaryContactPhone"],
        filter=f"CustomerAccount eq '{phoned}'",
        companies=["usmf"],
    )
    fno_phone = str(customer["PrimaryContactPhone"])
    assert fno_phone.startswith("+1 425 555 ")  # the seed's usmf phones (STORY.md)
    assert fno_phone != "+1 425 555 9999"
    (account,) = _rows(hooks.dataverse, "accounts", ["accountid"], filter=f"accountnumber eq '{phoned}'")
    _write(
        hooks.dataverse,
        WriteOperation(
            WriteKind.UPDATE,
            "accounts",
            {"accountid": account["accountid"]},
            {"telephone1": "+1 425 555 9999"},
            "p",
        ),
    )
    (usd,) = _rows(
        hooks.dataverse, "transactioncurrencies", ["transactioncurrencyid"], filter="isocurrencycode eq 'USD'"
    )
    _write(
        hooks.dataverse,
        WriteOperation(
            WriteKind.CREATE,
            "products",
            {"productid": str(uuid.uuid4())},
            {
                "productnumber": ORPHAN_PRODUCT,
                "name": "Nobody's product",
                "msdynce_ismaintainedexternally": True,
                "transactioncurrencyid@odata.bind": f"/transactioncurrencies({usd['transactioncurrencyid']})",
            },
            "op",
        ),
    )
    return {"deleted": deleted, "renamed": renamed, "phoned": phoned, "fno_phone": fno_phone}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("reconcile")
    logging.getLogger("prospect_to_cash").setLevel(logging.WARNING)
    running = start_emulators(tmp / "state", "--seed", "demo", config=TEST_CONFIG)
    variables = _connections(running)
    os.environ.update(variables)
    try:
        hooks = SyncHooks(
            dataverse=DataverseHook(dataverse_conn_id=CONN["dataverse"]),
            fno=FinanceOperationsHook(fno_conn_id=CONN["fno"]),
            dataverse_conn_id=CONN["dataverse"],
            fno_conn_id=CONN["fno"],
        )
        root = ObjectStoragePath(f"file://{tmp / 'staging'}")
        for company in COMPANIES:
            run_template("accounts", legal_entity=company, run_id="sync", hooks=hooks, staging_root=root)
        drift = _drift(hooks)
        result = run_reconciliation(
            ["accounts", "products"], output_dir=tmp / "out", staging_root=root, hooks=hooks, run_id="it"
        )
        document = json.loads(Path(result["paths"]["local_json"]).read_text())
        yield World(running, variables, hooks, document, result["paths"], drift, tmp)
    finally:
        for name in variables:
            os.environ.pop(name, None)
        running.stop()


def _expected_accounts(world: World) -> dict[str, dict[str, Any]]:
    """Per company, from raw HTTPS rows and the environment's code tables only."""
    hooks = world.hooks
    environment = yaml.safe_load((ROOT / "include" / "mappings" / "environment.yaml").read_text())
    countries = {str(k).casefold() for k in environment["value_maps"]["country_to_iso"]["entries"]}
    terms = {str(k) for k in environment["value_maps"]["payment_terms"]["entries"]}
    units = {
        r["name"]: str(r["businessunitid"])
        for r in _rows(hooks.dataverse, "businessunits", ["businessunitid", "name"])
    }
    accounts = _rows(
        hooks.dataverse,
        "accounts",
        [
            "accountnumber",
            "name",
            "telephone1",
            "address1_country",
            "address2_country",
            "paymenttermscode",
            "_owningbusinessunit_value",
        ],
        filter="statecode eq 0",
    )
    expected = {}
    for pair in environment["company_pairs"]:
        company = pair["legal_entity"]
        mine = [a for a in accounts if str(a["_owningbusinessunit_value"]) == units[pair["business_unit"]]]
        numbers = Counter(a["accountnumber"] for a in mine if a["accountnumber"])
        customers = {
            c["CustomerAccount"]: c
            for c in _rows(
                hooks.fno,
                "CustomersV3",
                [
                    "CustomerAccount",
                    "OrganizationName",
                    "PrimaryContactPhone",
                    "IsExternallyMaintained",
                    "PartyType",
                ],
                companies=[company],
            )
        }
        counts = Counter()
        different: dict[str, set[str]] = {}

        def blank(value: Any) -> bool:
            return value is None or value != value or str(value).strip() == ""

        for a in mine:
            number = a["accountnumber"]
            bad_code = any(
                not blank(a[c]) and str(a[c]).casefold() not in countries
                for c in ("address1_country", "address2_country")
            ) or (not blank(a["paymenttermscode"]) and str(int(float(a["paymenttermscode"]))) not in terms)
            if blank(number) or numbers[number] > 1 or bad_code:
                counts["rejected"] += 1
            elif number not in customers:
                counts["missing"] += 1
            else:
                fields = {
                    target
                    for target, source in (
                        ("OrganizationName", "name"),
                        ("PrimaryContactPhone", "telephone1"),
                    )
                    if (customers[number][target] or None) != (a[source] or None)
                }
                counts["different" if fields else "in_sync"] += 1
                if fields:
                    different[number] = fields
        claimed = {a["accountnumber"] for a in mine if not blank(a["accountnumber"])}
        counts["orphaned"] = sum(
            1
            for number, c in customers.items()
            if c["IsExternallyMaintained"] == "Yes"
            and c["PartyType"] == "Organization"
            and number not in claimed
        )
        expected[company] = {"counts": counts, "different": different}
    return expected


def _section(document: dict[str, Any], template: str, company: str) -> dict[str, Any]:
    found = next(t for t in document["templates"] if t["template"] == template)
    return next(s for s in found["sections"] if s["company"] == company)


def test_counts_match_what_the_raw_rows_say(world: World) -> None:
    validate(world.document)
    assert world.document["errors"] == []
    expected = _expected_accounts(world)
    for company in COMPANIES:
        section = _section(world.document, "accounts", company)
        want = expected[company]["counts"]
        assert section["totals"] == {s: want.get(s, 0) for s in section["totals"]}, company
        (task,) = section["tasks"]
        found = {
            r["key"]: {d["field"] for d in r["differences"]}
            for r in task["rows"]
            if r["status"] == "different"
        }
        assert found == expected[company]["different"], company
    # the drift itself shows where it was made
    usmf = {r["key"]: r for r in _section(world.document, "accounts", "usmf")["tasks"][0]["rows"]}
    assert usmf[world.drift["deleted"]]["status"] == "missing"
    assert usmf[world.drift["renamed"]]["differences"][0]["actual"] == "Renamed in F&O <b>&amp;</b>"
    assert usmf[world.drift["phoned"]]["differences"] == [
        {
            "field": "PrimaryContactPhone",
            "expected": "+1 425 555 9999",
            "actual": world.drift["fno_phone"],  # F&O's phone, read before the reconciliation
        }
    ]
    assert usmf[ORPHAN]["status"] == "orphaned"
    assert FNO_ONLY not in usmf
    # the demo story's rejects: no number, shared numbers, Atlantis (STORY.md)
    assert sum(_section(world.document, "accounts", c)["totals"]["rejected"] for c in COMPANIES) == 8


def test_shared_sales_table_orphans_are_found_once_for_all_companies(world: World) -> None:
    orphans = [(c, k, r["key"]) for t, c, k, r in rows_of(world.document) if r["status"] == "orphaned"]
    assert sorted(orphans) == [("*", "products", ORPHAN_PRODUCT), ("usmf", "customers", ORPHAN)]
    shared = _section(world.document, "products", "*")
    price_items = next(t for t in shared["tasks"] if t["task"] == "price_list_items")
    assert any("not checked" in note for note in price_items["notes"])


def test_report_files_hold_no_secret(world: World) -> None:
    secret = world.running.endpoints.client_secret
    for key in ("html", "json", "local_html", "local_json", "latest"):
        text = Path(world.paths[key].removeprefix("file://")).read_text()
        assert secret not in text, key
    assert world.document["environment"]["dataverse"]["url"] == world.running.endpoints.resource("dataverse")


def _chromium() -> str:
    """The browser; with ``P2C_REQUIRE_CHROMIUM`` set (CI does) a missing one fails, never skips."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("P2C_REQUIRE_CHROMIUM"):
            pytest.fail(f"P2C_REQUIRE_CHROMIUM is set but {message}")
        pytest.skip(message)
    return browser


def _browser(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    browser = _chromium()
    profile = world.tmp / f"chromium-profile-{len(args)}"
    shutil.rmtree(profile, ignore_errors=True)
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
        Path(world.paths["local_html"]).as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


def _png_size_and_colors(data: bytes) -> tuple[int, int, int]:
    """Width, height and distinct row fingerprints of an 8-bit RGB(A) PNG (no imaging library)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    chunks, position = [], 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            chunks.append(data[position + 8 : position + 8 + length])
        position += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    assert depth == 8
    assert color in (2, 6)
    channels = 3 if color == 2 else 4
    stride = 1 + width * channels
    samples = {raw[row * stride + 1 : row * stride + 1 + 64] for row in range(0, height, 7)}
    pixels = {raw[i : i + 3] for i in range(1, min(len(raw), stride * 200), channels * 5)}
    return width, height, len(samples) + len(pixels)


def test_report_renders_in_headless_chromium(world: World) -> None:
    dom = _browser(world, "--dump-dom", "--virtual-time-budget=3000").stdout
    templates = world.document["templates"]
    segments = sum(1 for t in templates for count in t["totals"].values() if count)
    tables = sum(1 for t in templates for s in t["sections"] for task in s["tasks"] if task["rows"])
    assert segments >= 4  # the accounts bar alone has four statuses
    assert '<svg id="chart"' in dom
    assert dom.count('class="seg"') == segments
    assert 'id="summary"' in dom
    assert dom.count('<table class="rows">') == tables
    # the inline script ran: in-sync rows start hidden, problems are shown
    assert '<tr data-status="in_sync" hidden="">' in dom
    assert '<tr data-status="orphaned">' in dom
    assert "Renamed in F&amp;O &lt;b&gt;&amp;amp;&lt;/b&gt;" in dom  # record data stays text

    shot = world.tmp / "report.png"
    _browser(world, "--hide-scrollbars", "--window-size=1400,1600", f"--screenshot={shot}")
    width, height, variety = _png_size_and_colors(shot.read_bytes())
    assert (width, height) == (1400, 1600)
    assert variety > 50  # a blank or single-color page would have a handful


def test_command_line_with_airflow_connection_variables(world: World) -> None:
    output = world.tmp / "cli"
    environment = {**os.environ, **world.variables, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "prospect_to_cash.reconcile",
            "--output",
            str(output),
            "--templates",
            "accounts",
            "--companies",
            "usmf",
            "--staging-root",
            str(world.tmp / "cli-staging"),
            "--dataverse-conn-id",
            CONN["dataverse"],
            "--fno-conn-id",
            CONN["fno"],
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=environment,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    document = json.loads((output / "report.json").read_text())
    assert document["selection"] == {"templates": ["accounts"], "companies": ["usmf"]}
    assert document["totals"] == _section(world.document, "accounts", "usmf")["totals"]
    secret = world.running.endpoints.client_secret
    assert secret not in completed.stdout + completed.stderr
    assert secret not in (output / "report.html").read_text()
