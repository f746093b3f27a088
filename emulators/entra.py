"""Entra ID (Microsoft identity platform v2.0) for the client credentials grant.

Serves OIDC discovery and the token endpoint closely enough for msal's
`ConfidentialClientApplication(..., instance_discovery=False, verify=<ca.pem>)`, including
Microsoft's error JSON (`AADSTS…` codes, `trace_id`, `correlation_id`, `timestamp`) and
statuses, so client code meets the same failures it would meet against the real service.
Access tokens are HS256 JWTs; Microsoft tells clients never to parse access tokens, so
the signing algorithm is an emulator detail nobody may depend on.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import jwt
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request

    from emulators.config import EntraConfig
    from emulators.credentials import Credentials

CLIENT_CREDENTIALS = "client_credentials"
NOT_INSTALLED = (
    "This can happen if the application has not been installed by the administrator of the tenant "
    "or consented to by any user in the tenant."
)
# Clock skew a resource tolerates on nbf/exp. Microsoft's validators allow minutes; the
# emulator allows none so tests with short-lived tokens see expiry exactly when it happens.
CLOCK_SKEW_SECONDS = 0


class TokenError(Exception):
    """A bearer token a resource must refuse; `reason` is a short machine-readable word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    claims: dict[str, Any]


class TokenIssuer:
    """Issues and verifies the emulated tenant's access tokens.

    Revocation is modelled as "every token issued before time T is invalid" (what a
    credential reset or a Continuous Access Evaluation event does to a real tenant); the
    issue time is kept with sub-second precision in a private claim so a token fetched right
    after a revocation is never caught by it.
    """

    def __init__(
        self,
        credentials: Credentials,
        authority: str,
        entra_config: Callable[[], EntraConfig],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = credentials
        self.authority = authority.rstrip("/")
        self.issuer = f"{self.authority}/v2.0"
        self._entra_config = entra_config
        self._clock = clock
        self._resources: list[str] = []
        self._revoked_before = 0.0
        self._lock = threading.Lock()
        self.issued: Counter[str] = Counter()  # per resource
        self.errors: Counter[str] = Counter()  # per AADSTS code
        # The service principal's object id is stable for a given client id.
        self.object_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{credentials.client_id}"))

    @property
    def resources(self) -> tuple[str, ...]:
        return tuple(self._resources)

    def add_resource(self, resource: str) -> None:
        self._resources.append(resource.rstrip("/"))

    def issue(self, resource: str) -> IssuedToken:
        now = self._clock()
        lifetime = self._entra_config().token_lifetime_seconds
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": self.issuer,
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + lifetime,
            "tid": self.credentials.tenant_id,
            "appid": self.credentials.client_id,
            "appidacr": "1",  # authenticated with a client secret
            "oid": self.object_id,
            "sub": self.object_id,
            "idtyp": "app",
            "ver": "1.0",
            "uti": base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
            "xms_emu_iat": now,
        }
        token = jwt.encode(claims, self.credentials.signing_key, algorithm="HS256")
        with self._lock:
            self.issued[resource] += 1
        return IssuedToken(access_token=token, expires_in=lifetime, claims=claims)

    def verify(self, token: str, resource: str) -> dict[str, Any]:
        """Claims of a token valid for `resource`, or `TokenError` saying why not."""
        if not token:
            raise TokenError("missing", "Bearer token is missing.")
        try:
            claims = jwt.decode(
                token,
                self.credentials.signing_key,
                algorithms=["HS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError as exc:
            raise TokenError("invalid", f"Bearer token is invalid: {type(exc).__name__}.") from exc
        now = self._clock()
        if claims.get("iss") != self.issuer or claims.get("tid") != self.credentials.tenant_id:
            raise TokenError("issuer", "The token was issued by a different tenant.")
        if claims.get("aud") != resource:
            raise TokenError("audience", f"The token audience is not valid for resource {resource}.")
        if now + CLOCK_SKEW_SECONDS < float(claims.get("nbf", 0)):
            raise TokenError("not_yet_valid", "The token is not yet valid.")
        if now - CLOCK_SKEW_SECONDS >= float(claims.get("exp", 0)):
            raise TokenError("expired", "The token is expired.")
        if float(claims.get("xms_emu_iat", claims.get("iat", 0))) < self._revoked_before:
            raise TokenError("revoked", "The token has been revoked.")
        return claims

    def revoke_all(self) -> float:
        """Invalidate every token issued until now; returns the revocation time."""
        with self._lock:
            self._revoked_before = self._clock()
            return self._revoked_before


def _aad_error(
    status: int,
    error: str,
    code: int,
    description: str,
    *,
    base_url: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Microsoft's token-endpoint error shape, with fresh trace and correlation ids."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {description}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {now}"
        ),
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{base_url}/error?code={code}",
    }
    return JSONResponse(body, status_code=status, headers=_no_store(headers))


def _no_store(extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
    headers.update(extra or {})
    return headers


def create_app(issuer: TokenIssuer) -> Starlette:
    """The Entra ID Starlette app: discovery, (empty) JWKS, token endpoint."""
    tenant_id = issuer.credentials.tenant_id
    base_url = issuer.authority.rsplit("/", 1)[0]

    def error(status: int, err: str, code: int, description: str, **kw: Any) -> JSONResponse:
        with issuer._lock:
            issuer.errors[f"AADSTS{code}"] += 1
        return _aad_error(status, err, code, description, base_url=base_url, **kw)

    def unknown_tenant(tenant: str) -> JSONResponse:
        return error(
            400,
            "invalid_request",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud. Check with your subscription administrator, this may happen "
            "if there are no active subscriptions for the tenant.",
        )

    async def openid_configuration(request: Request) -> JSONResponse:
        tenant = request.path_params["tenant"]
        if tenant != tenant_id:
            return unknown_tenant(tenant)
        root = f"{base_url}/{tenant_id}"
        return JSONResponse(
            {
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": issuer.issuer,
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver", "oid"],
                "tenant_region_scope": None,
                "cloud_instance_name": "localhost",
                "cloud_graph_host_name": "localhost",
                "msgraph_host": "localhost",
            }
        )

    async def keys(request: Request) -> JSONResponse:
        # Access tokens are HS256 with a secret that stays here: nothing to publish.
        if request.path_params["tenant"] != tenant_id:
            return unknown_tenant(request.path_params["tenant"])
        return JSONResponse({"keys": []})

    async def token(request: Request) -> JSONResponse:
        tenant = request.path_params["tenant"]
        if tenant != tenant_id:
            return unknown_tenant(tenant)
        form = await request.form()
        params = {key: str(value) for key, value in form.items()}
        basic_id, basic_secret = _basic_credentials(request.headers.get("authorization", ""))

        grant_type = params.get("grant_type")
        if not grant_type:
            return error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        if grant_type != CLIENT_CREDENTIALS:
            return error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = params.get("client_id") or basic_id
        if not client_id:
            return error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        if client_id.lower() != issuer.credentials.client_id:
            return error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant_id}'. "
                f"{NOT_INSTALLED} You may have sent your authentication request to the wrong tenant.",
            )
        secret = params.get("client_secret") or basic_secret
        if not secret:
            return error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: "
                "'client_assertion' or 'client_secret'.",
            )
        if not secrets.compare_digest(secret.encode(), issuer.credentials.client_secret.encode()):
            return error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
        scope = params.get("scope", "").strip()
        if not scope:
            return error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have "
                "a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = scopes[0][: -len("/.default")]
        if resource not in issuer.resources:
            return error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named {tenant_id}. "
                f"{NOT_INSTALLED} You might have sent your authentication request to the wrong tenant.",
            )
        issued = issuer.issue(resource)
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "ext_expires_in": issued.expires_in,
                "access_token": issued.access_token,
            },
            headers=_no_store(),
        )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": "entra"})

    return Starlette(
        routes=[
            Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
            Route("/{tenant}/discovery/v2.0/keys", keys, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
            Route("/_admin/health", health, methods=["GET"]),
        ]
    )


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    """client_id/secret from an RFC 6749 §2.3.1 Basic header, which Entra also accepts."""
    if not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id) or None, unquote_plus(secret) or None
