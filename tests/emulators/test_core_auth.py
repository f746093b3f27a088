"""TLS and Entra ID over real HTTPS: msal round trip, AADSTS errors, 401 challenges."""

from __future__ import annotations

import ssl
import time
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import pytest

from tests.support.emulators import acquire_token, msal_app

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.emulators import AdminClient, EmulatorEndpoints, RunningEmulators

pytestmark = pytest.mark.integration


def get(endpoints: EmulatorEndpoints, url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with httpx.Client(verify=endpoints.ssl_context(), timeout=10) as client:
        return client.get(url, headers=headers)


def token_request(endpoints: EmulatorEndpoints, **form: str) -> httpx.Response:
    with httpx.Client(verify=endpoints.ssl_context(), timeout=10) as client:
        return client.post(f"{endpoints.authority}/oauth2/v2.0/token", data=form)


# -- TLS -----------------------------------------------------------------------------------


def test_tls_verifies_with_the_ca_bundle_only(endpoints: EmulatorEndpoints) -> None:
    health = f"{endpoints.admin['dataverse']}/health"
    assert get(endpoints, health).status_code == 200
    # The same certificate is valid for the IP literal too.
    ip_url = health.replace("localhost", "127.0.0.1")
    with httpx.Client(verify=endpoints.ssl_context()) as client:
        assert client.get(ip_url).status_code == 200
    # A client that trusts only the default CAs refuses the emulators' certificate.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(health, verify=ssl.create_default_context())


def test_tls_files_are_pem_and_the_key_is_private(endpoints: EmulatorEndpoints) -> None:
    from pathlib import Path

    tls = Path(endpoints.ca_bundle).parent
    assert Path(endpoints.ca_bundle).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert (tls / "server-key.pem").stat().st_mode & 0o077 == 0


# -- Entra ID ------------------------------------------------------------------------------


def test_openid_configuration_satisfies_msal(endpoints: EmulatorEndpoints) -> None:
    response = get(endpoints, f"{endpoints.authority}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    document = response.json()
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "issuer"):
        assert document[key].startswith("https://"), key
    assert document["token_endpoint"] == f"{endpoints.authority}/oauth2/v2.0/token"
    assert document["issuer"] == f"{endpoints.authority}/v2.0"


def test_msal_with_verify_parameter_gets_a_token(
    endpoints: EmulatorEndpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact constructor the hooks use. requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
    override `verify`, so they are cleared here, as they are on a machine without them."""
    import msal

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    app = msal.ConfidentialClientApplication(
        endpoints.client_id,
        client_credential=endpoints.client_secret,
        authority=endpoints.authority,
        instance_discovery=False,
        verify=endpoints.ca_bundle,
    )
    result = app.acquire_token_for_client(scopes=[endpoints.scope("dataverse")])
    assert result.get("token_type") == "Bearer", result
    assert result["expires_in"] > 0
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == endpoints.dataverse_url
    assert claims["appid"] == endpoints.client_id
    assert claims["tid"] == endpoints.tenant_id
    assert {"iss", "oid", "iat", "nbf", "exp"} <= set(claims)
    # msal serves the second call from its cache.
    again = app.acquire_token_for_client(scopes=[endpoints.scope("dataverse")])
    assert again["access_token"] == result["access_token"]
    assert again.get("token_source") == "cache"


def test_token_response_shape(endpoints: EmulatorEndpoints) -> None:
    response = token_request(
        endpoints,
        grant_type="client_credentials",
        client_id=endpoints.client_id,
        client_secret=endpoints.client_secret,
        scope=endpoints.scope("fno"),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] > 0
    assert response.headers["cache-control"].startswith("no-store")


def assert_aad_error(response: httpx.Response, status: int, error: str, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert f"Trace ID: {body['trace_id']}" in body["error_description"]
    assert f"Correlation ID: {body['correlation_id']}" in body["error_description"]
    assert body["timestamp"].endswith("Z")
    return body


def test_wrong_secret_is_invalid_client_401(endpoints: EmulatorEndpoints) -> None:
    result = msal_app(endpoints, client_secret="not-the-secret").acquire_token_for_client(
        scopes=[endpoints.scope("dataverse")]
    )
    assert result["error"] == "invalid_client"
    assert 7000215 in result["error_codes"]
    raw = token_request(
        endpoints,
        grant_type="client_credentials",
        client_id=endpoints.client_id,
        client_secret="nope",
        scope=endpoints.scope("dataverse"),
    )
    body = assert_aad_error(raw, 401, "invalid_client", 7000215)
    assert "nope" not in body["error_description"]


@pytest.mark.parametrize(
    ("form_changes", "status", "error", "code"),
    [
        ({"scope": "https://localhost/user_impersonation"}, 400, "invalid_scope", 1002012),
        ({"scope": "{dataverse}/.default {fno}/.default"}, 400, "invalid_scope", 1002012),
        ({"scope": "https://unknown.example/.default"}, 400, "invalid_resource", 500011),
        ({"scope": ""}, 400, "invalid_request", 900144),
        ({"client_id": "11111111-2222-3333-4444-555555555555"}, 400, "unauthorized_client", 700016),
        ({"client_secret": ""}, 401, "invalid_client", 7000218),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
    ],
)
def test_token_endpoint_errors(
    endpoints: EmulatorEndpoints, form_changes: dict[str, str], status: int, error: str, code: int
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": endpoints.client_id,
        "client_secret": endpoints.client_secret,
        "scope": endpoints.scope("dataverse"),
    }
    for key, value in form_changes.items():
        form[key] = value.format(dataverse=endpoints.dataverse_url, fno=endpoints.fno_url)
    assert_aad_error(token_request(endpoints, **{k: v for k, v in form.items() if v}), status, error, code)


def test_unknown_tenant(endpoints: EmulatorEndpoints) -> None:
    other = endpoints.authority.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    response = get(endpoints, f"{other}/v2.0/.well-known/openid-configuration")
    assert_aad_error(response, 400, "invalid_request", 90002)


def test_basic_auth_client_credentials_are_accepted(endpoints: EmulatorEndpoints) -> None:
    with httpx.Client(verify=endpoints.ssl_context()) as client:
        response = client.post(
            f"{endpoints.authority}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "scope": endpoints.scope("fno")},
            auth=(endpoints.client_id, endpoints.client_secret),
        )
    assert response.status_code == 200


# -- 401 on the services ------------------------------------------------------------------


def assert_challenge(response: httpx.Response, endpoints: EmulatorEndpoints, service: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == (
        f"Bearer authorization_uri={endpoints.authority}/oauth2/authorize, "
        f"resource_id={endpoints.resource(service)}"
    )
    assert set(response.json()["error"]) >= {"code", "message"}


@pytest.mark.parametrize("service", ["dataverse", "fno"])
def test_missing_and_malformed_tokens_get_a_bearer_challenge(
    endpoints: EmulatorEndpoints, service: str
) -> None:
    root = endpoints.service_root(service)
    assert_challenge(get(endpoints, root), endpoints, service)
    assert_challenge(get(endpoints, root, token="garbage"), endpoints, service)


def test_wrong_audience_is_refused(endpoints: EmulatorEndpoints, bearer_token: Callable[[str], str]) -> None:
    fno_token = bearer_token("fno")
    assert get(endpoints, endpoints.fno_service_root, fno_token).status_code == 200
    assert_challenge(get(endpoints, endpoints.dataverse_service_root, fno_token), endpoints, "dataverse")


def test_expired_token_is_refused(endpoints: EmulatorEndpoints, dataverse_admin: AdminClient) -> None:
    before = dataverse_admin.counters()["unauthorized"].get("expired", 0)
    with dataverse_admin.overrides({"entra": {"token_lifetime_seconds": 4}}):
        token = acquire_token(endpoints, "dataverse")
        # Timing comes from the token's own claim, not from sleeps, so a loaded machine
        # cannot turn the first (valid) request into an expired one.
        expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
        if time.time() < expires_at - 2:
            assert get(endpoints, endpoints.dataverse_service_root, token).status_code == 200
            before = dataverse_admin.counters()["unauthorized"].get("expired", 0)
        time.sleep(max(0.0, expires_at - time.time()) + 0.2)
        response = get(endpoints, endpoints.dataverse_service_root, token)
    assert_challenge(response, endpoints, "dataverse")
    assert "expired" in response.json()["error"]["message"]
    assert dataverse_admin.counters()["unauthorized"]["expired"] == before + 1


def test_revoked_tokens_are_refused_and_new_ones_work(
    endpoints: EmulatorEndpoints, dataverse_admin: AdminClient, bearer_token: Callable[[str], str]
) -> None:
    old = bearer_token("dataverse")
    assert get(endpoints, endpoints.dataverse_service_root, old).status_code == 200
    dataverse_admin.revoke_tokens()
    response = get(endpoints, endpoints.dataverse_service_root, old)
    assert_challenge(response, endpoints, "dataverse")
    assert "revoked" in response.json()["error"]["message"]
    assert get(endpoints, endpoints.dataverse_service_root, bearer_token("dataverse")).status_code == 200


def test_admin_routes_need_no_token(endpoints: EmulatorEndpoints, emulators: RunningEmulators) -> None:
    for service in ("dataverse", "fno"):
        assert get(endpoints, f"{endpoints.admin[service]}/counters").status_code == 200
