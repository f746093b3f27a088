"""Service protection, cost model, fault injection and admin config over real HTTPS."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.emulators import AdminClient, EmulatorEndpoints, RunningEmulators

pytestmark = pytest.mark.integration


@pytest.fixture
def client(endpoints: EmulatorEndpoints) -> httpx.Client:
    with httpx.Client(verify=endpoints.ssl_context(), timeout=20) as http:
        yield http


def call(client: httpx.Client, url: str, token: str) -> httpx.Response:
    return client.get(url, headers={"Authorization": f"Bearer {token}"})


# -- limits --------------------------------------------------------------------------------


def test_request_count_limit_429_with_retry_after_and_code(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    dataverse_admin: AdminClient,
    bearer_token: Callable[[str], str],
) -> None:
    token = bearer_token("dataverse")
    patch = {"limits": {"max_requests": 3, "window_seconds": 30, "retry_after_growth_seconds": 5}}
    with dataverse_admin.overrides(patch):
        dataverse_admin.reset_limits()
        before = dataverse_admin.counters()["throttled"].get("0x80072322", 0)
        for _ in range(3):
            assert call(client, endpoints.dataverse_service_root, token).status_code == 200
        throttled = call(client, endpoints.dataverse_service_root, token)
        again = call(client, endpoints.dataverse_service_root, token)
        counters = dataverse_admin.counters()
    assert throttled.status_code == 429
    assert throttled.json() == {
        "error": {
            "code": "0x80072322",
            "message": "Number of requests exceeded the limit of 3 over time window of 30 seconds.",
        }
    }
    first_wait = int(throttled.headers["retry-after"])
    assert 1 <= first_wait <= 30
    # Pushing while throttled makes the wait longer.
    assert int(again.headers["retry-after"]) >= first_wait + 4
    assert counters["throttled"]["0x80072322"] == before + 2


def test_execution_time_limit(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    dataverse_admin: AdminClient,
    bearer_token: Callable[[str], str],
) -> None:
    token = bearer_token("dataverse")
    patch = {
        "limits": {"max_execution_ms": 50, "window_seconds": 2},
        "cost": {"request_latency_ms": 30, "operation_ms": 0},
    }
    with dataverse_admin.overrides(patch):
        dataverse_admin.reset_limits()
        statuses = [call(client, endpoints.dataverse_service_root, token) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].json()["error"]["code"] == "0x80072321"
    assert (
        statuses[2]
        .json()["error"]["message"]
        .startswith(
            "Combined execution time of incoming requests exceeded limit of 50 milliseconds over time window "
            "of 2 seconds."
        )
    )
    assert 1 <= int(statuses[2].headers["retry-after"]) <= 2


def test_concurrency_limit_fails_immediately(
    endpoints: EmulatorEndpoints, dataverse_admin: AdminClient, bearer_token: Callable[[str], str]
) -> None:
    token = bearer_token("dataverse")

    async def burst() -> list[tuple[int, float, httpx.Response]]:
        async with httpx.AsyncClient(verify=endpoints.ssl_context(), timeout=20) as http:

            async def one() -> tuple[int, float, httpx.Response]:
                started = time.perf_counter()
                response = await http.get(
                    endpoints.dataverse_service_root, headers={"Authorization": f"Bearer {token}"}
                )
                return response.status_code, time.perf_counter() - started, response

            return await asyncio.gather(*(one() for _ in range(5)))

    patch = {"limits": {"max_concurrent": 2}, "cost": {"request_latency_ms": 1500}}
    with dataverse_admin.overrides(patch):
        dataverse_admin.reset_limits()
        results = asyncio.run(burst())
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 429]
    assert len(ok) == 2
    assert len(refused) == 3
    for _, elapsed, response in refused:
        assert response.json()["error"]["code"] == "0x80072326"
        assert response.json()["error"]["message"] == "Number of concurrent requests exceeded the limit of 2."
        assert response.headers["retry-after"] == "1"
        assert elapsed < 1.0  # answered at once, not after the 1.5 s the admitted ones take
    assert dataverse_admin.counters()["max_in_flight"] >= 2


def test_fno_uses_the_same_limits_with_its_own_error_shape(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    fno_admin: AdminClient,
    bearer_token: Callable[[str], str],
) -> None:
    token = bearer_token("fno")
    with fno_admin.overrides({"limits": {"max_requests": 1, "window_seconds": 10}}):
        fno_admin.reset_limits()
        assert call(client, endpoints.fno_service_root, token).status_code == 200
        throttled = call(client, endpoints.fno_service_root, token)
    assert throttled.status_code == 429
    error = throttled.json()["error"]
    assert (
        error["message"] == "Number of requests exceeded the limit of 1 over the time window of 10 seconds."
    )
    assert error["innererror"]["message"] == error["message"]
    assert int(throttled.headers["retry-after"]) >= 1
    assert "x-ms-dop-hint" not in throttled.headers


def test_limits_can_be_disabled(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    dataverse_admin: AdminClient,
    bearer_token: Callable[[str], str],
) -> None:
    token = bearer_token("dataverse")
    with dataverse_admin.overrides({"limits": {"enabled": False, "max_requests": 1}}):
        assert all(call(client, endpoints.dataverse_service_root, token).status_code == 200 for _ in range(4))


# -- cost model and headers ----------------------------------------------------------------


def test_cost_model_is_charged_and_counted(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    dataverse_admin: AdminClient,
    bearer_token: Callable[[str], str],
) -> None:
    token = bearer_token("dataverse")
    with dataverse_admin.overrides({"cost": {"request_latency_ms": 200, "operation_ms": 100}}):
        before = dataverse_admin.counters()
        started = time.perf_counter()
        response = call(client, endpoints.dataverse_service_root, token)
        elapsed = time.perf_counter() - started
        after = dataverse_admin.counters()
    assert response.status_code == 200
    # The placeholder service document charges one operation: 200 ms latency + 100 ms.
    assert after["operations_charged"] - before["operations_charged"] == 1
    assert after["execution_ms"] - before["execution_ms"] == pytest.approx(300, abs=0.01)
    assert elapsed >= 0.29  # the simulated time really delayed the response
    assert after["requests"]["GET /"] == before["requests"].get("GET /", 0) + 1


def test_dataverse_headers(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    dataverse_admin: AdminClient,
    bearer_token: Callable[[str], str],
) -> None:
    token = bearer_token("dataverse")
    assert call(client, endpoints.dataverse_service_root, token).headers["x-ms-dop-hint"] == "4"
    with dataverse_admin.overrides({"dop_hint": 9}):
        response = call(client, endpoints.dataverse_service_root, token)
    assert response.headers["x-ms-dop-hint"] == "9"
    assert int(response.headers["x-ms-ratelimit-burst-remaining-xrm-requests"]) > 0


# -- faults --------------------------------------------------------------------------------


def test_injected_429_and_503_for_the_next_requests(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    dataverse_admin: AdminClient,
    bearer_token: Callable[[str], str],
) -> None:
    token = bearer_token("dataverse")
    patch = {"faults": {"throttle": {"next_n": 1}, "unavailable": {"next_n": 1}, "retry_after_seconds": 3}}
    with dataverse_admin.overrides(patch):
        before = dataverse_admin.counters()["faults"]
        first = call(client, endpoints.dataverse_service_root, token)
        second = call(client, endpoints.dataverse_service_root, token)
        third = call(client, endpoints.dataverse_service_root, token)
        faults = dataverse_admin.counters()["faults"]
    # One fault per request: the 503 (earlier in the fault order) first, then the 429.
    assert first.status_code == 503
    assert first.headers["retry-after"] == "3"
    assert set(first.json()["error"]) == {"code", "message"}
    assert second.status_code == 429
    assert second.headers["retry-after"] == "3"
    assert second.json()["error"]["code"] == "0x80072322"
    assert third.status_code == 200
    assert faults["unavailable"] == before.get("unavailable", 0) + 1
    assert faults["throttle"] == before.get("throttle", 0) + 1


def test_injected_connection_reset(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    fno_admin: AdminClient,
    bearer_token: Callable[[str], str],
) -> None:
    token = bearer_token("fno")
    with fno_admin.overrides({"faults": {"reset": {"next_n": 1}}}):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
            call(client, endpoints.fno_service_root, token)
        # The service itself is fine: the next request on a new connection succeeds.
        assert call(client, endpoints.fno_service_root, token).status_code == 200
        assert fno_admin.counters()["faults"]["reset"] >= 1


def test_injected_slow_response(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    fno_admin: AdminClient,
    bearer_token: Callable[[str], str],
) -> None:
    token = bearer_token("fno")
    with fno_admin.overrides({"faults": {"slow": {"next_n": 1}, "slow_ms": 400}}):
        started = time.perf_counter()
        assert call(client, endpoints.fno_service_root, token).status_code == 200
        slow = time.perf_counter() - started
    assert slow >= 0.39


def test_injected_early_token_revocation(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    dataverse_admin: AdminClient,
    bearer_token: Callable[[str], str],
) -> None:
    token = bearer_token("dataverse")
    with dataverse_admin.overrides({"faults": {"revoke_token": {"next_n": 1}}}):
        revoked = call(client, endpoints.dataverse_service_root, token)
        still_revoked = call(client, endpoints.dataverse_service_root, token)
        fresh = call(client, endpoints.dataverse_service_root, bearer_token("dataverse"))
    assert revoked.status_code == 401
    assert "www-authenticate" in revoked.headers
    assert still_revoked.status_code == 401
    assert fresh.status_code == 200


def test_fault_rates_are_reproducible_with_a_seed(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    dataverse_admin: AdminClient,
    bearer_token: Callable[[str], str],
) -> None:
    token = bearer_token("dataverse")

    def sequence() -> list[int]:
        dataverse_admin.patch_config({"faults": {"seed": 42}})  # re-seeds the generator
        return [call(client, endpoints.dataverse_service_root, token).status_code for _ in range(12)]

    with dataverse_admin.overrides({"faults": {"unavailable": {"rate": 0.5}, "seed": 41}}):
        first, second = sequence(), sequence()
    assert first == second
    assert set(first) == {200, 503}


def test_faults_can_target_methods_and_paths(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    dataverse_admin: AdminClient,
    bearer_token: Callable[[str], str],
) -> None:
    token = bearer_token("dataverse")
    with dataverse_admin.overrides({"faults": {"unavailable": {"rate": 1.0, "methods": ["POST"]}}}):
        assert call(client, endpoints.dataverse_service_root, token).status_code == 200
        posted = client.post(endpoints.dataverse_service_root, headers={"Authorization": f"Bearer {token}"})
    assert posted.status_code == 503


# -- admin ---------------------------------------------------------------------------------


def test_admin_config_patch_validates_and_persists(
    emulators: RunningEmulators, dataverse_admin: AdminClient, client: httpx.Client
) -> None:
    import json
    from pathlib import Path

    with dataverse_admin.overrides({"limits": {"max_requests": 1234}}) as applied:
        assert applied["limits"]["max_requests"] == 1234
        assert dataverse_admin.get_config()["limits"]["max_requests"] == 1234
        saved = json.loads((Path(emulators.endpoints.state_dir) / "config.json").read_text())
        assert saved["dataverse"]["limits"]["max_requests"] == 1234
        assert saved["fno"]["limits"]["max_requests"] == 6000
    bad = client.patch(f"{emulators.endpoints.admin['dataverse']}/config", json={"limits": {"nope": 1}})
    assert bad.status_code == 400
    assert "limits.nope" in bad.json()["error"]
    assert dataverse_admin.get_config()["limits"]["max_requests"] == 6000


def test_counters_reset(
    dataverse_admin: AdminClient, client: httpx.Client, endpoints: EmulatorEndpoints
) -> None:
    client.get(endpoints.dataverse_service_root)  # a 401 to count
    assert dataverse_admin.counters()["requests_total"] > 0
    reset = dataverse_admin.reset_counters()
    assert reset["requests_total"] == 0
    assert reset["unauthorized_total"] == 0


# -- faults after the service acted ----------------------------------------------------------


def _create_request(endpoints: EmulatorEndpoints, service: str, name: str) -> tuple[str, dict[str, str]]:
    if service == "fno":
        body = {
            "dataAreaId": "usmf",
            "CustomerAccount": name,
            "CustomerGroupId": "10",
            "OrganizationName": name,
        }
        return endpoints.fno_service_root.rstrip("/") + "/CustomersV3", body
    return endpoints.dataverse_service_root.rstrip("/") + "/accounts", {"name": name}


def _count(client: httpx.Client, endpoints: EmulatorEndpoints, service: str, name: str, token: str) -> int:
    if service == "fno":
        url = endpoints.fno_service_root.rstrip("/") + "/CustomersV3"
        query = {
            "cross-company": "true",
            "$filter": f"CustomerAccount eq '{name}'",
            "$select": "CustomerAccount",
        }
    else:
        url = endpoints.dataverse_service_root.rstrip("/") + "/accounts"
        query = {"$filter": f"name eq '{name}'", "$select": "name"}
    response = client.get(url, params=query, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return len(response.json()["value"])


@pytest.mark.parametrize("service", ["dataverse", "fno"])
@pytest.mark.parametrize("kind", ["reset_after", "unavailable_after"])
def test_faults_after_the_write_was_applied(
    client: httpx.Client,
    endpoints: EmulatorEndpoints,
    emulators: RunningEmulators,
    bearer_token: Callable[[str], str],
    service: str,
    kind: str,
) -> None:
    token = bearer_token(service)
    name = f"After {kind} {time.monotonic_ns()}"[:20]
    url, body = _create_request(endpoints, service, name)
    headers = {"Authorization": f"Bearer {token}"}
    with (
        emulators.admin(service) as admin,
        admin.overrides({"faults": {kind: {"next_n": 1, "methods": ["POST"]}}}),
    ):
        before = admin.counters()["faults"].get(kind, 0)
        if kind == "reset_after":
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                client.post(url, json=body, headers=headers)
        else:
            answer = client.post(url, json=body, headers=headers)
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["error"]["message"] == (
                "The service is temporarily unavailable. Please try again later."
            )
        assert admin.counters()["faults"][kind] == before + 1
    # The answer was lost, the write was not: the row is there, once.
    assert _count(client, endpoints, service, name, token) == 1
