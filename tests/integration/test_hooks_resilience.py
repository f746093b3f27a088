"""Hooks under pressure, against the emulator service apps over verified HTTPS.

429 storms (request-count limit, concurrency limit, injected 429s) with ``Retry-After``
honoured and the adaptive concurrency backing off; connections reset before the service
applied a batch (the emulator's fault) and answers lost after it did (a transport that drops
the answer it received): every operation ends with exactly one outcome and no row exists
twice. Also: one token per connection, and a readable failure on a wrong secret.

The module has its own demo-seeded instance; limits and faults are set per test with
`AdminClient.overrides` and restored afterwards.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpcore
import httpx
import pandas as pd
import pytest

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook, WriteKind, WriteOperation
from prospect_to_cash.hooks._http import RetryPolicy
from prospect_to_cash.hooks.odata import format_literal
from tests.conftest import TEST_CONFIG
from tests.support.connections import connect
from tests.support.emulators import Oracle, start_emulators

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from prospect_to_cash.hooks import WriteOutcome
    from tests.support.emulators import AdminClient, EmulatorEndpoints, RunningEmulators

pytestmark = pytest.mark.integration

# Quick retries of connection failures; Retry-After is honoured whatever this says.
FAST_RETRY = RetryPolicy(backoff_base=0.05, backoff_max=0.5)
# A request that had already been admitted when a 429 arrived may leave a moment later.
ADMITTED_SLACK = 0.1


# ---------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulators]:
    instance = start_emulators(
        tmp_path_factory.mktemp("hooks-resilience") / "state", "--seed", "demo", config=TEST_CONFIG
    )
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def endpoints(running: RunningEmulators) -> EmulatorEndpoints:
    return running.endpoints


@pytest.fixture
def dv_admin(running: RunningEmulators) -> Iterator[AdminClient]:
    with running.admin("dataverse") as admin:
        yield admin


@pytest.fixture
def fno_admin(running: RunningEmulators) -> Iterator[AdminClient]:
    with running.admin("fno") as admin:
        yield admin


@dataclass(frozen=True)
class Call:
    """One request as the client sent it: when it left, when its answer came, what it was."""

    method: str
    path: str
    started: float
    answered: float
    status: int | None
    retry_after: float | None
    content: bytes = b""

    @property
    def writes(self) -> bool:
        """A change set (a write unit) rather than a batch of reads."""
        return b"changeset_" in self.content


class TimingTransport(httpx.BaseTransport):
    """A verified HTTPS transport that timestamps every request.

    With ``lose_answers`` it also drops the answer of every other write request (a change
    set or a bulk create) after the service applied it, the way a connection that dies
    after the request was processed looks to the client. With ``cut_off`` every change set
    containing those bytes dies on the way, before reaching the service.
    """

    def __init__(self, ca_bundle: str, *, lose_answers: bool = False, cut_off: bytes | None = None) -> None:
        self._inner = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=ca_bundle))
        self._lock = threading.Lock()
        self._lose_answers = lose_answers
        self._cut_off = cut_off
        self._writes = 0
        self.lost = 0
        self.calls: list[Call] = []

    def _loses(self, request: httpx.Request) -> bool:
        if not self._lose_answers or request.method != "POST":
            return False
        body = request.content
        if b"changeset_" not in body and not request.url.path.endswith("CreateMultiple"):
            return False
        with self._lock:
            self._writes += 1
            return self._writes % 2 == 1

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        loses = self._loses(request)
        started = time.monotonic()
        if (
            self._cut_off is not None
            and b"changeset_" in request.content
            and self._cut_off in request.content
        ):
            self._record(request, started, None, None)
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError:
            self._record(request, started, None, None)
            raise
        retry_after = response.headers.get("Retry-After")
        self._record(request, started, response.status_code, float(retry_after) if retry_after else None)
        if loses:
            response.read()  # the service has applied it and answered ...
            response.close()
            with self._lock:
                self.lost += 1
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return response

    def _record(
        self, request: httpx.Request, started: float, status: int | None, retry: float | None
    ) -> None:
        with self._lock:
            self.calls.append(
                Call(
                    request.method,
                    request.url.path,
                    started,
                    time.monotonic(),
                    status,
                    retry,
                    request.content,
                )
            )

    def close(self) -> None:
        self._inner.close()

    def throttled(self) -> list[Call]:
        return [call for call in self.calls if call.status == 429]


def assert_retry_after_honoured(transport: TimingTransport) -> None:
    """No request left between a 429's arrival and the end of its Retry-After."""
    throttled = transport.throttled()
    assert throttled, "the scenario should have been throttled"
    for answer in throttled:
        assert answer.retry_after is not None
        assert answer.retry_after >= 1
        quiet_from = answer.answered + ADMITTED_SLACK
        quiet_until = answer.answered + answer.retry_after - 0.01
        early = [c for c in transport.calls if quiet_from < c.started < quiet_until]
        assert not early, f"{len(early)} request(s) sent during a Retry-After of {answer.retry_after} s"


