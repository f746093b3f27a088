"""Staging on Azure Blob storage: a template run whose staging, pending ledger, watermarks and
dead letters live in Azurite (HTTPS, TLS verified against the test's CA), reached through the
Microsoft Azure provider's ``wasb`` connection and ``ObjectStoragePath("abfs://<conn>@<container>/...")``
as in production; a load that dies mid-stream is retried and resumes from the journals kept
there; the retention purge removes old run folders there but never the ledger or watermarks.

What is stored is read back with the Azure SDK's own client, not through the code under test.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import ContainerClient

from devstack.airflow_stack import connection_env
from tests.conftest import TEST_CONFIG
from tests.integration.test_sync_emulators import _product_numbers, _products_to_create
from tests.support.azurite import start_azurite
from tests.support.emulators import start_emulators
from tests.support.staging_driver import CRASH_EXIT
from tests.support.world import ODataReader

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.azurite import RunningAzurite
    from tests.support.emulators import RunningEmulators

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONN = {"dataverse": "p2c_azure_dataverse", "fno": "p2c_azure_fno"}
STAGING_CONN = "p2c_azure_staging"
CONTAINER = "p2c-staging"
ROOT_URL = f"abfs://{STAGING_CONN}@{CONTAINER}/p2c"


@dataclass
class _World:
    azurite: RunningAzurite
    emulators: RunningEmulators
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)

    def container(self) -> ContainerClient:
        """The staging container through the Azure SDK's own client (TLS verified)."""
        return ContainerClient.from_connection_string(
            self.azurite.connection_string, CONTAINER, connection_verify=str(self.azurite.ca_bundle)
        )

    def blobs(self, prefix: str = "p2c/") -> list[str]:
        with self.container() as container:
            return sorted(container.list_blob_names(name_starts_with=prefix))

    def blob_text(self, name: str) -> str:
        with self.container() as container:
            return container.download_blob(name).readall().decode()

    def parquet(self, name: str) -> pa.Table:
        with self.container() as container:
            return pq.read_table(io.BytesIO(container.download_blob(name).readall()))

    def run(self, command: list[str], *, expect: int = 0) -> Any:
        """A child process with the workers' environment; its last stdout line as JSON."""
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=600, check=False)
        self.outputs += [done.stdout, done.stderr]
        assert done.returncode == expect, done.stderr[-4000:]
        try:
            return json.loads(done.stdout)  # the CLI: stdout is the report alone
        except json.JSONDecodeError:
            return json.loads(done.stdout.strip().splitlines()[-1])  # the driver: the last line

    def cli(self, *arguments: str) -> Any:
        """``python -m prospect_to_cash.sync run ...`` with staging on Azure storage."""
        return self.run(
            [
                sys.executable,
                "-m",
                "prospect_to_cash.sync",
                "run",
                *arguments,
                "--staging-root",
                ROOT_URL,
                "--dataverse-conn-id",
                CONN["dataverse"],
                "--fno-conn-id",
                CONN["fno"],
            ]
        )

    def driver(self, request: dict[str, Any], *, expect: int = 0) -> Any:
        """One step through :mod:`tests.support.staging_driver`."""
        full = {"staging_root": ROOT_URL, "dataverse_conn_id": CONN["dataverse"], "fno_conn_id": CONN["fno"]}
        command = [sys.executable, "-m", "tests.support.staging_driver", json.dumps({**full, **request})]
        return self.run(command, expect=expect)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_World]:
    base = tmp_path_factory.mktemp("azurite")
    azurite = start_azurite(base / "azurite")
    emulators = None
    quiet = pytest.MonkeyPatch()
    # the Azure SDK logs every request and answer at INFO
    quiet.setattr(logging.getLogger("azure"), "level", logging.WARNING)
    try:
        emulators = start_emulators(base / "state", "--seed", "demo", config=TEST_CONFIG)
        env = {
            **os.environ,
            **connection_env(emulators.endpoints, conn_ids=CONN),
            **azurite.connection_env(STAGING_CONN),
            # adlfs talks through aiohttp, which trusts the CAs of SSL_CERT_FILE (verification on)
            "SSL_CERT_FILE": str(azurite.ca_bundle),
        }
        world = _World(azurite, emulators, env)
        with world.container() as container:
            container.create_container()
        yield world
    finally:
        if emulators is not None:
            emulators.stop()
        azurite.stop()
        quiet.undo()


