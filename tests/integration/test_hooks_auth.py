"""Hooks against the emulators over HTTPS: msal tokens, TLS trust, test_connection, 401/429/resets.

These need only the emulator core (Entra ID, TLS, service protection, faults) and the
service documents; paged reads and writes against the real service apps come with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.hooks._http import RetryPolicy
from tests.support.connections import connect

if TYPE_CHECKING:
    from tests.support.emulators import AdminClient, RunningEmulators

pytestmark = pytest.mark.integration

# Short backoffs between refusals; the budgets are the defaults.
FAST_AUTH = RetryPolicy(backoff_base=0.05, backoff_max=0.5)


def hook_for(service: str, conn_id: str, **kwargs: Any) -> DataverseHook | FinanceOperationsHook:
    if service == "dataverse":
        return DataverseHook(dataverse_conn_id=conn_id, **kwargs)
    return FinanceOperationsHook(fno_conn_id=conn_id, **kwargs)


@pytest.mark.parametrize("service", ["dataverse", "fno"])
def test_connection_succeeds_with_an_msal_token_over_verified_tls(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators, service: str
) -> None:
    conn_id = connect(monkeypatch, emulators.endpoints, service)
    with hook_for(service, conn_id) as hook:
        ok, message = hook.test_connection()
        assert ok, message
        assert message.startswith("Connected to ")
        assert hook.session.tokens.tokens_acquired >= 1


def test_wrong_secret_fails_readably(monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators) -> None:
    wrong = "not-the-secret-" + "x" * 20
    conn_id = connect(monkeypatch, emulators.endpoints, "dataverse", password=wrong)
    with hook_for("dataverse", conn_id) as hook:
        ok, message = hook.test_connection()
    assert not ok
    assert "Entra ID refused a token" in message
    assert "invalid_client" in message
    assert wrong not in message
    assert emulators.endpoints.client_secret not in message


def test_without_the_ca_bundle_tls_verification_fails(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators
) -> None:
    endpoints = emulators.endpoints
    extra = {"tenant_id": endpoints.tenant_id, "authority_host": endpoints.authority.rsplit("/", 1)[0]}
    conn_id = connect(monkeypatch, endpoints, "fno", extra=extra)
    with hook_for("fno", conn_id) as hook:
        ok, message = hook.test_connection()
    assert not ok
    assert "CERTIFICATE_VERIFY_FAILED" in message or "certificate verify failed" in message.lower()


def test_revoked_token_is_replaced_transparently(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators, dataverse_admin: AdminClient
) -> None:
    conn_id = connect(monkeypatch, emulators.endpoints, "dataverse")
    with hook_for("dataverse", conn_id) as hook:
        assert hook.test_connection()[0]
        before = hook.session.tokens.tokens_acquired
        dataverse_admin.revoke_tokens()
        ok, message = hook.test_connection()
        assert ok, message
        assert hook.session.tokens.tokens_acquired == before + 1


def test_throttling_is_waited_out(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators, fno_admin: AdminClient
) -> None:
    conn_id = connect(monkeypatch, emulators.endpoints, "fno")
    with hook_for("fno", conn_id) as hook:
        assert hook.test_connection()[0]
        with fno_admin.overrides({"faults": {"throttle": {"next_n": 2}, "retry_after_seconds": 1}}):
            ok, message = hook.test_connection()
        assert ok, message
        assert hook.session.limiter.stats.throttles == 2


def test_connection_reset_on_a_read_is_retried(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators, dataverse_admin: AdminClient
) -> None:
    conn_id = connect(monkeypatch, emulators.endpoints, "dataverse")
    with hook_for("dataverse", conn_id) as hook:
        assert hook.test_connection()[0]
        with dataverse_admin.overrides({"faults": {"reset": {"next_n": 1}}}):
            ok, message = hook.test_connection()
        assert ok, message


@pytest.mark.parametrize("service", ["dataverse", "fno"])
def test_a_revocation_storm_is_survived_with_new_tokens(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators, service: str
) -> None:
    conn_id = connect(monkeypatch, emulators.endpoints, service)
    with emulators.admin(service) as admin, hook_for(service, conn_id, retry=FAST_AUTH) as hook:
        assert hook.test_connection()[0]
        # (the first call may itself have replaced a token an earlier test revoked)
        before, refused_before = hook.session.tokens.tokens_acquired, hook.session.tokens_refused
        admin.reset_counters()
        # Three revocations in a row on one request: each refusal gets a new token.
        with admin.overrides({"faults": {"revoke_token": {"next_n": 3}}}):
            ok, message = hook.test_connection()
            assert ok, message
            counters = admin.counters()
            assert counters["faults"] == {"revoke_token": 3}
            assert counters["unauthorized"] == {"revoked": 3}
        assert hook.session.tokens.tokens_acquired == before + 3
        assert hook.session.tokens_refused == refused_before + 3


def test_a_credential_refused_for_good_fails_within_the_budget(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators, fno_admin: AdminClient
) -> None:
    conn_id = connect(monkeypatch, emulators.endpoints, "fno")
    with hook_for("fno", conn_id, retry=FAST_AUTH) as hook:
        assert hook.test_connection()[0]
        before = hook.session.tokens.tokens_acquired
        with fno_admin.overrides({"faults": {"revoke_token": {"rate": 1.0}}}):
            ok, message = hook.test_connection()
        assert not ok
        assert "refused 5 tokens in a row for this request: The token has been revoked." in message
        # One token per refusal the request survived (auth_retries=4), none after it gave up.
        assert hook.session.tokens.tokens_acquired == before + 4
        assert emulators.endpoints.client_secret not in message
        # Once the service takes tokens again the same hook recovers (and leaves no revoked
        # token in the process-wide cache for the next test to pay a 401 for).
        ok, message = hook.test_connection()
        assert ok, message
        assert hook.session.tokens.tokens_acquired == before + 5
