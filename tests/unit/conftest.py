"""Fixtures every unit test package shares: staging on ``file://`` in the test's own folder,
and an environment of one company pair (usmf) without business-unit scoping."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def staging_dir(tmp_path: Path) -> Path:
    """The folder of :func:`staging_root` (for tests that lay files out or look at them)."""
    return tmp_path / "staging"


@pytest.fixture
def staging_root(staging_dir: Path) -> ObjectStoragePath:
    """A staging root of the test's own, as the engine receives one."""
    return ObjectStoragePath(f"file://{staging_dir}")


@pytest.fixture
def unscoped(tmp_path: Path) -> Path:
    """An environment override with one company pair and no business-unit scoping."""
    path = tmp_path / "unscoped.yaml"
    path.write_text(yaml.safe_dump({"company_pairs": [{"legal_entity": "usmf", "business_unit": None}]}))
    return path


@pytest.fixture
def unscoped_environment(unscoped: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """:func:`unscoped` in force (``P2C_ENVIRONMENT_FILE``) for the test; modules whose tests
    all run in it say ``pytestmark = pytest.mark.usefixtures("unscoped_environment")``."""
    monkeypatch.setenv("P2C_ENVIRONMENT_FILE", str(unscoped))
    return unscoped
