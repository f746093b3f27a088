"""Real crashes: the sync CLI killed with SIGKILL at seeded points, then retried as Airflow would.

Each case starts ``python -m prospect_to_cash.sync run`` in its own process against the
emulators over HTTPS, waits for its kill point (seen from outside: a staging file appearing,
or the emulator's write counter moving), kills it with SIGKILL (no Python cleanup, no
``finally``), then runs the same command with the same run id to the end. The final state
must hold every row the template keeps exactly once.

The default runs one kill point per direction (Sales -> F&O during load writes, F&O -> Sales
after the first journal); ``P2C_KILL_CASES=all`` runs every case below (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from devstack.airflow_stack import connection_env
from tests.conftest import TEST_CONFIG
from tests.support.emulators import start_emulators
from tests.support.world import ODataReader

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_kill_dataverse", "fno": "p2c_kill_fno"}
SEED = 1515


class KillCase(NamedTuple):
    template: str
    company: str
    point: str  # extract | transform | load | journal


CASES = [
    KillCase("accounts", "usmf", "load"),
    KillCase("products", "usmf", "journal"),
    KillCase("accounts", "demf", "extract"),
    KillCase("products", "demf", "transform"),
]
DEFAULT_CASES = CASES[:2]
#: Rows each template keeps per company in the demo world (emulators/seed/STORY.md).
EXPECTED_UNCHANGED = {"accounts": 36, "products": 58}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulators]:
    instance = start_emulators(
        tmp_path_factory.mktemp("sigkill") / "state", "--seed", "demo", config=TEST_CONFIG
    )
    try:
        yield instance
    finally:
        instance.stop()


def _cases() -> list[KillCase]:
    return CASES if os.environ.get("P2C_KILL_CASES") == "all" else DEFAULT_CASES


def _command(case: KillCase, staging: Path, run_id: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "prospect_to_cash.sync",
        "run",
        case.template,
        "--company",
        case.company,
        "--run-id",
        run_id,
        "--staging-root",
        f"file://{staging}",
        "--dataverse-conn-id",
        CONN["dataverse"],
        "--fno-conn-id",
        CONN["fno"],
    ]


def _files(staging: Path, case: KillCase, area: str, prefix: str = "") -> list[Path]:
    task = "customers" if case.template == "accounts" else "products"
    folder = staging / case.template / "kill" / case.company / task / area
    return [p for p in folder.glob(f"{prefix}*")] if folder.exists() else []


def _reached(case: KillCase, staging: Path, written: Callable[[], int], start_writes: int) -> bool:
    """Whether the process got to the case's kill point, judged from outside."""
    if case.point == "extract":  # the first staged read has landed; the rest are still being read
        return bool(_files(staging, case, "source", "rows") or _files(staging, case, "target"))
    if case.point == "transform":  # both sides staged, the plan not yet whole
        return bool(_files(staging, case, "target")) and bool(_files(staging, case, "source"))
    if case.point == "load":  # the target has counted writes of this run
        return written() > start_writes
    return bool(_files(staging, case, "plan", "journal-"))


def _rows(reader: ODataReader, case: KillCase) -> Counter[str]:
    if case.template == "accounts":
        rows = reader.rows(
            "fno", "CustomersV3", ["CustomerAccount"], filter=f"dataAreaId eq '{case.company}'"
        )
        return Counter(row["CustomerAccount"] for row in rows)
    return Counter(row["productnumber"] for row in reader.rows("dataverse", "products", ["productnumber"]))


@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"{c.template}-{c.company}-{c.point}")
def test_killed_at_a_seeded_point_then_retried_lands_each_row_once(
    running: RunningEmulators, tmp_path: Path, case: KillCase
) -> None:
    env = {**os.environ, **connection_env(running.endpoints, conn_ids=CONN)}
    staging = tmp_path / "staging"
    target = "fno" if case.template == "accounts" else "dataverse"
    rng = random.Random(f"{SEED}-{case}")
    reader = ODataReader(running.endpoints)
    before = _rows(reader, case)
    with running.admin(target) as admin:

        def written() -> int:
            return int(admin.counters()["operations_written_total"])

        start_writes = written()
        # A seeded pause past the kill point, so the kill lands at a different place in the
        # step each seed (mid-request, between batches, inside a write of a staged file).
        extra = rng.uniform(0.0, 0.4)
        process = subprocess.Popen(
            _command(case, staging, "kill"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 300
        try:
            while not _reached(case, staging, written, start_writes):
                assert process.poll() is None, "the run ended before its kill point"
                assert time.monotonic() < deadline, "kill point not reached in 5 minutes"
                time.sleep(0.02)
            time.sleep(extra)
            still_running = process.poll() is None
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=30)
            process.stderr.close()  # type: ignore[union-attr]
        assert still_running, "the run ended before the kill"
        assert process.returncode == -signal.SIGKILL
        killed_writes = written() - start_writes

    retry = subprocess.run(
        _command(case, staging, "kill"), env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert retry.returncode == 0, retry.stderr[-3000:]
    landed = _rows(reader, case)
    again = subprocess.run(
        _command(case, staging, "kill-again"),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    reader.close()
    assert again.returncode == 0, again.stderr[-3000:]
    counts: dict[str, Any] = json.loads(again.stdout)["counts"]
    # Nothing was left to do, every row the template keeps is in place, none came twice.
    assert (counts["created"], counts["updated"], counts["failed"]) == (0, 0, 0)
    assert counts["unchanged"] == EXPECTED_UNCHANGED[case.template]
    assert {k: n for k, n in landed.items() if n - before[k] not in (0, 1)} == {}
    if case.point in ("load", "journal"):
        assert killed_writes > 0  # the kill really interrupted a load
