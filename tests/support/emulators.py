"""The emulators in the test suite: the shared launcher plus what only tests need.

Launching, the JSON line and the admin routes live in :mod:`emulators.client` (also used by
the benchmark and ``make demo``); its names are re-exported here because most test modules
import them from this module. What stays here is test-only: tokens through msal and the
independent :class:`Oracle` reader.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx

from emulators import client
from emulators.client import (
    ROOT,
    SERVICES,
    START_TIMEOUT,
    AdminClient,
    EmulatorEndpoints,
    RunningEmulators,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    import pytest

__all__ = [
    "ROOT",
    "SERVICES",
    "AdminClient",
    "EmulatorEndpoints",
    "Oracle",
    "RunningEmulators",
    "acquire_token",
    "msal_app",
    "serve_command",
    "start_emulators",
]


def serve_command(state_dir: Path, *extra: str) -> list[str]:
    """The `serve` command line on free ports."""
    return client.serve_command(state_dir, *extra)


def start_emulators(
    state_dir: Path,
    *extra_args: str,
    config: dict[str, Any] | None = None,
    timeout: float = START_TIMEOUT,
) -> RunningEmulators:
    """:func:`emulators.client.start_emulators` on free ports (stderr beside the state)."""
    return client.start_emulators(state_dir, *extra_args, config=config, timeout=timeout)


def msal_app(endpoints: EmulatorEndpoints, client_secret: str | None = None) -> Any:
    """A fresh msal confidential client (fresh: msal caches tokens and errors per app).

    It gets its own `requests` session with `trust_env=False`: requests lets the
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE environment variables override a session's `verify`,
    which would silently swap msal's `verify=<ca.pem>` for the system bundle.
    """
    import msal
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = endpoints.ca_bundle
    return msal.ConfidentialClientApplication(
        endpoints.client_id,
        client_credential=client_secret if client_secret is not None else endpoints.client_secret,
        authority=endpoints.authority,
        instance_discovery=False,
        http_client=session,
    )


def acquire_token(endpoints: EmulatorEndpoints, service: str = "dataverse") -> str:
    """A bearer token for a service, obtained the way the product does (msal)."""
    result = msal_app(endpoints).acquire_token_for_client(scopes=[endpoints.scope(service)])
    if "access_token" not in result:
        raise AssertionError(f"no token: {result.get('error')}: {result.get('error_description')}")
    return str(result["access_token"])


class Oracle:
    """Reads with plain httpx, independent of the hook, to check what really landed."""

    def __init__(self, endpoints: EmulatorEndpoints, service: str) -> None:
        self.root = endpoints.service_root(service)
        self.client = httpx.Client(
            verify=endpoints.ssl_context(),
            headers={
                "Authorization": f"Bearer {acquire_token(endpoints, service)}",
                "Accept": "application/json",
            },
            timeout=30,
        )

    def get(self, path: str) -> httpx.Response:
        return self.client.get(self.root + path)

    def rows(self, path: str) -> list[dict[str, Any]]:
        response = self.get(path)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "@odata.nextLink" not in body
        return list(body["value"])

    def close(self) -> None:
        self.client.close()


@contextmanager
def connected_demo_world(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, conn_ids: Mapping[str, str]
) -> Iterator[RunningEmulators]:
    """A fresh emulator process seeded with the demo world, and ``AIRFLOW_CONN_*`` variables
    for ``conn_ids`` that reach it (undone with the test's ``monkeypatch``); stopped after."""
    from devstack.airflow_stack import connection_env
    from tests.conftest import TEST_CONFIG

    started = start_emulators(state_dir, "--seed", "demo", config=TEST_CONFIG)
    try:
        for name, value in connection_env(started.endpoints, conn_ids=conn_ids).items():
            monkeypatch.setenv(name, value)
        yield started
    finally:
        started.stop()
