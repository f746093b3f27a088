"""The parts of the Celery stack (``devstack/celery_stack.py``) that need no server: its
configuration, the workers' command lines, the command line and the make target. The stack
itself runs in ``tests/e2e/test_celery_stack.py``."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from devstack.__main__ import build_parser
from devstack.airflow_stack import airflow_env
from devstack.celery_stack import (
    WORKER_CONCURRENCY,
    WORKERS,
    CeleryAirflowStack,
    PostgresServer,
    RedisServer,
    celery_env,
    worker_hostname,
)
from devstack.state import PRELOAD_DIR

if TYPE_CHECKING:
    import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    database, broker = PostgresServer(tmp_path / "logs"), RedisServer(tmp_path / "logs")
    database.port, broker.port = 5999, 6999  # not started: only the URLs are read
    return celery_env(airflow_env(tmp_path / "home", api_port=8999), database, broker)


def test_celery_env_points_airflow_at_postgres_and_redis(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    database = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (database.scheme, database.hostname, database.port, database.path) == (
        "postgresql+psycopg2",
        "127.0.0.1",
        5999,
        "/airflow",
    )
    assert len(database.password or "") >= 32  # generated, never a default
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", "127.0.0.1", 6999)
    assert len(broker.password or "") >= 32
    assert broker.password != database.password
    assert env["AIRFLOW__CORE__PARALLELISM"] == str(WORKER_CONCURRENCY * len(WORKERS))
    assert env["PYTHONPATH"].split(":")[:2] == [str(PRELOAD_DIR), str(ROOT)]
    assert (
        celery_env(env, PostgresServer(tmp_path), RedisServer(tmp_path))["PYTHONPATH"].count(str(PRELOAD_DIR))
        == 1
    )


def test_each_worker_has_its_own_directories_and_host_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = CeleryAirflowStack(tmp_path / "home", _env(tmp_path))
    assert stack.components[-2:] == WORKERS
    commands = {name: stack.command(name) for name in WORKERS}
    for name, (args, env, cwd) in commands.items():
        assert args[1:] == [
            "-m",
            "airflow",
            "celery",
            "worker",
            "--celery-hostname",
            name,
            "--concurrency",
            str(WORKER_CONCURRENCY),
            "--skip-serve-logs",  # Airflow's log server would listen on every interface
        ]
        assert cwd == tmp_path / "home" / "workers" / name
        assert (env["HOME"], env["TMPDIR"]) == (str(cwd), str(cwd / "tmp"))
        assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "devstack.celery_stack.worker_hostname"
        monkeypatch.setenv("P2C_WORKER_HOSTNAME", env["P2C_WORKER_HOSTNAME"])
        assert worker_hostname() == name
    assert stack.command("scheduler")[0][1:] == ["-m", "airflow", "scheduler"]
    assert "P2C_WORKER_HOSTNAME" not in stack.command("scheduler")[1]
    stack._http.close()


def test_celery_workers_preload_like_the_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    module = str(PRELOAD_DIR / "airflow_local_settings.py")
    imported: list[str] = []
    monkeypatch.setattr("importlib.import_module", imported.append)
    monkeypatch.setattr(sys, "argv", ["airflow", "celery", "flower"])
    runpy.run_path(module)
    assert imported == []
    monkeypatch.setattr(sys, "argv", ["airflow", "celery", "worker", "--celery-hostname", "a"])
    runpy.run_path(module)
    assert imported[:2] == ["pandas", "pyarrow"]


def test_command_line_and_make_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_PORT", "8098")
    celery = build_parser().parse_args(["airflow-celery"])
    assert (celery.command, celery.state_dir, celery.port) == ("airflow-celery", Path("state/celery"), 8098)
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\nairflow-celery: $(STAMP) celery-packages\n", 1)[1].split("\n", 1)[0]
    assert (
        target.strip()
        == "$(BIN)/python -m devstack airflow-celery --state-dir $(CELERY_STATE) --port $(AIRFLOW_PORT)"
    )
    assert "apt-get install -y -qq --no-install-recommends \\\n\t    redis-server postgresql" in makefile
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make celery-packages\nexport P2C_REQUIRE_CELERY_STACK=1\n" in ci
