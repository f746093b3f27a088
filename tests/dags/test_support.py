"""The DAG support module without a scheduler: windows, company selection, the run-order
sensor's decisions, asset naming and the per-company report."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from prospect_to_cash.dags import RunOrderSensor, SyncStep, TemplateSpec, entity_asset, entity_uri
from prospect_to_cash.dags.steps import report_step, select_company_pairs
from prospect_to_cash.operators.common import sync_window
from prospect_to_cash.operators.mapping import asset_event_extra
from prospect_to_cash.sensors.run_order import SameIntervalTrigger, candidate_dates
from prospect_to_cash.sync.staging import safe_segment

UTC = timezone.utc
D1, D2 = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)


# -- windows ------------------------------------------------------------------------------------


def test_window_is_the_data_interval_by_default() -> None:
    assert sync_window(D1, D2) == {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}


def test_window_params_override_either_end() -> None:
    assert sync_window(D1, D2, "2026-10-01T00:00:00Z", None) == {
        "start": "2026-10-01T00:00:00Z",
        "end": "2026-11-02T00:00:00Z",
    }
    assert sync_window(D1, D2, None, "2026-11-01T12:00:00+02:00")["end"] == "2026-11-01T10:00:00Z"


def test_window_without_logical_date_is_open() -> None:
    assert sync_window(None, None) == {"start": None, "end": None}


@pytest.mark.parametrize(
    ("start", "end"),
    [("2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z"), ("not a date", None), (D2, D2)],
)
def test_bad_windows_fail_without_retry(start: Any, end: Any) -> None:
    with pytest.raises(AirflowFailException):
        sync_window(D1, D2, start, end)


# -- company pairs ------------------------------------------------------------------------------


@pytest.fixture
def three_companies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = tmp_path / "environment.override.yaml"
    override.write_text(
        yaml.safe_dump(
            {
                "company_pairs": [
                    {"legal_entity": "usmf", "business_unit": "Contoso US"},
                    {"legal_entity": "demf", "business_unit": "Contoso Europe"},
                    {"legal_entity": "gbsi", "business_unit": None},
                ]
            }
        )
    )
    monkeypatch.setenv("P2C_ENVIRONMENT_FILE", str(override))


def test_all_configured_pairs_by_default(three_companies: None) -> None:
    pairs = select_company_pairs([])
    assert [p["legal_entity"] for p in pairs] == ["usmf", "demf", "gbsi"]
    assert pairs[0]["business_unit"] == "Contoso US"
    json.dumps(pairs)  # goes through XCom


def test_companies_param_selects_a_subset_case_insensitively(three_companies: None) -> None:
    assert [p["legal_entity"] for p in select_company_pairs(["DEMF", "gbsi"])] == ["demf", "gbsi"]


def test_unknown_company_fails_instead_of_syncing_less(three_companies: None) -> None:
    with pytest.raises(AirflowFailException, match="xxmf"):
        select_company_pairs(["usmf", "xxmf"])


def test_shipped_environment_pairs_usmf_and_demf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("P2C_ENVIRONMENT_FILE", raising=False)
    assert [p["legal_entity"] for p in select_company_pairs(None)] == ["usmf", "demf"]


# -- run order sensor ---------------------------------------------------------------------------


def _context(**values: Any) -> dict[str, Any]:
    base = {
        "params": {"wait_for_upstream": True},
        "logical_date": D1,
        "data_interval_start": D1,
        "data_interval_end": D2,
        "ti": SimpleNamespace(),
        "dag_run": SimpleNamespace(run_after=D2),
    }
    base.update(values)
    return base


class FakeRuns:
    """The Task SDK's ``get_dr_count`` over a dict {(dag_id, logical_date): state}."""

    def __init__(self, runs: dict[tuple[str, datetime], str] | None = None) -> None:
        self.runs = runs or {}
        self.asked: list[tuple[str, tuple[datetime, ...], tuple[str, ...]]] = []

    def __call__(self, dag_id: str, logical_dates: list[datetime], states: list[str], **_: Any) -> int:
        self.asked.append((dag_id, tuple(logical_dates), tuple(states)))
        return sum(
            1
            for (d, date), state in self.runs.items()
            if d == dag_id and date in logical_dates and state in states
        )

    def ti(self) -> SimpleNamespace:
        return SimpleNamespace(get_dr_count=self, get_first_reschedule_date=lambda _: None)


def test_sensor_defers_until_the_upstream_run_of_the_same_data_interval() -> None:
    runs = FakeRuns({("p2c_accounts", D2): "success"})  # a *later* interval's scheduled run
    sensor = RunOrderSensor(task_id="wait_for_p2c_accounts", upstream_dag_id="p2c_accounts")
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(_context(ti=runs.ti()))
    trigger = deferred.value.trigger
    assert isinstance(trigger, SameIntervalTrigger)
    assert (trigger.upstream_dag_id, trigger.logical_dates) == ("p2c_accounts", [D1])
    assert deferred.value.timeout.total_seconds() == sensor.timeout


