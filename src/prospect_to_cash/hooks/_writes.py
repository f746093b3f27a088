"""The write engine both hooks share: change sets, failure isolation, safe retries, parallelism.

Records travel in units (one ``$batch`` change set, or one Dataverse bulk message). A
unit is atomic on the service, so when one record in it is bad the whole unit fails; the
engine then isolates the record — directly when the service names it (``Content-ID`` of
the failing part), otherwise by splitting the unit in halves — and still lands the rest.

Retrying a unit is safe by construction:

* updates and upserts are idempotent (setting the same values twice changes nothing);
* creates and deletes are not repeated blindly. When a unit containing them fails in a
  way that leaves open whether the service applied it (connection reset after sending,
  read timeout, 502/503/504), the engine first reads every such row by key: a create
  whose row exists and a delete whose row is gone are reported as done, and only the
  rest is sent again. A failure that proves nothing was applied (429, connection refused)
  is retried as is by the HTTP layer.

Every operation gets exactly one outcome: a unit still interrupted after
``MAX_AMBIGUOUS_ROUNDS`` resends is read back one last time and its unsettled records fail
with ``error_code="interrupted"`` rather than aborting the whole call.
"""

from __future__ import annotations

import json
import logging
import math
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from prospect_to_cash.hooks._http import request_priority
from prospect_to_cash.hooks.batch import BatchRequest, BatchResponse, decode_batch_response, encode_batch
from prospect_to_cash.hooks.errors import AmbiguousWriteError, DynamicsAuthError, ServiceError, parse_error
from prospect_to_cash.hooks.odata import entity_id_from_url
from prospect_to_cash.hooks.operations import INTERRUPTED, WriteOperation, WriteOutcome

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable, Iterator

    import httpx

    from prospect_to_cash.hooks._http import ODataSession

log = logging.getLogger(__name__)

# How often a unit may come back ambiguous before the engine gives up on it.
MAX_AMBIGUOUS_ROUNDS = 3
# Statuses of a whole-batch failure that splitting the unit can cure.
SPLITTABLE_STATUSES = frozenset({400, 413, 500})
# Smallest unit the engine makes on its own (a caller's smaller batch_size still wins).
MIN_UNIT = 10


@dataclass
class PreparedWrite:
    """A `WriteOperation` turned into a request, plus how to verify it after an ambiguous failure.

    :param op: the caller's operation.
    :param request: the request as it goes into a change set.
    :param verify: ``"exists"`` for creates (done when the row is there), ``"absent"`` for
        deletes (done when it is gone), None when resending is harmless.
    :param check_url: GET URL that reads the row by key, for verification.
    :param entity_id: the row's GUID when the key already tells it (Dataverse primary key).
    """

    op: WriteOperation
    request: BatchRequest
    verify: Literal["exists", "absent"] | None = None
    check_url: str | None = None
    entity_id: str | None = None
    attempts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class UnitResult:
    """How one unit went.

    Either ``outcomes`` (the unit was applied; one outcome per item) or ``error`` (the
    unit failed as a whole; ``culprit`` is the index of the item the service blamed, when
    it said, and ``splittable`` whether sending smaller units can help).
    """

    outcomes: list[WriteOutcome] | None = None
    error: ServiceError | None = None
    culprit: int | None = None
    splittable: bool = True


def outcome_for(
    item: PreparedWrite,
    status: int,
    *,
    ok: bool,
    error: ServiceError | None = None,
    entity_id: str | None = None,
    message: str | None = None,
) -> WriteOutcome:
    """Build the outcome of one item."""
    return WriteOutcome(
        ref=item.op.ref,
        ok=ok,
        status=status,
        error_code=error.code if error else None,
        message=message if message is not None else (error.message if error else None),
        entity_id=entity_id or item.entity_id,
        attempts=max(item.attempts, 1),
    )


def failure(op: WriteOperation, code: str, message: str) -> WriteOutcome:
    """An outcome for an operation rejected before anything was sent."""
    return WriteOutcome(ref=op.ref, ok=False, status=0, error_code=code, message=message, attempts=0)