def one_outcome_each(
    outcomes: Iterable[WriteOutcome], operations: list[WriteOperation]
) -> dict[str, WriteOutcome]:
    assert len({op.ref for op in operations}) == len(operations), "test data: refs must be unique"
    listed = list(outcomes)
    assert sorted(o.ref for o in listed) == sorted(op.ref for op in operations), "one outcome per operation"
    return {outcome.ref: outcome for outcome in listed}


def assert_written_exactly_once(outcomes: dict[str, WriteOutcome], landed: Counter[str]) -> None:
    """Each ok create left exactly one row; each failed one was given up on, and left none.

    ``landed`` counts rows by the operation's ref.
    """
    assert set(landed.values()) <= {1}, "duplicates"
    for ref, outcome in outcomes.items():
        if outcome.ok:
            assert landed[ref] == 1, ref
        else:
            assert outcome.error_code == "interrupted", outcome
            assert "read back: not applied" in (outcome.message or "")
            assert landed[ref] == 0, ref


def tag() -> str:
    return uuid.uuid4().hex[:6].upper()


def fno_creates(prefix: str, count: int) -> list[WriteOperation]:
    return [
        WriteOperation(
            WriteKind.CREATE,
            "CustomersV3",
            {"dataAreaId": "usmf", "CustomerAccount": f"{prefix}-{n:03d}"},
            {"CustomerGroupId": "10", "OrganizationName": f"Resilience {n}"},
            ref=f"{prefix}-{n:03d}",
        )
        for n in range(count)
    ]


def fno_accounts(oracle: Oracle, prefix: str) -> Counter[str]:
    rows = oracle.rows(
        f"CustomersV3?cross-company=true&$select=CustomerAccount&$filter=CustomerAccount eq '{prefix}-*'"
    )
    return Counter(row["CustomerAccount"] for row in rows)


def dv_creates(entity_set: str, count: int, name: str) -> list[WriteOperation]:
    """Creates of accounts or products named ``<name> 000``…, each with its own GUID."""
    key = entity_set[:-1] + "id"
    operations = []
    for n in range(count):
        body: dict[str, Any] = {"name": f"{name} {n:03d}"}
        if entity_set == "products":
            body.update(productnumber=f"{name}-{n:03d}", quantitydecimal=2)
        operations.append(
            WriteOperation(
                WriteKind.CREATE,
                entity_set,
                {key: str(uuid.uuid4())},
                body,
                ref=f"{entity_set}:{name} {n:03d}",
            )
        )
    return operations


def dv_names(oracle: Oracle, entity_set: str, prefix: str) -> Counter[str]:
    literal = quote(format_literal(prefix), safe="'")
    rows = oracle.rows(f"{entity_set}?$select=name&$filter=startswith(name,{literal})")
    return Counter(row["name"] for row in rows)


def dv_refs(oracle: Oracle, entity_set: str, prefix: str) -> Counter[str]:
    """Rows counted by the ref of the `dv_creates` operation that made them."""
    return Counter(
        {f"{entity_set}:{name}": count for name, count in dv_names(oracle, entity_set, prefix).items()}
    )


# ---------------------------------------------------------------------------- 429 storms


