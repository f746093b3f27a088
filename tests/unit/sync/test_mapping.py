"""Mapping files: the shipped seven load; broken files fail with file, task and field named."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import yaml

from prospect_to_cash.sync.environment import load_environment
from prospect_to_cash.sync.errors import MappingError
from prospect_to_cash.sync.mapping import TEMPLATES, load_all, load_template
from prospect_to_cash.sync.sides import IncrementalExport
from tests.unit.sync.conftest import SHIPPED, write_template

if TYPE_CHECKING:
    from pathlib import Path


def minimal(**task_changes: Any) -> dict[str, Any]:
    task = {
        "name": "customers",
        "source": {"entity_set": "accounts", "key": ["accountnumber"]},
        "target": {"entity_set": "CustomersV3", "key": ["dataAreaId", "CustomerAccount"]},
        "fields": [{"target": "CustomerAccount", "source": "accountnumber"}],
    }
    task.update(task_changes)
    return {"template": "mini", "source_system": "dataverse", "target_system": "fno", "tasks": [task]}


def error_for(mappings_dir: Path, document: dict[str, Any]) -> str:
    write_template(mappings_dir, document)
    with pytest.raises(MappingError) as caught:
        load_template(document["template"], mappings_dir=mappings_dir)
    return str(caught.value)


def test_all_seven_templates_load_in_run_order() -> None:
    templates = load_all(SHIPPED)
    assert tuple(templates) == TEMPLATES
    assert [t.name for t in templates["sales_orders_fno_to_sales"].tasks] == [
        "order_headers",
        "order_lines",
        "order_freight_tax",
    ]
    for template in templates.values():
        for task in template.tasks:
            assert task.source_columns, task.name
            assert set(task.natural_key) <= {f.target for f in task.fields}


def test_environment_specific_values_are_not_in_template_files() -> None:
    for name in TEMPLATES:
        text = (SHIPPED / f"{name}.yaml").read_text()
        assert "CRM Service USA" not in text
        assert "Net30" not in text


def test_unknown_property_names_file_task_and_field(mappings_dir: Path) -> None:
    document = minimal(fields=[{"target": "CustomerAccount", "source": "accountnumber", "lookupp": {}}])
    message = error_for(mappings_dir, document)
    assert message.startswith("mini.yaml: task 'customers', field 'CustomerAccount':")
    assert "'lookupp' was unexpected" in message


def test_bad_type_names_the_field(mappings_dir: Path) -> None:
    document = minimal(fields=[{"target": "CustomerAccount", "source": "accountnumber", "type": "money"}])
    assert "mini.yaml: task 'customers', field 'CustomerAccount', type: 'money' is not one of" in error_for(
        mappings_dir, document
    )


def test_field_needs_exactly_one_value(mappings_dir: Path) -> None:
    document = minimal(fields=[{"target": "CustomerAccount", "source": "accountnumber", "constant": "X"}])
    assert "field 'CustomerAccount': give exactly one of" in error_for(mappings_dir, document)


def test_unknown_value_map_and_reference(mappings_dir: Path) -> None:
    document = minimal(
        fields=[
            {"target": "CustomerAccount", "source": "accountnumber"},
            {"target": "PaymentTerms", "source": "paymenttermscode", "value_map": "no_such_map"},
            {
                "target": "SalesCurrencyCode",
                "lookup": {"reference": "nowhere", "match": {"transactioncurrencyid": "x"}, "return": "iso"},
            },
        ]
    )
    message = error_for(mappings_dir, document)
    assert "task 'customers', field 'PaymentTerms': value map 'no_such_map' is not defined" in message
    assert "task 'customers', field 'SalesCurrencyCode': lookup names unknown reference 'nowhere'" in message


def test_expression_outside_the_whitelist_is_refused(mappings_dir: Path) -> None:
    document = minimal(
        fields=[
            {"target": "CustomerAccount", "source": "accountnumber"},
            {"target": "OrganizationName", "expr": "name.upper()"},
        ]
    )
    assert "field 'OrganizationName': only plain function calls are allowed" in error_for(
        mappings_dir, document
    )


def test_unmapped_target_key(mappings_dir: Path) -> None:
    document = minimal(fields=[{"target": "OrganizationName", "source": "name"}])
    assert "field 'CustomerAccount': target key field is not mapped" in error_for(mappings_dir, document)


def test_fno_has_no_booleans(mappings_dir: Path) -> None:
    document = minimal(
        fields=[
            {"target": "CustomerAccount", "source": "accountnumber"},
            {"target": "IsExternallyMaintained", "constant": True, "type": "bool"},
        ]
    )
    assert "NoYes enum" in error_for(mappings_dir, document)


def test_parent_must_come_first(mappings_dir: Path) -> None:
    document = minimal(parent={"task": "later", "match": ["CustomerAccount"]})
    assert "task 'customers', parent: parent task 'later' must come earlier" in error_for(
        mappings_dir, document
    )


def test_yaml_on_key_pitfall_is_caught(mappings_dir: Path) -> None:
    """YAML 1.1 reads ``on:`` as True; the schema refuses it instead of ignoring it."""
    (mappings_dir / "mini.yaml").write_text(
        yaml.safe_dump(minimal()).replace("source: accountnumber", "source: accountnumber\n    on: create")
    )
    with pytest.raises(MappingError, match="True was unexpected"):
        load_template("mini", mappings_dir=mappings_dir)


def test_environment_override_file_is_deep_merged(mappings_dir: Path, tmp_path: Path) -> None:
    override = tmp_path / "prod.yaml"
    override.write_text(
        yaml.safe_dump(
            {
                "defaults": {"customer_group": "20"},
                "value_maps": {"price_list_by_currency": {"entries": {"USD": "Contoso USD"}}},
                "company_pairs": [{"legal_entity": "usmf", "business_unit": "Contoso US"}],
            }
        )
    )
    environment = load_environment(mappings_dir, override)
    assert environment.data["defaults"]["customer_group"] == "20"
    assert environment.data["defaults"]["language"] == "en-us"  # untouched key survives
    assert environment.value_map("price_list_by_currency").translate("usd") == ("Contoso USD", False)
    assert [p.legal_entity for p in environment.company_pairs] == ["usmf"]  # lists replace
    template = load_template("accounts", mappings_dir=mappings_dir, environment_file=override)
    assert template.task("customers").field("CustomerGroupId").constant == "20"


def test_environment_override_from_variable(
    mappings_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    override = tmp_path / "env.yaml"
    override.write_text("defaults:\n  language: nl-nl\n")
    monkeypatch.setenv("P2C_ENVIRONMENT_FILE", str(override))
    assert load_environment(mappings_dir).data["defaults"]["language"] == "nl-nl"


def test_invalid_environment_is_reported(mappings_dir: Path, tmp_path: Path) -> None:
    override = tmp_path / "bad.yaml"
    override.write_text("company_pairs:\n  - legal_entity: 'not a company!'\n")
    with pytest.raises(MappingError, match=r"company_pairs/0/legal_entity"):
        load_environment(mappings_dir, override)


def test_unknown_legal_entity_is_a_clear_error() -> None:
    with pytest.raises(MappingError, match="legal entity 'xxxx' has no company pair"):
        load_environment(SHIPPED).company_pair("xxxx")


def test_company_pair_overrides_defaults_for_its_company() -> None:
    usmf = load_template("accounts", mappings_dir=SHIPPED, legal_entity="usmf").task("customers")
    demf = load_template("accounts", mappings_dir=SHIPPED, legal_entity="DEMF").task("customers")
    assert (usmf.field("WarehouseId").constant, usmf.field("LanguageId").constant) == ("13", "en-us")
    assert (demf.field("WarehouseId").constant, demf.field("LanguageId").constant) == ("11", "de")
    assert demf.field("CustomerGroupId").constant == "10"  # shared default still applies


def test_incremental_export_is_off_by_default_and_named_per_company(tmp_path: Path) -> None:
    """products.yaml reads SellableReleasedProducts from an export project only where the
    company pair names one (environment defaults.incremental_exports)."""
    for task in load_template("products", mappings_dir=SHIPPED, legal_entity="usmf").tasks:
        assert task.source.incremental_export is None
    override = tmp_path / "exports.yaml"
    pairs = [
        {
            "legal_entity": "usmf",
            "business_unit": "Contoso US",
            "defaults": {"incremental_exports": {"products": {"products": "P2C-Products-USMF"}}},
        },
        {"legal_entity": "demf", "business_unit": "Contoso Europe"},
    ]
    override.write_text(yaml.safe_dump({"company_pairs": pairs}))
    usmf = load_template("products", mappings_dir=SHIPPED, environment_file=override, legal_entity="usmf")
    demf = load_template("products", mappings_dir=SHIPPED, environment_file=override, legal_entity="demf")
    assert usmf.task("products").source.incremental_export == IncrementalExport("P2C-Products-USMF", 60)
    assert usmf.task("price_list_items").source.incremental_export is None  # its own project, none named
    assert demf.task("products").source.incremental_export is None


def test_incremental_export_is_refused_where_it_cannot_apply(mappings_dir: Path) -> None:
    export = {"definition_group": "P2C-Accounts"}
    dataverse = minimal(
        source={"entity_set": "accounts", "key": ["accountnumber"], "incremental_export": export}
    )
    assert "incremental_export is for F&O sources without a change_field" in error_for(
        mappings_dir, dataverse
    )
    blank = minimal(
        source={
            "entity_set": "accounts",
            "key": ["accountnumber"],
            "incremental_export": {"definition_group": " "},
        }
    )
    assert "definition_group must be a data project name, got ' '" in error_for(mappings_dir, blank)
    typo = minimal(
        source={"entity_set": "accounts", "key": ["accountnumber"], "incremental_export": {"group": "x"}}
    )
    assert "'definition_group' is a required property" in error_for(mappings_dir, typo)
