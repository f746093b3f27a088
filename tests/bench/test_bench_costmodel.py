"""The ceiling formula and the naive projection, checked against hand-computed cases."""

from __future__ import annotations

import pytest

from bench.costmodel import (
    FREE,
    SCALED,
    CostModel,
    ServiceCost,
    Workload,
    ceiling,
    naive_projection,
    service_bound,
)

DATAVERSE = ServiceCost(
    latency_ms=20.0,
    operation_ms=10.0,
    window_s=30.0,
    max_requests=600,
    max_execution_s=120.0,
    max_concurrent=52,
    dop_hint=4,
)


def test_concurrency_against_longest_request_picks_the_balanced_batch() -> None:
    # 1000 records: S/C = (ceil(1000/B)*0.02 + 10)/4 falls with B, L+B*T rises; equal at B = 250.
    bound = service_bound("dataverse", DATAVERSE, Workload("dataverse", written=1000))
    assert bound.batch_size == 250
    assert bound.seconds == pytest.approx(2.52)
    assert bound.requests == 4


def test_dop_hint_caps_concurrency_and_execution_limit_binds_without_it() -> None:
    # 100,000 records: S ~ 1000 s of server time.
    with_hint = service_bound("dataverse", DATAVERSE, Workload("dataverse", written=100_000))
    assert with_hint.binding == "concurrency (S/C)"
    assert with_hint.seconds == pytest.approx(with_hint.server_seconds / 4)

    no_hint = ServiceCost(**{**DATAVERSE.__dict__, "dop_hint": 0})
    bound = service_bound("dataverse", no_hint, Workload("dataverse", written=100_000))
    assert bound.binding == "execution time ((ceil(S/E)-1)*W)"
    assert bound.seconds == pytest.approx(8 * 30.0)  # ceil(~1000.4 / 120) - 1 = 8 windows


def test_request_limit_binds_for_tiny_batches_only_when_forced() -> None:
    tiny = ServiceCost(1.0, 0.0, 30.0, 10, 1e9, 52)
    bound = service_bound("fno", tiny, Workload("fno", written=100))
    # with B up to 5000 one request suffices: no window wait
    assert bound.terms["request count ((ceil(Q/R)-1)*W)"] == 0.0


def test_template_ceiling_is_the_slowest_service() -> None:
    result = ceiling(SCALED, [Workload("dataverse", written=20_000), Workload("fno", read_rows=10_000)])
    assert result["binding_service"] == "dataverse"
    assert result["seconds"] == max(s["seconds"] for s in result["services"].values())
    assert result["services"]["fno"]["requests"] == 1  # one 10,000-row page


def test_free_model_has_no_ceiling_beyond_zero() -> None:
    result = ceiling(FREE, [Workload("dataverse", written=1000)])
    assert result["seconds"] == 0.0


@pytest.mark.parametrize(
    ("records", "pace", "expected"),
    [
        (600, 0.03, 18.0),  # within one window: no wait
        (1000, 0.03, 30.0 + 400 * 0.03),  # blocked once until the window frees up
        (1000, 0.06, 60.0),  # R*t >= W: the limit never bites
        (0, 0.03, 0.0),
    ],
)
def test_naive_projection(records: int, pace: float, expected: float) -> None:
    assert naive_projection(DATAVERSE, records, pace) == pytest.approx(expected)


def test_emulator_config_round_trips_the_documented_limits() -> None:
    config = SCALED.emulator_config()
    assert config["dataverse"]["limits"]["max_execution_ms"] == 120_000
    assert config["dataverse"]["dop_hint"] == 4
    assert config["fno"]["cost"] == {"request_latency_ms": 30.0, "operation_ms": 10.0}
    assert isinstance(SCALED, CostModel)
