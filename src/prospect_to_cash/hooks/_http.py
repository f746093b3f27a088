"""The HTTP layer shared by both hooks: one pooled client, retries, adaptive concurrency.

Every request to Dynamics goes through `ODataSession.send`, which

* adds the bearer token (refreshed before expiry, and after a 401: a revocation storm is
  survived with a new token and a backoff per refusal, within a budget per request and per
  session, i.e. per task);
* holds a slot of the `AdaptiveLimiter` while the request is in flight, so the number of
  concurrent requests follows the service (``x-ms-dop-hint``, 429s) instead of a constant;
* retries 429, 502, 503, 504 and connection errors with exponential backoff and jitter,
  never sooner than ``Retry-After`` says; a connection that cannot be established (refused,
  reset or timed out during the TCP or TLS handshake) is an overload signal like a 429: it
  shrinks the concurrency, and it has its own, larger retry budget since it is always safe to
  resend;
* retries a request that is not idempotent only when the failure proves the service did
  not apply it (429, or a connection that never got established); after a failure that
  leaves this open it raises `AmbiguousWriteError` so the caller can read before it resends.
"""

from __future__ import annotations

import contextvars
import email.utils
import hashlib
import heapq
import itertools
import logging
import math
import random
import ssl
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from prospect_to_cash.hooks.errors import (
    AmbiguousWriteError,
    DynamicsAPIError,
    DynamicsAuthError,
    DynamicsTransportError,
    parse_error,
)
from prospect_to_cash.hooks.odata import resolve_next_link

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from prospect_to_cash.hooks._auth import TokenProvider

log = logging.getLogger(__name__)

# Statuses worth retrying. 429 is a refusal before any work; 502/503/504 come from
# gateways and front ends, and a write behind them may or may not have been applied.
THROTTLED = 429
RETRYABLE_STATUSES = frozenset({THROTTLED, 502, 503, 504})
# Connection failures that happen before the request reaches the service. httpcore maps a
# refused or reset connect and a failed TLS handshake (ssl.SSLError is an OSError) to
# ConnectError, a socket timeout in either handshake to ConnectTimeout; PoolTimeout is a
# request that never got a connection of the pool (all of them busy or still connecting).
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Failures after the request (or part of it) left: the service may have applied it.
AMBIGUOUS_ERRORS: tuple[type[Exception], ...] = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry and how long to wait.

    :param max_attempts: attempts per request, the first one included.
    :param backoff_base: first backoff in seconds; doubles per attempt.
    :param backoff_max: ceiling of one backoff.
    :param throttle_wait: wait after a 429 that carries no ``Retry-After`` (Microsoft's
        F&O sample waits 30 s).
    :param max_retry_after: longest ``Retry-After`` honoured before giving up; a service
        asking for more is not coming back within this task.
    :param auth_retries: 401s one request survives, each answered with a new token; the
        first is retried at once (a token revoked or expired early), later ones after a
        backoff, so a credential that really stopped working fails within seconds.
    :param auth_budget: tokens one session (one hook, so one task) may replace after a 401;
        a storm beyond that fails the task and leaves the rest to Airflow's retries.
    :param connect_attempts: tries per request that fail before the request reached the
        service (`NOT_SENT_ERRORS`), counted apart from ``max_attempts``: an overloaded front
        door resets or stalls new connections in bursts, resending is safe even for writes,
        and with the default backoff 16 tries outlast about eight minutes of refusals.
    """

    max_attempts: int = 8
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    throttle_wait: float = 30.0
    max_retry_after: float = 900.0
    auth_retries: int = 4
    auth_budget: int = 24
    connect_attempts: int = 16

    def should_retry(
        self,
        attempt: int,
        *,
        status: int | None = None,
        error: Exception | None = None,
        idempotent: bool = True,
    ) -> bool:
        """Whether attempt ``attempt`` (1-based) may be followed by another.

        For an ``error`` of `NOT_SENT_ERRORS`, ``attempt`` counts the request's failures of
        that kind only, against ``connect_attempts``.

        :param status: the response status, when there was a response.
        :param error: the transport exception, when there was none.
        :param idempotent: whether repeating the request is harmless.
        """
        if isinstance(error, NOT_SENT_ERRORS):
            return attempt < self.connect_attempts
        if attempt >= self.max_attempts:
            return False
        if error is not None:
            return idempotent and isinstance(error, AMBIGUOUS_ERRORS)
        if status == THROTTLED:
            return True
        return idempotent and status in RETRYABLE_STATUSES

    def delay(
        self,
        attempt: int,
        *,
        retry_after: float | None = None,
        throttled: bool = False,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to sleep before attempt ``attempt + 1``.

        ``Retry-After`` is a floor, never shortened; a little jitter on top keeps parallel
        workers from returning in the same instant. Without it: exponential backoff with
        "equal jitter" (half fixed, half random), so every retry really waits.
        """
        rng = rng or random
        if retry_after is not None:
            return retry_after + rng.uniform(0, min(1.0, 0.1 * retry_after + 0.05))
        if throttled:
            return self.throttle_wait + rng.uniform(0, 1.0)
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass
class LimiterStats:
    """What the limiter saw, for progress logs and tests."""

    throttles: int = 0
    #: Requests that could not get a connection to the service (`NOT_SENT_ERRORS`).
    connect_failures: int = 0
    decreases: int = 0
    successes: int = 0
    peak_in_flight: int = 0
    history: list[float] = field(default_factory=list)


