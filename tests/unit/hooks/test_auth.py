"""Token cache timing, forced refresh after a 401, error messages, and secret masking."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.log import redact

from prospect_to_cash.hooks._auth import TokenProvider
from prospect_to_cash.hooks.errors import DynamicsAuthError

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = "Zq8~client-secret-value-not-for-logs"


class FakeCache:
    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}  # msal keeps a dict, too

    def search(self, credential_type: Any) -> Iterator[dict[str, Any]]:
        yield from self.entries.values()  # a live generator over the dict, like msal's

    def remove_at(self, entry: dict[str, Any]) -> None:
        del self.entries[entry["secret"]]


class FakeApp:
    """The part of msal.ConfidentialClientApplication the provider uses."""

    instances: list[FakeApp] = []

    def __init__(self, client_id: str, **kwargs: Any) -> None:
        self.client_id = client_id
        self.kwargs = kwargs
        self.token_cache = FakeCache()
        self.calls = 0
        self.lifetime = 3600
        self.error: dict[str, Any] | None = None
        FakeApp.instances.append(self)

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        self.calls += 1
        if self.error:
            return self.error
        # Like msal: serve from its own cache while the token is there.
        if self.token_cache.entries:
            cached = next(iter(self.token_cache.entries))
            return {"access_token": cached, "expires_in": self.lifetime}
        token = f"eyJ.token-number-{self.calls}.sig"
        self.token_cache.entries[token] = {"secret": token}
        return {"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider(clock: Clock, authority: str = "https://login.microsoftonline.com/tenant-1", **kwargs: Any):
    FakeApp.instances.clear()
    return TokenProvider(
        authority=authority,
        client_id="client-1",
        client_secret=SECRET,
        resource="https://org.crm.dynamics.com",
        clock=clock,
        app_factory=FakeApp,
        **kwargs,
    )


def test_app_is_built_with_scope_authority_and_trust() -> None:
    tokens = provider(Clock(), ca_bundle="/tmp/ca.pem")
    tokens.token()
    (app,) = FakeApp.instances
    assert tokens.scopes == ["https://org.crm.dynamics.com/.default"]
    assert app.kwargs["authority"] == "https://login.microsoftonline.com/tenant-1"
    assert app.kwargs["client_credential"] == SECRET
    assert app.kwargs["http_client"]._verify == "/tmp/ca.pem"
    assert app.kwargs["instance_discovery"] is True


def test_private_authority_skips_instance_discovery() -> None:
    tokens = provider(Clock(), authority="https://localhost:8440/tenant-1")
    tokens.token()
    assert FakeApp.instances[0].kwargs["instance_discovery"] is False
    assert FakeApp.instances[0].kwargs["http_client"]._verify is True


def test_token_is_cached_until_shortly_before_expiry() -> None:
    clock = Clock()
    tokens = provider(clock)
    first = tokens.token()
    app = FakeApp.instances[0]
    clock.now += 3600 - 301  # more than the 300 s margin left
    assert tokens.token() == first
    assert app.calls == 1
    clock.now += 2  # inside the margin: ask msal again
    tokens.token()
    assert app.calls == 2


def test_short_lived_tokens_refresh_at_four_fifths_of_their_life() -> None:
    clock = Clock()
    tokens = provider(clock)
    tokens.token()
    app = FakeApp.instances[0]
    app.token_cache.entries.clear()
    app.lifetime = 60
    clock.now += 4000
    tokens.token()  # now a 60 s token
    calls = app.calls
    clock.now += 47
    tokens.token()
    assert app.calls == calls
    clock.now += 2
    tokens.token()
    assert app.calls == calls + 1


def test_invalidate_forces_a_new_token_even_if_msal_cached_it() -> None:
    clock = Clock()
    tokens = provider(clock)
    rejected = tokens.token()
    tokens.invalidate(rejected)
    fresh = tokens.token()
    assert fresh != rejected
    assert tokens.tokens_acquired == 2


def test_refusal_is_readable_and_never_contains_the_secret() -> None:
    tokens = provider(Clock())
    tokens.token()
    app = FakeApp.instances[0]
    app.token_cache.entries.clear()
    app.error = {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
        "in the request is the client secret value.\r\nTrace ID: 1",
    }
    tokens.invalidate(tokens.token())
    with pytest.raises(DynamicsAuthError) as raised:
        tokens.token()
    text = str(raised.value)
    assert "invalid_client: AADSTS7000215: Invalid client secret provided." in text
    assert "Trace ID" not in text
    assert SECRET not in text


def test_secret_and_tokens_are_registered_with_the_masker() -> None:
    tokens = provider(Clock())
    token = tokens.token()
    assert redact(f"secret={SECRET}") == "secret=***"
    assert redact(f"Authorization: Bearer {token}") == "Authorization: Bearer ***"
    assert SECRET not in repr(tokens)
    assert token not in repr(tokens)


def test_ca_bundle_wins_over_requests_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """requests lets REQUESTS_CA_BUNDLE override a session's verify; the pinned client must not."""
    import requests

    from prospect_to_cash.hooks._auth import PinnedTrustHttpClient

    seen: dict[str, Any] = {}

    def fake_send(self: Any, request: Any, **kwargs: Any) -> Any:
        seen["verify"] = kwargs.get("verify")
        response = requests.Response()
        response.status_code = 200
        return response

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", fake_send)
    client = PinnedTrustHttpClient(str(tmp_path / "emulator-ca.pem"))
    client.get("https://localhost:8440/tenant/v2.0/.well-known/openid-configuration")
    assert seen["verify"] == str(tmp_path / "emulator-ca.pem")
