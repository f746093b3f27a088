"""Admin routes on each service port (`/_admin/…`): configure, observe and reset at run time.

Tests and the benchmark use them to scale limits down, inject faults and read counters
without restarting the process. They need no token: the emulators listen on loopback only.

    GET   /_admin/health            liveness
    GET   /_admin/config            this service's settings plus `entra`
    PATCH /_admin/config            partial JSON merge; applies at once and is persisted
    GET   /_admin/counters          requests, writes, rows read, throttles, faults, 401s, tokens
    POST  /_admin/counters/reset
    POST  /_admin/limits/reset      forget every caller's sliding window and block
    POST  /_admin/revoke-tokens     every token issued so far becomes invalid
    GET   /_admin/tables            row count per entity set
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from emulators.config import ConfigError, to_dict

if TYPE_CHECKING:
    from starlette.requests import Request

    from emulators.offload import ServiceThread
    from emulators.protection import ServiceProtection
    from emulators.store import Store


def service_settings(protection: ServiceProtection) -> dict[str, Any]:
    config = protection.config_store.current
    return {**to_dict(config.service(protection.service)), "entra": to_dict(config.entra)}


def create_admin_app(
    protection: ServiceProtection, store: Store, worker: ServiceThread | None = None
) -> Starlette:
    """Admin app of one service; shares the middleware's limiter, faults and counters.

    :param worker: the thread the service's requests run on (`emulators.offload`), when they
        do not run on the server's loop: the store is read there too, never from two threads.
    """
    service = protection.service

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": service})

    async def get_config(request: Request) -> JSONResponse:
        return JSONResponse(service_settings(protection))

    async def patch_config(request: Request) -> JSONResponse:
        try:
            patch = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as exc:
            return JSONResponse({"error": f"body is not JSON: {exc}"}, status_code=400)
        if not isinstance(patch, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        whole: dict[str, Any] = {}
        if "entra" in patch:
            whole["entra"] = patch.pop("entra")
        if patch:
            whole[service] = patch
        try:
            protection.config_store.patch(whole)
        except ConfigError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if "faults" in patch and "seed" in patch["faults"]:
            protection.faults.reseed()
        return JSONResponse(service_settings(protection))

    async def counters(request: Request) -> JSONResponse:
        snapshot = protection.counters.snapshot()
        issuer = protection.issuer
        snapshot["tokens_issued"] = issuer.issued[protection.resource]
        snapshot["token_errors"] = dict(issuer.errors)
        return JSONResponse(snapshot)

    async def reset_counters(request: Request) -> JSONResponse:
        protection.counters.reset()
        return JSONResponse(protection.counters.snapshot())

    async def reset_limits(request: Request) -> JSONResponse:
        protection.limiter.reset()
        return JSONResponse({"status": "ok"})

    async def revoke_tokens(request: Request) -> JSONResponse:
        protection.issuer.revoke_all()
        return JSONResponse({"status": "ok", "revoked": "all tokens issued until now"})

    async def tables(request: Request) -> JSONResponse:
        counts = await worker.call(store.counts) if worker is not None else store.counts()
        return JSONResponse(counts)

    return Starlette(
        routes=[
            Route("/_admin/health", health, methods=["GET"]),
            Route("/_admin/config", get_config, methods=["GET"]),
            Route("/_admin/config", patch_config, methods=["PATCH"]),
            Route("/_admin/counters", counters, methods=["GET"]),
            Route("/_admin/counters/reset", reset_counters, methods=["POST"]),
            Route("/_admin/limits/reset", reset_limits, methods=["POST"]),
            Route("/_admin/revoke-tokens", revoke_tokens, methods=["POST"]),
            Route("/_admin/tables", tables, methods=["GET"]),
        ]
    )