def test_request_limit_storm_on_a_paged_read(
    monkeypatch: pytest.MonkeyPatch, endpoints: EmulatorEndpoints, dv_admin: AdminClient, dv_oracle: Oracle
) -> None:
    """Five requests a second allowed: the read waits each block out and misses nothing."""
    expected = {row["accountid"] for row in dv_oracle.rows("accounts?$select=accountid")}
    transport = TimingTransport(endpoints.ca_bundle)
    with DataverseHook(connect(monkeypatch, endpoints, "dataverse"), transport=transport) as hook:
        before = dv_admin.counters()["throttled"].get("0x80072322", 0)
        with dv_admin.overrides({"limits": {"max_requests": 5, "window_seconds": 1.0}}):
            frames = list(hook.iter_pages("accounts", select=["accountid"], page_size=6))
            throttled = dv_admin.counters()["throttled"].get("0x80072322", 0) - before
        stats = hook.session.limiter.stats

    ids = pd.concat(frames)["accountid"].tolist()
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    assert throttled == len(transport.throttled()) == stats.throttles >= 2
    assert_retry_after_honoured(transport)
    # A client that pushed while blocked would have had its block extended (Retry-After > 1).
    assert {call.retry_after for call in transport.throttled()} == {1.0}


def test_concurrency_limit_on_parallel_writes_backs_off(
    monkeypatch: pytest.MonkeyPatch, endpoints: EmulatorEndpoints, dv_admin: AdminClient, dv_oracle: Oracle
) -> None:
    run = f"Storm {tag()}"
    operations = dv_creates("accounts", 48, run)
    transport = TimingTransport(endpoints.ca_bundle)
    with (
        DataverseHook(
            connect(monkeypatch, endpoints, "dataverse"),
            transport=transport,
            initial_concurrency=4,
            max_concurrency=8,
        ) as hook,
        dv_admin.overrides({"limits": {"max_concurrent": 2}, "cost": {"request_latency_ms": 60.0}}),
    ):
        outcomes = one_outcome_each(hook.write(operations, batch_size=4), operations)
        counters = dv_admin.counters()
        stats = hook.session.limiter.stats

    assert all(outcome.ok for outcome in outcomes.values())
    assert set(dv_names(dv_oracle, "accounts", run).values()) == {1}
    assert len(dv_names(dv_oracle, "accounts", run)) == 48
    assert counters["throttled"].get("0x80072326", 0) >= 1
    assert stats.throttles == len(transport.throttled()) >= 1
    assert stats.decreases >= 1
    assert min(stats.history) <= 2  # halved from 4
    assert_retry_after_honoured(transport)


def test_injected_429_storm_on_fno_writes(
    monkeypatch: pytest.MonkeyPatch, endpoints: EmulatorEndpoints, fno_admin: AdminClient, fno_oracle: Oracle
) -> None:
    prefix = f"T{tag()}"
    operations = fno_creates(prefix, 30)
    transport = TimingTransport(endpoints.ca_bundle)
    storm = {
        "faults": {
            "seed": 7,
            "retry_after_seconds": 1,
            "throttle": {"rate": 0.3, "methods": ["POST"], "path_contains": "$batch"},
        }
    }
    with (
        FinanceOperationsHook(connect(monkeypatch, endpoints, "fno"), transport=transport) as hook,
        fno_admin.overrides(storm),
    ):
        outcomes = one_outcome_each(hook.write(operations, batch_size=5), operations)
        throttled = fno_admin.counters()["faults"].get("throttle", 0)

    assert all(outcome.ok and outcome.status == 201 for outcome in outcomes.values())
    landed = fno_accounts(fno_oracle, prefix)
    assert len(landed) == 30
    assert set(landed.values()) == {1}
    assert throttled >= 1
    assert len(transport.throttled()) == throttled
    assert_retry_after_honoured(transport)


# ---------------------------------------------------------------------------- connection resets


def assert_every_reset_resent_once(
    transport: TimingTransport,
    operations: list[WriteOperation],
    marker: Callable[[WriteOperation], bytes],
    resets: int,
) -> None:
    """The client saw exactly the resets the service counted, read each cut unit back once,
    and sent each record once more per cut that carried it, never otherwise."""
    cut = [call for call in transport.calls if call.status is None]
    assert len(cut) == resets
    writes = [call for call in transport.calls if call.method == "POST" and call.writes]
    cut_writes = [call for call in writes if call.status is None]
    read_backs = [call for call in transport.calls if call.method == "POST" and not call.writes]
    assert len([call for call in read_backs if call.status == 200]) == len(cut_writes)
    for op in operations:
        sent = sum(marker(op) in call.content for call in writes)
        lost = sum(marker(op) in call.content for call in cut_writes)
        assert sent == lost + 1, (op.ref, sent, lost)


