"""Entra ID tokens through msal (client credentials), cached per connection and process.

msal already caches tokens inside one ``ConfidentialClientApplication``; this module
keeps one application per (authority, client, resource, secret) so that every hook built
from the same connection in a worker process shares it, refreshes a token a little
before it expires, and can drop a token the service has rejected (401) so the next call
fetches a new one instead of msal handing back the same cached one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import msal
from airflow.sdk.log import mask_secret

from prospect_to_cash.hooks.errors import DynamicsAuthError

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login-us.microsoftonline.com",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
    }
)
# A real token lives 60 to 90 minutes; refresh it this long before it expires.
DEFAULT_REFRESH_MARGIN = 300.0


class TokenProvider:
    """Hands out a valid bearer token for one resource, refreshing ahead of expiry.

    :param authority: ``<authority host>/<tenant id>``, https.
    :param client_id: application (client) id.
    :param client_secret: client secret; registered with Airflow's secrets masker.
    :param resource: the environment URL; the scope asked for is ``<resource>/.default``.
    :param ca_bundle: PEM bundle msal verifies the authority's TLS certificate against.
    :param refresh_margin: seconds before expiry at which a token counts as stale; capped at
        a fifth of the token's lifetime so short-lived tokens are not refreshed on every call.
    :param clock: monotonic clock, replaceable in tests.
    :param app_factory: builds the msal application, replaceable in tests.
    """

    def __init__(
        self,
        *,
        authority: str,
        client_id: str,
        client_secret: str,
        resource: str,
        ca_bundle: str | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        app_factory: Callable[..., Any] | None = None,
    ) -> None:
        mask_secret(client_secret)
        self.authority = authority.rstrip("/")
        self.client_id = client_id
        self.scopes = [resource.rstrip("/") + "/.default"]
        self._client_secret = client_secret
        self._ca_bundle = ca_bundle
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._app_factory = app_factory or msal.ConfidentialClientApplication
        self._app: Any = None
        self._token: str | None = None
        self._stale_at = 0.0
        self._lock = threading.Lock()
        self.tokens_acquired = 0

    def __repr__(self) -> str:
        # Never show the secret or the token, even in a debugger or a traceback.
        return (
            f"TokenProvider(authority={self.authority!r}, client_id={self.client_id!r}, "
            f"scopes={self.scopes!r})"
        )

    def _application(self) -> Any:
        if self._app is None:
            host = self.authority.split("://", 1)[-1].split("/", 1)[0].lower()
            try:
                self._app = self._app_factory(
                    self.client_id,
                    client_credential=self._client_secret,
                    authority=self.authority,
                    # Instance discovery asks login.microsoftonline.com about the authority;
                    # it has nothing to say about a private or emulated one.
                    instance_discovery=host in MICROSOFT_AUTHORITY_HOSTS,
                    http_client=PinnedTrustHttpClient(self._ca_bundle or True),
                )
            except ValueError as exc:
                raise DynamicsAuthError(f"cannot use authority {self.authority}: {exc}") from exc
            except Exception as exc:  # msal raises requests' errors for discovery failures
                raise DynamicsAuthError(
                    f"cannot reach the authority {self.authority}: {type(exc).__name__}: {exc}"
                ) from exc
        return self._app

    def token(self) -> str:
        """A bearer token that will still be valid for a while; fetched only when needed."""
        with self._lock:
            if self._token is not None and self._clock() < self._stale_at:
                return self._token
            return self._acquire()

    def invalidate(self, rejected: str) -> None:
        """Forget ``rejected`` (the service answered 401 to it) so the next call fetches anew."""
        with self._lock:
            if self._token == rejected:
                self._token = None
                self._stale_at = 0.0
            app = self._app
            if app is not None:
                cache = app.token_cache
                # search() is a generator over the cache itself: copy before removing.
                for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                    if entry.get("secret") == rejected:
                        cache.remove_at(entry)

    def _acquire(self) -> str:
        app = self._application()
        try:
            result = app.acquire_token_for_client(scopes=self.scopes)
        except Exception as exc:
            raise DynamicsAuthError(
                f"token request to {self.authority} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(result, dict) or "access_token" not in result:
            result = result if isinstance(result, dict) else {}
            error = result.get("error", "unknown_error")
            description = str(result.get("error_description") or "no description").splitlines()[0]
            raise DynamicsAuthError(
                f"Entra ID refused a token for client {self.client_id} at {self.authority}: "
                f"{error}: {description}"
            )
        token = str(result["access_token"])
        mask_secret(token)
        lifetime = float(result.get("expires_in") or 3600)
        margin = min(self._refresh_margin, lifetime / 5)
        self._token = token
        self._stale_at = self._clock() + max(lifetime - margin, 0.0)
        self.tokens_acquired += 1
        log.debug("Token for %s acquired; valid %.0f s", self.scopes[0], lifetime)
        return token


class PinnedTrustHttpClient:
    """The requests session msal talks to Entra ID through, with the CA bundle pinned per call.

    msal sets ``session.verify``, but requests lets ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` from the environment override a session-level setting; passing
    ``verify=`` on every call is the only way the configured bundle really applies.
    Proxies from the environment still work.
    """

    def __init__(self, verify: str | bool, timeout: float = 30.0) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self._verify = verify
        self._timeout = timeout
        self._session = requests.Session()
        adapter = HTTPAdapter(max_retries=1)
        self._session.mount("https://", adapter)

    def get(self, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.get(url, verify=self._verify, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.post(url, verify=self._verify, **kwargs)

    def close(self) -> None:
        self._session.close()


_registry: dict[tuple[str, ...], TokenProvider] = {}
_registry_lock = threading.Lock()


def shared_token_provider(
    *, authority: str, client_id: str, client_secret: str, resource: str, ca_bundle: str | None
) -> TokenProvider:
    """The process-wide `TokenProvider` for one set of credentials.

    Keyed on a hash of the secret, so a rotated secret gets a fresh provider while hooks
    built from the same connection share one token.
    """
    digest = hashlib.sha256(client_secret.encode()).hexdigest()
    key = (authority.rstrip("/").lower(), client_id, resource.rstrip("/").lower(), digest, ca_bundle or "")
    with _registry_lock:
        provider = _registry.get(key)
        if provider is None:
            provider = TokenProvider(
                authority=authority,
                client_id=client_id,
                client_secret=client_secret,
                resource=resource,
                ca_bundle=ca_bundle,
            )
            _registry[key] = provider
        else:
            mask_secret(client_secret)
        return provider
