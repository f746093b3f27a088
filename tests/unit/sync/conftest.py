"""Shared helpers for sync engine tests: a mapping directory to edit (staging and the
one-pair environment are in ``tests/unit/conftest.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

SHIPPED = Path(__file__).resolve().parents[3] / "include" / "mappings"


@pytest.fixture
def mappings_dir(tmp_path: Path) -> Path:
    """A copy of the shipped mapping directory that a test may change."""
    target = tmp_path / "mappings"
    shutil.copytree(SHIPPED, target)
    return target


def write_template(directory: Path, document: dict) -> Path:
    path = directory / f"{document['template']}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
