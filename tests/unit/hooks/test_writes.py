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
