"""A service's request handling runs on its own thread; the server's loop stays free."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any

from emulators.offload import Offloaded, ServiceThread

REQUEST_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")
BUSY_SECONDS = 0.3


def test_a_cpu_bound_request_leaves_the_server_loop_serving() -> None:
    """While the app spins 0.3 s in Python, the loop's ticker keeps running (it would not on
    the loop itself); the app sees the caller's context variables, and its messages reach the
    server's ``send`` on the server's thread, the last one after the app has returned."""
    worker = ServiceThread("test")
    worker.start()
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["app thread"] = threading.current_thread().name
        seen["context"] = REQUEST_VAR.get()
        body = (await receive())["body"]
        deadline = time.perf_counter() + BUSY_SECONDS
        while time.perf_counter() < deadline:  # synchronous work, as a large $batch is
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body[::-1]})
        seen["returned"] = True

    async def serve() -> tuple[int, list[tuple[str, bool, dict[str, Any]]]]:
        sent: list[tuple[str, bool, dict[str, Any]]] = []
        done = False
        ticks = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"abc", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append((threading.current_thread().name, "returned" in seen, message))

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        REQUEST_VAR.set("charge of this request")
        await Offloaded(app, worker)({"type": "http"}, receive, send)
        done = True
        await ticking
        return ticks, sent

    try:
        ticks, sent = asyncio.run(serve())
    finally:
        worker.stop()
    assert seen == {"app thread": "emulator-test", "context": "charge of this request", "returned": True}
    assert [(thread, returned, message["type"]) for thread, returned, message in sent] == [
        ("MainThread", False, "http.response.start"),
        ("MainThread", True, "http.response.body"),
    ]
    assert sent[1][2]["body"] == b"cba"
    # 30 ticks of 10 ms fit in 0.3 s; a loop blocked by the app would manage one or two
    assert ticks >= 10, ticks


def test_call_runs_a_function_on_the_service_thread() -> None:
    worker = ServiceThread("store")
    worker.start()
    try:
        assert asyncio.run(worker.call(lambda: threading.current_thread().name)) == "emulator-store"
    finally:
        worker.stop()
    assert worker.loop.is_closed()


def test_stop_cancels_queued_requests_and_does_not_wait_for_the_running_one() -> None:
    """A request busy in synchronous work cannot be interrupted: `stop` gives up waiting after
    its timeout and says so; the requests queued behind it never start."""
    worker = ServiceThread("busy")
    worker.start()
    started: list[str] = []
    entered, release = threading.Event(), threading.Event()

    async def request(name: str) -> str:
        started.append(name)
        entered.set()
        release.wait(5)  # synchronous: holds the service's loop
        return name

    async def send_both() -> list[Any]:
        running, queued = worker.run(lambda: request("running")), worker.run(lambda: request("queued"))
        return await asyncio.gather(running, queued, return_exceptions=True)

    outcome: list[Any] = []
    client = threading.Thread(target=lambda: outcome.extend(asyncio.run(send_both())))
    client.start()
    assert entered.wait(5)
    assert worker.stop(timeout=0.2) is False
    release.set()
    client.join(5)
    assert started == ["running"]
    assert outcome[0] == "running"
    assert isinstance(outcome[1], asyncio.CancelledError)
    assert worker.stop() is True
    assert worker.loop.is_closed()


def test_the_wrapper_shows_the_apps_own_attributes() -> None:
    """The protection middleware reads attributes of its app (``public_prefix``: paths served
    without a token); wrapped, the app still answers them."""

    class App:
        public_prefix = "/blob/"

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            raise AssertionError("not called")

    worker = ServiceThread("attributes")
    try:
        wrapped = Offloaded(App(), worker)
        assert wrapped.public_prefix == "/blob/"
        assert getattr(wrapped, "private_prefix", None) is None
    finally:
        assert worker.stop() is True
