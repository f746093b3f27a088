"""The report files: JSON schema, HTML escaping, no external references, where they are written."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest

from prospect_to_cash.reconcile.classify import STATUSES, count
from prospect_to_cash.reconcile.reconciler import safe_url
from prospect_to_cash.reconcile.report import chart_svg, render_html, rows_of, validate, write_report

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import ObjectStoragePath

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&'


def row(status: str, **values: Any) -> dict[str, Any]:
    base = {
        "status": status,
        "key": None,
        "source_key": None,
        "target_id": None,
        "differences": [],
        "reason": None,
        "source_row": None,
    }
    return {**base, **values}


def document(rows: list[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    rows = rows if rows is not None else [row("in_sync", key="A1"), row("missing", key="A2")]
    counts = count(rows)
    task = {
        "task": "customers",
        "description": None,
        "source_system": "dataverse",
        "source_entity_set": "accounts",
        "target_system": "fno",
        "target_entity_set": "CustomersV3",
        "counts": {"read": len(rows), "skipped": 0, **counts},
        "notes": [],
        "rows": rows,
    }
    doc = {
        "schema": "p2c-reconciliation/1",
        "generated_at": "2026-11-04T06:00:00Z",
        "run_id": "reconcile__test",
        "statuses": list(STATUSES),
        "environment": {
            "dataverse": {"conn_id": "dynamics_dataverse_default", "url": "https://org.crm.dynamics.com"},
            "fno": {"conn_id": "dynamics_fno_default", "url": "https://fno.operations.dynamics.com"},
            "staging_root": "file:///tmp/staging",
            "company_pairs": [{"legal_entity": "usmf", "business_unit": "Contoso US"}],
        },
        "selection": {"templates": ["accounts"], "companies": ["usmf"]},
        "totals": counts,
        "templates": [
            {
                "template": "accounts",
                "title": "Accounts (Sales to Fin and Ops)",
                "source_system": "dataverse",
                "target_system": "fno",
                "totals": counts,
                "sections": [{"company": "usmf", "totals": counts, "errors": [], "tasks": [task]}],
            }
        ],
        "errors": [],
    }
    doc.update(overrides)
    return doc


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def parse(page: str) -> _Elements:
    parser = _Elements()
    parser.feed(page)
    return parser


def test_valid_document_passes_and_broken_ones_fail() -> None:
    validate(document())
    with pytest.raises(jsonschema.ValidationError):
        validate(document([row("different", key="A1")]))  # a difference needs its fields
    with pytest.raises(jsonschema.ValidationError):
        validate(document([row("rejected", key="A1")]))  # a reject needs its reason
    with pytest.raises(jsonschema.ValidationError):
        validate(document([row("lost", key="A1")]))
    broken = document()
    del broken["environment"]["fno"]
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_record_data_cannot_inject_markup() -> None:
    rows = [
        row(
            "different",
            key=EVIL,
            source_key=EVIL,
            target_id=EVIL,
            differences=[{"field": EVIL, "expected": EVIL, "actual": EVIL}],
        ),
        row("rejected", key=EVIL, reason=EVIL, source_row={EVIL: EVIL}),
        row("orphaned", key=EVIL),
    ]
    doc = document(rows, errors=[{"template": "accounts", "company": EVIL, "task": EVIL, "message": EVIL}])
    doc["templates"][0]["title"] = EVIL
    doc["templates"][0]["sections"][0]["company"] = EVIL
    doc["templates"][0]["sections"][0]["errors"] = [EVIL]
    doc["templates"][0]["sections"][0]["tasks"][0]["notes"] = [EVIL]
    doc["environment"]["dataverse"]["url"] = EVIL
    doc["run_id"] = EVIL
    validate(doc)
    page = render_html(doc)
    assert "<script>alert" not in page
    assert "<img" not in page
    elements = parse(page)
    assert [tag for tag, _ in elements.tags].count("script") == 1  # ours only
    assert not [attrs for _, attrs in elements.tags if any(name.startswith("on") for name in attrs)]
    assert "alert" not in elements.scripts[0]
    # the values are still there, as text
    assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") == 26


def test_page_is_self_contained() -> None:
    page = render_html(document())
    elements = parse(page)
    for tag, attrs in elements.tags:
        for name in ("src", "href", "action", "data"):
            value = attrs.get(name)
            if value is not None and tag != "svg":
                assert value.startswith("#"), (tag, name, value)
    assert not re.search(r"url\(|@import|//[a-z0-9.-]+\.(com|net|org)/", page.split("</header>", 1)[1])
    csp = next(
        a for t, a in elements.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    )
    assert "default-src 'none'" in (csp["content"] or "")


def test_chart_has_a_bar_segment_per_nonzero_status() -> None:
    rows = [
        row("in_sync", key="A"),
        row("missing", key="B"),
        row("missing", key="C"),
        row("rejected", reason="r"),
    ]
    svg = chart_svg(document(rows)["templates"])
    segments = re.findall(r'<rect class="seg" data-status="(\w+)" x="[\d.]+" y="\d+" width="([\d.]+)"', svg)
    assert [s for s, _ in segments] == ["in_sync", "missing", "rejected"]
    widths = [float(w) for _, w in segments]
    assert widths[1] == pytest.approx(2 * widths[0])
    assert sum(widths) == pytest.approx(560)


def test_row_limit_keeps_problems_first_and_says_so() -> None:
    rows = [row("in_sync", key=f"S{i}") for i in range(5)] + [row("rejected", key="R", reason="bad")]
    page = render_html(document(rows), row_limit=3)
    body = page.split('<table class="rows">', 1)[1]
    assert body.index('data-status="rejected"') < body.index('data-status="in_sync"')
    assert body.count("<tr data-status=") == 3
    assert "3 of 6 rows shown" in page


def test_written_through_object_storage_and_locally(tmp_path: Path, staging_root: ObjectStoragePath) -> None:
    paths = write_report(document(), staging_root=staging_root, output_dir=tmp_path / "out")
    assert paths["html"].endswith("/reconciliation/reconcile__test/report.html")
    stored = json.loads((staging_root / "reconciliation" / "reconcile__test" / "report.json").read_text())
    assert stored == document()
    assert (tmp_path / "out" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == stored
    latest = json.loads((staging_root / "reconciliation" / "latest.json").read_text())
    assert latest["json"] == paths["json"]
    assert latest["totals"] == stored["totals"]


def test_an_invalid_document_is_not_written(staging_dir: Path) -> None:
    with pytest.raises(jsonschema.ValidationError):
        write_report(document([row("rejected")]), staging_root=staging_dir)
    assert not staging_dir.exists()


def test_rows_of_walks_every_row() -> None:
    assert [(t, c, k, r["key"]) for t, c, k, r in rows_of(document())] == [
        ("accounts", "usmf", "customers", "A1"),
        ("accounts", "usmf", "customers", "A2"),
    ]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:s3cret@org.crm.dynamics.com/path?sig=abc#frag", "https://org.crm.dynamics.com/path"),
        (
            "abfs://container@account.dfs.core.windows.net/p2c",
            "abfs://container@account.dfs.core.windows.net/p2c",
        ),
        ("https://localhost:8441", "https://localhost:8441"),
        (None, None),
    ],
)
def test_urls_lose_passwords_and_query_strings(url: str | None, shown: str | None) -> None:
    assert safe_url(url) == shown
