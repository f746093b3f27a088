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
