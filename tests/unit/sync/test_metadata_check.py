"""Mappings against ``$metadata``: the shipped files against the emulators' CSDL, and a
broken mapping whose every problem is named."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from emulators.odata.csdl import build_csdl
from emulators.schema.dataverse import CATALOG as DATAVERSE
from emulators.schema.fno import CATALOG as FNO
from prospect_to_cash.sync.__main__ import main
from prospect_to_cash.sync.errors import MetadataMismatch
from prospect_to_cash.sync.mapping import load_all, load_template
from prospect_to_cash.sync.metadata_check import check_template, check_templates, parse_csdl
from tests.unit.sync.conftest import SHIPPED, write_template

if TYPE_CHECKING:
    from pathlib import Path


class CsdlHook:
    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0

    def get_metadata(self) -> str:
        self.calls += 1
        return self.text


class Hooks:
    def __init__(self) -> None:
        self.hooks = {"dataverse": CsdlHook(build_csdl(DATAVERSE)), "fno": CsdlHook(build_csdl(FNO))}

    def for_system(self, system: str) -> CsdlHook:
        return self.hooks[system]


def test_shipped_mappings_match_the_emulated_services() -> None:
    hooks = Hooks()
    problems = check_templates(load_all(SHIPPED).values(), hooks)
    assert [str(p) for p in problems] == []
    assert hooks.hooks["dataverse"].calls == hooks.hooks["fno"].calls == 1  # once per system


def test_parse_csdl_reads_properties_navigation_and_enums() -> None:
    metadata = parse_csdl(build_csdl(FNO))
    customers = metadata.entity_sets["CustomersV3"]
    assert customers.properties["CustomerAccount"] == "Edm.String"
    noyes = customers.properties["IsExternallyMaintained"]
    assert metadata.enums[noyes] >= {"Yes", "No"}
    orders = parse_csdl(build_csdl(DATAVERSE)).entity_sets["salesorders"]
    assert {"customerid_account", "customerid_contact"} <= orders.navigation
    assert orders.properties["_customerid_value"] == "Edm.Guid"


def test_every_mismatch_is_named(mappings_dir: Path) -> None:
    write_template(
        mappings_dir,
        {
            "template": "broken",
            "source_system": "dataverse",
            "target_system": "fno",
            "tasks": [
                {
                    "name": "customers",
                    "source": {
                        "entity_set": "accounts",
                        "key": ["accountnumber"],
                        "select": ["nosuchcolumn"],
                    },
                    "target": {"entity_set": "CustomersV3", "key": ["dataAreaId", "CustomerAccount"]},
                    "references": [{"name": "ghosts", "side": "target", "entity_set": "Ghosts"}],
                    "fields": [
                        {"target": "CustomerAccount", "source": "accountnumber"},
                        {"target": "OrganisationName", "source": "name"},
                        {"target": "CreditLimit", "source": "creditlimit", "type": "datetime"},
                        {"target": "IsExternallyMaintained", "constant": "Maybe", "type": "enum"},
                    ],
                }
            ],
        },
    )
    template = load_template("broken", mappings_dir=mappings_dir)
    problems = [str(p) for p in check_template(template, Hooks())]
    assert (
        "broken.yaml: task 'customers', source column 'nosuchcolumn': accounts has no property 'nosuchcolumn'"
        in problems
    )
    prefix = "broken.yaml: task 'customers', field 'OrganisationName'"
    assert f"{prefix}: CustomersV3 has no property 'OrganisationName'" in problems
    assert any(
        "field 'CreditLimit': mapped as datetime but CustomersV3.CreditLimit is Edm.Decimal" in p
        for p in problems
    )
    assert any("field 'IsExternallyMaintained': 'Maybe' is not a member of" in p for p in problems)
    assert any(
        "reference 'ghosts': entity set 'Ghosts' does not exist in fno $metadata" in p for p in problems
    )
    with pytest.raises(MetadataMismatch, match=r"broken\.yaml does not match"):
        check_template(template, Hooks(), raise_on_problems=True)


def test_dataverse_creates_supply_the_columns_the_service_requires() -> None:
    """Read-only columns are never written and required ones are always supplied (the
    primary id is chosen by the engine, the owner defaults to the caller)."""
    catalogs = {"dataverse": DATAVERSE, "fno": FNO}
    gaps = []
    for template in load_all(SHIPPED).values():
        for task in template.tasks:
            table = catalogs[task.target_system].tables[task.target.entity_set]
            for mapping in task.fields:
                column = table.field(mapping.target)
                if mapping.write and column is not None and column.read_only:
                    gaps.append(f"{template.name}/{task.name}: writes read-only {mapping.target}")
            if "create" not in task.target.operations:
                continue
            required = [f.name for f in table.fields if f.required.value != "None" and not f.read_only]
            required += [lookup.column for lookup in table.lookups if lookup.required.value != "None"]
            for name in required:
                if name in (task.target.primary_id, "ownerid", "dataAreaId") or name.startswith(
                    "Recommended"
                ):
                    continue
                field = next((f for f in table.fields if f.name == name), None)
                if field is not None and field.required.value == "Recommended":
                    continue
                lookup_required = next((lk for lk in table.lookups if lk.column == name), None)
                if lookup_required is not None and lookup_required.required.value == "Recommended":
                    continue
                if task.field(name) is None:
                    gaps.append(f"{template.name}/{task.name}: required {name} is not mapped")
    assert gaps == []


def test_cli_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--mappings-dir", str(SHIPPED), "validate"]) == 0
    assert "sales_invoices: 3 task(s) valid" in capsys.readouterr().out


def test_cli_validate_reports_broken_files(mappings_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (mappings_dir / "accounts.yaml").write_text("template: accounts\nsource_system: dataverse\n")
    assert main(["--mappings-dir", str(mappings_dir), "validate"]) == 1
    assert "accounts.yaml" in capsys.readouterr().err
