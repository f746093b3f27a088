"""The Dataverse Web API as an ASGI app: HTTP in and out, `DataverseService` does the work."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from emulators.dataverse import errors
from emulators.dataverse.calls import ALL_METHODS, MAX_GET_URL, Reply
from emulators.dataverse.service import DataverseService
from emulators.odata.batch import Headers

if TYPE_CHECKING:
    from starlette.requests import Request

    from emulators.context import ServiceContext


def create_app(ctx: ServiceContext) -> Starlette:
    """The Dataverse Web API as an ASGI app (the core wraps it in auth and protection)."""
    service = DataverseService(ctx)
    root_path = ctx.root_path

    async def endpoint(request: Request) -> Response:
        scope = request.scope
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query_string: bytes = scope.get("query_string", b"")
        if request.method == "GET" and len(raw_path) + len(query_string) + 1 > MAX_GET_URL:
            reply = Reply.error(errors.url_too_long(len(raw_path) + len(query_string) + 1))
            return _response(reply)
        path = raw_path.decode("latin-1")
        if not path.startswith(root_path) and path + "/" != root_path:
            return _response(Reply.error(errors.segment_not_found(unquote(path))))
        relative = path[len(root_path) :] if path.startswith(root_path) else ""
        query = query_string.decode("latin-1")
        headers = Headers((key, value) for key, value in request.headers.items())
        url = f"{relative}?{query}" if query else relative
        return _response(await service.dispatch(request.method, url, headers, await request.body()))

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=ALL_METHODS)])
    app.state.service = service
    return app


def _response(reply: Reply) -> Response:
    headers = {}
    media_type = None
    for name, value in reply.headers:
        if name.lower() == "content-type":
            media_type = value
        else:
            headers[name] = value
    return Response(content=reply.body, status_code=reply.status, headers=headers, media_type=media_type)
