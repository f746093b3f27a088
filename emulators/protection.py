"""ASGI middleware in front of each service: auth, service protection, cost, faults, counters.

It reproduces what a client of the real services must cope with:

- 401 + `WWW-Authenticate: Bearer authorization_uri=…, resource_id=…` for a missing, bad,
  expired, revoked or wrong-audience token;
- Dataverse service-protection limits per caller over a sliding window (request count,
  combined execution time, concurrent requests) answered with 429, `Retry-After` and the
  documented codes and messages; `Retry-After` grows while a throttled client keeps pushing;
- a cost model (latency per request, server time per operation charged by the app) that
  delays responses with `asyncio.sleep` and feeds the execution-time limit;
- injected faults (429, 503, connection reset, slow response, early token revocation), and
  faults after the service acted: the request is applied, then the connection drops or a 503
  replaces the answer (what a gateway timeout or a dying connection looks like to a client);
- counters, readable through the admin routes (`/_admin/…`, no token needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulators.context import RequestCharge, bind_charge, unbind_charge
from emulators.entra import TokenError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from emulators.config import ConfigStore, FaultsConfig, LimitsConfig
    from emulators.context import Counters
    from emulators.entra import TokenIssuer

    Scope = dict[str, Any]
    Message = dict[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Dataverse service-protection error codes (hex, as the Web API returns them).
REQUESTS_CODE = "0x80072322"
EXECUTION_CODE = "0x80072321"
CONCURRENCY_CODE = "0x80072326"
ADMIN_PREFIX = "/_admin"
# Faults that replace the response; `slow` only delays it and can combine with none of them.
FATAL_FAULTS = frozenset(
    {"revoke_token", "reset", "unavailable", "throttle", "reset_after", "unavailable_after"}
)


@dataclass(frozen=True)
class Throttle:
    """A 429 to send: which limit, and how long the client must wait."""

    code: str
    retry_after: float


@dataclass
class _CallerWindow:
    requests: deque[float] = field(default_factory=deque)
    executions: deque[tuple[float, float]] = field(default_factory=deque)  # (finished at, ms)
    execution_ms: float = 0.0
    in_flight: int = 0
    blocked_until: float = 0.0
    block_code: str = ""

    def prune(self, horizon: float) -> None:
        while self.requests and self.requests[0] <= horizon:
            self.requests.popleft()
        while self.executions and self.executions[0][0] <= horizon:
            self.execution_ms -= self.executions.popleft()[1]
        if not self.executions:
            self.execution_ms = 0.0  # no float drift once the window is empty


class Limiter:
    """Sliding-window service-protection limits, one window per caller (token `appid`)."""

    def __init__(self) -> None:
        self._callers: dict[str, _CallerWindow] = {}

    def reset(self) -> None:
        """Forget all windows and blocks (admin), keeping in-flight counts consistent."""
        for window in self._callers.values():
            window.requests.clear()
            window.executions.clear()
            window.execution_ms = 0.0
            window.blocked_until = 0.0
            window.block_code = ""

    def in_flight(self, caller: str) -> int:
        window = self._callers.get(caller)
        return window.in_flight if window else 0

    def admit(self, caller: str, limits: LimitsConfig, now: float) -> Throttle | None:
        """Admit a request (counting it) or say which limit refuses it."""
        window = self._callers.setdefault(caller, _CallerWindow())
        if limits.enabled:
            window.prune(now - limits.window_seconds)
            if now < window.blocked_until:
                # Pushing while throttled extends the block.
                window.blocked_until += limits.retry_after_growth_seconds
                return Throttle(window.block_code, window.blocked_until - now)
            if window.in_flight >= limits.max_concurrent:
                return Throttle(CONCURRENCY_CODE, float(limits.concurrency_retry_after_seconds))
            if len(window.requests) >= limits.max_requests:
                # Free again once enough of the oldest requests have left the window.
                oldest_to_expire = window.requests[len(window.requests) - limits.max_requests]
                return self._block(window, REQUESTS_CODE, oldest_to_expire + limits.window_seconds, now)
            if window.execution_ms >= limits.max_execution_ms:
                remaining = window.execution_ms
                free_at = now
                for finished, spent in window.executions:
                    remaining -= spent
                    free_at = finished + limits.window_seconds
                    if remaining < limits.max_execution_ms:
                        break
                return self._block(window, EXECUTION_CODE, free_at, now)
        window.requests.append(now)
        window.in_flight += 1
        return None

    @staticmethod
    def _block(window: _CallerWindow, code: str, until: float, now: float) -> Throttle:
        window.blocked_until = max(until, now)
        window.block_code = code
        return Throttle(code, window.blocked_until - now)

    def release(self, caller: str, execution_ms: float, now: float) -> None:
        """The admitted request finished; its server time joins the window."""
        window = self._callers.get(caller)
        if window is None:
            return
        window.in_flight = max(window.in_flight - 1, 0)
        if execution_ms > 0:
            window.executions.append((now, execution_ms))
            window.execution_ms += execution_ms

    def remaining(self, caller: str, limits: LimitsConfig) -> tuple[int, float]:
        """(requests left, execution seconds left) in the current window, for the headers."""
        window = self._callers.get(caller)
        if window is None:
            return limits.max_requests, limits.max_execution_ms / 1000
        return (
            max(limits.max_requests - len(window.requests), 0),
            max(limits.max_execution_ms - window.execution_ms, 0.0) / 1000,
        )


class FaultInjector:
    """Decides which faults hit a request; deterministic for a seed and a request order."""

    def __init__(self) -> None:
        self._seed: int | None = None
        self._random = random.Random()

    def decide(self, faults: FaultsConfig, method: str, path: str) -> list[str]:
        if faults.seed != self._seed:
            self._seed = faults.seed
            self._random.seed(faults.seed)
        fired: list[str] = []
        for kind in faults.KINDS:
            rule = getattr(faults, kind)
            if not rule.applies_to(method, path):
                continue
            if kind in FATAL_FAULTS and any(k in FATAL_FAULTS for k in fired):
                continue  # one failure per request; later countdowns stay for later requests
            if rule.next_n > 0:
                rule.next_n -= 1
                fired.append(kind)
            elif rule.rate > 0 and self._random.random() < rule.rate:
                fired.append(kind)
        return fired

    def reseed(self) -> None:
        self._seed = None


def entity_set_of(path: str, root_path: str) -> str:
    """The entity set (or `$batch`, `$metadata`, `/`) a request path addresses, for counters."""
    if not path.startswith(root_path):
        return "(outside service root)"
    rest = path[len(root_path) :]
    if not rest:
        return "/"
    segment = rest.split("/", 1)[0]
    return segment.split("(", 1)[0] or "/"


def _fmt_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class ServiceErrors:
    """The error shapes and service-protection messages of one service."""

    def __init__(self, service: str) -> None:
        self.service = service

    def body(self, code: str, message: str) -> dict[str, Any]:
        if self.service == "fno":
            # F&O wraps messages in the same OData envelope plus an innererror.
            return {
                "error": {
                    "code": "",
                    "message": message,
                    "innererror": {"message": message, "type": "", "stacktrace": ""},
                }
            }
        return {"error": {"code": code, "message": message}}

    def throttle_message(self, code: str, limits: LimitsConfig) -> str:
        window = _fmt_number(limits.window_seconds)
        if code == REQUESTS_CODE:
            if self.service == "fno":
                return (
                    f"Number of requests exceeded the limit of {limits.max_requests} over the time window "
                    f"of {window} seconds."
                )
            return (
                f"Number of requests exceeded the limit of {limits.max_requests} over time window of "
                f"{window} seconds."
            )
        if code == EXECUTION_CODE:
            if self.service == "fno":
                amount = f"{_fmt_number(limits.max_execution_ms / 1000)} seconds"
            else:
                amount = f"{int(limits.max_execution_ms):,} milliseconds"
            return (
                "Combined execution time of incoming requests exceeded limit of "
                f"{amount} over time window of {window} seconds. Decrease number of concurrent "
                "requests or reduce the duration of requests and try again later."
            )
        return f"Number of concurrent requests exceeded the limit of {limits.max_concurrent}."

    def injected_throttle(self, limits: LimitsConfig) -> tuple[str, str]:
        if self.service == "fno":
            return (
                REQUESTS_CODE,
                "This request could not be processed at this time due to system experiencing high "
                "resource utilization.",
            )
        return REQUESTS_CODE, self.throttle_message(REQUESTS_CODE, limits)

    def unavailable(self) -> tuple[str, str]:
        return "", "The service is temporarily unavailable. Please try again later."


class ServiceProtection:
    """The ASGI app a service port serves: the core's checks around the service app.

    :param service: ``"dataverse"`` or ``"fno"``; picks config section and error shapes.
    :param app: the service's own ASGI app (`create_app(ctx)`).
    :param root_path: service root path, for counting requests per entity set.
    :param resource: resource URL the tokens must be issued for (their `aud`).
    :param admin_app: serves `/_admin/…` without a token; set after construction.
    """

    def __init__(
        self,
        *,
        service: str,
        app: ASGIApp,
        issuer: TokenIssuer,
        config_store: ConfigStore,
        counters: Counters,
        root_path: str,
        resource: str,
        admin_app: ASGIApp | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.app = app
        self.issuer = issuer
        self.config_store = config_store
        self.counters = counters
        self.root_path = root_path
        self.resource = resource
        self.admin_app = admin_app
        self.clock = clock
        self.limiter = Limiter()
        self.faults = FaultInjector()
        self.errors = ServiceErrors(service)
        self.challenge = (
            f"Bearer authorization_uri={issuer.authority}/oauth2/authorize, resource_id={resource}"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            if self.admin_app is None:
                await self._json(send, 404, {"error": "no admin app"})
            else:
                await self.admin_app(scope, receive, send)
            return

        raw_send = send
        method: str = scope["method"]
        settings = self.config_store.service(self.service)
        self.counters.record_request(method, entity_set_of(path, self.root_path))
        send = self._counting(send)
        public = getattr(self.app, "public_prefix", None)
        if public and path.startswith(public):  # a signed URL (blob SAS) carries no bearer token
            await self.app(scope, receive, send)
            return

        try:
            claims = self.issuer.verify(_bearer(scope), self.resource)
        except TokenError as exc:
            self.counters.add("unauthorized", exc.reason)
            await self._unauthorized(send, exc.message)
            return

        fired = self.faults.decide(settings.faults, method, path)
        for kind in fired:
            self.counters.add("faults", kind)
        if "revoke_token" in fired:
            self.issuer.revoke_all()
            self.counters.add("unauthorized", "revoked")
            await self._unauthorized(send, "The token has been revoked.")
            return
        if "reset" in fired:
            await _abort_connection(raw_send, receive)
            return
        if "unavailable" in fired:
            code, message = self.errors.unavailable()
            headers = [(b"retry-after", str(settings.faults.retry_after_seconds).encode())]
            await self._json(send, 503, self.errors.body(code, message), headers)
            return
        if "throttle" in fired:
            code, message = self.errors.injected_throttle(settings.limits)
            self.counters.add("throttled", code)
            await self._too_many(send, code, message, float(settings.faults.retry_after_seconds))
            return

        caller = str(claims.get("appid") or claims.get("oid") or "anonymous")
        throttle = self.limiter.admit(caller, settings.limits, self.clock())
        if throttle is not None:
            self.counters.add("throttled", throttle.code)
            message = self.errors.throttle_message(throttle.code, settings.limits)
            await self._too_many(send, throttle.code, message, throttle.retry_after)
            return
        self.counters.record_in_flight(self.limiter.in_flight(caller))

        charge = RequestCharge(operation_ms=settings.cost.operation_ms, caller=claims)
        charge.charged_ms = settings.cost.request_latency_ms  # latency is server time too
        extra_delay_ms = settings.faults.slow_ms if "slow" in fired else 0.0
        answer_lost = "reset_after" in fired or "unavailable_after" in fired
        token = bind_charge(charge)
        try:
            delay_ms = settings.cost.request_latency_ms + extra_delay_ms
            if delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000)
            answer_to = _discarding if answer_lost else send
            await self.app(scope, receive, self._metered(answer_to, charge, caller))
        finally:
            unbind_charge(token)
            self.limiter.release(caller, charge.charged_ms, self.clock())
            self.counters.record_execution(charge.operations, charge.charged_ms)
        if "reset_after" in fired:
            await _abort_connection(raw_send, receive)
        elif "unavailable_after" in fired:
            code, message = self.errors.unavailable()
            headers = [(b"retry-after", str(settings.faults.retry_after_seconds).encode())]
            await self._json(send, 503, self.errors.body(code, message), headers)

    # -- response helpers --------------------------------------------------------------

    def _counting(self, send: Send) -> Send:
        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counters.add("responses", str(message["status"]))
            await send(message)

        return counting_send

    def _metered(self, send: Send, charge: RequestCharge, caller: str) -> Send:
        """Wait for charged server time before the response goes out; add service headers."""

        async def metered_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start" or (
                kind == "http.response.body" and not message.get("more_body")
            ):
                pending = charge.take_pending()
                if pending > 0:
                    await asyncio.sleep(pending / 1000)
            if kind == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *self._service_headers(caller)]
            await send(message)

        return metered_send

    def _service_headers(self, caller: str) -> list[tuple[bytes, bytes]]:
        if self.service != "dataverse":
            return []
        settings = self.config_store.service(self.service)
        requests_left, seconds_left = self.limiter.remaining(caller, settings.limits)
        headers = [
            (b"x-ms-ratelimit-burst-remaining-xrm-requests", str(requests_left).encode()),
            (b"x-ms-ratelimit-time-remaining-xrm-requests", f"{seconds_left:.2f}".encode()),
        ]
        if settings.dop_hint > 0:
            headers.append((b"x-ms-dop-hint", str(settings.dop_hint).encode()))
        return headers

    async def _json(
        self, send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        all_headers = [
            (b"content-type", b"application/json; odata.metadata=minimal"),
            (b"content-length", str(len(payload)).encode()),
            (b"odata-version", b"4.0"),
            *(headers or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": all_headers})
        await send({"type": "http.response.body", "body": payload})

    async def _unauthorized(self, send: Send, message: str) -> None:
        await self._json(
            send, 401, self.errors.body("", message), [(b"www-authenticate", self.challenge.encode())]
        )

    async def _too_many(self, send: Send, code: str, message: str, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        await self._json(
            send, 429, self.errors.body(code, message), [(b"retry-after", str(seconds).encode())]
        )


async def _discarding(message: Message) -> None:
    """Swallow the service's answer: the request was applied, the client never hears of it."""


def _bearer(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


async def _abort_connection(send: Send, receive: Receive) -> None:
    """Drop the TCP connection without any response (a reset, as the client sees it).

    ASGI has no abort message; uvicorn's send is a bound method of the request cycle, whose
    transport we abort after asking the kernel for an RST (SO_LINGER 0) instead of a FIN.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("connection reset fault needs uvicorn's transport")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError, TypeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    # Let the server notice the disconnect so it does not try to answer with a 500.

    async def wait_for_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(Exception):
        await asyncio.wait_for(wait_for_disconnect(), timeout=2)
