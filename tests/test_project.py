"""Project-level checks that need nothing but the checkout."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_gives_exactly_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Set-up: two commands", 1)[1].split("```", 2)[1]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


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


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^a-z0-9 _-]", "", text).replace(" ", "-")


def test_operations_page_links_resolve_to_files_and_headings() -> None:
    page = ROOT / "docs" / "operations.md"
    links = re.findall(r"\]\(([^)#]+)(?:#([^)]+))?\)", page.read_text())
    assert len(links) >= 8
    for target, anchor in links:
        path = (page.parent / target).resolve()
        assert path.is_file(), target
        if anchor:
            headings = {_anchor(line) for line in path.read_text().splitlines() if line.startswith("#")}
            assert anchor in headings, f"{target}#{anchor}"
    for topic in ("## Install", "## Upgrading", "## What to watch", "## Backfills", "## Scaling out"):
        assert topic in page.read_text()
    assert "airflow-connections-dynamics-dataverse-default" in page.read_text()


def test_the_providers_page_links_to_documentation_that_exists() -> None:
    """Admin -> Providers links the package to its ``Documentation`` URL, and without one to
    airflow.apache.org/docs/<package>/<version>/, which does not exist for this package."""
    from airflow.providers_manager import ProvidersManager

    info = ProvidersManager().providers["airflow-provider-prospect-to-cash"]
    assert info.data["documentation-url"] == (
        "https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/sales-marketing/prospect-to-cash"
    )
