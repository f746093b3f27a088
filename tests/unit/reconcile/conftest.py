"""A tiny mapping directory (one F&O task) for classification tests driven through the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import yaml

from prospect_to_cash.sync.mapping import Task, load_template

if TYPE_CHECKING:
    from pathlib import Path

WIDGETS = {
    "template": "widgets",
    "source_system": "dataverse",
    "target_system": "fno",
    "tasks": [
        {
            "name": "items",
            "source": {
                "entity_set": "accounts",
                "key": ["accountnumber"],
                "filter": None,
                "change_field": None,
            },
            "target": {"entity_set": "CustomersV3", "key": ["dataAreaId", "CustomerAccount"]},
            "fields": [
                {"target": "CustomerAccount", "source": "accountnumber", "required": True},
                {"target": "OrganizationName", "source": "name"},
                {"target": "CreditLimit", "source": "creditlimit", "type": "decimal"},
            ],
        }
    ],
}


def write_mappings(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "environment.yaml").write_text(
        yaml.safe_dump({"company_pairs": [{"legal_entity": "usmf", "business_unit": None}], "value_maps": {}})
    )
    (directory / "widgets.yaml").write_text(yaml.safe_dump(WIDGETS, sort_keys=False))
    return directory


@pytest.fixture(scope="session")
def widgets_task(tmp_path_factory: pytest.TempPathFactory) -> Task:
    directory = write_mappings(tmp_path_factory.mktemp("mappings"))
    return load_template("widgets", mappings_dir=directory, legal_entity="usmf").task("items")
