"""Project-level checks that need nothing but the checkout."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_readme_gives_exactly_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Set-up: two commands", 1)[1].split("```", 2)[1]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_docker_compose_parses() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    assert isinstance(compose, dict)
    assert "services" in compose


AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_docker_compose_has_the_airflow_3_services_postgres_and_an_init_job() -> None:
    services = _compose()["services"]
    assert set(services) >= {*AIRFLOW_SERVICES, "postgres", "airflow-init"}
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
    }
    assert "airflow db migrate" in " ".join(services["airflow-init"]["command"])
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"


def test_docker_compose_builds_the_official_image_with_this_package() -> None:
    services = _compose()["services"]
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        build = services[name]["build"]
        dockerfile = build["dockerfile_inline"]
        assert dockerfile.lstrip().startswith("ARG AIRFLOW_VERSION")
        assert "FROM apache/airflow:${AIRFLOW_VERSION}" in dockerfile
        assert build["args"]["AIRFLOW_VERSION"].startswith("3.3.")
        assert "COPY --chown=airflow:0 src " in dockerfile
        assert '"apache-airflow==${AIRFLOW_VERSION}" /opt/prospect-to-cash' in dockerfile
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["P2C_MAPPINGS_DIR"] == "/opt/airflow/include/mappings"


def test_docker_compose_mounts_dags_plugins_and_include() -> None:
    services = _compose()["services"]
    for name in AIRFLOW_SERVICES:
        mounts = {volume.split(":", 1)[0]: volume.split(":", 2)[1] for volume in services[name]["volumes"]}
        assert mounts["./dags"] == "/opt/airflow/dags"
        assert mounts["./plugins"] == "/opt/airflow/plugins"
        assert mounts["./include"] == "/opt/airflow/include"
        for host in ("dags", "plugins", "include"):
            assert (ROOT / host).is_dir()


def test_docker_compose_has_healthchecks() -> None:
    services = _compose()["services"]
    for name in (*AIRFLOW_SERVICES, "postgres"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL")
        assert check["interval"]
        assert check["retries"] >= 3
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "/api/v2/version" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    assert ":8974/health" in " ".join(services["airflow-scheduler"]["healthcheck"]["test"])
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    for name, job in (("airflow-dag-processor", "DagProcessorJob"), ("airflow-triggerer", "TriggererJob")):
        assert f"--job-type {job}" in " ".join(services[name]["healthcheck"]["test"])


def _strings(node: object, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _strings(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [item for index, value in enumerate(node) for item in _strings(value, f"{path}[{index}]")]
    return [(path, str(node))]


def test_docker_compose_holds_no_secret_beyond_local_placeholders() -> None:
    compose = _compose()
    secretish = ("PASSWORD", "SECRET", "FERNET", "TOKEN", "KEY", "AIRFLOW_CONN_")
    for path, value in _strings(compose):
        name = path.rsplit(".", 1)[-1].upper()
        if not any(word in name for word in secretish) or name.endswith("BACKEND_KWARGS"):
            continue
        # every secret-like setting comes from the environment (.env), with at most the
        # obvious local placeholder "airflow" as default
        assert value.startswith("${"), (path, value)
        assert value.endswith("}"), (path, value)
        default = value[2:-1].partition(":-")[2]
        assert default in ("", "airflow"), (path, value)
    for path, value in _strings(compose):
        if "postgresql+psycopg2://" in value:
            assert "${POSTGRES_PASSWORD:-airflow}" in value, path
    jwt = compose["services"]["airflow-scheduler"]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert jwt.startswith("${AIRFLOW_JWT_SECRET:?"), "the JWT secret must be required, never defaulted"
    # the only user is created by the auth manager with a generated password
    assert compose["services"]["airflow-apiserver"]["environment"][
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
    ] == ("admin:admin")


def test_readme_documents_the_stack_command_and_compose() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make airflow" in readme
    assert "\nairflow: $(STAMP)" in makefile
    assert "-m devstack demo" in makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "docker compose up" in readme


def test_readme_dry_run_tips_warn_that_the_trigger_form_unpauses_a_paused_dag() -> None:
    """Airflow 3's trigger form ticks "Unpause <dag> on trigger" by default: a dry run of a paused
    DAG would otherwise turn on its real schedule."""
    readme = (ROOT / "README.md").read_text()
    tips = [part for part in readme.split("\n\n") if "*Dry run* Param" in part]
    assert len(tips) == 2
    for tip in tips:
        assert "on trigger*" in tip
        assert "unpause" in tip.lower()
        assert "scheduled" in tip