def test_a_template_run_keeps_staging_ledger_and_dead_letters_in_blob_storage(world: _World) -> None:
    # a full refresh: the accounts are read through change tracking, which starts the shared delta
    result = world.cli("accounts", "--company", "usmf", "--run-id", "azure-1", "--full-refresh")
    assert result["failed"] == {}
    counts = result["counts"]
    assert counts["created"] + counts["updated"] + counts["unchanged"] == 36  # STORY.md, usmf
    assert counts["rejected"] == 4
    assert counts["failed"] == 0

    run = "p2c/accounts/azure-1/usmf"
    names = world.blobs()
    assert f"{run}/customers/source/rows.parquet" in names
    assert f"{run}/customers/deadletter/rejected.parquet" in names
    assert f"{run}/summary.json" in names
    assert "p2c/_pending/accounts/usmf/customers.parquet" in names
    assert "p2c/_watermarks/accounts/usmf/customers.json" in names
    assert [n for n in names if n.rsplit("/", 1)[-1].startswith(".")] == []  # no temporary file left
    assert [n for n in names if "/work/" in n] == []  # the transform's buckets are removed
    # the shared delta's start (sync/delta_chain.py), created once on Blob storage (an upload
    # that may not overwrite), its claim released
    deltas = [n.split("/")[-1] for n in names if n.startswith("p2c/_deltas/accounts/customers/")]
    assert deltas == ["00000000.json"]

    # the dead letters and the ledger, read back from Azure storage: the ledger holds each
    # rejected row that has a source key, once (blank keys cannot be re-read; twins count once)
    dead = world.parquet(f"{run}/customers/deadletter/rejected.parquet")
    ledger = world.parquet("p2c/_pending/accounts/usmf/customers.parquet")
    assert dead.num_rows == 4
    keyed = {key for key in dead.column("source_key").to_pylist() if key}
    assert sorted(ledger.column("source_key").to_pylist()) == sorted(keyed)
    assert ledger.num_rows == 2
    assert set(ledger.column("status").to_pylist()) == {"rejected"}
    assert set(ledger.column("last_run_id").to_pylist()) == {"azure-1"}
    summary = json.loads(world.blob_text(f"{run}/summary.json"))
    assert summary["counts"]["rejected"] == 4

    # the storage key never reaches a log, the report or a staged file
    key = world.azurite.account_key
    assert [text for text in world.outputs if key in text] == []
    assert key not in world.blob_text(f"{run}/summary.json")


def test_a_load_killed_mid_stream_resumes_from_the_journals_in_blob_storage(world: _World) -> None:
    reader = ODataReader(world.emulators.endpoints)
    before = _product_numbers(reader)
    created = _products_to_create(reader, "usmf", before)
    assert len(created) == 14
    step = {
        "template": "products",
        "task": "products",
        "company": "usmf",
        "run_id": "azure-crash",
        "journal_every": 5,
    }
    crashed = world.driver({**step, "action": "crash_load", "after": 7}, expect=CRASH_EXIT)
    assert crashed == {"crashed": True, "error": "simulated crash during load"}

    plan = "p2c/products/azure-crash/usmf/products/plan"
    journals = world.blobs(f"{plan}/journal-")
    # every 5 outcomes, and what was answered before the stream died
    assert journals == [f"{plan}/journal-000000.parquet", f"{plan}/journal-000001.parquet"]
    confirmed = sum(sum(world.parquet(name).column("ok").to_pylist()) for name in journals)
    assert confirmed == 7

    with world.emulators.admin("dataverse") as admin:
        written_before = int(admin.counters()["operations_written_total"])
        # Airflow retries the load of the same run: it reads the journal back from Azure storage
        retried = world.driver({**step, "action": "load"})
        written = int(admin.counters()["operations_written_total"]) - written_before
    assert retried["counts"]["failed"] == 0
    assert retried["counts"]["created"] == 14
    planned = retried["counts"]["created"] + retried["counts"]["updated"]
    assert planned == 16
    assert written == planned - confirmed  # only what no journal confirmed was sent again
    assert _product_numbers(reader) == before + Counter(created)  # each new product exactly once
    reader.close()


def test_the_retention_purge_on_blob_storage_keeps_the_ledger_and_watermarks(world: _World) -> None:
    if not world.blobs("p2c/accounts/"):  # run alone: stage a run first
        world.cli("accounts", "--company", "usmf", "--run-id", "azure-1")
    kept_state = [n for n in world.blobs() if n.startswith("p2c/_")]  # ledger, marks, tokens, index
    assert "p2c/_pending/accounts/usmf/customers.parquet" in kept_state
    runs = sorted({"/".join(n.split("/")[1:3]) for n in world.blobs() if not n.startswith("p2c/_")})

    # today nothing is old enough; 31 days on, every run folder goes, the ledger and the
    # watermarks stay
    today, later = world.driver({"action": "purge", "days": 30, "ahead_days": [0, 31]})["reports"]
    assert today["removed"] == []
    assert today["kept"] == len(runs)
    assert later["removed"] == runs
    assert world.blobs() == kept_state
