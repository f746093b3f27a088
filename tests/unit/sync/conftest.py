"""Shared helpers for sync engine tests: a mapping directory to edit, staging on file://."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from airflow.sdk import ObjectStoragePath

SHIPPED = Path(__file__).resolve().parents[3] / "include" / "mappings"


@pytest.fixture
def mappings_dir(tmp_path: Path) -> Path:
    """A copy of the shipped mapping directory that a test may change."""
    target = tmp_path / "mappings"
    shutil.copytree(SHIPPED, target)
    return target


@pytest.fixture
def staging_root(tmp_path: Path) -> ObjectStoragePath:
    return ObjectStoragePath(f"file://{tmp_path / 'staging'}")


def write_template(directory: Path, document: dict) -> Path:
    path = directory / f"{document['template']}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture
def unscoped(tmp_path: Path) -> Path:
    """An environment override with one company pair and no business-unit scoping."""
    path = tmp_path / "unscoped.yaml"
    path.write_text(yaml.safe_dump({"company_pairs": [{"legal_entity": "usmf", "business_unit": None}]}))
    return path
