"""The mapping is compiled once per process and company, and afresh when a file changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import yaml

from prospect_to_cash.sync import compiled, mapping, runner
from prospect_to_cash.sync.compiled import compiled_template
from prospect_to_cash.sync.contracts import SyncHooks
from tests.unit.sync.builders import WINDOW, account, accounts_services

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import ObjectStoragePath


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """Every real compilation (``load_template``) as (file name, legal entity)."""
    seen: list[tuple[str, str | None]] = []
    original = mapping.load_template

    def counting(name_or_path: Any, **kwargs: Any) -> mapping.Template:
        seen.append((str(name_or_path).rsplit("/", 1)[-1], kwargs.get("legal_entity")))
        return original(name_or_path, **kwargs)

    monkeypatch.setattr(compiled, "load_template", counting)
    return seen


def test_same_files_and_company_compile_once(mappings_dir: Path, compiles: list[Any]) -> None:
    first = compiled_template("accounts", mappings_dir=mappings_dir, legal_entity="usmf")
    again = compiled_template("accounts", mappings_dir=mappings_dir, legal_entity="USMF")
    other = compiled_template("accounts", mappings_dir=mappings_dir, legal_entity="demf")
    assert again is first
    assert other is not first
    assert compiles == [("accounts.yaml", "usmf"), ("accounts.yaml", "demf")]


def test_an_edited_mapping_or_environment_is_compiled_afresh(mappings_dir: Path, tmp_path: Path) -> None:
    path = mappings_dir / "accounts.yaml"
    before = compiled_template("accounts", mappings_dir=mappings_dir, legal_entity="usmf")
    document = yaml.safe_load(path.read_text())
    document["tasks"][0]["description"] = "edited"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    edited = compiled_template("accounts", mappings_dir=mappings_dir, legal_entity="usmf")
    assert edited is not before
    assert edited.tasks[0].description == "edited"

    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"defaults": {"customer_group": "20"}}))
    overridden = compiled_template(
        "accounts", mappings_dir=mappings_dir, environment_file=override, legal_entity="usmf"
    )
    assert overridden is not edited
    assert overridden.environment is not None
    assert overridden.environment.data["defaults"]["customer_group"] == "20"


def test_a_task_compiles_its_template_once_for_all_its_steps(
    mappings_dir: Path,
    unscoped: Path,
    staging_root: ObjectStoragePath,
    compiles: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P2C_ENVIRONMENT_FILE", str(unscoped))
    sales, fno = accounts_services([account("ACC-1", "Contoso")])
    common: dict[str, Any] = {
        "legal_entity": "usmf",
        "run_id": "once",
        "staging_root": staging_root,
        "hooks": SyncHooks(sales, fno),
        "mappings_dir": mappings_dir,
    }
    # the steps as separate calls, the way the DAG's tasks make them
    runner.extract_and_snapshot("accounts", "customers", **common, **WINDOW)
    runner.transform("accounts", "customers", **common)
    loaded = runner.load("accounts", "customers", **common)
    assert loaded["counts"]["created"] == 1
    assert compiles == [("accounts.yaml", "usmf")]
