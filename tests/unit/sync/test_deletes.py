"""Source deletes of a source read whole (F&O): a product that left F&O is reported by
default, retired in Sales under ``deactivate``, and held above ``max_source_deletes``."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from prospect_to_cash.sync.deletes import SourceIndex
from tests.unit.sync.builders import SHIPPED, product_services, run_in_memory

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import ObjectStoragePath

    from tests.unit.sync.memory_service import MemoryService


def run(sales: MemoryService, fno: MemoryService, root: ObjectStoragePath, run_id: str, **kw: Any) -> Any:
    return run_in_memory("products", sales, fno, root, run_id, **kw)


def deletes(root: ObjectStoragePath, run_id: str) -> list[tuple[str, str]]:
    with (root / "products" / run_id / "usmf" / "products" / "plan" / "deletes.parquet").open("rb") as handle:
        frame = pq.read_table(handle).to_pandas()
    return list(zip(frame["source_key"], frame["action"], strict=True))


def counts_of(result: Any) -> tuple[int, int, int]:
    counts = result["tasks"]["products"]["counts"]
    return counts["source_deleted"], counts["deactivated"], counts["deletes_held"]


def test_a_product_gone_from_fno_is_reported_then_retired_within_the_cap(
    staging_root: ObjectStoragePath, tmp_path: Path
) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(SHIPPED, mappings)
    sales, fno = product_services()
    run(sales, fno, staging_root, "day-1", mappings_dir=mappings)
    index = SourceIndex(staging_root, "products", "usmf", "products").read()
    assert sorted(index["source_key"]) == ["P-1", "P-2", "P-3"]

    products = fno.tables["SellableReleasedProducts"].rows
    products[:] = [row for row in products if row["ProductNumber"] != "P-3"]
    assert counts_of(run(sales, fno, staging_root, "day-2", mappings_dir=mappings)) == (1, 0, 0)
    assert deletes(staging_root, "day-2") == [("P-3", "reported")]
    state = {r["productnumber"]: r.get("statecode") for r in sales.tables["products"].rows}
    assert state["P-3"] != 1
    # reported once: the index forgets it, so the next run does not report it again
    assert counts_of(run(sales, fno, staging_root, "day-3", mappings_dir=mappings)) == (0, 0, 0)

    text = (mappings / "products.yaml").read_text().replace("policy: report", "policy: deactivate", 1)
    (mappings / "products.yaml").write_text(text)
    products[:] = [row for row in products if row["ProductNumber"] != "P-2"]
    held = run(sales, fno, staging_root, "day-4", mappings_dir=mappings, max_source_deletes="0")
    assert counts_of(held) == (1, 0, 1)
    assert deletes(staging_root, "day-4") == [("P-2", "held")]
    retired = run(sales, fno, staging_root, "day-5", mappings_dir=mappings, max_source_deletes="1")
    assert counts_of(retired) == (1, 1, 0)
    assert deletes(staging_root, "day-5") == [("P-2", "deactivated")]
    rows = {r["productnumber"]: r for r in sales.tables["products"].rows}
    assert (rows["P-2"]["statecode"], rows["P-2"]["statuscode"]) == (1, 2)
    assert rows["P-1"].get("statecode") != 1
