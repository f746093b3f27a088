"""A windowed run's snapshot of document lines: by their whole key (order number and line
number), and the F&O header read only for the lines F&O does not hold yet."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from prospect_to_cash.sync import reading, target_scope
from prospect_to_cash.sync.runner import SyncHooks
from prospect_to_cash.sync.staging import TaskStaging, text_table
from tests.unit.sync.builders import staged, task_of
from tests.unit.sync.memory_service import MemoryService, MemoryTable

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

pytestmark = pytest.mark.usefixtures("unscoped_environment")  # one pair, no business-unit scoping

TEMPLATE, TASK = "sales_orders_sales_to_fno", "order_lines"
LINE = "LineCreationSequenceNumber"
ORDERS = {str(uuid.uuid4()): number for number in ("SO-1", "SO-2", "SO-3")}


def _line(order: str, sequence: int) -> dict[str, Any]:
    by_number = {number: order_id for order_id, number in ORDERS.items()}
    return {
        "salesorderdetailid": str(uuid.uuid4()),
        "_salesorderid_value": by_number[order],
        "sequencenumber": sequence,
    }


def _fno_line(order: str, sequence: int) -> dict[str, Any]:
    return {"dataAreaId": "usmf", "SalesOrderNumber": order, "LineCreationSequenceNumber": sequence}


def _stage_extract(root: ObjectStoragePath, lines: list[dict[str, Any]]) -> TaskStaging:
    """What a windowed extract leaves: the changed lines and their Sales headers."""
    task = task_of(TEMPLATE, TASK)
    staging = TaskStaging(root, TEMPLATE, "run-1", "usmf", TASK)
    staging.write_table("source", "rows", text_table(staged(lines, task.source_columns)))
    orders = [{"salesorderid": i, "ordernumber": n} for i, n in ORDERS.items()]
    staging.write_table(
        "source", "ref-src_orders", text_table(staged(orders, task.reference_columns("src_orders")))
    )
    for name in ("src_products", "src_units"):  # no product or unit named: nothing to read
        staging.write_table("source", f"ref-{name}", text_table(staged([], task.reference_columns(name))))
    staging.write_json("source", "window", {"start": "2024-01-01T00:00:00Z", "full_refresh": False})
    return staging


def _fno(lines: list[dict[str, Any]], headers: list[str]) -> MemoryService:
    return MemoryService(
        "fno",
        {
            "CDSSalesOrderLines": MemoryTable(key=("dataAreaId", "SalesOrderNumber", LINE), rows=lines),
            "CDSSalesOrderHeaders": MemoryTable(
                key=("dataAreaId", "SalesOrderNumber"),
                rows=[{"dataAreaId": "usmf", "SalesOrderNumber": n} for n in headers],
            ),
            "SellableReleasedProducts": MemoryTable(key=("dataAreaId", "ProductNumber")),
        },
    )


def _snapshot(root: ObjectStoragePath, fno: MemoryService) -> None:
    sales = MemoryService("dataverse", {})
    reading.snapshot(
        TEMPLATE, TASK, legal_entity="usmf", run_id="run-1", staging_root=root, hooks=SyncHooks(sales, fno)
    )


def test_lines_are_read_by_their_whole_key_and_headers_only_for_lines_fno_lacks(
    staging_root: ObjectStoragePath,
) -> None:
    fno = _fno(
        [_fno_line(order, n) for order in ("SO-1", "SO-2") for n in (1, 2, 3, 4)], ["SO-1", "SO-2", "SO-3"]
    )
    # two changed lines of SO-1, one of SO-2 and a new line of SO-3, which F&O lacks
    staging = _stage_extract(
        staging_root, [_line("SO-1", 2), _line("SO-2", 3), _line("SO-1", 4), _line("SO-3", 1)]
    )
    _snapshot(staging_root, fno)

    assert fno.reads == [
        (
            "CDSSalesOrderLines",
            f"((SalesOrderNumber eq 'SO-1' and ({LINE} eq 2 or {LINE} eq 4))"
            f" or (SalesOrderNumber eq 'SO-2' and {LINE} eq 3))",
        ),  # grouped by order (3 orders, 4 line numbers); three rows a chunk (keys_per_read)
        ("CDSSalesOrderLines", f"(SalesOrderNumber eq 'SO-3' and {LINE} eq 1)"),
        ("CDSSalesOrderHeaders", "SalesOrderNumber eq 'SO-3'"),  # SO-1 and SO-2 have lines in F&O
    ]
    rows = staging.read_frame("target", "rows")
    assert sorted(zip(rows["SalesOrderNumber"], rows["LineCreationSequenceNumber"], strict=True)) == [
        ("SO-1", "2"),
        ("SO-1", "4"),
        ("SO-2", "3"),
    ]
    assert sorted(staging.read_frame("target", "ref-tgt_headers")["SalesOrderNumber"]) == [
        "SO-1",
        "SO-2",
        "SO-3",
    ]


def test_above_the_key_limit_lines_are_read_by_order_number_after_their_headers(
    staging_root: ObjectStoragePath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More (order, line) keys than `SCOPED_READ_MAX_KEYS`: the headers first, then every
    line of their orders by order number (fewer, longer requests), as before row keys."""
    monkeypatch.setattr(target_scope, "SCOPED_READ_MAX_KEYS", 3)
    fno = _fno(
        lines=[_fno_line(order, n) for order in ("SO-1", "SO-2") for n in (1, 2)], headers=["SO-1", "SO-2"]
    )
    _stage_extract(staging_root, [_line("SO-1", 1), _line("SO-1", 2), _line("SO-2", 1), _line("SO-2", 2)])
    _snapshot(staging_root, fno)

    assert fno.reads == [
        ("CDSSalesOrderHeaders", "(SalesOrderNumber eq 'SO-1' or SalesOrderNumber eq 'SO-2')"),
        ("CDSSalesOrderLines", "(SalesOrderNumber eq 'SO-1' or SalesOrderNumber eq 'SO-2')"),
    ]


def test_a_line_whose_header_fno_lacks_finds_no_header(staging_root: ObjectStoragePath) -> None:
    """No line in F&O proves SO-3's header, so it is asked for: absent, the lookup finds
    nothing and the transform holds the line back (as on a full refresh)."""
    fno = _fno([_fno_line("SO-1", 1)], ["SO-1"])
    staging = _stage_extract(staging_root, [_line("SO-1", 1), _line("SO-3", 1)])
    _snapshot(staging_root, fno)

    assert [s for s, _ in fno.reads] == ["CDSSalesOrderLines", "CDSSalesOrderHeaders"]
    assert fno.reads[1] == ("CDSSalesOrderHeaders", "SalesOrderNumber eq 'SO-3'")
    assert list(staging.read_frame("target", "ref-tgt_headers")["SalesOrderNumber"]) == ["SO-1"]
