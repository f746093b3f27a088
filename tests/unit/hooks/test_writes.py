"""The write engine: isolating a bad record, safe retries after ambiguous failures, parallel units."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest

from prospect_to_cash.hooks._http import AdaptiveLimiter
from prospect_to_cash.hooks._writes import PreparedWrite, UnitResult, WriteEngine, failure, outcome_for
from prospect_to_cash.hooks.batch import BatchRequest
from prospect_to_cash.hooks.errors import AmbiguousWriteError, ServiceError
from prospect_to_cash.hooks.operations import WriteKind, WriteOperation, WriteOutcome

if TYPE_CHECKING:
    from collections.abc import Callable


class FakeSession:
    def __init__(self, maximum: int = 4) -> None:
        self.limiter = AdaptiveLimiter(initial=2, maximum=maximum)
        self.pauses: list[tuple[int, float | None]] = []

    def pause_before_resend(self, round_: int, retry_after: float | None = None) -> float:
        self.pauses.append((round_, retry_after))
        return 0.0


class AtomicService:
    """A stand-in for the service's atomic unit semantics: all or nothing per unit."""

    def __init__(self, bad: set[str], *, name_culprit: bool = False) -> None:
        self.bad = bad
        self.name_culprit = name_culprit
        self.rows: set[str] = set()
        self.units: list[list[str]] = []
        self.lock = threading.Lock()

    def send(self, items: list[PreparedWrite]) -> UnitResult:
        refs = [item.op.ref for item in items]
        for item in items:
            item.attempts += 1
        with self.lock:
            self.units.append(refs)
            for position, ref in enumerate(refs):
                if ref in self.bad:
                    error = ServiceError(400, "0x80044331", f"validation failed for {ref}")
                    return UnitResult(error=error, culprit=position if self.name_culprit else None)
            self.rows.update(refs)
        return UnitResult(outcomes=[outcome_for(item, 204, ok=True) for item in items])


def items(count: int, kind: WriteKind = WriteKind.CREATE) -> list[PreparedWrite]:
    prepared = []
    for number in range(count):
        op = WriteOperation(
            kind, "CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": f"C{number}"}, ref=f"r{number}"
        )
        prepared.append(
            PreparedWrite(
                op,
                BatchRequest("POST", "https://x/data/CustomersV3"),
                verify="exists" if kind is WriteKind.CREATE else None,
                check_url=f"https://x/data/CustomersV3(C{number})",
            )
        )
    return prepared


def engine() -> WriteEngine:
    return WriteEngine(FakeSession(), "https://x/data/$batch")  # type: ignore[arg-type]


class TestIsolation:
    def test_one_bad_record_is_isolated_and_the_rest_lands(self) -> None:
        service = AtomicService(bad={"r37"})
        outcomes = engine().run_unit(items(100), service.send)
        assert len(outcomes) == 100
        failed = [o for o in outcomes if not o.ok]
        assert [o.ref for o in failed] == ["r37"]
        assert failed[0].status == 400
        assert failed[0].error_code == "0x80044331"
        assert failed[0].message == "validation failed for r37"
        assert len(service.rows) == 99
        # Halving: about 2 * log2(100) units, not one request per record.
        assert len(service.units) <= 2 * 7 + 1

    def test_several_bad_records(self) -> None:
        bad = {"r0", "r13", "r14", "r99"}
        service = AtomicService(bad=bad)
        outcomes = engine().run_unit(items(100), service.send)
        assert {o.ref for o in outcomes if not o.ok} == bad
        assert {o.ref for o in outcomes if o.ok} == {f"r{n}" for n in range(100)} - bad
        assert len(outcomes) == 100

    def test_a_named_culprit_costs_one_more_request(self) -> None:
        service = AtomicService(bad={"r5"}, name_culprit=True)
        outcomes = engine().run_unit(items(50), service.send)
        assert [o.ref for o in outcomes if not o.ok] == ["r5"]
        assert len(service.units) == 2
        assert "r5" not in service.units[1]

    def test_unsplittable_failure_fails_every_record(self) -> None:
        def send(batch: list[PreparedWrite]) -> UnitResult:
            return UnitResult(
                error=ServiceError(404, None, "Resource not found for the segment 'Nope'."), splittable=False
            )

        outcomes = engine().run_unit(items(10), send)
        assert len(outcomes) == 10
        assert all(not o.ok and o.status == 404 for o in outcomes)

    def test_attempts_are_counted_per_record(self) -> None:
        service = AtomicService(bad={"r1"})
        outcomes = {o.ref: o for o in engine().run_unit(items(4), service.send)}
        assert outcomes["r1"].attempts == 3  # 4 -> 2 -> 1
        assert outcomes["r3"].attempts == 2  # 4 -> 2 (landed)


