"""The reconciliation end to end over in-memory services (the engine's test stand-ins):
the shipped accounts mapping, a real load first, then drift on both sides."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from prospect_to_cash.hooks.errors import DynamicsTransportError
from prospect_to_cash.reconcile import reconcile, run_reconciliation
from prospect_to_cash.reconcile.report import rows_of, validate
from prospect_to_cash.sync.errors import MappingError
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.runner import SyncHooks
from tests.unit.sync import builders
from tests.unit.sync.builders import accounts_services, run_in_memory

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import ObjectStoragePath

    from tests.unit.sync.memory_service import MemoryService

pytestmark = pytest.mark.usefixtures("unscoped_environment")  # one company pair: usmf


def account(number: str | None, name: str) -> dict[str, Any]:
    return builders.account(number, name, modifiedon="2026-11-01T08:00:00Z")


def drifted(root: ObjectStoragePath) -> tuple[MemoryService, MemoryService]:
    """Loaded once by the engine, then changed behind its back on both sides."""
    rows = [account("A1", "Alpine"), account("A2", "Contoso"), account(None, "No number")]
    sales, fno = accounts_services(rows)
    # max_rejected: the row without a number, by design of this world
    run_in_memory("accounts", sales, fno, root, "load", max_rejected="1")
    rows[1]["name"] = "Contoso Ltd"  # changed in Sales since
    rows.append(account("A3", "Fabrikam"))  # new in Sales
    customers = fno.tables["CustomersV3"].rows
    template = next(r for r in customers if r["CustomerAccount"] == "A1")
    for number, changes in {
        "Z9": {},  # externally maintained, no account: orphan
        "F1": {"IsExternallyMaintained": "No"},  # F&O's own customer: not ours
        "P1": {"PartyType": "Person"},  # a contact's customer: the contacts template's scope
    }.items():
        customers.append({**copy.deepcopy(template), "CustomerAccount": number, **changes})
    other = {**copy.deepcopy(template), "dataAreaId": "demf", "CustomerAccount": "Z8"}
    customers.append(other)  # another company's row: not in usmf's scope
    return sales, fno


def test_every_row_classified_nothing_written(staging_root: ObjectStoragePath) -> None:
    sales, fno = drifted(staging_root)
    # one row still waiting to land from an earlier daily run: the report counts it
    PendingLedger(staging_root, "accounts", "usmf", "customers").write(
        [
            {
                "source_key": "A9",
                "key_values": '["A9"]',
                "record_id": None,
                "target_key": "A9",
                "status": "failed",
                "reason": "Service Unavailable",
                "first_seen": "2026-11-01T00:00:00Z",
                "last_seen": "2026-11-02T00:00:00Z",
                "attempts": 2,
                "last_run_id": "day-2",
            }
        ]
    )
    writes = len(fno.writes)
    document = reconcile(
        ["accounts"],
        hooks=SyncHooks(sales, fno),
        check_metadata=False,
        staging_root=staging_root,
        run_id="rec",
    )
    validate(document)
    assert len(fno.writes) == writes
    found = {(row["status"], row["key"]) for _, _, _, row in rows_of(document)}
    assert found == {
        ("in_sync", "A1"),
        ("different", "A2"),
        ("missing", "A3"),
        ("rejected", None),
        ("orphaned", "Z9"),
    }
    different = next(row for _, _, _, row in rows_of(document) if row["status"] == "different")
    assert different["differences"] == [
        {"field": "OrganizationName", "expected": "Contoso Ltd", "actual": "Contoso"}
    ]
    assert document["totals"] == {"in_sync": 1, "missing": 1, "different": 1, "orphaned": 1, "rejected": 1}
    (section,) = document["templates"][0]["sections"]
    assert section["company"] == "usmf"
    assert section["tasks"][0]["counts"]["read"] == 4
    assert section["tasks"][0]["counts"]["pending"] == 1
    assert document["errors"] == []
    # the engine's own staging layout, under the reconciliation's run id
    assert (staging_root / "accounts" / "rec" / "usmf" / "customers" / "plan" / "summary.json").exists()


class _Broken:
    """A hook that cannot read one entity set (the service is down for it)."""

    def __init__(self, hook: MemoryService, entity_set: str) -> None:
        self.hook, self.entity_set = hook, entity_set

    def iter_pages(self, entity_set: str, **kwargs: Any) -> Any:
        if entity_set == self.entity_set:
            raise DynamicsTransportError(f"{entity_set}: connection reset")
        return self.hook.iter_pages(entity_set, **kwargs)


def test_a_failing_template_is_reported_and_its_orphans_are_not_guessed(
    staging_root: ObjectStoragePath,
) -> None:
    sales, fno = drifted(staging_root)
    document = reconcile(
        ["accounts"],
        hooks=SyncHooks(sales, _Broken(fno, "CustomersV3")),
        check_metadata=False,
        staging_root=staging_root,
    )
    validate(document)
    assert [(e["template"], e["company"], e["task"]) for e in document["errors"]] == [
        ("accounts", "usmf", "customers")
    ]
    assert "connection reset" in document["errors"][0]["message"]
    assert document["totals"] == {"in_sync": 0, "missing": 0, "different": 0, "orphaned": 0, "rejected": 0}
    assert document["templates"][0]["sections"][0]["errors"]


def test_run_reconciliation_returns_paths_and_counts_only(
    staging_root: ObjectStoragePath, tmp_path: Path
) -> None:
    sales, fno = drifted(staging_root)
    result = run_reconciliation(
        ["accounts"],
        output_dir=tmp_path / "out",
        hooks=SyncHooks(sales, fno),
        check_metadata=False,
        staging_root=staging_root,
    )
    assert set(result) == {"run_id", "generated_at", "totals", "errors", "paths"}
    assert result["errors"] == 0
    assert (tmp_path / "out" / "report.html").is_file()
    assert all(isinstance(p, str) for p in result["paths"].values())


def test_unknown_companies_and_templates_are_refused(staging_root: ObjectStoragePath) -> None:
    sales, fno = accounts_services([])
    with pytest.raises(MappingError, match="xxxx"):
        reconcile(["accounts"], ["xxxx"], hooks=SyncHooks(sales, fno), staging_root=staging_root)
    with pytest.raises(MappingError, match="unknown templates"):
        reconcile(["invoicez"], hooks=SyncHooks(sales, fno), staging_root=staging_root)


class _NoMetadata:
    """A service whose ``$metadata`` cannot be read (reads of rows would still work)."""

    def __init__(self, hook: MemoryService) -> None:
        self.hook = hook

    def iter_pages(self, entity_set: str, **kwargs: Any) -> Any:
        return self.hook.iter_pages(entity_set, **kwargs)

    def get_metadata(self) -> str:
        raise DynamicsTransportError("$metadata: service unavailable")


def test_a_metadata_failure_is_reported_for_every_company(
    staging_root: ObjectStoragePath, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "two-companies.yaml"
    pairs = [{"legal_entity": c, "business_unit": None} for c in ("usmf", "demf")]
    path.write_text(yaml.safe_dump({"company_pairs": pairs}))
    monkeypatch.setenv("P2C_ENVIRONMENT_FILE", str(path))
    sales, fno = accounts_services([account("A1", "Alpine")])
    document = reconcile(
        ["accounts"], hooks=SyncHooks(_NoMetadata(sales), _NoMetadata(fno)), staging_root=staging_root
    )
    validate(document)
    assert sorted(e["company"] for e in document["errors"]) == ["demf", "usmf"]
    assert all("service unavailable" in e["message"] for e in document["errors"])
    assert fno.reads == []  # nothing read once the mapping could not be checked