def test_sensor_does_not_defer_when_the_upstream_already_succeeded() -> None:
    runs = FakeRuns({("p2c_accounts", D1): "success"})
    sensor = RunOrderSensor(task_id="wait_for_p2c_accounts", upstream_dag_id="p2c_accounts")
    assert sensor.execute(_context(ti=runs.ti())) is None


def test_manual_run_accepts_the_scheduled_or_a_manual_upstream_of_its_interval() -> None:
    # a manual run with logical date D2 covers [D1, D2), like the scheduled run at D1
    manual = _context(logical_date=D2, data_interval_start=D1)
    assert candidate_dates(D2, D1) == [D1, D2]
    sensor = RunOrderSensor(task_id="w", upstream_dag_id="p2c_accounts", deferrable=False)
    for upstream_date in (D1, D2):
        runs = FakeRuns({("p2c_accounts", upstream_date): "success"})
        assert sensor.poke({**manual, "ti": runs.ti()}) is True
    assert sensor.poke({**manual, "ti": FakeRuns().ti()}) is False
    # a scheduled run (logical date == interval start) only accepts that one date
    assert candidate_dates(D1, D1) == [D1]


def test_sensor_switched_off_by_param_succeeds_without_looking() -> None:
    runs = FakeRuns()
    sensor = RunOrderSensor(task_id="wait_for_p2c_accounts", upstream_dag_id="p2c_accounts")
    assert sensor.execute(_context(params={"wait_for_upstream": False}, ti=runs.ti())) is None
    assert runs.asked == []


def test_sensor_without_logical_date_explains_instead_of_waiting_forever() -> None:
    sensor = RunOrderSensor(task_id="wait_for_p2c_accounts", upstream_dag_id="p2c_accounts")
    with pytest.raises(AirflowFailException, match="wait_for_upstream=false"):
        sensor.execute(_context(logical_date=None, data_interval_start=None))


@pytest.mark.parametrize("deferrable", [True, False])
def test_sensor_fails_fast_without_retry_when_upstream_failed(deferrable: bool) -> None:
    runs = FakeRuns({("p2c_accounts", D1): "failed"})
    sensor = RunOrderSensor(
        task_id="wait_for_p2c_accounts", upstream_dag_id="p2c_accounts", deferrable=deferrable
    )
    with pytest.raises(AirflowFailException, match="p2c_accounts failed"):
        sensor.execute(_context(ti=runs.ti()))


def test_trigger_completion_events() -> None:
    sensor = RunOrderSensor(task_id="wait_for_p2c_accounts", upstream_dag_id="p2c_accounts")
    sensor.execute_complete(_context(), {"status": "success"})
    with pytest.raises(AirflowFailException, match="p2c_accounts failed"):
        sensor.execute_complete(_context(), {"status": "failed"})
    with pytest.raises(AirflowFailException, match="unexpected"):
        sensor.execute_complete(_context(), None)


def test_rescheduling_sensor_polls_until_success() -> None:
    runs = FakeRuns()
    sensor = RunOrderSensor(
        task_id="wait_for_p2c_accounts", upstream_dag_id="p2c_accounts", deferrable=False, poke_interval=5
    )
    context = _context(ti=runs.ti())
    assert sensor.poke(context) is False
    runs.runs[("p2c_accounts", D1)] = "running"
    assert sensor.poke(context) is False
    runs.runs[("p2c_accounts", D1)] = "success"
    assert sensor.poke(context) is True
    assert {dates for _, dates, _ in runs.asked} == {(D1,)}


