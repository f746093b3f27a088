"""Retry decisions, Retry-After, the AIMD limiter and the session's transport mechanics."""

from __future__ import annotations

import email.utils
import random
import threading
import time

import httpx
import pytest

from prospect_to_cash.hooks._http import (
    AdaptiveLimiter,
    ODataSession,
    RetryPolicy,
    parse_retry_after,
    request_priority,
)
from prospect_to_cash.hooks.errors import AmbiguousWriteError, DynamicsAuthError, DynamicsTransportError
from tests.unit.hooks.conftest import odata_json

ROOT = "https://org.crm.dynamics.com/api/data/v9.2/"
THROTTLE_BODY = {
    "error": {
        "code": "0x80072322",
        "message": "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
    }
}


class FakeTokens:
    """Stands in for msal: numbered tokens, records invalidations."""

    def __init__(self) -> None:
        self.issued = 0
        self.current: str | None = None
        self.invalidated: list[str] = []

    def token(self) -> str:
        if self.current is None:
            self.issued += 1
            self.current = f"token-{self.issued}"
        return self.current

    def invalidate(self, rejected: str) -> None:
        self.invalidated.append(rejected)
        if self.current == rejected:
            self.current = None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_session(handler, *, sleeps: list[float] | None = None, policy: RetryPolicy | None = None):
    """A session on a mock transport whose sleeps only advance a fake clock."""
    tokens = FakeTokens()
    recorded = sleeps if sleeps is not None else []
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        recorded.append(seconds)
        clock.now += seconds

    session = ODataSession(
        base_url=ROOT,
        tokens=tokens,  # type: ignore[arg-type]
        default_headers={"Accept": "application/json"},
        retry=policy or RetryPolicy(max_attempts=4),
        limiter=AdaptiveLimiter(initial=2, maximum=8, clock=clock),
        transport=httpx.MockTransport(handler),
        sleep=sleep,
    )
    return session, tokens


class TestRetryAfter:
    @pytest.mark.parametrize(("value", "expected"), [("7", 7.0), (" 2.5 ", 2.5), ("0", 0.0), ("-3", 0.0)])
    def test_seconds(self, value: str, expected: float) -> None:
        assert parse_retry_after(value) == expected

    def test_http_date(self) -> None:
        now = time.time()
        value = email.utils.formatdate(now + 30, usegmt=True)
        assert parse_retry_after(value, now=now) == pytest.approx(30, abs=1)

    @pytest.mark.parametrize("value", [None, "", "soon", "nan"])
    def test_unusable(self, value: str | None) -> None:
        assert parse_retry_after(value) is None


class TestRetryPolicy:
    policy = RetryPolicy(max_attempts=3)

    @pytest.mark.parametrize(
        ("status", "idempotent", "expected"),
        [
            (429, True, True),
            (429, False, True),  # a 429 is refused before any work: safe even for a create
            (503, True, True),
            (503, False, False),  # a gateway error may hide an applied write
            (504, False, False),
            (502, True, True),
            (500, True, False),
            (400, True, False),
            (412, True, False),
        ],
    )
    def test_status_decisions(self, status: int, idempotent: bool, expected: bool) -> None:
        assert self.policy.should_retry(1, status=status, idempotent=idempotent) is expected

    @pytest.mark.parametrize(
        ("error", "idempotent", "expected"),
        [
            (httpx.ConnectError("refused"), False, True),  # never reached the service
            (httpx.ConnectTimeout("slow"), False, True),
            (httpx.RemoteProtocolError("reset"), True, True),
            (httpx.RemoteProtocolError("reset"), False, False),
            (httpx.ReadTimeout("slow"), False, False),
            (httpx.ReadError("reset"), True, True),
        ],
    )
    def test_error_decisions(self, error: Exception, idempotent: bool, expected: bool) -> None:
        assert self.policy.should_retry(1, error=error, idempotent=idempotent) is expected

    def test_attempts_are_bounded(self) -> None:
        assert self.policy.should_retry(2, status=429) is True
        assert self.policy.should_retry(3, status=429) is False

    def test_unsent_failures_have_their_own_budget(self) -> None:
        policy = RetryPolicy(max_attempts=3, connect_attempts=5)
        for error in (httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("busy")):
            assert policy.should_retry(4, error=error, idempotent=False) is True
            assert policy.should_retry(5, error=error, idempotent=False) is False
        assert policy.should_retry(4, error=httpx.ReadError("reset")) is False

    def test_retry_after_is_a_floor(self) -> None:
        rng = random.Random(1)
        delays = [self.policy.delay(1, retry_after=5.0, rng=rng) for _ in range(200)]
        assert min(delays) >= 5.0
        assert max(delays) <= 5.0 + 0.55

    def test_backoff_grows_with_jitter(self) -> None:
        policy = RetryPolicy(backoff_base=1.0, backoff_max=8.0)
        rng = random.Random(2)
        for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
            samples = [policy.delay(attempt, rng=rng) for _ in range(100)]
            assert all(ceiling / 2 <= s <= ceiling for s in samples)
            assert len({round(s, 6) for s in samples}) > 50  # jittered, not constant

    def test_throttle_without_header_waits_the_default(self) -> None:
        assert 30.0 <= RetryPolicy().delay(1, throttled=True, rng=random.Random(3)) <= 31.0


