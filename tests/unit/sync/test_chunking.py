"""The transform works a chunk at a time and the plan does not change with the chunk size.

Every test compares plans of the same inputs built with different chunk sizes (1 row,
7 rows, everything at once): same rows in the same order in every file, same counts.
The inputs are made so that what spans chunks is exercised: duplicate keys far apart,
a parent account in another chunk than its child, target rows matching source rows of
any chunk, several invoices of one order.
"""

from __future__ import annotations

import json
import random
import tracemalloc
import uuid
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prospect_to_cash.sync import planner, rules, runner
from prospect_to_cash.sync.planner import Plan, build_plan
from prospect_to_cash.sync.staging import CHUNK_ROWS_VARIABLE, TaskStaging, chunk_rows
from tests.unit.sync.builders import by_ref, customers_staging, reasons, staged, task_of
from tests.unit.sync.conftest import SHIPPED, write_template

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import ObjectStoragePath

    from prospect_to_cash.sync.mapping import Task

SIZES = (1, 7, 1_000_000)
USD = str(uuid.UUID(int=1))


def account_world(count: int, seed: int = 7) -> dict[str, Any]:
    """Accounts with every kind of row the customers task distinguishes, spread out."""
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=1000 + i)) for i in range(count)]
    numbers = [f"ACC-{i:05d}" for i in range(count)]
    numbers[count // 2] = numbers[1].lower()  # a duplicate key, case aside, far from its twin
    numbers[count // 3] = None  # no key
    numbers[count // 4] = "ACC-" + "9" * 30  # too long for F&O
    source = []
    for i in range(count):
        parent = rng.choice([None, None, ids[rng.randrange(count)], str(uuid.uuid4())])
        source.append(
            {
                "accountnumber": numbers[i],
                "name": rng.choice(["Contoso", "Fabrikam", "Litware"]),
                "_transactioncurrencyid_value": rng.choice([USD, USD, None, str(uuid.UUID(int=2))]),
                "paymenttermscode": rng.choice([1, 3, 4, None]),
                "creditlimit": rng.choice(["1000.125", "5.5", None, "7"]),
                "address1_country": rng.choice(["US", "usa", None, "Germany"]),
                "_parentaccountid_value": parent,
            }
        )
    for i in range(5, count, 23):  # a few rows the rules refuse, spread over the chunks
        source[i]["name"] = None
        source[i + 1]["paymenttermscode"] = 42
        source[i + 2]["creditlimit"] = "n/a"
    existing = [{"CustomerAccount": n} for n in numbers[::3] if n and len(n) <= 20]
    references = {
        "src_currencies": [{"transactioncurrencyid": USD, "isocurrencycode": "USD"}],
        "src_accounts": [{"accountid": ids[i], "accountnumber": numbers[i]} for i in range(count)],
        "tgt_customers": existing[: len(existing) // 2],  # the rest only this run creates
    }
    world: dict[str, Any] = {"source": source, "snapshot": [], "references": references}
    # the target holds what a first run wrote for every third row: some unchanged since,
    # some renamed in Sales, some of another company, one key twice
    task = task_of("accounts", "customers")
    written = plan_of(task, world, count).creates.to_dict("records")
    for i, row in enumerate(written[::3]):
        current = {column: row.get(column) for column in task.snapshot_columns}
        if i % 2:
            current["OrganizationName"] = "Old name"
        if i % 7 == 6:
            current["dataAreaId"] = "demf"
        world["snapshot"].append(current)
    world["snapshot"].append(dict(world["snapshot"][1]))
    return world


def plan_of(task: Task, world: dict[str, Any], rows: int, **extra: Any) -> Plan:
    references = world.get("references", {})
    inputs = planner.TransformInputs(
        source=staged(world["source"], task.source_columns),
        snapshot=staged(world.get("snapshot", []), task.snapshot_columns),
        references={
            r.name: staged(references.get(r.name, []), task.reference_columns(r.name))
            for r in task.references
        },
        legal_entity="usmf",
        upstream=extra.get("upstream", {}),
    )
    return build_plan(task, inputs, chunk_rows=rows)


def assert_same_plan(expected: Plan, actual: Plan) -> None:
    for name in ("creates", "updates", "unchanged", "rejects", "second_pass"):
        pd.testing.assert_frame_equal(getattr(expected, name), getattr(actual, name), obj=name)
    pd.testing.assert_frame_equal(expected.outcome(), actual.outcome(), obj="outcome")
    assert expected.counts() == actual.counts()


class TestSamePlanWhateverTheChunkSize:
    def test_accounts_with_duplicates_parents_updates_and_rejects(self) -> None:
        task = task_of("accounts", "customers")
        world = account_world(60)
        plans = [plan_of(task, world, rows) for rows in SIZES]
        for plan in plans[1:]:
            assert_same_plan(plans[0], plan)
        plan = plans[0]
        # the inputs exercise what spans chunks, or the comparison would prove little
        counts = plan.counts()
        assert counts == {
            "read": 60,
            "skipped": 0,
            "to_create": 24,
            "to_update": 5,
            "unchanged": 5,
            "rejected": 26,
            "second_pass": 4,
            "rounded": 0,
        }
        why = " | ".join(plan.rejects["__reason"])
        for expected in (
            "duplicate source key accountnumber='ACC-00001' (2 rows)",
            "source key accountnumber is empty",
            "at most 20 allowed",
            "has no entry in value map 'payment_terms'",
            "CreditLimit: 'n/a' is not a number",
            "required field OrganizationName is empty",
            "target has 2 rows with key",
            "dangling lookup InvoiceAccount",
        ):
            assert expected in why
        assert [p.stats["chunks"] for p in plans] == [60, 9, 1]
        assert [p.stats["buckets"] for p in plans] == [60, 9, 1]

    def test_one_order_invoiced_by_invoices_in_different_chunks(self) -> None:
        task = task_of("sales_invoices", "orders_invoiced")
        source = [
            {
                "InvoiceNumber": f"INV-{i}",
                "InvoiceDate": "2024-01-02T12:00:00Z",
                "LedgerVoucher": f"V{i}",
                "SalesOrderNumber": f"SO-{i % 4}",
                "dataAreaId": "usmf",
            }
            for i in range(30)
        ]
        snapshot = [
            {
                "salesorderid": str(uuid.UUID(int=50 + n)),
                "ordernumber": f"SO-{n}",
                "statecode": 0,
                "statuscode": 1,
            }
            for n in range(3)  # SO-3 does not exist: this task only updates
        ]
        # Every order is fully invoiced in F&O (only those are closed in Sales).
        references = {
            "src_orders": [{"SalesOrderNumber": f"SO-{n}", "SalesOrderStatus": "Invoiced"} for n in range(4)]
        }
        world = {"source": source, "snapshot": snapshot, "references": references}
        plans = [plan_of(task, world, rows) for rows in SIZES]
        for plan in plans[1:]:
            assert_same_plan(plans[0], plan)
        plan = plans[0]
        assert list(plan.updates["__ref"]) == ["SO-0", "SO-1", "SO-2"]
        assert plan.updates["__source_key"].iloc[0] == "INV-0|2024-01-02T12:00:00Z|V0"
        assert plan.skipped == 30 - 4  # every further invoice of an order collapsed into its first
        assert "SO-3" in reasons(plan)

    def test_conflicting_rows_for_one_target_key_in_different_chunks(self, mappings_dir: Path) -> None:
        write_template(
            mappings_dir,
            {
                "template": "mini",
                "source_system": "dataverse",
                "target_system": "fno",
                "tasks": [
                    {
                        "name": "customers",
                        "source": {"entity_set": "accounts", "key": ["accountnumber"]},
                        "target": {"entity_set": "CustomersV3", "key": ["dataAreaId", "CustomerAccount"]},
                        "fields": [
                            {"target": "CustomerAccount", "expr": "upper(left(accountnumber, 3))"},
                            {"target": "OrganizationName", "source": "name"},
                        ],
                    }
                ],
            },
        )
        task = task_of("mini", "customers", mappings_dir)
        source = [
            {"accountnumber": f"{prefix}-{i}", "name": "Same" if prefix == "abc" else f"N{i}"}
            for i in range(5)
            for prefix in ("abc", "xyz")
        ]
        plans = [plan_of(task, {"source": source}, rows) for rows in SIZES]
        for plan in plans[1:]:
            assert_same_plan(plans[0], plan)
        plan = plans[0]
        assert list(plan.creates["__ref"]) == ["ABC"]  # identical wishes: one create, the rest skipped
        assert plan.skipped == 4
        assert len(plan.rejects) == 5
        assert set(plan.rejects["__reason"]) == {"duplicate target key 'XYZ' (5 source rows disagree)"}

    def test_price_list_items_of_products_planned_in_this_run(self) -> None:
        task = task_of("products", "price_list_items")
        group, unit, price_a, price_z = (str(uuid.UUID(int=900 + n)) for n in range(4))
        references = {
            "tgt_currencies": [{"transactioncurrencyid": USD, "isocurrencycode": "USD"}],
            "tgt_unit_groups": [{"uomscheduleid": group, "name": "Default Unit"}],
            "tgt_units": [{"uomid": unit, "name": "Each", "_uomscheduleid_value": group}],
            "tgt_price_lists": [
                {"pricelevelid": price_z, "name": "Zeta", "_transactioncurrencyid_value": USD},
                {"pricelevelid": price_a, "name": "Alpha", "_transactioncurrencyid_value": USD},
            ],
            "tgt_products": [{"productid": str(uuid.UUID(int=77)), "productnumber": "P-0"}],
        }
        source = [
            {
                "ProductNumber": f"P-{i}",
                "CurrencyCode": "USD",
                "SalesUnitSymbol": "ea",
                "SalesPrice": f"{i}.5",
            }
            for i in range(25)
        ]
        # the products task planned every other product; the rest are nowhere
        upstream = pd.DataFrame(
            {
                "__ref": [f"p-{i}" for i in range(0, 25, 2)],
                "status": ["create"] * 13,
                "reason": [None] * 13,
                "id": [None] * 13,
                "__source_key": [f"P-{i}" for i in range(0, 25, 2)],
            }
        )
        world = {"source": source, "references": references}
        plans = [plan_of(task, world, rows, upstream={"products": upstream}) for rows in SIZES]
        for plan in plans[1:]:
            assert_same_plan(plans[0], plan)
        creates = by_ref(plans[0].creates)
        assert {row["pricelevelid"] for row in creates.values()} == {price_a}
        assert creates[f"{price_a}|{uuid.UUID(int=77)}"]["amount"] == 0.5  # found in the target
        planned = "3293e303-a1dc-51cb-8fb1-2aab2eb32131"  # the golden id of products | P-24
        assert creates[f"{price_a}|{planned}"]["productid"] == planned  # planned upstream
        assert "dangling lookup productid" in reasons(plans[0])["P-1"]


def test_duplicate_keys_in_different_chunks_are_both_rejected() -> None:
    task = task_of("accounts", "customers")
    source = [{"accountnumber": f"A-{i}", "name": "N"} for i in range(40)]
    source[3]["accountnumber"] = "dup-1"
    source[31]["accountnumber"] = "DUP-1"
    plan = plan_of(task, {"source": source}, 7)
    assert plan.stats["chunks"] == 6
    why = reasons(plan)
    assert why["dup-1"] == "duplicate source key accountnumber='dup-1' (2 rows): rejected, not merged"
    assert why["DUP-1"] == "duplicate source key accountnumber='DUP-1' (2 rows): rejected, not merged"
    assert len(plan.creates) == 38


def test_parent_in_another_chunk_is_found_in_the_second_pass() -> None:
    task = task_of("accounts", "customers")
    ids = [str(uuid.UUID(int=i + 1)) for i in range(20)]
    source = [{"accountnumber": f"A-{i}", "name": "N"} for i in range(20)]
    source[19]["_parentaccountid_value"] = ids[0]  # parent in the first chunk, child in the last
    references = {"src_accounts": [{"accountid": ids[i], "accountnumber": f"A-{i}"} for i in range(20)]}
    plan = plan_of(task, {"source": source, "references": references}, 5)
    assert plan.stats["chunks"] == 4
    second = by_ref(plan.second_pass)
    assert list(second) == ["A-19"]
    assert second["A-19"]["InvoiceAccount"] == "A-0"


def test_a_chunk_never_holds_more_than_chunk_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the rules see at once is bounded by the chunk, however many rows the task has."""
    seen: list[int] = []
    original = rules.RowRules.map_chunk

    def spy(self: Any, raw: Any, start: int) -> Any:
        seen.append(raw.num_rows)
        return original(self, raw, start)

    task = task_of("accounts", "customers")
    world = account_world(1000)
    monkeypatch.setattr(rules.RowRules, "map_chunk", spy)
    plan = plan_of(task, world, 64)
    assert max(seen) == 64
    assert sum(seen) == 1000
    assert plan.stats["chunks"] == len(seen) == 16
    assert plan.stats["buckets"] == 16
    assert plan.stats["largest_chunk"] == 64
    # a bucket holds the rows of its keys: about a chunk, never the task
    assert plan.stats["largest_bucket"] <= 2 * 64
    assert plan.stats["largest_snapshot_bucket"] <= 64


def test_chunk_rows_comes_from_the_option_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHUNK_ROWS_VARIABLE, raising=False)
    assert chunk_rows() == 50_000
    monkeypatch.setenv(CHUNK_ROWS_VARIABLE, "1234")
    assert chunk_rows() == 1234
    assert chunk_rows(99) == 99
    for wrong in ("0", "many"):
        monkeypatch.setenv(CHUNK_ROWS_VARIABLE, wrong)
        with pytest.raises(ValueError, match=CHUNK_ROWS_VARIABLE):
            chunk_rows()


# -- the staged transform ------------------------------------------------------------------------


def stage_accounts(root: ObjectStoragePath, run_id: str, world: dict[str, Any]) -> TaskStaging:
    """Write what extract and snapshot would have staged for accounts/customers."""
    task = task_of("accounts", "customers")
    staging = customers_staging(root, run_id)
    writes = [
        ("source", "rows", world["source"], task.source_columns),
        ("target", "rows", world["snapshot"], task.snapshot_columns),
    ]
    for reference in task.references:
        area = "source" if reference.side == "source" else "target"
        columns = task.reference_columns(reference.name)
        writes.append((area, f"ref-{reference.name}", world["references"].get(reference.name, []), columns))
    for area, name, rows, columns in writes:
        with staging.page_writer(area, name, columns) as writer:
            for start in range(0, max(len(rows), 1), 500):
                writer.write(staged(rows[start : start + 500], columns))
    return staging


def run_transform(root: ObjectStoragePath, run_id: str, unscoped: Path, rows: int) -> dict[str, Any]:
    return runner.transform(
        "accounts",
        "customers",
        legal_entity="usmf",
        run_id=run_id,
        staging_root=root,
        mappings_dir=SHIPPED,
        environment_file=unscoped,
        chunk_rows=rows,
    )


def files_of(staging: TaskStaging) -> dict[str, Any]:
    contents: dict[str, Any] = {}
    for name in ("creates", "updates", "unchanged", "second_pass", "planned"):
        with staging.path("plan", name).open("rb") as handle:
            contents[name] = pq.read_table(handle)
    with staging.path("deadletter", "rejected").open("rb") as handle:
        contents["rejected"] = pq.read_table(handle).drop_columns(["recorded_at", "run_id"])
    contents["summary"] = staging.read_json("plan", "summary")
    return contents


def test_staged_plan_files_do_not_depend_on_the_chunk_size(
    staging_root: ObjectStoragePath, unscoped: Path
) -> None:
    world = account_world(150)
    results = {}
    files = {}
    for rows in (7, 1_000_000):
        run_id = f"run-{rows}"
        staging = stage_accounts(staging_root, run_id, world)
        results[rows] = run_transform(staging_root, run_id, unscoped, rows)
        files[rows] = files_of(staging)
        assert not staging.list("work", "")  # the buckets are gone
    small, whole = files[7], files[1_000_000]
    for name, table in whole.items():
        assert small[name] == table, name
    assert results[7]["counts"] == results[1_000_000]["counts"]
    assert results[7]["chunking"]["chunks"] == 22
    assert results[1_000_000]["chunking"]["chunks"] == 1
    # the in-memory plan of the same inputs is the same plan
    plan = plan_of(task_of("accounts", "customers"), world, 1_000_000)
    assert whole["creates"].to_pylist() == plan.creates[[f.name for f in whole["creates"].schema]].to_dict(
        "records"
    )
    assert whole["summary"]["counts"] == plan.counts()
    rejected = json.loads(pd.Series(whole["rejected"].column("row").to_pylist()).dropna().iloc[0])
    assert set(rejected) == set(task_of("accounts", "customers").source_columns)


def test_python_memory_of_the_staged_transform_does_not_grow_with_the_rows(
    staging_root: ObjectStoragePath, unscoped: Path
) -> None:
    """Four times the rows, the same chunk: the peak of Python objects stays put.

    Without chunking the peak grew with the rows (every row of the source, the snapshot and
    the plan as Python objects at once).
    """
    peaks = {}
    for count in (500, 2_000):
        run_id = f"mem-{count}"
        stage_accounts(staging_root, run_id, account_world(count))
        tracemalloc.start()
        try:
            run_transform(staging_root, run_id, unscoped, 125)
            peaks[count] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[2_000] < 1.5 * peaks[500], peaks


KEYS = st.sampled_from(["A1", "a1", "B2", "C3", "c3", "D4", "", None])
NAMES = st.sampled_from([None, "", "Contoso", "Fabrikam"])
CREDITS = st.sampled_from([None, "0", "1.5", "1.50", "x"])
COMPANIES = st.sampled_from(["usmf", "USMF", "demf"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.lists(st.tuples(KEYS, NAMES, CREDITS), max_size=12),
    target=st.lists(st.tuples(KEYS, NAMES, CREDITS, COMPANIES), max_size=8),
    rows=st.integers(min_value=1, max_value=5),
)
def test_any_chunk_size_gives_the_plan_of_one_chunk(
    source: list[tuple[Any, ...]], target: list[tuple[Any, ...]], rows: int
) -> None:
    task = task_of("accounts", "customers")
    world = {
        "source": [{"accountnumber": k, "name": n, "creditlimit": c} for k, n, c in source],
        "snapshot": [
            {"dataAreaId": company, "CustomerAccount": k, "OrganizationName": n, "CreditLimit": c}
            for k, n, c, company in target
        ],
    }
    assert_same_plan(plan_of(task, world, 1_000_000), plan_of(task, world, rows))
