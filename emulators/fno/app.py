"""The F&O OData service as an ASGI app, served at `/data/` behind the core's protection.

Everything HTTP-specific stays here; `FnoService.dispatch` does the work, so a request
inside a `$batch` is answered by exactly the code that answers it directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulators.fno.dmf import BLOB_PREFIX
from emulators.fno.errors import RouteNotFound
from emulators.fno.service import FnoService, Reply
from emulators.odata.batch import Headers

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from emulators.context import ServiceContext

    Scope = dict[str, Any]
    Message = dict[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]


class FnoApp:
    """ASGI entry point of the F&O emulator (`create_app(ctx)` returns one)."""

    #: Paths served without a bearer token: data packages behind a signed URL (`dmf.py`).
    public_prefix = BLOB_PREFIX

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.service = FnoService(ctx)
        self.root_path = ctx.root_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = raw_path.decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        headers = Headers(
            (name.decode("latin-1"), value.decode("utf-8", "replace"))
            for name, value in scope.get("headers", [])
        )
        if path.startswith(BLOB_PREFIX):
            reply = self.service.dmf.blob(path, query)
        elif path.startswith(self.root_path) or path + "/" == self.root_path:
            target = path[len(self.root_path) :] + (f"?{query}" if query else "")
            reply = await self.service.dispatch(scope["method"], target, headers, body)
        else:
            origin = self.ctx.service_root[: -len(self.root_path)]
            reply = self.service.error_reply(
                RouteNotFound(f"{origin}{path}" + (f"?{query}" if query else ""))
            )
        await _send(send, reply)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _send(send: Send, reply: Reply) -> None:
    headers = [(name.lower().encode("latin-1"), value.encode("utf-8")) for name, value in reply.headers]
    headers.append((b"content-length", str(len(reply.body)).encode("ascii")))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def create_app(ctx: ServiceContext) -> FnoApp:
    """The F&O service app for the core's server (one per emulator process)."""
    return FnoApp(ctx)
