"""Unit checks of configuration merging, the sliding-window limiter, faults and tokens."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from emulators.config import (
    ConfigError,
    ConfigStore,
    EmulatorConfig,
    EntraConfig,
    FaultsConfig,
    LimitsConfig,
    merge,
)
from emulators.credentials import ensure_credentials
from emulators.entra import TokenError, TokenIssuer
from emulators.protection import (
    CONCURRENCY_CODE,
    EXECUTION_CODE,
    REQUESTS_CODE,
    FaultInjector,
    Limiter,
    ServiceErrors,
    entity_set_of,
)

if TYPE_CHECKING:
    from pathlib import Path

# -- configuration -------------------------------------------------------------------------


def test_partial_merge_changes_only_what_is_named() -> None:
    config = merge(EmulatorConfig(), {"dataverse": {"limits": {"max_requests": 5}, "dop_hint": 8}})
    assert config.dataverse.limits.max_requests == 5
    assert config.dataverse.limits.window_seconds == 300.0
    assert config.dataverse.dop_hint == 8
    assert config.fno.limits.max_requests == 6000


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"dataverse": {"limits": {"max_request": 5}}}, "unknown setting 'dataverse.limits.max_request'"),
        ({"dataverse": {"limits": {"max_requests": "5"}}}, "must be an integer"),
        ({"dataverse": {"limits": {"enabled": 1}}}, "true or false"),
        ({"fno": {"faults": {"throttle": {"methods": "POST"}}}}, "list of str"),
        ({"entra": 3}, "must be a JSON object"),
    ],
)
def test_bad_patches_are_refused_with_the_setting_named(patch: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        merge(EmulatorConfig(), patch)


def test_validation_catches_out_of_range_values() -> None:
    config = merge(EmulatorConfig(), {"fno": {"faults": {"reset": {"rate": 1.5}}}})
    with pytest.raises(ConfigError, match=r"faults.reset.rate"):
        config.validate()


def test_config_store_persists_and_layers_the_override_file(tmp_path: Path) -> None:
    override = tmp_path / "override.json"
    override.write_text(json.dumps({"entra": {"token_lifetime_seconds": 60}}))
    store = ConfigStore.load(tmp_path, override)
    store.patch({"dataverse": {"limits": {"max_concurrent": 3}}})
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["entra"]["token_lifetime_seconds"] == 60
    assert saved["dataverse"]["limits"]["max_concurrent"] == 3
    again = ConfigStore.load(tmp_path)
    assert again.current.dataverse.limits.max_concurrent == 3
    assert again.current.entra.token_lifetime_seconds == 60
    with pytest.raises(ConfigError):
        again.patch({"dataverse": {"limits": {"max_concurrent": 0}}})
    assert again.current.dataverse.limits.max_concurrent == 3  # a refused patch changes nothing


# -- limiter -------------------------------------------------------------------------------


def limits(**overrides: float) -> LimitsConfig:
    base = {"window_seconds": 10.0, "max_requests": 3, "max_execution_ms": 1000.0, "max_concurrent": 2}
    base.update(overrides)
    return LimitsConfig(**base)  # type: ignore[arg-type]


def test_request_count_limit_and_retry_after_from_the_window() -> None:
    limiter, cfg = Limiter(), limits(retry_after_growth_seconds=0)
    for t in (0.0, 1.0, 2.0):
        assert limiter.admit("app", cfg, t) is None
        limiter.release("app", 0, t)
    throttle = limiter.admit("app", cfg, 4.0)
    assert throttle is not None
    assert throttle.code == REQUESTS_CODE
    assert throttle.retry_after == pytest.approx(6.0)  # the request at t=0 leaves the window at t=10
    assert limiter.admit("app", cfg, 10.5) is None  # window freed up
    assert limiter.admit("other-app", cfg, 4.0) is None  # limits are per caller


def test_retry_after_grows_while_the_client_keeps_pushing() -> None:
    limiter, cfg = Limiter(), limits(retry_after_growth_seconds=2)
    for t in (0.0, 0.0, 0.0):
        limiter.admit("app", cfg, t)
        limiter.release("app", 0, t)
    first = limiter.admit("app", cfg, 1.0)
    second = limiter.admit("app", cfg, 1.0)
    third = limiter.admit("app", cfg, 1.0)
    assert first is not None
    assert second is not None
    assert third is not None
    assert (first.retry_after, second.retry_after, third.retry_after) == (9.0, 11.0, 13.0)
    assert limiter.admit("app", cfg, 14.5) is None  # once the extended block is over


def test_execution_time_limit() -> None:
    limiter, cfg = Limiter(), limits(max_requests=100)
    assert limiter.admit("app", cfg, 0.0) is None
    limiter.release("app", 600.0, 1.0)
    assert limiter.admit("app", cfg, 2.0) is None
    limiter.release("app", 500.0, 3.0)
    throttle = limiter.admit("app", cfg, 4.0)
    assert throttle is not None
    assert throttle.code == EXECUTION_CODE
    assert throttle.retry_after == pytest.approx(7.0)  # 600 ms spent at t=1 leave the window at t=11


def test_concurrency_limit_is_immediate_and_not_sticky() -> None:
    limiter, cfg = Limiter(), limits(max_requests=100)
    assert limiter.admit("app", cfg, 0.0) is None
    assert limiter.admit("app", cfg, 0.0) is None
    throttle = limiter.admit("app", cfg, 0.0)
    assert throttle is not None
    assert throttle.code == CONCURRENCY_CODE
    limiter.release("app", 1.0, 0.1)
    assert limiter.admit("app", cfg, 0.1) is None


def test_disabled_limits_admit_everything() -> None:
    limiter, cfg = Limiter(), limits(enabled=False)
    assert all(limiter.admit("app", cfg, 0.0) is None for _ in range(50))


def test_documented_messages() -> None:
    cfg = LimitsConfig()
    dataverse, fno = ServiceErrors("dataverse"), ServiceErrors("fno")
    assert dataverse.throttle_message(REQUESTS_CODE, cfg) == (
        "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
    )
    assert dataverse.throttle_message(EXECUTION_CODE, cfg).startswith(
        "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds over time "
        "window of 300 seconds."
    )
    assert dataverse.throttle_message(CONCURRENCY_CODE, cfg) == (
        "Number of concurrent requests exceeded the limit of 52."
    )
    assert "limit of 1200 seconds" in fno.throttle_message(EXECUTION_CODE, cfg)
    assert dataverse.body(REQUESTS_CODE, "m") == {"error": {"code": REQUESTS_CODE, "message": "m"}}
    assert fno.body(REQUESTS_CODE, "m")["error"]["innererror"]["message"] == "m"


# -- faults --------------------------------------------------------------------------------


def test_faults_are_deterministic_for_a_seed() -> None:
    def run() -> list[list[str]]:
        faults = FaultsConfig(seed=7)
        faults.unavailable.rate = 0.3
        faults.slow.rate = 0.3
        injector = FaultInjector()
        return [injector.decide(faults, "GET", "/data/x") for _ in range(40)]

    first, second = run(), run()
    assert first == second
    assert any(first)
    assert not all(first)


def test_countdown_and_filters() -> None:
    faults = FaultsConfig()
    faults.throttle.next_n = 2
    faults.throttle.methods = ["POST"]
    injector = FaultInjector()
    assert injector.decide(faults, "GET", "/x") == []
    assert injector.decide(faults, "POST", "/x") == ["throttle"]
    assert injector.decide(faults, "post", "/x") == ["throttle"]
    assert injector.decide(faults, "POST", "/x") == []
    assert faults.throttle.next_n == 0


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/data/v9.2/accounts", "accounts"),
        ("/api/data/v9.2/accounts(00000000-0000-0000-0000-000000000001)", "accounts"),
        ("/api/data/v9.2/accounts/Microsoft.Dynamics.CRM.CreateMultiple", "accounts"),
        ("/api/data/v9.2/$batch", "$batch"),
        ("/api/data/v9.2/", "/"),
        ("/other", "(outside service root)"),
    ],
)
def test_entity_set_of(path: str, expected: str) -> None:
    assert entity_set_of(path, "/api/data/v9.2/") == expected


# -- tokens --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer(tmp_path: Path) -> tuple[TokenIssuer, FakeClock]:
    clock = FakeClock()
    issuer = TokenIssuer(
        ensure_credentials(tmp_path), "https://localhost:1/tenant", lambda: EntraConfig(60), clock=clock
    )
    issuer.add_resource("https://localhost:2")
    return issuer, clock


def test_token_claims_and_audience(issuer: tuple[TokenIssuer, FakeClock]) -> None:
    tokens, _ = issuer
    issued = tokens.issue("https://localhost:2")
    claims = tokens.verify(issued.access_token, "https://localhost:2")
    assert claims["appid"] == tokens.credentials.client_id
    assert claims["tid"] == tokens.credentials.tenant_id
    assert claims["exp"] - claims["iat"] == 60
    with pytest.raises(TokenError) as wrong:
        tokens.verify(issued.access_token, "https://localhost:3")
    assert wrong.value.reason == "audience"
    with pytest.raises(TokenError) as garbage:
        tokens.verify("not-a-jwt", "https://localhost:2")
    assert garbage.value.reason == "invalid"


def test_token_expiry(issuer: tuple[TokenIssuer, FakeClock]) -> None:
    tokens, clock = issuer
    token = tokens.issue("https://localhost:2").access_token
    clock.now += 59.5
    tokens.verify(token, "https://localhost:2")
    clock.now += 0.5
    with pytest.raises(TokenError) as expired:
        tokens.verify(token, "https://localhost:2")
    assert expired.value.reason == "expired"


def test_revocation_hits_only_tokens_issued_before_it(issuer: tuple[TokenIssuer, FakeClock]) -> None:
    tokens, clock = issuer
    old = tokens.issue("https://localhost:2").access_token
    clock.now += 0.2
    tokens.revoke_all()
    clock.now += 0.1  # same second as the revocation
    new = tokens.issue("https://localhost:2").access_token
    with pytest.raises(TokenError) as revoked:
        tokens.verify(old, "https://localhost:2")
    assert revoked.value.reason == "revoked"
    tokens.verify(new, "https://localhost:2")


def test_tokens_signed_with_another_key_are_refused(tmp_path: Path) -> None:
    theirs = TokenIssuer(ensure_credentials(tmp_path / "a"), "https://localhost:1/t", lambda: EntraConfig())
    ours = TokenIssuer(ensure_credentials(tmp_path / "b"), "https://localhost:1/t", lambda: EntraConfig())
    token = theirs.issue("https://localhost:2").access_token
    with pytest.raises(TokenError) as forged:
        ours.verify(token, "https://localhost:2")
    assert forged.value.reason == "invalid"


def test_credentials_persist_and_can_be_pinned(tmp_path: Path) -> None:
    first = ensure_credentials(tmp_path)
    assert ensure_credentials(tmp_path) == first
    assert "client_secret=***" in repr(first)
    assert first.client_secret not in repr(first)
    pinned = ensure_credentials(
        tmp_path, client_id="AAAAAAAA-0000-4000-8000-000000000001", client_secret="s3cret"
    )
    assert pinned.client_id == "aaaaaaaa-0000-4000-8000-000000000001"
    assert pinned.client_secret == "s3cret"
    assert pinned.tenant_id == first.tenant_id
    assert ensure_credentials(tmp_path) == pinned
    assert (tmp_path / "credentials.json").stat().st_mode & 0o077 == 0