class WriteEngine:
    """Runs units of prepared writes in parallel and yields one outcome per operation.

    :param session: the hook's HTTP session (retries, token, limiter).
    :param batch_url: the ``$batch`` URL of the service.
    :param logger: where progress goes (INFO).
    :param progress_interval: seconds between INFO progress lines.
    """

    def __init__(
        self,
        session: ODataSession,
        batch_url: str,
        *,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        progress_interval: float = 15.0,
    ) -> None:
        self.session = session
        self.batch_url = batch_url
        self.log = logger or log
        self.progress_interval = progress_interval

    # ------------------------------------------------------------------ change sets

    def send_changeset(self, items: list[PreparedWrite]) -> UnitResult:
        """Send ``items`` as one atomic change set in one ``$batch`` request."""
        requests = [
            replace(item.request, content_id=str(position + 1)) for position, item in enumerate(items)
        ]
        content_type, body = encode_batch([requests])
        idempotent = all(item.verify is None for item in items)
        for item in items:
            item.attempts += 1
        response = self.session.send(
            "POST",
            self.batch_url,
            headers={"Content-Type": content_type, "Accept": "application/json"},
            content=body,
            idempotent=idempotent,
        )
        return self._changeset_result(items, response)

    def _changeset_result(self, items: list[PreparedWrite], response: httpx.Response) -> UnitResult:
        content_type = response.headers.get("Content-Type", "")
        if "multipart/" not in content_type.lower():
            error = parse_error(response.status_code, response.content, content_type)
            if response.status_code < 300:
                error = ServiceError(response.status_code, None, "batch answered without a multipart body")
            if response.status_code in (401, 403):
                raise DynamicsAuthError(f"$batch refused: HTTP {error.status}: {error.message}")
            return UnitResult(error=error, splittable=response.status_code in SPLITTABLE_STATUSES)
        parts = decode_batch_response(content_type, response.content)
        by_id = {str(position + 1): position for position in range(len(items))}
        answered = [part for part in parts if part.changeset is not None]
        failed = [part for part in parts if not part.ok]
        if failed:
            part = failed[0]
            error = parse_error(part.status, part.body, part.header("Content-Type"))
            culprit = by_id.get(part.content_id or "")
            return UnitResult(error=error, culprit=culprit, splittable=True)
        if answered and len(answered) == len(items):
            outcomes = []
            for position, part in enumerate(answered):
                index = by_id.get(part.content_id or "", position)
                item = items[index]
                outcomes.append(self.success_outcome(item, part))
            return UnitResult(outcomes=outcomes)
        if len(parts) == 1 and parts[0].ok and parts[0].changeset is None and len(items) == 1:
            return UnitResult(outcomes=[self.success_outcome(items[0], parts[0])])
        return UnitResult(
            error=ServiceError(
                response.status_code,
                None,
                f"batch answered {len(answered)} change set responses for {len(items)} requests",
            ),
            splittable=True,
        )

    def success_outcome(self, item: PreparedWrite, part: BatchResponse) -> WriteOutcome:
        entity_id = entity_id_from_url(part.header("OData-EntityId") or part.header("Location"))
        return outcome_for(item, part.status, ok=True, entity_id=entity_id)

    # ------------------------------------------------------------------ verification

    def verify_rows(self, items: list[PreparedWrite]) -> list[bool | None]:
        """Read each item's row by key in one batch: True present, False absent, None unknown."""
        checks = [item for item in items if item.check_url]
        states: list[bool | None] = [None] * len(items)
        if not checks:
            return states
        requests = [
            BatchRequest("GET", item.check_url or "", {"Accept": "application/json"}) for item in checks
        ]
        content_type, body = encode_batch(requests)
        response = self.session.send(
            "POST",
            self.batch_url,
            headers={
                "Content-Type": content_type,
                "Accept": "application/json",
                # Dataverse stops at the first failed part otherwise, and a 404 is one.
                "Prefer": "odata.continue-on-error",
            },
            content=body,
            idempotent=True,
        )
        content_type = response.headers.get("Content-Type", "")
        if "multipart/" not in content_type.lower():
            return states
        parts = [
            part for part in decode_batch_response(content_type, response.content) if part.changeset is None
        ]
        answers = dict(zip((id(item) for item in checks), parts, strict=False))
        for position, item in enumerate(items):
            part = answers.get(id(item))
            if part is None:
                continue
            if part.status == 200:
                states[position] = True
            elif part.status == 404:
                states[position] = False
        return states

    def _settle_ambiguous(self, items: list[PreparedWrite]) -> tuple[list[PreparedWrite], list[WriteOutcome]]:
        """After an ambiguous failure: report what already happened, return what to resend."""
        to_check = [item for item in items if item.verify is not None]
        states = self.verify_rows(to_check)
        settled: list[WriteOutcome] = []
        unknown: list[PreparedWrite] = []
        done_ids: set[int] = set()
        for item, state in zip(to_check, states, strict=True):
            if state is None:
                unknown.append(item)
            elif (item.verify == "exists" and state) or (item.verify == "absent" and not state):
                done_ids.add(id(item))
                what = "present" if item.verify == "exists" else "absent"
                settled.append(
                    outcome_for(
                        item,
                        200 if state else 404,
                        ok=True,
                        message=f"row already {what} after an interrupted attempt",
                    )
                )
        if unknown:
            raise AmbiguousWriteError(
                f"{len(unknown)} write(s) failed ambiguously and their rows could not be read back; "
                "not resending them blindly"
            )
        return [item for item in items if id(item) not in done_ids], settled

    def _give_up(self, items: list[PreparedWrite], exc: Exception, attempts: int) -> list[WriteOutcome]:
        """Outcomes for a unit whose every attempt was interrupted: one each, never a raise.

        The rows are read back once more, so a create that did land on the last attempt is
        still reported done; the others fail with ``error_code="interrupted"`` and say
        whether they are known not to be applied (read back) or may be (updates, upserts),
        instead of an exception that would lose every other unit's outcomes too.
        """
        remaining, outcomes = self._settle_ambiguous(items)
        self.log.warning(
            "Giving up on %d write(s) after %d interrupted attempts (%s)", len(remaining), attempts, exc
        )
        for item in remaining:
            if item.verify is not None:
                state = "the row was read back: not applied"
            else:
                state = "it may or may not have been applied; sending it again is safe"
            error = ServiceError(0, INTERRUPTED, f"{attempts} attempts were interrupted ({exc}); {state}")
            outcomes.append(outcome_for(item, 0, ok=False, error=error))
        return outcomes

    # ------------------------------------------------------------------ units

    def unit_size(self, batch_size: int, remaining: int | None = None) -> int:
        """Records for the next unit: ``batch_size``, smaller while it pays to be smaller.

        * During slow start units grow with the window (``batch_size`` times the share of the
          concurrency ceiling allowed so far): a round of requests lasts about as long as its
          largest unit, so small first units let the window reach the ceiling in a few short
          rounds instead of a few full-size ones.
        * With ``remaining`` known, the rest is spread over every slot the service allows
          rather than packed into fewer, longer requests that leave slots idle, and the last
          units get smaller, so the load does not wait on one long straggler.

        Never below ``MIN_UNIT`` (a request costs its latency whatever its size), never above
        ``batch_size``.
        """
        limiter = self.session.limiter
        slots = max(limiter.ceiling, 1)
        size = batch_size
        if limiter.slow_start:
            size = math.ceil(batch_size * limiter.allowed / slots)
        if remaining is not None:
            size = min(size, math.ceil(max(remaining, 1) / slots))
        return max(min(size, batch_size), min(MIN_UNIT, batch_size))

    def units(
        self,
        prepared: Iterable[PreparedWrite | WriteOutcome],
        route: Callable[[PreparedWrite], tuple[Hashable, Callable[[list[PreparedWrite]], UnitResult]]],
        *,
        batch_size: int,
        expected: int | None = None,
    ) -> Iterator[tuple[list[PreparedWrite], Callable[[list[PreparedWrite]], UnitResult]] | WriteOutcome]:
        """Group prepared writes into units per sender (see `unit_size`); outcomes of
        operations that failed preparation pass straight through.

        :param route: the unit a prepared write belongs in (writes of one key share units)
            and the sender of that unit (change set or bulk message).
        :param expected: operations the caller will pass in all, when it knows (a hint).
        """
        buffers: dict[Hashable, list[PreparedWrite]] = {}
        targets: dict[Hashable, int] = {}
        senders: dict[Hashable, Callable[[list[PreparedWrite]], UnitResult]] = {}
        seen = 0
        for item in prepared:
            seen += 1
            if isinstance(item, WriteOutcome):
                yield item
                continue
            key, senders[key] = route(item)
            buffer = buffers.setdefault(key, [])
            if not buffer:
                remaining = None if expected is None else expected - seen + 1
                targets[key] = self.unit_size(batch_size, remaining)
            buffer.append(item)
            if len(buffer) >= targets[key]:
                yield buffer, senders[key]
                buffers[key] = []
        for key, buffer in buffers.items():
            if buffer:
                yield buffer, senders[key]

    def run_unit(
        self, items: list[PreparedWrite], sender: Callable[[list[PreparedWrite]], UnitResult]
    ) -> list[WriteOutcome]:
        """Write one unit; isolate bad records; return one outcome per item."""
        outcomes: list[WriteOutcome] = []
        stack: list[tuple[list[PreparedWrite], int]] = [(items, 0)]
        while stack:
            part, ambiguous_rounds = stack.pop()
            if ambiguous_rounds:
                part, settled = self._settle_ambiguous(part)
                outcomes.extend(settled)
                if not part:
                    continue
            try:
                result = sender(part)
            except AmbiguousWriteError as exc:
                if ambiguous_rounds >= MAX_AMBIGUOUS_ROUNDS:
                    outcomes.extend(self._give_up(part, exc, ambiguous_rounds + 1))
                    continue
                waited = self.session.pause_before_resend(ambiguous_rounds + 1, exc.retry_after)
                self.log.warning(
                    "%s; waited %.1f s, reading %d row(s) back before resending", exc, waited, len(part)
                )
                stack.append((part, ambiguous_rounds + 1))
                continue
            if result.outcomes is not None:
                outcomes.extend(result.outcomes)
                continue
            error = result.error or ServiceError(0, None, "unknown failure")
            if len(part) == 1:
                outcomes.append(outcome_for(part[0], error.status, ok=False, error=error))
            elif not result.splittable:
                outcomes.extend(outcome_for(item, error.status, ok=False, error=error) for item in part)
            elif result.culprit is not None and 0 <= result.culprit < len(part):
                bad = part[result.culprit]
                outcomes.append(outcome_for(bad, error.status, ok=False, error=error))
                rest = part[: result.culprit] + part[result.culprit + 1 :]
                stack.append((rest, 0))
            else:
                middle = len(part) // 2
                stack.append((part[middle:], 0))
                stack.append((part[:middle], 0))
        return outcomes

    def _run_unit_at(
        self, priority: float, items: list[PreparedWrite], sender: Callable[[list[PreparedWrite]], UnitResult]
    ) -> list[WriteOutcome]:
        with request_priority(priority):
            return self.run_unit(items, sender)

    def run(
        self,
        work: Iterable[
            tuple[list[PreparedWrite], Callable[[list[PreparedWrite]], UnitResult]] | WriteOutcome
        ],
        *,
        label: str = "write",
    ) -> Iterator[WriteOutcome]:
        """Run units in parallel and yield outcomes as they land.

        Units are pulled from ``work`` lazily and only when the limiter has room for them
        (one spare in hand), so memory holds only the units in flight and each unit is cut
        (see `unit_size`) when it is about to be sent, with the window of that moment.
        """
        workers = max(self.session.limiter.maximum, 1)
        priority = time.monotonic()  # older streams first (see request_priority)
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dynamics-write")
        pending: set[Future[list[WriteOutcome]]] = set()
        started = time.monotonic()
        last_log = started
        counts = {"ok": 0, "failed": 0}

        def drain(block_until_below: int) -> Iterator[WriteOutcome]:
            nonlocal pending
            while len(pending) > block_until_below:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    for outcome in future.result():
                        counts["ok" if outcome.ok else "failed"] += 1
                        yield outcome

        try:
            for item in work:
                if isinstance(item, WriteOutcome):
                    counts["failed"] += 1
                    yield item
                    continue
                yield from drain(min(workers, self.session.limiter.allowed + 1) - 1)
                items, sender = item
                pending.add(executor.submit(self._run_unit_at, priority, items, sender))
                now = time.monotonic()
                if now - last_log >= self.progress_interval:
                    last_log = now
                    self._log_progress(label, counts, started)
            yield from drain(0)
        finally:
            for future in pending:
                future.cancel()
            executor.shutdown(wait=True, cancel_futures=True)
        self._log_progress(label, counts, started, final=True)

    def _log_progress(
        self, label: str, counts: dict[str, int], started: float, *, final: bool = False
    ) -> None:
        limiter = self.session.limiter
        self.log.info(
            "%s %s: %d ok, %d failed in %.1f s; %d throttled responses, %d refused connections; "
            "concurrency %d (ceiling %d)",
            label,
            "done" if final else "progress",
            counts["ok"],
            counts["failed"],
            time.monotonic() - started,
            limiter.stats.throttles,
            limiter.stats.connect_failures,
            limiter.allowed,
            limiter.ceiling,
        )


def json_body(data: Any) -> bytes:
    """Serialize a request body the way both services expect (UTF-8 JSON)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
