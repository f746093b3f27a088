"""The benchmark's cost model, and the fastest time it allows (the ceiling).

Symbols, per service (Dataverse or F&O):

* ``L`` per-request latency (ms): every request, read or write, waits this long;
* ``T`` per-operation server time (ms): one per written record, and for reads one per
  query plus one per started 100 rows returned (the emulators' charging rule);
* ``C`` requests in flight at once: the concurrency limit, or the service's recommended
  parallelism (``x-ms-dop-hint``) when it sends one, because Microsoft tells clients to
  follow it;
* ``R`` requests and ``E`` execution time per sliding window ``W`` (per user);
* ``B`` records per write request, at most ``B_max`` (1000 per Dataverse ``$batch`` or
  bulk message, 5000 per F&O ``$batch``); the ceiling picks the best ``B``.

A load that writes ``N`` records and reads ``M`` source rows in pages of ``P`` sends
``Q = ceil(N/B) + ceil(M/P)`` requests costing ``S = Q·L + N·T + reads·T`` of server time
on the services involved. No client can finish faster than

    t_min = max over services of min over B of max(
        S/C,                      every request occupies one of C slots for its whole time
        L + B·T,                  the longest single request
        (ceil(Q/R) - 1)·W,        at most R requests admitted in any window W
        (ceil(S/E) - 1)·W)        at most E of execution time recorded in any window W

The last bound is approximate by at most one window's overshoot: the emulators admit
a request while the window's recorded time is still below E. The ceiling ignores CPU
time of client and emulators: it is what the cost model allows, not what this machine
can do, and the report shows both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

BATCH_MAX = {"dataverse": 1000, "fno": 5000}
PAGE_MAX = {"dataverse": 5000, "fno": 10000}
ROWS_PER_READ_OPERATION = 100


@dataclass(frozen=True)
class ServiceCost:
    """Cost and limits of one service (the emulators' ``cost``, ``limits`` and ``dop_hint``)."""

    latency_ms: float
    operation_ms: float
    window_s: float
    max_requests: int
    max_execution_s: float
    max_concurrent: int
    dop_hint: int = 0
    limits_enabled: bool = True

    @property
    def concurrency(self) -> int:
        """C: the concurrency limit, or the recommended parallelism when the service sends one."""
        return min(self.max_concurrent, self.dop_hint) if self.dop_hint > 0 else self.max_concurrent

    def admin_patch(self) -> dict[str, Any]:
        """The emulators' config section for this service."""
        return {
            "cost": {"request_latency_ms": self.latency_ms, "operation_ms": self.operation_ms},
            "limits": {
                "enabled": self.limits_enabled,
                "window_seconds": self.window_s,
                "max_requests": self.max_requests,
                "max_execution_ms": self.max_execution_s * 1000,
                "max_concurrent": self.max_concurrent,
            },
            "dop_hint": self.dop_hint,
        }


@dataclass(frozen=True)
class CostModel:
    """Both services' costs; `name` and `description` go into the report."""

    name: str
    description: str
    dataverse: ServiceCost
    fno: ServiceCost

    def service(self, name: str) -> ServiceCost:
        return self.dataverse if name == "dataverse" else self.fno

    def emulator_config(self) -> dict[str, Any]:
        """The config file handed to ``python -m emulators serve --config``."""
        return {"dataverse": self.dataverse.admin_patch(), "fno": self.fno.admin_patch()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Dataverse's documented per-user rates (6000 requests and 1200 s of execution per 300 s,
#: 52 concurrent) with the window compressed 10x: the rates are unchanged, so a benchmark of
#: minutes reaches the steady state a production load of hours lives in.
SCALED = CostModel(
    name="scaled-limits",
    description=(
        "Documented service-protection rates, window compressed 10x (600 requests and 120 s of "
        "execution time per 30 s, 52 concurrent); server time per written record in the tens of "
        "milliseconds, as bulk writes to Dataverse and F&O take in practice"
    ),
    dataverse=ServiceCost(
        latency_ms=20.0,
        operation_ms=10.0,
        window_s=30.0,
        max_requests=600,
        max_execution_s=120.0,
        max_concurrent=52,
        dop_hint=4,
    ),
    fno=ServiceCost(
        latency_ms=30.0,
        operation_ms=10.0,
        window_s=30.0,
        max_requests=600,
        max_execution_s=120.0,
        max_concurrent=52,
    ),
)

#: No simulated cost and no limits: only CPU, for the memory measurement at large scale.
FREE = CostModel(
    name="free",
    description="no simulated server time and no service-protection limits (memory runs)",
    dataverse=ServiceCost(0.0, 0.0, 300.0, 6000, 1200.0, 52, dop_hint=4, limits_enabled=False),
    fno=ServiceCost(0.0, 0.0, 300.0, 6000, 1200.0, 52, limits_enabled=False),
)

MODELS = {model.name: model for model in (SCALED, FREE)}


@dataclass
class Workload:
    """What a load must do on one service: records written, source rows read."""

    service: str
    written: int = 0
    read_rows: int = 0


@dataclass
class Bound:
    """The ceiling on one service and which term of the formula set it."""

    service: str
    seconds: float
    batch_size: int
    requests: int
    server_seconds: float
    terms: dict[str, float] = field(default_factory=dict)

    @property
    def binding(self) -> str:
        return max(self.terms, key=lambda name: self.terms[name])


def _read_cost(service: str, cost: ServiceCost, rows: int) -> tuple[int, float]:
    """Requests and server seconds to read ``rows`` in full pages."""
    if rows <= 0:
        return 0, 0.0
    page = PAGE_MAX[service]
    pages = math.ceil(rows / page)
    operations = pages + math.ceil(rows / ROWS_PER_READ_OPERATION)
    return pages, (pages * cost.latency_ms + operations * cost.operation_ms) / 1000


def service_bound(service: str, cost: ServiceCost, workload: Workload) -> Bound:
    """The fastest the cost model lets one service absorb ``workload`` (see module docstring)."""
    read_requests, read_seconds = _read_cost(service, cost, workload.read_rows)
    best: Bound | None = None
    n = workload.written
    batch_sizes = range(1, BATCH_MAX[service] + 1) if n else [1]
    for batch in batch_sizes:
        write_requests = math.ceil(n / batch) if n else 0
        requests = write_requests + read_requests
        if requests == 0:
            return Bound(service, 0.0, batch, 0, 0.0, {"none": 0.0})
        server = (write_requests * cost.latency_ms + n * cost.operation_ms) / 1000 + read_seconds
        terms = {
            "concurrency (S/C)": server / cost.concurrency,
            "longest request (L+B*T)": (cost.latency_ms + min(batch, max(n, 1)) * cost.operation_ms) / 1000,
        }
        if cost.limits_enabled:
            terms["request count ((ceil(Q/R)-1)*W)"] = (math.ceil(requests / cost.max_requests) - 1) * (
                cost.window_s
            )
            terms["execution time ((ceil(S/E)-1)*W)"] = (
                math.ceil(server / cost.max_execution_s) - 1
            ) * cost.window_s
        seconds = max(terms.values())
        if best is None or seconds < best.seconds - 1e-9:
            best = Bound(service, seconds, batch, requests, server, terms)
    assert best is not None
    return best


def ceiling(model: CostModel, workloads: list[Workload]) -> dict[str, Any]:
    """The template's ceiling: the slowest service's bound (services work in parallel)."""
    bounds = [service_bound(w.service, model.service(w.service), w) for w in workloads]
    slowest = max(bounds, key=lambda b: b.seconds)
    return {
        "seconds": round(slowest.seconds, 3),
        "binding_service": slowest.service,
        "binding_term": slowest.binding,
        "services": {
            b.service: {
                "seconds": round(b.seconds, 3),
                "batch_size": b.batch_size,
                "requests": b.requests,
                "server_seconds": round(b.server_seconds, 3),
                "terms": {k: round(v, 3) for k, v in b.terms.items()},
            }
            for b in bounds
        },
    }


def naive_projection(cost: ServiceCost, records: int, seconds_per_request: float) -> float:
    """Time a sequential one-request-per-record loader needs for ``records``.

    It sends back to back at its measured pace until the request limit stops it, then
    waits for the window to free up: ``(ceil(n/R) - 1)·W + rest·t`` when ``R·t < W``.
    """
    if records <= 0:
        return 0.0
    if not cost.limits_enabled or cost.max_requests * seconds_per_request >= cost.window_s:
        return records * seconds_per_request
    full_windows = math.ceil(records / cost.max_requests) - 1
    rest = records - full_windows * cost.max_requests
    return full_windows * cost.window_s + rest * seconds_per_request