class TestAmbiguousFailures:
    def make(self, service: AtomicService, states: Callable[[list[PreparedWrite]], list[bool | None]]):
        eng = engine()
        eng.verify_rows = states  # type: ignore[method-assign]
        return eng

    def test_applied_creates_are_read_back_not_resent(self) -> None:
        service = AtomicService(bad=set())
        calls = 0

        def flaky(batch: list[PreparedWrite]) -> UnitResult:
            nonlocal calls
            calls += 1
            result = service.send(batch)
            if calls == 1:
                raise AmbiguousWriteError("connection reset after the change set was sent")
            return result

        checked: list[list[str]] = []

        def states(batch: list[PreparedWrite]) -> list[bool | None]:
            checked.append([item.op.ref for item in batch])
            return [item.op.ref in service.rows for item in batch]

        outcomes = self.make(service, states).run_unit(items(10), flaky)
        assert len(outcomes) == 10
        assert all(o.ok for o in outcomes)
        assert all("already present after an interrupted attempt" in (o.message or "") for o in outcomes)
        assert calls == 1  # nothing was sent twice
        assert checked == [[f"r{n}" for n in range(10)]]

    def test_unapplied_creates_are_sent_again(self) -> None:
        service = AtomicService(bad=set())
        calls = 0

        def flaky(batch: list[PreparedWrite]) -> UnitResult:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise AmbiguousWriteError("read timeout")  # and the service never applied it
            return service.send(batch)

        outcomes = self.make(service, lambda batch: [False] * len(batch)).run_unit(items(5), flaky)
        assert all(o.ok and o.message is None for o in outcomes)
        assert calls == 2
        assert len(service.rows) == 5

    def test_updates_in_the_unit_are_resent_with_the_rest(self) -> None:
        service = AtomicService(bad=set())
        batch = items(3) + items(2, WriteKind.UPDATE)
        batch[3].op = WriteOperation(WriteKind.UPDATE, "CustomersV3", {"k": "u1"}, ref="u1")
        batch[4].op = WriteOperation(WriteKind.UPDATE, "CustomersV3", {"k": "u2"}, ref="u2")
        sent: list[list[str]] = []
        calls = 0

        def flaky(part: list[PreparedWrite]) -> UnitResult:
            nonlocal calls
            calls += 1
            sent.append([item.op.ref for item in part])
            result = service.send(part)
            if calls == 1:
                raise AmbiguousWriteError("reset")
            return result

        outcomes = self.make(service, lambda part: [item.op.ref in service.rows for item in part]).run_unit(
            batch, flaky
        )
        assert sorted(o.ref for o in outcomes) == ["r0", "r1", "r2", "u1", "u2"]
        assert sent[1] == ["u1", "u2"]  # creates verified present; only the idempotent updates resent

    def test_each_resend_waits_for_the_pause_the_service_asked_for(self) -> None:
        service = AtomicService(bad=set())
        calls = 0

        def flaky(batch: list[PreparedWrite]) -> UnitResult:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise AmbiguousWriteError("answered 503", retry_after=2.5)
            if calls == 2:
                raise AmbiguousWriteError("reset")
            return service.send(batch)

        eng = self.make(service, lambda batch: [False] * len(batch))
        outcomes = eng.run_unit(items(3), flaky)
        assert all(o.ok for o in outcomes)
        assert eng.session.pauses == [(1, 2.5), (2, None)]  # type: ignore[attr-defined]

    def test_unverifiable_rows_are_not_resent_blindly(self) -> None:
        def flaky(batch: list[PreparedWrite]) -> UnitResult:
            raise AmbiguousWriteError("reset")

        eng = self.make(AtomicService(bad=set()), lambda batch: [None] * len(batch))
        with pytest.raises(AmbiguousWriteError, match="could not be read back"):
            eng.run_unit(items(3), flaky)


class TestRun:
    def test_parallel_units_yield_one_outcome_per_operation(self) -> None:
        service = AtomicService(bad={"r7", "r250"})
        active = 0
        peak = 0
        lock = threading.Lock()

        def send(batch: list[PreparedWrite]) -> UnitResult:
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            try:
                return service.send(batch)
            finally:
                with lock:
                    active -= 1

        all_items = items(300)
        rejected = failure(
            WriteOperation(WriteKind.CREATE, "CustomersV3", {}, ref="bad-key"), "missing_key", "no key"
        )
        work: list[Any] = [rejected] + [(all_items[i : i + 25], send) for i in range(0, 300, 25)]
        outcomes: list[WriteOutcome] = list(engine().run(iter(work)))
        assert len(outcomes) == 301
        assert len({o.ref for o in outcomes}) == 301
        assert {o.ref for o in outcomes if not o.ok} == {"r7", "r250", "bad-key"}
        assert peak <= 4

    def test_units_are_pulled_only_as_the_window_has_room(self) -> None:
        """Units are cut just before they are sent, so the engine must not run ahead of the
        limiter: with 2 requests allowed it holds at most 3 units submitted and 1 in hand."""
        session = FakeSession(maximum=52)
        release = threading.Event()
        pulled = 0

        def send(batch: list[PreparedWrite]) -> UnitResult:
            release.wait(timeout=30)
            return UnitResult(outcomes=[outcome_for(item, 204, ok=True) for item in batch])

        all_items = items(200)

        def work() -> Any:
            nonlocal pulled
            for start in range(0, 200, 10):
                pulled += 1
                yield all_items[start : start + 10], send

        engine_ = WriteEngine(session, "https://x/data/$batch")  # type: ignore[arg-type]
        outcomes: list[WriteOutcome] = []
        runner = threading.Thread(target=lambda: outcomes.extend(engine_.run(work())))
        runner.start()
        threading.Event().wait(0.5)  # every unit blocks: whatever was pulled by now is the lookahead
        pulled_while_blocked = pulled
        release.set()
        runner.join(timeout=30)
        assert len(outcomes) == 200
        assert 1 <= pulled_while_blocked <= session.limiter.allowed + 2


