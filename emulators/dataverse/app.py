"""PLACEHOLDER Dataverse app, to be replaced by the real service implementation.

It serves only the service document at the service root so the core (server, TLS, auth,
service protection, admin) can be built and tested end to end. The real app keeps the
signature `create_app(ctx: ServiceContext) -> ASGI app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from starlette.requests import Request

    from emulators.context import ServiceContext


def create_app(ctx: ServiceContext) -> Starlette:
    """Placeholder: the OData service document listing the catalog's entity sets."""

    async def service_document(request: Request) -> JSONResponse:
        ctx.charge_operations(1)
        return JSONResponse(
            {
                "@odata.context": f"{ctx.service_root}$metadata",
                "value": [
                    {"name": name, "kind": "EntitySet", "url": name} for name in sorted(ctx.catalog.tables)
                ],
            },
            headers={"OData-Version": "4.0"},
        )

    return Starlette(routes=[Route(ctx.root_path, service_document, methods=["GET"])])
