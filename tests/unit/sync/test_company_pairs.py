"""Which companies a run covers: business-unit scoping of Dataverse reads, the company
pairs the DAGs fan out over, and ``run_company_pairs`` (every pair at once, failures together)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from prospect_to_cash.sync import runner
from prospect_to_cash.sync.errors import MappingError, SyncError
from prospect_to_cash.sync.runner import SyncHooks, run_task, run_template
from tests.unit.sync.builders import WINDOW, account, accounts_services
from tests.unit.sync.memory_service import MemoryService, MemoryTable

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import ObjectStoragePath

pytestmark = pytest.mark.usefixtures("unscoped_environment")  # one pair, no business-unit scoping


def test_business_unit_scopes_dataverse_reads(
    mappings_dir: Path, staging_root: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("P2C_ENVIRONMENT_FILE")
    environment = yaml.safe_load((mappings_dir / "environment.yaml").read_text())
    unit = str(uuid.uuid4())
    environment["company_pairs"] = [{"legal_entity": "usmf", "business_unit": "Contoso US"}]
    (mappings_dir / "environment.yaml").write_text(yaml.safe_dump(environment))
    sales, fno = accounts_services(
        [
            account("ACC-1", "A", _owningbusinessunit_value=unit),
            account("ACC-2", "B", _owningbusinessunit_value=str(uuid.uuid4())),
        ]
    )
    sales.tables["businessunits"] = MemoryTable(
        key=("businessunitid",), rows=[{"businessunitid": unit, "name": "Contoso US"}]
    )
    result = run_task(
        "accounts",
        "customers",
        legal_entity="usmf",
        run_id="bu",
        staging_root=staging_root,
        hooks=SyncHooks(sales, fno),
        mappings_dir=mappings_dir,
    )
    assert result["counts"]["created"] == 1
    assert [r["CustomerAccount"] for r in fno.tables["CustomersV3"].rows] == ["ACC-1"]


def test_company_pairs_for_the_dag_fan_out(unscoped: Path) -> None:
    from prospect_to_cash import sync

    assert sync.company_pairs(environment_file=str(unscoped)) == [
        {"legal_entity": "usmf", "business_unit": None, "business_unit_id": None, "owner": None}
    ]
    assert sync.run_template is run_template


class TestCompanyPairs:
    """``run_company_pairs``: every pair at once, on shared hooks, failures reported together."""

    @pytest.fixture
    def two_pairs(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        path = tmp_path / "two-pairs.yaml"
        pairs = [
            {"legal_entity": "usmf", "business_unit": None},
            {"legal_entity": "demf", "business_unit": None},
        ]
        path.write_text(yaml.safe_dump({"company_pairs": pairs}))
        monkeypatch.setenv("P2C_ENVIRONMENT_FILE", str(path))
        return path

    def run(self, sales: MemoryService, fno: MemoryService, root: ObjectStoragePath, **kw: Any) -> dict:
        return runner.run_company_pairs(
            "accounts",
            run_id="pairs",
            staging_root=root,
            hooks=SyncHooks(sales, fno),
            check_metadata=False,
            **WINDOW,
            **kw,
        )

    def test_every_pair_lands_and_counts_add_up(
        self, two_pairs: Path, staging_root: ObjectStoragePath
    ) -> None:
        sales, fno = accounts_services([account(f"ACC-{i}", f"Customer {i}") for i in range(1, 6)])
        result = self.run(sales, fno, staging_root)
        assert set(result["companies"]) == {"usmf", "demf"}
        assert result["counts"]["created"] == 10
        assert all(summary["counts"]["created"] == 5 for summary in result["companies"].values())
        by_company = sorted((r["dataAreaId"], r["CustomerAccount"]) for r in fno.tables["CustomersV3"].rows)
        assert by_company == sorted((c, f"ACC-{i}") for c in ("demf", "usmf") for i in range(1, 6))
        again = self.run(sales, fno, staging_root)
        assert again["counts"]["created"] == 0
        assert again["counts"]["unchanged"] == 10
        assert again["failed"] == {}

    def test_a_subset_of_pairs_in_any_case(self, two_pairs: Path, staging_root: ObjectStoragePath) -> None:
        sales, fno = accounts_services([account("ACC-1", "Customer 1")])
        result = self.run(sales, fno, staging_root, legal_entities=["DEMF"])
        assert set(result["companies"]) == {"demf"}
        assert [r["dataAreaId"] for r in fno.tables["CustomersV3"].rows] == ["demf"]

    def test_an_unknown_legal_entity_is_refused_before_anything_runs(
        self, two_pairs: Path, staging_root: ObjectStoragePath
    ) -> None:
        sales, fno = accounts_services([account("ACC-1", "Customer 1")])
        with pytest.raises(MappingError, match=r"\['gbsi'\] have no company pair; configured: usmf, demf"):
            self.run(sales, fno, staging_root, legal_entities=["usmf", "gbsi"])
        assert fno.tables["CustomersV3"].rows == []

    def test_a_failing_pair_does_not_stop_the_others(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, staging_root: ObjectStoragePath
    ) -> None:
        path = tmp_path / "one-bad-pair.yaml"
        pairs = [
            {"legal_entity": "usmf", "business_unit": None},
            {"legal_entity": "demf", "business_unit": "Nowhere"},
        ]
        path.write_text(yaml.safe_dump({"company_pairs": pairs}))
        monkeypatch.setenv("P2C_ENVIRONMENT_FILE", str(path))
        sales, fno = accounts_services([account("ACC-1", "Customer 1")])
        sales.tables["businessunits"] = MemoryTable(key=("businessunitid",), rows=[])
        with pytest.raises(
            SyncError, match=r"1 of 2 company pair\(s\) failed: demf \(SyncError: business unit 'Nowhere'"
        ):
            self.run(sales, fno, staging_root)
        assert [(r["dataAreaId"], r["CustomerAccount"]) for r in fno.tables["CustomersV3"].rows] == [
            ("usmf", "ACC-1")
        ]
        # Without raising, the result names what finished and what failed (the CLI's report).
        report = self.run(sales, fno, staging_root, raise_on_failure=False)
        assert set(report["companies"]) == {"usmf"}
        assert report["companies"]["usmf"]["counts"]["unchanged"] == 1
        assert report["failed"] == {
            "demf": "SyncError: business unit 'Nowhere' of legal entity 'demf': found 0 rows, expected 1"
        }
        assert (report["counts"]["unchanged"], report["counts"]["failed"]) == (1, 0)
