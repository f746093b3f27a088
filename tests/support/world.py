"""The demo world the DAG, e2e and story tests share: emulators seeded with the demo story,
an isolated Airflow home pointing at them, and the tests' own HTTPS reader.

* :func:`start_demo_world`: a fresh emulator process seeded with the demo story (the DAGs
  write, so nothing is shared with the session's emulators), an isolated Airflow home,
  staging, and the ``AIRFLOW_CONN_*`` variables pointing at the emulators.
* :func:`scheduler_world`: the same world for the tests that drive the real scheduler
  (threshold, run order, backfill): its company pairs narrowed by an environment override,
  and the four Airflow components on it (:meth:`SchedulerWorld.stack`); stopped after.
* :class:`ODataReader`: the test's own HTTPS reader (httpx + an msal token), used to
  derive expectations from the source rows independently of the package.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

from devstack.airflow_stack import AirflowStack, airflow_env, connection_env, prepare_home
from devstack.dag_test import DagTestRun, run_dag_tests
from tests.conftest import TEST_CONFIG
from tests.support.emulators import acquire_token, start_emulators

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from tests.support.emulators import EmulatorEndpoints, RunningEmulators

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = yaml.safe_load((ROOT / "include" / "mappings" / "environment.yaml").read_text())


class ODataReader:
    """Reads whole entity sets over verified HTTPS, following ``@odata.nextLink``."""

    def __init__(self, endpoints: EmulatorEndpoints) -> None:
        self.endpoints = endpoints
        self._http = httpx.Client(verify=endpoints.ssl_context(), timeout=60)
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        self._http.close()

    def _token(self, service: str) -> str:
        if service not in self._tokens:
            self._tokens[service] = acquire_token(self.endpoints, service)
        return self._tokens[service]

    def entity_sets(self, service: str) -> list[str]:
        """The entity sets the service document lists (OData's ``GET <root>/``)."""
        response = self._http.get(
            self.endpoints.service_root(service).rstrip("/") + "/",
            headers={"Authorization": f"Bearer {self._token(service)}", "Accept": "application/json"},
        )
        assert response.status_code == 200, f"service document: {response.status_code} {response.text[:300]}"
        return [
            item["url"] for item in response.json()["value"] if item.get("kind", "EntitySet") == "EntitySet"
        ]

    def rows(
        self,
        service: str,
        entity_set: str,
        select: Sequence[str] | None = None,
        filter: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every row of ``entity_set`` (every column when ``select`` is None)."""
        params = {"$select": ",".join(select)} if select else {}
        if filter:
            params["$filter"] = filter
        if service == "fno":
            params["cross-company"] = "true"
        url: str | None = f"{self.endpoints.service_root(service).rstrip('/')}/{entity_set}"
        headers = {"Authorization": f"Bearer {self._token(service)}", "Prefer": "odata.maxpagesize=5000"}
        found: list[dict[str, Any]] = []
        first = True
        while url:
            response = self._http.get(url, params=params if first else None, headers=headers)
            assert response.status_code == 200, (
                f"GET {entity_set}: {response.status_code} {response.text[:300]}"
            )
            body = response.json()
            found.extend({k: v for k, v in row.items() if not k.startswith("@")} for row in body["value"])
            url, first = body.get("@odata.nextLink"), False
        return found

    def patch(self, service: str, entity_set: str, key: str, body: dict[str, Any]) -> None:
        """Change one row (``key`` as the URL spells it), to set up what a test needs."""
        url = f"{self.endpoints.service_root(service).rstrip('/')}/{entity_set}({key})"
        params = {"cross-company": "true"} if service == "fno" else None
        response = self._http.patch(
            url, params=params, json=body, headers={"Authorization": f"Bearer {self._token(service)}"}
        )
        assert response.status_code in (200, 204), (
            f"PATCH {url}: {response.status_code} {response.text[:300]}"
        )

    def delete(self, service: str, entity_set: str, key: str) -> None:
        url = f"{self.endpoints.service_root(service).rstrip('/')}/{entity_set}({key})"
        response = self._http.delete(url, headers={"Authorization": f"Bearer {self._token(service)}"})
        assert response.status_code in (200, 204), (
            f"DELETE {url}: {response.status_code} {response.text[:300]}"
        )


def shipped_pairs_file(path: Path, *companies: str) -> Path:
    """An environment override with the shipped company pairs of ``companies`` only, owners
    included (F&O orders and invoices are created in Sales owned by the pair's owner and
    found again within its business unit, so a pair without one never finds them)."""
    pairs = [p for p in ENVIRONMENT["company_pairs"] if p["legal_entity"] in companies]
    assert [p["legal_entity"] for p in pairs] == list(companies), companies
    path.write_text(yaml.safe_dump({"company_pairs": pairs}))
    return path


def business_units(reader: ODataReader) -> dict[str, str]:
    """Dataverse business unit id -> F&O legal entity, from the configured company pairs."""
    by_name = {p["business_unit"]: p["legal_entity"] for p in ENVIRONMENT["company_pairs"]}
    return {
        row["businessunitid"]: by_name[row["name"]]
        for row in reader.rows("dataverse", "businessunits", ["name", "businessunitid"])
        if row["name"] in by_name
    }


def value_map(name: str) -> dict[str, Any]:
    """A value map of environment.yaml, keys folded the way codes compare (case-insensitive)."""
    return {str(k).casefold(): v for k, v in ENVIRONMENT["value_maps"][name]["entries"].items()}


@dataclass
class DemoWorld:
    """Emulators with the demo story plus an isolated Airflow installation pointing at them."""

    running: RunningEmulators
    home: Path
    staging: Path
    env: dict[str, str]
    reader: ODataReader

    def dag_test(self, *runs: DagTestRun, timeout: float = 900) -> list[dict[str, Any]]:
        return run_dag_tests(self.env, runs, timeout=timeout)

    def counters(self, service: str) -> dict[str, Any]:
        with self.running.admin(service) as admin:
            return admin.counters()


def start_demo_world(base: Path, template_home: Path, **env_extra: str) -> DemoWorld:
    running = start_emulators(base / "emulators", "--seed", "demo", config=TEST_CONFIG)
    home = prepare_home(base / "airflow", template=template_home)
    staging = base / "staging"
    env = airflow_env(
        home,
        staging_root=staging,
        connections=connection_env(running.endpoints),
        extra={"P2C_RUN_ORDER_POKE_SECONDS": "1", **env_extra},
    )
    return DemoWorld(running, home, staging, env, ODataReader(running.endpoints))


@dataclass
class SchedulerWorld:
    """A fresh demo world narrowed to some company pairs, for a test of the real scheduler."""

    base: Path
    template_home: Path
    running: RunningEmulators
    reader: ODataReader
    #: the environment override that keeps only the chosen company pairs (owners included)
    environment: Path
    #: the ``AIRFLOW_CONN_*`` variables that reach the emulators (their secrets included)
    connections: dict[str, str]

    @property
    def staging(self) -> Path:
        return self.base / "staging"

    def stack(self, **extra: str) -> AirflowStack:
        """Api-server, scheduler (LocalExecutor), dag-processor and triggerer on a copy of the
        migrated ``template_home``, against these emulators; runs come only from the test's
        triggers and backfills (no job schedule), the run-order sensors poll every 2 s;
        ``extra`` adds or overrides environment variables."""
        home = prepare_home(self.base / "airflow", template=self.template_home)
        env = airflow_env(
            home,
            staging_root=self.staging,
            connections=self.connections,
            use_job_schedule=False,
            extra={"P2C_ENVIRONMENT_FILE": str(self.environment), "P2C_RUN_ORDER_POKE_SECONDS": "2", **extra},
        )
        return AirflowStack(home, env)


@contextmanager
def scheduler_world(
    base: Path, template_home: Path, companies: Sequence[str] = ("usmf",)
) -> Iterator[SchedulerWorld]:
    """A fresh emulator process with the demo story under ``base``, the test's reader and an
    environment override with the shipped pairs of ``companies``; all stopped on the way out."""
    base.mkdir(parents=True, exist_ok=True)
    running = start_emulators(base / "emulators", "--seed", "demo", config=TEST_CONFIG)
    try:
        reader = ODataReader(running.endpoints)
        try:
            environment = shipped_pairs_file(base / "pairs.yaml", *companies)
            yield SchedulerWorld(
                base, template_home, running, reader, environment, connection_env(running.endpoints)
            )
        finally:
            reader.close()
    finally:
        running.stop()


def tasks_by_key(stack: AirflowStack, dag_id: str, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
    """A run's task instances by (task id, map index), as the REST API lists them."""
    return {(t["task_id"], t["map_index"]): t for t in stack.task_instances(dag_id, run_id)}
