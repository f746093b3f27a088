"""A service's request handling on its own thread, so the server's event loop keeps serving.

The three services share one process and one event loop that accepts connections, runs the
TLS handshakes, parses HTTP and applies the protection middleware. A service's work (JSON,
SQLite, a ``$batch`` of a thousand rows) is synchronous Python; on that loop, a queue of
large batches held every new connection's handshake until the client's connect timeout, so
clients saw an unreachable service instead of a slow one. Run on a `ServiceThread`, that
work only competes for the GIL, which the loop gets back every switch interval (5 ms), and
OpenSSL releases it during handshakes.

Each service gets one thread with one event loop, so its requests still interleave only at
``await`` points, as before: its store, change-tracking and `asyncio.Lock` s live on that loop
and nowhere else. Counters, configuration and the token issuer are shared with the server's
loop and lock themselves.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    Scope = dict[str, Any]
    Message = dict[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

T = TypeVar("T")


class ServiceThread:
    """An event loop on a daemon thread; `run` awaits a coroutine there from another loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"emulator-{name}", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    def start(self) -> None:
        self._thread.start()

    async def run(self, start: Callable[[], Awaitable[T]]) -> T:
        """Await ``start()`` on this thread's loop (with the caller's context variables); the
        coroutine is made there, so one cancelled before it started leaves nothing behind."""
        future = asyncio.run_coroutine_threadsafe(self._unless_stopping(start), self.loop)
        return await asyncio.wrap_future(future)

    async def _unless_stopping(self, start: Callable[[], Awaitable[T]]) -> T:
        # After `stop`, requests still queued are cancelled before they start: a queue of
        # large batches would otherwise hold the shutdown for minutes.
        if self._stopping.is_set():
            raise asyncio.CancelledError
        return await start()

    async def call(self, function: Callable[[], T]) -> T:
        """Call a synchronous ``function`` on this thread (e.g. a read of the service's store)."""

        async def invoke() -> T:
            return function()

        return await self.run(invoke)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the loop, cancel the requests it has not started, and wait up to ``timeout``
        seconds for the one it is running (synchronous work cannot be interrupted).

        :returns: whether the thread ended; if not, it still owns the service's store.
        """
        self._stopping.set()
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        self.loop.close()
        return True


class Offloaded:
    """``app`` run on ``worker``; its ``receive`` and ``send`` still go through the caller's loop
    (uvicorn's transport belongs to it). Other attributes are the app's own (the middleware
    reads some, e.g. ``public_prefix``).

    The response's last message is sent once ``app`` has returned, from the caller's task: what
    the caller does after ``app`` (the middleware's execution-time accounting) then happens
    before the client has its answer and can ask for the counters, as when the app ran on the
    loop itself.
    """

    def __init__(self, app: ASGIApp, worker: ServiceThread) -> None:
        self.app = app
        self.worker = worker

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server_loop = asyncio.get_running_loop()
        last: list[Message] = []

        async def remote_receive() -> Message:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(receive(), server_loop))

        async def remote_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                last.append(message)
                return
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(send(message), server_loop))

        await self.worker.run(lambda: self.app(scope, remote_receive, remote_send))
        for message in last:
            await send(message)
