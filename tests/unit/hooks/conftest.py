"""Hooks on an httpx.MockTransport with a fake msal application: transport mechanics only."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.hooks._auth import TokenProvider
from prospect_to_cash.hooks._http import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

SECRET = "Hx7~unit-test-client-secret-0123456789"
DATAVERSE = "https://org.crm.dynamics.com"
FNO = "https://contoso.operations.dynamics.com"


class FakeMsalApp:
    """Issues numbered tokens like msal's client-credentials call, with a cache msal-style."""

    def __init__(self, client_id: str, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.issued = 0
        self.token_cache = self
        self.cached: list[dict[str, Any]] = []

    def search(self, credential_type: Any) -> Iterator[dict[str, Any]]:
        yield from self.cached  # a live generator, like msal's

    def remove_at(self, entry: dict[str, Any]) -> None:
        self.cached.remove(entry)

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
        if not self.cached:
            self.issued += 1
            self.cached.append({"secret": f"eyJ0eXAiOiJKV1Qi.unit-token-{self.issued}.c2ln"})
        return {"access_token": self.cached[0]["secret"], "expires_in": 3599, "token_type": "Bearer"}


def odata_json(status: int, body: Any, **headers: str) -> httpx.Response:
    """A JSON answer with the headers both services send."""
    return httpx.Response(
        status,
        headers={
            "Content-Type": "application/json; odata.metadata=minimal",
            "OData-Version": "4.0",
            **headers,
        },
        content=json.dumps(body).encode(),
    )


def multipart(boundary: str, text: str, status: int = 200) -> httpx.Response:
    """A $batch answer: multipart/mixed with CRLF line ends."""
    return httpx.Response(
        status,
        headers={"Content-Type": f"multipart/mixed; boundary={boundary}", "OData-Version": "4.0"},
        content=text.replace("\n", "\r\n").encode(),
    )


@pytest.fixture
def fake_tokens(monkeypatch: pytest.MonkeyPatch) -> list[TokenProvider]:
    """Make every hook get its tokens from a fake msal application."""
    made: list[TokenProvider] = []

    def factory(**kwargs: Any) -> TokenProvider:
        provider = TokenProvider(app_factory=FakeMsalApp, **kwargs)
        made.append(provider)
        return provider

    monkeypatch.setattr("prospect_to_cash.hooks.base.shared_token_provider", factory)
    return made


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DV_UNIT",
        json.dumps(
            {
                "conn_type": "dynamics_dataverse",
                "host": DATAVERSE,
                "login": "client-id",
                "password": SECRET,
                "extra": {"tenant_id": "tenant-id"},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_FNO_UNIT",
        json.dumps(
            {
                "conn_type": "dynamics_fno",
                "host": FNO,
                "login": "client-id",
                "password": SECRET,
                "extra": {"tenant_id": "tenant-id", "default_company": "usmf"},
            }
        ),
    )


@pytest.fixture
def make_hook(fake_tokens: list[TokenProvider], connections: None) -> Callable[..., Any]:
    """Build a hook whose requests go to ``handler``; sleeps are recorded, not slept."""
    hooks: list[Any] = []

    def build(kind: str, handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> Any:
        policy = kwargs.pop("retry", RetryPolicy(max_attempts=4, backoff_base=0.001, backoff_max=0.002))
        if kind == "dataverse":
            hook = DataverseHook(
                dataverse_conn_id="dv_unit", transport=httpx.MockTransport(handler), retry=policy, **kwargs
            )
        else:
            hook = FinanceOperationsHook(
                fno_conn_id="fno_unit", transport=httpx.MockTransport(handler), retry=policy, **kwargs
            )
        hooks.append(hook)
        return hook

    yield build
    for hook in hooks:
        hook.close()