class TestUnitSizing:
    """Units start small and grow with the window; the rest of a load is spread over all slots."""

    def test_units_grow_with_the_window_during_slow_start(self) -> None:
        session = FakeSession(maximum=52)
        engine_ = WriteEngine(session, "https://x/data/$batch")  # type: ignore[arg-type]
        limiter = session.limiter
        assert limiter.allowed == 2
        assert engine_.unit_size(200) == 10  # 200 * 2/52 = 8, but never below MIN_UNIT
        limiter.limit = 13.0
        assert engine_.unit_size(200) == 50  # a quarter of the ceiling: a quarter of the batch
        limiter.limit = 52.0
        assert engine_.unit_size(200) == 200
        limiter.limit = 2.0
        limiter.slow_start = False  # after the first 429: full units, AIMD paces the requests
        assert engine_.unit_size(200) == 200

    def test_a_hinted_ceiling_scales_the_units(self) -> None:
        session = FakeSession(maximum=52)
        session.limiter.release(dop_hint=4, success=False)
        engine_ = WriteEngine(session, "https://x/data/$batch")  # type: ignore[arg-type]
        assert engine_.unit_size(100) == 50  # 2 of the 4 slots the service recommends

    def test_the_rest_is_spread_over_every_slot(self) -> None:
        session = FakeSession(maximum=52)
        session.limiter.slow_start = False
        engine_ = WriteEngine(session, "https://x/data/$batch")  # type: ignore[arg-type]
        assert engine_.unit_size(200, remaining=4600) == 89  # 52 units, not 23 of 200
        assert engine_.unit_size(200, remaining=1_000_000) == 200
        assert engine_.unit_size(200, remaining=100) == 10
        assert engine_.unit_size(4, remaining=100) == 4  # the caller's smaller batch wins
        assert engine_.unit_size(200, remaining=0) == 10

    def test_units_keep_routes_apart_and_pass_failures_through(self) -> None:
        session = FakeSession(maximum=4)
        session.limiter.slow_start = False
        engine_ = WriteEngine(session, "https://x/data/$batch")  # type: ignore[arg-type]
        creates = items(25)
        updates = items(25, WriteKind.UPDATE)
        for position, item in enumerate(updates):
            item.op = WriteOperation(WriteKind.UPDATE, "CustomersV3", item.op.key, ref=f"u{position}")
        rejected = failure(
            WriteOperation(WriteKind.CREATE, "CustomersV3", {}, ref="bad-key"), "missing_key", "no key"
        )
        mixed: list[Any] = [x for pair in zip(creates, updates, strict=True) for x in pair] + [rejected]

        def send_create(batch: list[PreparedWrite]) -> UnitResult:
            raise AssertionError("never sent here")

        def send_update(batch: list[PreparedWrite]) -> UnitResult:
            raise AssertionError("never sent here")

        def route(item: PreparedWrite) -> tuple[str, Callable[[list[PreparedWrite]], UnitResult]]:
            kind = item.op.kind
            return (kind.value, send_create if kind is WriteKind.CREATE else send_update)

        produced = list(engine_.units(iter(mixed), route, batch_size=10))
        assert sum(1 for u in produced if u is rejected) == 1
        units = [u for u in produced if not isinstance(u, WriteOutcome)]
        for unit, sender in units:
            kinds = {item.op.kind for item in unit}
            assert len(kinds) == 1
            assert sender is (send_create if kinds == {WriteKind.CREATE} else send_update)
            assert len(unit) <= 10
        refs = [item.op.ref for unit, _ in units for item in unit]
        assert sorted(refs) == sorted([i.op.ref for i in creates + updates])
        assert [len(u) for u, s in units if s is send_create] == [10, 10, 5]

    def test_expected_count_shrinks_units_towards_the_end(self) -> None:
        session = FakeSession(maximum=4)
        session.limiter.slow_start = False
        engine_ = WriteEngine(session, "https://x/data/$batch")  # type: ignore[arg-type]

        def route(item: PreparedWrite) -> tuple[str, Callable[[list[PreparedWrite]], UnitResult]]:
            return "changeset", engine_.send_changeset

        sizes = [len(u) for u, _ in engine_.units(iter(items(1000)), route, batch_size=200, expected=1000)]
        assert sum(sizes) == 1000
        assert sizes[0] == 200  # 1000 over 4 slots is 250, capped at the batch size
        assert sizes[-1] < 200
        assert sizes == sorted(sizes, reverse=True)