def test_trigger_polls_in_the_triggerer_and_serializes(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    runs = FakeRuns()
    calls = {"n": 0}

    def count(**kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] > 4:  # the upstream finishes after two polls
            runs.runs[("p2c_accounts", D1)] = "success"
        return runs(**kwargs)

    monkeypatch.setattr(RuntimeTaskInstance, "get_dr_count", staticmethod(count))
    trigger = SameIntervalTrigger("p2c_accounts", [D1, D2], poke_interval=0.01)
    classpath, kwargs = trigger.serialize()
    assert classpath == "prospect_to_cash.sensors.run_order.SameIntervalTrigger"
    rebuilt = SameIntervalTrigger(**kwargs)

    async def first_event() -> Any:
        async for event in rebuilt.run():
            return event.payload
        return None

    assert asyncio.run(first_event()) == {"status": "success"}


def test_run_order_timeouts_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2C_RUN_ORDER_POKE_SECONDS", "3")
    monkeypatch.setenv("P2C_RUN_ORDER_TIMEOUT_SECONDS", "90")
    sensor = RunOrderSensor(task_id="w", upstream_dag_id="p2c_accounts")
    assert (sensor.poke_interval, sensor.timeout) == (3, 90)
    monkeypatch.setenv("P2C_RUN_ORDER_POKE_SECONDS", "soon")
    with pytest.raises(ValueError, match="P2C_RUN_ORDER_POKE_SECONDS"):
        RunOrderSensor(task_id="w", upstream_dag_id="p2c_accounts")


# -- assets -------------------------------------------------------------------------------------


def test_entity_assets_name_system_connection_and_entity_set() -> None:
    asset = entity_asset("fno", "CustomersV3")
    assert asset.uri == "fno://dynamics_fno_default/CustomersV3"
    assert asset.name == asset.uri
    assert entity_uri("dataverse", "accounts", "prod_sales") == "dataverse://prod_sales/accounts"
    with pytest.raises(ValueError, match="unknown system"):
        entity_uri("sap", "accounts")
    with pytest.raises(ValueError, match="entity set"):
        entity_uri("fno", "data/CustomersV3")


# -- report -------------------------------------------------------------------------------------


def _load_result(task: str, **counts: int) -> dict[str, Any]:
    full = dict.fromkeys(("read", "skipped", "created", "updated", "unchanged", "rejected", "failed"), 0)
    full.update(counts)
    return {
        "template": "sales_orders_sales_to_fno",
        "task": task,
        "legal_entity": "usmf",
        "run_id": "scheduled__2026-11-01T00:00:00+00:00",
        "dry_run": False,
        "window": {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"},
        "counts": full,
        "deadletter": {
            "rejected": f"file:///s/{task}/deadletter/rejected.parquet",
            "failed": None,
            "parked": None,
        },
    }


def _orders_spec(tmp_path: Path) -> TemplateSpec:
    return TemplateSpec(
        dag_id="p2c_sales_orders_sales_to_fno",
        template="sales_orders_sales_to_fno",
        title="Sales orders (Sales to Fin and Ops)",
        source_system="dataverse",
        target_system="fno",
        steps=(SyncStep("order_headers", "salesorders", "CDSSalesOrderHeaders"),),
        extra_options={"staging_root": str(tmp_path)},
    )


def test_report_sums_counts_writes_summary_and_lists_dead_letters(tmp_path: Path) -> None:
    spec = _orders_spec(tmp_path)
    loads = [
        _load_result("order_headers", read=3, created=2, rejected=1),
        _load_result("order_lines", read=9, created=6, rejected=3),
    ]
    result = report_step(
        spec, {"legal_entity": "usmf"}, loads, run_id=loads[0]["run_id"], dry_run=False, max_rejected="4"
    )
    assert result["counts"]["read"] == 12
    assert result["counts"]["created"] == 8
    assert result["counts"]["rejected"] == 4
    assert [(d["task"], d["kind"], d["rows"]) for d in result["dead_letters"]] == [
        ("order_headers", "rejected", 1),
        ("order_lines", "rejected", 3),
    ]
    summary_path = Path(result["summary"].removeprefix("file://"))
    assert summary_path.is_relative_to(tmp_path)
    summary = json.loads(summary_path.read_text())
    assert summary["counts"] == result["counts"]
    assert set(summary["tasks"]) == {"order_headers", "order_lines"}
    json.dumps(result)  # XCom-safe


def test_report_fails_without_retries_above_the_threshold_after_writing_the_summary(tmp_path: Path) -> None:
    spec = _orders_spec(tmp_path)
    loads = [
        _load_result("order_headers", read=3, created=2, rejected=1),
        _load_result("order_lines", read=9, created=6, rejected=3),
    ]
    run_id = loads[0]["run_id"]
    with pytest.raises(AirflowFailException, match=r"4 rejected of 12 read \(max_rejected 20%\)"):
        report_step(spec, {"legal_entity": "usmf"}, loads, run_id=run_id, dry_run=False)
    with pytest.raises(AirflowFailException, match=r"4 rejected of 12 read \(max_rejected 3\)"):
        report_step(spec, {"legal_entity": "usmf"}, loads, run_id=run_id, dry_run=False, max_rejected="3")
    summary = tmp_path / "sales_orders_sales_to_fno" / safe_segment(run_id) / "usmf" / "summary.json"
    assert json.loads(summary.read_text())["counts"]["rejected"] == 4  # written before failing
    allowed = report_step(
        spec, {"legal_entity": "usmf"}, loads, run_id=run_id, dry_run=False, max_rejected="34%"
    )
    assert allowed["counts"]["rejected"] == 4
    dry = report_step(spec, {"legal_entity": "usmf"}, loads, run_id=run_id, dry_run=True, max_rejected="0")
    assert dry["dry_run"] is True


def test_asset_event_extra_is_small_and_has_counts_and_dead_letters() -> None:
    extra = asset_event_extra({**_load_result("order_headers", created=2), "plan": "x", "outcome": "y"})
    assert set(extra) == {
        "template",
        "task",
        "legal_entity",
        "run_id",
        "dry_run",
        "window",
        "full_refresh",
        "counts",
        "deadletter",
    }
    assert extra["counts"]["created"] == 2


def test_a_scheduled_window_starts_at_the_mark_unless_its_start_is_explicit() -> None:
    from prospect_to_cash.operators.common import change_window
    from prospect_to_cash.sync.contracts import Window

    start, end = "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"
    assert change_window(start, end, since_watermark=True) == Window(start, end, False, True)
    explicit = change_window(start, end, "2026-10-01T00:00:00Z", since_watermark=True)
    assert explicit == Window("2026-10-01T00:00:00Z", end, False, False)