def test_fno_connection_resets_during_batches_leave_no_duplicates(
    monkeypatch: pytest.MonkeyPatch, endpoints: EmulatorEndpoints, fno_admin: AdminClient, fno_oracle: Oracle
) -> None:
    """A third of the batches die before the service applies them: the engine reads the rows
    back, finds none, resends; the reads back are retried when they are reset too. One request
    at a time makes the fault seed decide exactly which requests are cut: four, none of them a
    unit's every attempt, so all 24 land."""
    prefix = f"R{tag()}"
    operations = fno_creates(prefix, 24)
    transport = TimingTransport(endpoints.ca_bundle)
    faults = {"faults": {"seed": 9, "reset": {"rate": 0.35, "methods": ["POST"], "path_contains": "$batch"}}}
    with (
        FinanceOperationsHook(
            connect(monkeypatch, endpoints, "fno"),
            retry=FAST_RETRY,
            transport=transport,
            initial_concurrency=1,
            max_concurrency=1,
        ) as hook,
        fno_admin.overrides(faults),
    ):
        before = fno_admin.counters()["faults"].get("reset", 0)
        outcomes = one_outcome_each(hook.write(operations, batch_size=4), operations)
        resets = fno_admin.counters()["faults"].get("reset", 0) - before

    assert resets == 4  # serial requests: the seed decides which ones are cut
    assert [ref for ref, outcome in outcomes.items() if not outcome.ok] == []
    assert fno_accounts(fno_oracle, prefix) == Counter({op.ref: 1 for op in operations})
    assert_every_reset_resent_once(transport, operations, lambda op: op.ref.encode(), resets)


def test_dataverse_connection_resets_during_batches_leave_no_duplicates(
    monkeypatch: pytest.MonkeyPatch, endpoints: EmulatorEndpoints, dv_admin: AdminClient, dv_oracle: Oracle
) -> None:
    run = f"Reset {tag()}"
    operations = dv_creates("accounts", 24, run)
    transport = TimingTransport(endpoints.ca_bundle)
    faults = {"faults": {"seed": 9, "reset": {"rate": 0.35, "methods": ["POST"], "path_contains": "$batch"}}}
    with (
        DataverseHook(
            connect(monkeypatch, endpoints, "dataverse"),
            retry=FAST_RETRY,
            transport=transport,
            initial_concurrency=1,
            max_concurrency=1,
        ) as hook,
        dv_admin.overrides(faults),
    ):
        before = dv_admin.counters()["faults"].get("reset", 0)
        outcomes = one_outcome_each(hook.write(operations, batch_size=4), operations)
        resets = dv_admin.counters()["faults"].get("reset", 0) - before

    assert resets == 4  # serial requests: the seed decides which ones are cut
    assert [ref for ref, outcome in outcomes.items() if not outcome.ok] == []
    assert dv_refs(dv_oracle, "accounts", run) == Counter({op.ref: 1 for op in operations})
    assert_every_reset_resent_once(transport, operations, lambda op: op.body["name"].encode(), resets)