#: Priority of the requests the current thread sends: lower goes first (see `request_priority`).
_PRIORITY: contextvars.ContextVar[float] = contextvars.ContextVar("p2c_request_priority", default=0.0)


@contextmanager
def request_priority(value: float) -> Iterator[None]:
    """Requests sent inside wait for a slot behind every request of lower ``value``.

    Reads default to 0, so a read that unblocks a step goes before writes; a write stream
    uses the time it started, so when several streams share one limiter (company pairs run
    side by side) the oldest gets the slots first and finishes its phase first, and its next
    reads and transform overlap the other streams' writes instead of all streams reaching
    their next step together and leaving the slots idle.
    """
    token = _PRIORITY.set(value)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


class AdaptiveLimiter:
    """A concurrency limit that adapts: slow start, then additive increase, multiplicative
    decrease (AIMD), as TCP does.

    Until the service first pushes back, every success raises the limit by one (it doubles
    per round of requests), so a load reaches the service's capacity in a few rounds
    instead of hundreds; after the first 429, every success raises it by ``1 / limit``
    (about one more slot per round: the slow ramp Microsoft asks for). A 429, or a
    connection the service could not accept (``overloaded``: refused, reset or timed out
    before the request was sent, what a saturated front door does), halves it, at most once
    per ``cooldown`` seconds so a burst of them from requests that were already in flight
    counts as one signal. A 429 also pauses every new
    request until ``Retry-After`` has passed (service protection is per user, so one
    throttled request means all are). The ``x-ms-dop-hint`` header sets the ceiling: the
    service's own recommendation for parallel requests. Waiting requests get free slots in
    order of `request_priority`, then of arrival.

    :param initial: starting limit; modest, the service tells us when we may go faster.
    :param minimum: the limit never drops below this.
    :param maximum: hard ceiling whatever the hint says.
    :param cooldown: seconds between two decreases.
    :param clock: monotonic clock, replaceable in tests.
    :param sleep: sleep function, replaceable in tests.
    """

    def __init__(
        self,
        *,
        initial: int = 2,
        minimum: int = 1,
        maximum: int = 16,
        cooldown: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError("need 1 <= minimum <= maximum")
        self.minimum = minimum
        self.maximum = maximum
        self.ceiling = maximum
        self.limit = float(min(max(initial, minimum), maximum))
        self.cooldown = cooldown
        self.in_flight = 0
        self.paused_until = 0.0
        self.stats = LimiterStats()
        self._last_decrease = -math.inf
        self.slow_start = True
        self._clock = clock
        self._condition = threading.Condition()
        self._waiting: list[tuple[float, int]] = []
        self._arrivals = itertools.count()

    @property
    def allowed(self) -> int:
        """Requests allowed in flight right now."""
        return max(self.minimum, min(int(self.limit), self.ceiling))

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        with self._condition:
            return len(self._waiting)

    def acquire(self) -> None:
        """Block until a slot is free, no throttling pause is running and no waiting request
        of lower priority (`request_priority`) or earlier arrival is ahead."""
        with self._condition:
            ticket = (_PRIORITY.get(), next(self._arrivals))
            heapq.heappush(self._waiting, ticket)
            try:
                while True:
                    wait = self.paused_until - self._clock()
                    if wait <= 0 and self.in_flight < self.allowed and self._waiting[0] == ticket:
                        heapq.heappop(self._waiting)
                        self.in_flight += 1
                        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.in_flight)
                        self._condition.notify_all()  # the next in line may fit too
                        return
                    self._condition.wait(timeout=wait if wait > 0 else 1.0)
            except BaseException:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                    heapq.heapify(self._waiting)
                    self._condition.notify_all()
                raise

    def release(
        self,
        *,
        throttled: bool = False,
        overloaded: bool = False,
        retry_after: float | None = None,
        dop_hint: int | None = None,
        success: bool = True,
    ) -> None:
        """Give the slot back and learn from how the request went.

        :param throttled: the service answered 429.
        :param overloaded: no connection to the service could be established.
        """
        with self._condition:
            self.in_flight = max(self.in_flight - 1, 0)
            if dop_hint is not None and dop_hint > 0:
                self.ceiling = max(self.minimum, min(self.maximum, dop_hint))
                self.limit = min(self.limit, float(self.ceiling))
            if throttled or overloaded:
                if throttled:
                    self.stats.throttles += 1
                else:
                    self.stats.connect_failures += 1
                now = self._clock()
                self.slow_start = False
                if now - self._last_decrease >= self.cooldown:
                    self.limit = max(float(self.minimum), self.limit / 2)
                    self._last_decrease = now
                    self.stats.decreases += 1
                if throttled and retry_after:
                    self.paused_until = max(self.paused_until, now + retry_after)
            elif success:
                self.stats.successes += 1
                step = 1.0 if self.slow_start else 1 / max(self.limit, 1.0)
                self.limit = min(float(self.ceiling), self.limit + step)
            self.stats.history.append(self.limit)
            if len(self.stats.history) > 1000:
                del self.stats.history[:500]
            self._condition.notify_all()

    def wait_for_pause(self) -> None:
        """Sleep out a throttling pause without holding a slot."""
        with self._condition:
            while (wait := self.paused_until - self._clock()) > 0:
                self._condition.wait(timeout=wait)


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verification always on: system trust, or the given CA bundle on top of nothing else."""
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    return ssl.create_default_context()


class ODataSession:
    """One pooled, authenticated HTTP client for one environment.

    :param base_url: the service root (``.../api/data/v9.2/`` or ``.../data/``).
    :param tokens: where bearer tokens come from.
    :param default_headers: OData headers every request carries.
    :param ca_bundle: CA bundle for TLS verification (system trust when None).
    :param timeout: httpx timeout; reads get long because a batch can take minutes.
    :param retry: retry policy.
    :param limiter: adaptive concurrency limiter shared by all requests of the hook.
    :param transport: httpx transport override (tests).
    :param logger: logger for retry and throttle messages.
    :param sleep: sleep function (tests).
    """

    def __init__(
        self,
        *,
        base_url: str,
        tokens: TokenProvider,
        default_headers: Mapping[str, str],
        ca_bundle: str | None = None,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        limiter: AdaptiveLimiter | None = None,
        transport: httpx.BaseTransport | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.tokens = tokens
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or AdaptiveLimiter()
        self.log = logger or log
        self._sleep = sleep
        self._rng = random.Random()
        self._auth_lock = threading.Lock()
        # Tokens this session saw refused (counted once however many requests carried them).
        self._refused_tokens: set[str] = set()
        pool = max(self.limiter.maximum + 2, 4)
        self.client = httpx.Client(
            headers=dict(default_headers),
            timeout=timeout or httpx.Timeout(connect=15.0, read=300.0, write=120.0, pool=600.0),
            verify=ssl_context(ca_bundle),
            transport=transport,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            follow_redirects=False,
        )

    def close(self) -> None:
        self.client.close()

    def url(self, path: str) -> str:
        """Absolute URL of a path relative to the service root."""
        if path.startswith(("https://", "http://")):
            return path
        return self.base_url + path.lstrip("/")

    def _sleep_for(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)

    def pause_before_resend(self, round_: int, retry_after: float | None = None) -> float:
        """Wait before reading back and resending a write that failed ambiguously.

        A service that just dropped a write or answered 503 is likely to do it again at
        once, and each ambiguous round brings the unit closer to being given up on: honour
        its ``Retry-After`` (within the policy's limit), else back off like any retry.

        :param round_: 1 for the first resend of the unit, 2 for the second, ...
        :return: the seconds waited.
        """
        honoured = (
            retry_after if retry_after is not None and retry_after <= self.retry.max_retry_after else None
        )
        seconds = self.retry.delay(round_, retry_after=honoured, rng=self._rng)
        self._sleep_for(seconds)
        return seconds

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send one request with retries; return the final response, whatever its status.

        :raises DynamicsAuthError: no token, or 401s beyond `RetryPolicy.auth_retries` for this
            request or `RetryPolicy.auth_budget` for the session.
        :raises AmbiguousWriteError: a non-idempotent request failed after it may have been
            applied; the caller must find out before sending it again.
        :raises DynamicsTransportError: connection errors outlasted the retry policy.
        """
        target = self.url(url)
        attempt = 0  # tries that reached the service (or may have)
        unsent = 0  # tries that failed before the request left (their own budget)
        refusals = 0
        while True:
            attempt += 1
            token = self.tokens.token()
            request_headers = dict(headers or {})
            request_headers["Authorization"] = f"Bearer {token}"
            self.limiter.wait_for_pause()
            self.limiter.acquire()
            response: httpx.Response | None = None
            try:
                response = self.client.request(method, target, headers=request_headers, content=content)
                response.read()
                detach_stream(response)
            except NOT_SENT_ERRORS as exc:
                self.limiter.release(overloaded=True, success=False)
                attempt -= 1
                unsent += 1
                if self.retry.should_retry(unsent, error=exc):
                    delay = self.retry.delay(unsent, rng=self._rng)
                    self.log.warning(
                        "%s %s could not connect (%s: %s); retry %d in %.1f s, at most %d in flight",
                        method,
                        _short(target),
                        type(exc).__name__,
                        exc,
                        unsent,
                        delay,
                        self.limiter.allowed,
                    )
                    self._sleep_for(delay)
                    continue
                raise DynamicsTransportError(
                    f"{method} {_short(target)} could not connect in {unsent} attempt(s): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            except httpx.TransportError as exc:
                self.limiter.release(success=False)
                if self.retry.should_retry(attempt, error=exc, idempotent=idempotent):
                    delay = self.retry.delay(attempt, rng=self._rng)
                    self.log.warning(
                        "%s %s failed (%s: %s); retry %d in %.1f s",
                        method,
                        _short(target),
                        type(exc).__name__,
                        exc,
                        attempt,
                        delay,
                    )
                    self._sleep_for(delay)
                    continue
                if not idempotent and isinstance(exc, AMBIGUOUS_ERRORS):
                    raise AmbiguousWriteError(
                        f"{method} {_short(target)} failed after it may have reached the service: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                raise DynamicsTransportError(
                    f"{method} {_short(target)} failed after {attempt} attempt(s): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            throttled = status == THROTTLED
            # A pause longer than the policy accepts is not waited for: the call gives up.
            pause = retry_after if throttled and (retry_after or 0) <= self.retry.max_retry_after else None
            self.limiter.release(
                throttled=throttled,
                retry_after=pause,
                dop_hint=_int_or_none(response.headers.get("x-ms-dop-hint")),
                success=status < 500 and not throttled,
            )
            if status == 401:
                refusals += 1
                self._after_refusal(method, target, token, refusals, response)
                continue
            if status in RETRYABLE_STATUSES:
                if retry_after is not None and retry_after > self.retry.max_retry_after:
                    return response
                if self.retry.should_retry(attempt, status=status, idempotent=idempotent):
                    delay = self.retry.delay(
                        attempt, retry_after=retry_after, throttled=throttled, rng=self._rng
                    )
                    self.log.warning(
                        "%s %s answered %d%s; retry %d in %.1f s",
                        method,
                        _short(target),
                        status,
                        f" (Retry-After {retry_after:g} s)" if retry_after is not None else "",
                        attempt,
                        delay,
                    )
                    self._sleep_for(delay)
                    continue
                if not idempotent and not throttled:
                    raise AmbiguousWriteError(
                        f"{method} {_short(target)} answered {status}; the service may have applied it",
                        retry_after=retry_after,
                    )
            return response

    @property
    def tokens_refused(self) -> int:
        """Distinct tokens the services refused with a 401 during this session."""
        with self._auth_lock:
            return len(self._refused_tokens)

    def _after_refusal(
        self, method: str, target: str, token: str, refusals: int, response: httpx.Response
    ) -> None:
        """Drop a refused token and wait before the next try, or raise once a budget is spent.

        Requests in flight together share a token, so a revocation counts once against the
        session's budget however many of them the 401 hit.
        """
        with self._auth_lock:
            self._refused_tokens.add(_token_key(token))
            refused = len(self._refused_tokens)
        over_request = refusals > self.retry.auth_retries
        over_session = refused > self.retry.auth_budget
        if over_request or over_session:
            error = parse_error(401, response.content, response.headers.get("Content-Type"))
            limit = (
                f"{refusals} tokens in a row for this request"
                if over_request
                else f"{refused} tokens in this task (budget {self.retry.auth_budget})"
            )
            raise DynamicsAuthError(
                f"{method} {_short(target)}: the service refused {limit}: {error.message}"
            )
        self.tokens.invalidate(token)
        delay = 0.0 if refusals == 1 else self.retry.delay(refusals - 1, rng=self._rng)
        self.log.info(
            "%s %s answered 401 (%d for this request); new token, retry in %.1f s",
            method,
            _short(target),
            refusals,
            delay,
        )
        self._sleep_for(delay)

    def get_json_pages(
        self, url: str, *, headers: Mapping[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """GET a collection and follow ``@odata.nextLink`` to the end, one payload per page."""
        next_url: str | None = self.url(url)
        while next_url:
            response = self.send("GET", next_url, headers=headers)
            if response.status_code != 200:
                error = parse_error(
                    response.status_code, response.content, response.headers.get("Content-Type")
                )
                raise DynamicsAPIError.from_error(error, _short(next_url))
            payload = response.json()
            link = payload.get("@odata.nextLink")
            yield payload
            next_url = resolve_next_link(next_url, link) if link else None


def detach_stream(response: httpx.Response) -> None:
    """Let a fully read response be freed as soon as the caller drops it.

    httpx 0.28 wraps every body in a stream object that points back at its response
    (encode/httpx#3733), a reference cycle only the cyclic garbage collector frees. That
    collector counts objects, not bytes, so during a long paged read the multi-megabyte
    page bodies piled up (RSS grew by about half the data read). Once the body is in
    ``response.content`` the wrapper has no further use: swap it for a plain byte stream.
    """
    response.stream = httpx.ByteStream(response.content)


def _token_key(token: str) -> str:
    """A digest standing for a token in memory, so refused tokens are never kept themselves."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _short(url: str, limit: int = 200) -> str:
    """A URL trimmed for log lines (filters can be long)."""
    return url if len(url) <= limit else url[: limit - 1] + "…"
