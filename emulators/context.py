"""What a service app gets from the core: storage, settings, identity and the cost meter.

`emulators.dataverse.app.create_app(ctx)` and `emulators.fno.app.create_app(ctx)` receive
one `ServiceContext`. During a request the protection middleware binds a `RequestCharge`
to a context variable; the app calls `charge_operations(n)` (or `ctx.charge_operations`)
for the server work it does, and the middleware turns the charge into response delay and
execution time that counts toward the service-protection limit.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulators.config import ConfigStore, ServiceConfig
    from emulators.schema.model import Catalog
    from emulators.store import Store


@dataclass
class RequestCharge:
    """Simulated server time of the request being processed."""

    operation_ms: float
    caller: dict[str, Any] = field(default_factory=dict)  # verified token claims
    operations: int = 0
    charged_ms: float = 0.0  # total simulated server time of this request
    pending_ms: float = 0.0  # charged but not yet waited for

    def charge(self, operations: int) -> float:
        cost = max(operations, 0) * self.operation_ms
        self.operations += max(operations, 0)
        self.charged_ms += cost
        self.pending_ms += cost
        return cost

    def take_pending(self) -> float:
        pending, self.pending_ms = self.pending_ms, 0.0
        return pending


_current_charge: contextvars.ContextVar[RequestCharge | None] = contextvars.ContextVar(
    "emulators_request_charge", default=None
)


def bind_charge(charge: RequestCharge) -> contextvars.Token[RequestCharge | None]:
    return _current_charge.set(charge)


def unbind_charge(token: contextvars.Token[RequestCharge | None]) -> None:
    _current_charge.reset(token)


def current_charge() -> RequestCharge | None:
    return _current_charge.get()


def charge_operations(n: int = 1) -> float:
    """Charge `n` operations of server work to the current request; returns the ms charged.

    A direct create is 1, a `$batch` of 100 creates is 100, a query page can charge per
    row block. Outside a request (seeding, unit tests) it is a no-op returning 0.
    """
    charge = _current_charge.get()
    return charge.charge(n) if charge is not None else 0.0


def current_caller() -> dict[str, Any]:
    """Verified token claims of the current request (`appid`, `oid`, `tid`…); {} outside."""
    charge = _current_charge.get()
    return dict(charge.caller) if charge is not None else {}


class Counters:
    """What happened on one service, for tests and the benchmark (`GET /_admin/counters`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.requests: Counter[str] = Counter()  # "GET accounts"
            self.responses: Counter[str] = Counter()  # "200"
            self.batch_parts: Counter[str] = Counter()  # "POST accounts" inside $batch
            self.operations_written: Counter[str] = Counter()  # create/update/upsert/delete
            self.rows_read = 0
            self.rows_read_by_set: Counter[str] = Counter()  # entity set -> rows returned
            self.throttled: Counter[str] = Counter()  # error code
            self.faults: Counter[str] = Counter()  # fault kind
            self.unauthorized: Counter[str] = Counter()  # reason
            self.operations_charged = 0
            self.execution_ms = 0.0
            self.max_in_flight = 0

    def add(self, counter: str, key: str, n: int = 1) -> None:
        with self._lock:
            getattr(self, counter)[key] += n

    def record_request(self, method: str, entity_set: str) -> None:
        self.add("requests", f"{method} {entity_set}")

    def record_execution(self, operations: int, execution_ms: float) -> None:
        with self._lock:
            self.operations_charged += operations
            self.execution_ms += execution_ms

    def record_in_flight(self, in_flight: int) -> None:
        with self._lock:
            self.max_in_flight = max(self.max_in_flight, in_flight)

    def record_rows_read(self, rows: int, entity_set: str | None = None) -> None:
        with self._lock:
            self.rows_read += rows
            if entity_set is not None:
                self.rows_read_by_set[entity_set] += rows

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests_total": sum(self.requests.values()),
                "requests": dict(self.requests),
                "responses": dict(self.responses),
                "batch_parts": dict(self.batch_parts),
                "operations_written": dict(self.operations_written),
                "operations_written_total": sum(self.operations_written.values()),
                "rows_read": self.rows_read,
                "rows_read_by_set": dict(self.rows_read_by_set),
                "throttled": dict(self.throttled),
                "throttled_total": sum(self.throttled.values()),
                "faults": dict(self.faults),
                "unauthorized": dict(self.unauthorized),
                "unauthorized_total": sum(self.unauthorized.values()),
                "operations_charged": self.operations_charged,
                "execution_ms": round(self.execution_ms, 3),
                "max_in_flight": self.max_in_flight,
            }


@dataclass
class ServiceContext:
    """Everything a service app needs from the core.

    :param service: ``"dataverse"`` or ``"fno"``.
    :param resource: the resource URL tokens are issued for (``https://localhost:8441``).
    :param service_root: absolute service root URL, with trailing slash.
    :param root_path: the service root's path (``/api/data/v9.2/`` or ``/data/``).
    """

    service: str
    catalog: Catalog
    store: Store
    resource: str
    service_root: str
    root_path: str
    authority: str
    tenant_id: str
    config_store: ConfigStore
    counters: Counters

    @property
    def settings(self) -> ServiceConfig:
        """This service's live settings (re-read on every call: admin patches apply at once)."""
        return self.config_store.service(self.service)

    def charge_operations(self, n: int = 1) -> float:
        """See `emulators.context.charge_operations`."""
        return charge_operations(n)

    def record_write(self, kind: str, n: int = 1) -> None:
        """Count written operations by kind (``create``, ``update``, ``upsert``, ``delete``)."""
        self.counters.add("operations_written", kind, n)

    def record_read(self, rows: int, entity_set: str | None = None) -> None:
        """Count rows returned to the client (and per entity set, for the daily benchmark)."""
        self.counters.record_rows_read(rows, entity_set)

    def record_batch_part(self, method: str, entity_set: str) -> None:
        """Count one request inside a `$batch` (the outer request is counted by the core)."""
        self.counters.add("batch_parts", f"{method.upper()} {entity_set}")

    def caller(self) -> dict[str, Any]:
        """Claims of the current request's token (`appid`, `oid`…)."""
        return current_caller()