class OverloadedFrontDoor(httpcore.SyncBackend):
    """httpcore's own network backend, except that the first ``refusals`` connections reach a
    listener that resets them at once, in the TLS handshake: what a saturated front door or
    load balancer does to new connections. Later connections reach the service."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.refused = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._reset_every_connection, daemon=True).start()

    def _reset_every_connection(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()  # an RST, not a FIN

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        with self._lock:
            refuse = self.refused < self.refusals
            self.refused += refuse
        if refuse:
            host, port = self._listener.getsockname()
        return super().connect_tcp(host, port, timeout, local_address, socket_options)

    def close(self) -> None:
        self._listener.close()


def test_connections_reset_at_the_front_door_shrink_concurrency_and_every_unit_lands_once(
    monkeypatch: pytest.MonkeyPatch, endpoints: EmulatorEndpoints, fno_admin: AdminClient, fno_oracle: Oracle
) -> None:
    """Six of the first eight connections are reset in the TLS handshake: the requests never
    reached F&O, so each is resent (creates too) without a read-back, and the concurrency is
    halved as after a 429. F&O receives each of the 8 batches exactly once."""
    prefix = f"C{tag()}"
    operations = fno_creates(prefix, 40)
    door = OverloadedFrontDoor(refusals=6)
    context = ssl.create_default_context(cafile=endpoints.ca_bundle)
    transport = httpx.HTTPTransport(verify=context)
    # httpx has no parameter for httpcore's network backend: its pool is built with ours.
    transport._pool = httpcore.ConnectionPool(ssl_context=context, network_backend=door)
    before = fno_admin.counters()["requests_total"]
    try:
        with FinanceOperationsHook(
            connect(monkeypatch, endpoints, "fno"),
            retry=FAST_RETRY,
            transport=transport,
            initial_concurrency=8,
            max_concurrency=8,
        ) as hook:
            outcomes = one_outcome_each(hook.write(operations, batch_size=5), operations)
            stats = hook.session.limiter.stats
    finally:
        door.close()
    received = fno_admin.counters()["requests_total"] - before

    assert door.refused == 6
    assert received == 8  # 8 units of 5, each once: no refused connection reached the service
    assert all(outcome.ok and outcome.status == 201 for outcome in outcomes.values())
    assert fno_accounts(fno_oracle, prefix) == Counter({op.ref: 1 for op in operations})
    assert (stats.connect_failures, stats.throttles) == (6, 0)
    assert stats.decreases >= 1
    assert min(stats.history) <= 4.0  # 8 halved at least once


def test_a_unit_cut_off_every_time_is_given_up_with_one_outcome_each(
    monkeypatch: pytest.MonkeyPatch, endpoints: EmulatorEndpoints, fno_oracle: Oracle
) -> None:
    prefix = f"G{tag()}"
    operations = fno_creates(prefix, 12)
    doomed = operations[5].key["CustomerAccount"].encode()
    transport = TimingTransport(endpoints.ca_bundle, cut_off=doomed)
    with FinanceOperationsHook(connect(monkeypatch, endpoints, "fno"), transport=transport) as hook:
        outcomes = one_outcome_each(hook.write(operations, batch_size=4), operations)

    failed = {ref for ref, outcome in outcomes.items() if not outcome.ok}
    assert failed == {op.ref for op in operations[4:8]}  # the unit holding the doomed row
    assert all(outcomes[ref].status == 0 for ref in failed)
    assert_written_exactly_once(outcomes, fno_accounts(fno_oracle, prefix))
    cut = [call for call in transport.calls if call.status is None]
    assert len(cut) == 4  # the first attempt and three resends, each after a read-back


def test_fno_answers_lost_after_the_batch_was_applied(
    monkeypatch: pytest.MonkeyPatch, endpoints: EmulatorEndpoints, fno_oracle: Oracle
) -> None:
    """A blind resend would answer "The record already exists." (creates) or fail to find
    the row (deletes); reading back first reports what really happened."""
    prefix = f"L{tag()}"
    creates = fno_creates(prefix, 20)
    transport = TimingTransport(endpoints.ca_bundle, lose_answers=True)
    with FinanceOperationsHook(connect(monkeypatch, endpoints, "fno"), transport=transport) as hook:
        created = one_outcome_each(hook.write(creates, batch_size=4), creates)
        assert transport.lost >= 2
        lost_creates = transport.lost
        deletes = [WriteOperation(WriteKind.DELETE, "CustomersV3", op.key, ref=op.ref) for op in creates[:12]]
        deleted = one_outcome_each(hook.write(deletes, batch_size=3), deletes)

    assert all(outcome.ok for outcome in created.values()), [o for o in created.values() if not o.ok]
    # Every create of a unit whose answer was lost is found present and reported once.
    settled = [o for o in created.values() if o.message and "already present" in o.message]
    assert len(settled) == 4 * lost_creates
    assert all(outcome.ok for outcome in deleted.values()), [o for o in deleted.values() if not o.ok]
    gone = [o for o in deleted.values() if o.message and "already absent" in o.message]
    assert len(gone) == 3 * (transport.lost - lost_creates) > 0
    landed = fno_accounts(fno_oracle, prefix)
    assert landed == Counter({op.key["CustomerAccount"]: 1 for op in creates[12:]})


def test_dataverse_answers_lost_after_bulk_creates_and_change_sets(
    monkeypatch: pytest.MonkeyPatch, endpoints: EmulatorEndpoints, dv_oracle: Oracle
) -> None:
    """CreateMultiple on products and $batch change sets on accounts, every other answer lost."""
    run = f"Lost {tag()}"
    products = dv_creates("products", 16, run)
    accounts = dv_creates("accounts", 12, run)
    transport = TimingTransport(endpoints.ca_bundle, lose_answers=True)
    with DataverseHook(connect(monkeypatch, endpoints, "dataverse"), transport=transport) as hook:
        outcomes = one_outcome_each(hook.write(products + accounts, batch_size=4), products + accounts)

    assert transport.lost >= 2
    assert any(
        call.path.endswith("/products/Microsoft.Dynamics.CRM.CreateMultiple") for call in transport.calls
    )
    assert all(outcome.ok for outcome in outcomes.values()), [o for o in outcomes.values() if not o.ok]
    settled = [o for o in outcomes.values() if o.message and "already present" in o.message]
    assert len(settled) == 4 * transport.lost
    for entity_set, count in (("products", 16), ("accounts", 12)):
        names = dv_names(dv_oracle, entity_set, run)
        assert len(names) == count
        assert set(names.values()) == {1}


@pytest.mark.parametrize("service", ["fno", "dataverse"])
def test_batches_applied_then_answered_503_or_cut_leave_no_duplicates(
    monkeypatch: pytest.MonkeyPatch,
    running: RunningEmulators,
    endpoints: EmulatorEndpoints,
    fno_oracle: Oracle,
    dv_oracle: Oracle,
    service: str,
) -> None:
    """The emulator applies the whole $batch, then drops the connection or answers 503: the
    hook reads the keys back, finds the rows, reports them created once and resends nothing.
    Serial requests make the seed decide which requests are hit."""
    faults = {
        "faults": {
            "seed": 11,
            "reset_after": {"rate": 0.25, "methods": ["POST"], "path_contains": "$batch"},
            "unavailable_after": {"rate": 0.25, "methods": ["POST"], "path_contains": "$batch"},
        }
    }
    run = f"A{tag()}"
    if service == "fno":
        operations = fno_creates(run, 24)
        hook_type: Any = FinanceOperationsHook
    else:
        operations = dv_creates("accounts", 24, run)
        hook_type = DataverseHook
    with (
        running.admin(service) as admin,
        hook_type(
            connect(monkeypatch, endpoints, service),
            retry=FAST_RETRY,
            initial_concurrency=1,
            max_concurrency=1,
        ) as hook,
        admin.overrides(faults),
    ):
        before = admin.counters()["faults"]
        outcomes = one_outcome_each(hook.write(operations, batch_size=4), operations)
        after = admin.counters()["faults"]
    fired = {kind: after.get(kind, 0) - before.get(kind, 0) for kind in ("reset_after", "unavailable_after")}

    assert fired == {"reset_after": 2, "unavailable_after": 2}  # serial requests: the seed decides
    assert [ref for ref, outcome in outcomes.items() if not outcome.ok] == []
    settled = [o for o in outcomes.values() if o.message and "already present" in o.message]
    # Three write units of four were applied and their answers lost (the fourth fault hit a
    # read-back, which is simply retried).
    assert len(settled) == 12
    landed = fno_accounts(fno_oracle, run) if service == "fno" else dv_refs(dv_oracle, "accounts", run)
    assert landed == Counter({op.ref: 1 for op in operations})


# ---------------------------------------------------------------------------- tokens and test_connection


def test_one_token_per_connection_across_hooks(
    monkeypatch: pytest.MonkeyPatch, fresh_emulators: RunningEmulators
) -> None:
    endpoints = fresh_emulators.endpoints
    conn_id = connect(monkeypatch, endpoints, "fno")
    first, second = FinanceOperationsHook(conn_id), FinanceOperationsHook(conn_id)
    with first, second, fresh_emulators.admin("fno") as admin:
        for hook in (first, second, first, second):
            ok, message = hook.test_connection()
            assert ok, message
            (empty,) = hook.iter_pages("CustomersV3", select=["CustomerAccount"])
            assert empty.empty
        assert first.session.tokens is second.session.tokens
        assert admin.counters()["tokens_issued"] == 1


@pytest.mark.parametrize("service", ["dataverse", "fno"])
def test_wrong_secret_fails_readably_without_the_secret(
    monkeypatch: pytest.MonkeyPatch, endpoints: EmulatorEndpoints, service: str
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    conn_id = connect(monkeypatch, endpoints, service, password=wrong)
    hook_type = DataverseHook if service == "dataverse" else FinanceOperationsHook
    with hook_type(conn_id) as hook:
        ok, message = hook.test_connection()
    assert not ok
    assert conn_id in message
    assert "Entra ID refused a token" in message
    assert "invalid_client" in message
    assert wrong not in message
    assert endpoints.client_secret not in message
    assert urlsplit(endpoints.authority).netloc in message