class TestAdaptiveLimiter:
    def test_additive_increase_up_to_the_ceiling(self) -> None:
        limiter = AdaptiveLimiter(initial=2, maximum=6, clock=FakeClock())
        for _ in range(200):
            limiter.acquire()
            limiter.release()
        assert limiter.allowed == 6

    def test_slow_start_doubles_per_round_until_the_first_throttle(self) -> None:
        limiter = AdaptiveLimiter(initial=2, maximum=50, clock=FakeClock())
        rounds = []
        for _ in range(4):
            for _ in range(limiter.allowed):  # one round: every slot in flight, then answered
                limiter.acquire()
            for _ in range(limiter.in_flight):
                limiter.release()
            rounds.append(limiter.allowed)
        assert rounds == [4, 8, 16, 32]

    def test_increase_is_gradual_after_a_throttle(self) -> None:
        clock = FakeClock()
        limiter = AdaptiveLimiter(initial=8, maximum=50, clock=clock)
        limiter.acquire()
        limiter.release(throttled=True)
        assert limiter.allowed == 4
        allowed = []
        for _ in range(3):
            limiter.acquire()
            limiter.release()
            allowed.append(limiter.allowed)
        assert allowed == [4, 4, 4]  # 4 -> 4.25 -> 4.49 -> 4.71: about one slot per round of requests
        for _ in range(4):
            limiter.acquire()
            limiter.release()
        assert limiter.allowed == 5

    def test_throttle_halves_once_per_cooldown_and_pauses(self) -> None:
        clock = FakeClock()
        limiter = AdaptiveLimiter(initial=8, maximum=16, cooldown=2.0, clock=clock)
        for _ in range(6):  # a burst of 429s from requests already in flight
            limiter.acquire()
        for _ in range(5):
            limiter.release(throttled=True, retry_after=3.0)
        assert limiter.allowed == 4
        assert limiter.stats.throttles == 5
        assert limiter.stats.decreases == 1
        assert limiter.paused_until == 3.0
        clock.now = 1.0  # within the cooldown: another 429 does not halve again
        limiter.release(throttled=True, retry_after=1.0)
        assert limiter.allowed == 4
        clock.now = 3.0  # pause over, cooldown over
        limiter.acquire()
        limiter.release(throttled=True, retry_after=1.0)
        assert limiter.allowed == 2
        assert limiter.paused_until == 4.0

    def test_recovers_after_throttling_stops(self) -> None:
        clock = FakeClock()
        limiter = AdaptiveLimiter(initial=8, maximum=8, clock=clock)
        limiter.acquire()
        limiter.release(throttled=True, retry_after=1.0)
        assert limiter.allowed == 4
        clock.now = 5.0
        for _ in range(40):
            limiter.acquire()
            limiter.release()
        assert limiter.allowed == 8

    def test_never_below_minimum(self) -> None:
        clock = FakeClock()
        limiter = AdaptiveLimiter(initial=2, minimum=1, maximum=4, cooldown=0.0, clock=clock)
        for step in range(10):
            clock.now = float(step)
            limiter.acquire()
            limiter.release(throttled=True)
        assert limiter.allowed == 1

    def test_dop_hint_sets_the_ceiling(self) -> None:
        limiter = AdaptiveLimiter(initial=2, maximum=16, clock=FakeClock())
        limiter.acquire()
        limiter.release(dop_hint=4)
        for _ in range(100):
            limiter.acquire()
            limiter.release(dop_hint=4)
        assert limiter.allowed == 4
        limiter.acquire()
        limiter.release(dop_hint=64)  # the hard maximum still wins
        assert limiter.ceiling == 16

    def test_concurrency_is_really_bounded(self) -> None:
        limiter = AdaptiveLimiter(initial=3, maximum=3)
        active = 0
        peak = 0
        lock = threading.Lock()

        def work() -> None:
            nonlocal active, peak
            limiter.acquire()
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.01)
            with lock:
                active -= 1
            limiter.release(success=False)

        threads = [threading.Thread(target=work) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert peak == 3
        assert limiter.stats.peak_in_flight == 3

    def test_acquire_waits_out_a_pause(self) -> None:
        limiter = AdaptiveLimiter(initial=2, maximum=2)
        limiter.acquire()
        limiter.release(throttled=True, retry_after=0.2)
        started = time.monotonic()
        limiter.acquire()
        assert time.monotonic() - started >= 0.18

    def test_free_slots_go_by_priority_then_arrival(self) -> None:
        limiter = AdaptiveLimiter(initial=1, maximum=1)
        limiter.acquire()  # the only slot is taken: everyone below queues
        order: list[str] = []

        def request(name: str, priority: float) -> None:
            with request_priority(priority):
                limiter.acquire()
            order.append(name)
            limiter.release(success=False)

        threads = []
        for name, priority in [
            ("late stream", 20.0),
            ("early stream", 10.0),
            ("read", 0.0),
            ("early 2", 10.0),
        ]:
            thread = threading.Thread(target=request, args=(name, priority))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 5
            while limiter.waiting < len(threads) and time.monotonic() < deadline:
                time.sleep(0.005)
        assert limiter.waiting == 4
        limiter.release(success=False)
        for thread in threads:
            thread.join(timeout=5)
        assert order == ["read", "early stream", "early 2", "late stream"]
        assert limiter.waiting == 0

    def test_a_waiter_that_gives_up_leaves_the_queue(self) -> None:
        limiter = AdaptiveLimiter(initial=1, maximum=1)
        limiter.acquire()
        limiter.release(throttled=True, retry_after=0.3)  # paused: the next acquire waits
        failed: list[BaseException] = []

        def interrupted_wait(*args: object, **kwargs: object) -> bool:
            raise KeyboardInterrupt

        real_wait = limiter._condition.wait
        limiter._condition.wait = interrupted_wait  # type: ignore[method-assign]
        try:
            limiter.acquire()
        except KeyboardInterrupt as exc:
            failed.append(exc)
        finally:
            limiter._condition.wait = real_wait  # type: ignore[method-assign]
        assert failed
        assert limiter.waiting == 0
        limiter.acquire()  # nobody phantom ahead of it
        assert limiter.in_flight == 1


class TestSession:
    def test_429_honours_retry_after_then_succeeds(self) -> None:
        calls: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            calls.append(request)
            if len(calls) < 3:
                return odata_json(429, THROTTLE_BODY, **{"Retry-After": "7"})
            return odata_json(200, {"value": []}, **{"x-ms-dop-hint": "4"})

        sleeps: list[float] = []
        session, _ = make_session(handler, sleeps=sleeps)
        response = session.send("GET", "accounts?$select=name")
        assert response.status_code == 200
        assert len(calls) == 3
        assert len(sleeps) == 2
        assert all(7.0 <= s <= 8.0 for s in sleeps)
        assert session.limiter.stats.throttles == 2
        assert session.limiter.ceiling == 4
        assert calls[0].url == httpx.URL(ROOT + "accounts?$select=name")
        assert calls[0].headers["Authorization"] == "Bearer token-1"

    def test_429_is_retried_for_a_create_too(self) -> None:
        answers = iter([odata_json(429, THROTTLE_BODY, **{"Retry-After": "1"}), httpx.Response(204)])
        session, _ = make_session(lambda request: next(answers))
        assert session.send("POST", "$batch", content=b"x", idempotent=False).status_code == 204

    def test_retry_after_beyond_the_limit_is_returned_not_slept(self) -> None:
        sleeps: list[float] = []
        session, _ = make_session(
            lambda request: odata_json(429, THROTTLE_BODY, **{"Retry-After": "3600"}),
            sleeps=sleeps,
            policy=RetryPolicy(max_attempts=5, max_retry_after=600),
        )
        assert session.send("GET", "accounts").status_code == 429
        assert sleeps == []

    def test_connection_reset_on_a_read_is_retried(self) -> None:
        calls = 0

        def handler(request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            return odata_json(200, {"value": []})

        sleeps: list[float] = []
        session, _ = make_session(handler, sleeps=sleeps)
        assert session.send("GET", "accounts").status_code == 200
        assert calls == 2
        assert len(sleeps) == 1
        assert 0.5 <= sleeps[0] <= 1.0

    def test_connection_reset_on_a_create_is_ambiguous(self) -> None:
        calls = 0

        def handler(request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

        session, _ = make_session(handler)
        with pytest.raises(AmbiguousWriteError, match="may have reached the service"):
            session.send("POST", "$batch", content=b"x", idempotent=False)
        assert calls == 1

    def test_connect_error_on_a_create_is_retried(self) -> None:
        calls = 0

        def handler(request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise httpx.ConnectError("Connection refused")
            return httpx.Response(204)

        session, _ = make_session(handler)
        assert session.send("POST", "$batch", content=b"x", idempotent=False).status_code == 204

    def test_gateway_error_on_a_create_is_ambiguous(self) -> None:
        session, _ = make_session(lambda request: httpx.Response(504, text="Gateway Timeout"))
        with pytest.raises(AmbiguousWriteError, match="504"):
            session.send("POST", "$batch", content=b"x", idempotent=False)

    def test_a_503_on_a_create_carries_its_retry_after_and_the_resend_waits_for_it(self) -> None:
        sleeps: list[float] = []
        session, _ = make_session(
            lambda request: httpx.Response(503, headers={"Retry-After": "7"}), sleeps=sleeps
        )
        with pytest.raises(AmbiguousWriteError, match="503") as info:
            session.send("POST", "$batch", content=b"x", idempotent=False)
        assert info.value.retry_after == 7
        assert sleeps == []  # the session does not resend a create on its own
        waited = session.pause_before_resend(1, info.value.retry_after)
        assert 7 <= waited <= 8
        assert sleeps == [waited]
        # without a Retry-After: the policy's backoff for that round (base 1 s, round 2: 1-2 s)
        assert 1 <= session.pause_before_resend(2) <= 2
        # a pause longer than the policy accepts is not honoured: plain backoff instead
        assert session.pause_before_resend(1, 10_000) <= 1

    def test_persistent_connection_errors_give_up_after_their_own_budget(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("Connection refused")

        sleeps: list[float] = []
        session, _ = make_session(
            handler, sleeps=sleeps, policy=RetryPolicy(max_attempts=4, connect_attempts=6)
        )
        with pytest.raises(DynamicsTransportError, match="could not connect in 6 attempt"):
            session.send("GET", "accounts")
        # equal-jitter backoff per refusal: half of 1, 2, 4, 8, 16 s fixed, the other half random
        assert len(sleeps) == 5
        for sleep, ceiling in zip(sleeps, [1, 2, 4, 8, 16], strict=True):
            assert ceiling / 2 <= sleep <= ceiling
        assert session.limiter.stats.connect_failures == 6
        assert session.limiter.stats.successes == 0

    @pytest.mark.parametrize(
        "error",
        [
            httpx.ConnectError("[SSL: UNEXPECTED_EOF_WHILE_READING] EOF in violation of protocol"),
            httpx.ConnectTimeout("_ssl.c:1011: The handshake operation timed out"),
            httpx.PoolTimeout("no connection of the pool became free"),
        ],
    )
    def test_refused_connects_shrink_the_limit_like_a_429_and_it_recovers(self, error: Exception) -> None:
        """Three refused connects halve 8 to 1, without a pause; each success adds 1/limit."""
        calls = 0

        def handler(request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            if calls <= 3:
                raise error
            return httpx.Response(204)

        clock = FakeClock()
        limiter = AdaptiveLimiter(initial=8, maximum=16, cooldown=0.0, clock=clock)
        sleeps: list[float] = []
        session = ODataSession(
            base_url=ROOT,
            tokens=FakeTokens(),  # type: ignore[arg-type]
            default_headers={},
            retry=RetryPolicy(max_attempts=1),  # no retry of anything that reached the service
            limiter=limiter,
            transport=httpx.MockTransport(handler),
            sleep=sleeps.append,
        )
        assert session.send("POST", "$batch", content=b"x", idempotent=False).status_code == 204
        assert limiter.stats.history == [4.0, 2.0, 1.0, 2.0]
        assert (limiter.stats.connect_failures, limiter.stats.throttles, limiter.stats.decreases) == (3, 0, 3)
        assert limiter.paused_until == 0.0  # no Retry-After: each request backs off on its own
        assert len(sleeps) == 3
        for _ in range(3):  # congestion avoidance: +1/limit per success
            session.send("GET", "accounts")
        assert limiter.stats.history[-3:] == [2.5, 2.9, pytest.approx(2.9 + 1 / 2.9)]
        assert limiter.allowed == 3

    def test_a_burst_of_refused_connects_does_not_spend_the_attempts_of_the_request(self) -> None:
        """Ten refusals, then two 503s: the refusals have their own budget, the 503s use 3 of 4."""
        answers: list[Exception | int] = [httpx.ConnectError("Connection reset by peer")] * 10 + [
            503,
            503,
            200,
        ]

        def handler(request: httpx.Request) -> httpx.Response:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return httpx.Response(answer, json={"value": []})

        session, _ = make_session(handler)  # max_attempts=4, connect_attempts 16 by default
        assert session.send("GET", "accounts").status_code == 200
        assert answers == []
        assert session.limiter.stats.connect_failures == 10

    def test_401_refreshes_the_token_once(self) -> None:
        seen: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request.headers["Authorization"])
            if len(seen) == 1:
                return httpx.Response(
                    401,
                    headers={"WWW-Authenticate": "Bearer authorization_uri=https://login/x/oauth2/authorize"},
                    content=b'{"error":{"code":"","message":"The user is not authenticated."}}',
                )
            return odata_json(200, {"value": []})

        session, tokens = make_session(handler)
        assert session.send("GET", "accounts").status_code == 200
        assert seen == ["Bearer token-1", "Bearer token-2"]
        assert tokens.invalidated == ["token-1"]

    def test_a_401_storm_is_survived_with_new_tokens_and_backoff(self) -> None:
        seen: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request.headers["Authorization"])
            if len(seen) <= 3:
                return httpx.Response(401, content=b'{"error":{"code":"","message":"revoked"}}')
            return odata_json(200, {"value": []})

        sleeps: list[float] = []
        session, tokens = make_session(handler, sleeps=sleeps, policy=RetryPolicy(max_attempts=4))
        assert session.send("GET", "accounts").status_code == 200
        assert seen == ["Bearer token-1", "Bearer token-2", "Bearer token-3", "Bearer token-4"]
        assert tokens.invalidated == ["token-1", "token-2", "token-3"]
        # The first refusal is retried at once, the later ones after a backoff (base 1 s, equal jitter).
        assert len(sleeps) == 2
        assert 0.5 <= sleeps[0] <= 1.0
        assert 1.0 <= sleeps[1] <= 2.0
        assert session.tokens_refused == 3

    def test_401s_beyond_the_request_budget_raise(self) -> None:
        session, tokens = make_session(
            lambda request: httpx.Response(401, content=b'{"error":{"code":"","message":"Token expired"}}'),
            policy=RetryPolicy(max_attempts=4, auth_retries=2),
        )
        expected = "refused 3 tokens in a row for this request: Token expired"
        with pytest.raises(DynamicsAuthError, match=expected):
            session.send("GET", "accounts")
        assert tokens.issued == 3
        assert tokens.invalidated == ["token-1", "token-2"]

    def test_401s_beyond_the_session_budget_raise(self) -> None:
        calls = 0

        def handler(request: httpx.Request) -> httpx.Response:
            nonlocal calls
            calls += 1
            if calls % 2:  # every request is refused once, then succeeds with a new token
                return httpx.Response(401, content=b'{"error":{"code":"","message":"revoked"}}')
            return odata_json(200, {"value": []})

        session, tokens = make_session(handler, policy=RetryPolicy(max_attempts=4, auth_budget=3))
        for _ in range(3):
            assert session.send("GET", "accounts").status_code == 200
        with pytest.raises(DynamicsAuthError, match=r"refused 4 tokens in this task \(budget 3\)"):
            session.send("GET", "accounts")
        assert tokens.invalidated == ["token-1", "token-2", "token-3"]

    def test_one_revocation_seen_by_parallel_requests_counts_once(self) -> None:
        session, _ = make_session(lambda request: odata_json(200, {"value": []}))
        refused = httpx.Response(401, content=b"{}")
        for _ in range(5):  # five requests in flight with the same token all got the 401
            session._after_refusal("GET", "accounts", "token-1", 1, refused)
        assert session.tokens_refused == 1

    def test_paging_follows_next_links_on_the_same_origin_only(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            return odata_json(200, {"value": [{"a": 1}], "@odata.nextLink": "https://evil.example/steal"})

        session, _ = make_session(handler)
        pages = session.get_json_pages("accounts")
        assert next(pages)["value"] == [{"a": 1}]
        with pytest.raises(ValueError, match="another origin"):
            next(pages)
