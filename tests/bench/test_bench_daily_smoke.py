"""`python -m bench daily` end to end at a tiny scale: the harness, not the figures.

Accounts (Sales-sourced, read by change window) at 200 rows per large table: what must
hold on any machine is that the changes went through the public API, that the daily run
read far fewer rows than the full refresh of the same state and at least the changed rows,
and that the report shows the table from the stored result.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(200)]

ROOT = Path(__file__).resolve().parents[2]


def test_bench_daily_measures_the_daily_run_against_a_full_refresh(tmp_path: Path) -> None:
    command = [
        *(sys.executable, "-m", "bench", "daily", "--scale", "200", "--scenarios", "accounts"),
        *("--pycache", "none", "--results-name", "smoke-daily"),
        *("--results-dir", str(tmp_path / "results"), "--output", str(tmp_path / "benchmarks.md")),
        *("--work-dir", str(tmp_path / "work")),
    ]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert completed.returncode == 0, completed.stderr[-4000:]
    result = json.loads((tmp_path / "results" / "smoke-daily.json").read_text())
    accounts = result["scenarios"]["accounts"]
    mutated = accounts["mutated"]
    assert (mutated["changed"], mutated["refused"]) == (len(range(0, mutated["rows"], 100)), 0)
    daily, full = accounts["daily"], accounts["full_refresh"]
    assert daily["counts"]["updated"] <= mutated["changed"]
    assert mutated["changed"] <= daily["rows_read"] < full["rows_read"] / 5
    assert daily["requests"] > 0
    assert full["counts"]["read"] > daily["counts"]["read"]
    document = (tmp_path / "benchmarks.md").read_text()
    assert "### Accounts (Dataverse accounts -> F&O CustomersV3): 200 rows per large table" in document
    assert f"| Lower bound (the changed rows) | {mutated['changed']:,} | 1.0 | | |" in document
