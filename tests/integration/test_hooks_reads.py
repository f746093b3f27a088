"""Hook reads against the emulator service apps over verified HTTPS.

Paging across many pages (Dataverse ``odata.maxpagesize`` and F&O's server page size),
``$select`` respected on the wire and in every frame, F&O company context (default
company, a list, ``"*"``), tokens that expire or are revoked in the middle of a paged read,
and a 200,000-row stream whose memory stays flat.
"""

from __future__ import annotations

import gc
import json
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pandas as pd
import psutil
import pytest

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from tests.support.connections import connect
from tests.support.emulators import acquire_token

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.support.emulators import AdminClient, EmulatorEndpoints, RunningEmulators

pytestmark = pytest.mark.integration


# ---------------------------------------------------------------------------- helpers


@dataclass
class Exchange:
    """One request as the client saw it, with the JSON body of successful GETs."""

    method: str
    url: str
    status: int
    payload: dict[str, Any] | None


class RecordingTransport(httpx.BaseTransport):
    """A verified HTTPS transport that remembers every exchange (for wire-level assertions)."""

    def __init__(self, ca_bundle: str) -> None:
        self._inner = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=ca_bundle))
        self._lock = threading.Lock()
        self.exchanges: list[Exchange] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        body = response.read()
        response.close()
        payload = None
        if request.method == "GET" and response.status_code == 200 and body.startswith(b"{"):
            payload = json.loads(body)
        with self._lock:
            self.exchanges.append(Exchange(request.method, str(request.url), response.status_code, payload))
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)

    def close(self) -> None:
        self._inner.close()

    def reads_of(self, entity_set: str) -> list[Exchange]:
        return [
            e for e in self.exchanges if e.method == "GET" and urlsplit(e.url).path.endswith(f"/{entity_set}")
        ]


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def oracle_rows(endpoints: EmulatorEndpoints, service: str, path: str) -> list[dict[str, Any]]:
    """Rows read with plain httpx and one page: what the hook's paged read must reproduce."""
    token = acquire_token(endpoints, service)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if service == "dataverse":
        headers["Prefer"] = "odata.maxpagesize=5000"
    with httpx.Client(verify=endpoints.ssl_context(), timeout=60) as client:
        response = client.get(endpoints.service_root(service) + path, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "@odata.nextLink" not in body, "the oracle must fit in one page"
    return list(body["value"])


def frames_of(pages: Iterator[pd.DataFrame]) -> list[pd.DataFrame]:
    return list(pages)


def start_with_a_new_token(hook: DataverseHook | FinanceOperationsHook) -> int:
    """Drop the token the connection's shared provider holds (an earlier test's, maybe
    short-lived) and fetch one under the current settings; return the acquisition count."""
    tokens = hook.session.tokens
    tokens.invalidate(tokens.token())
    tokens.token()
    return tokens.tokens_acquired


# ---------------------------------------------------------------------------- paging and $select


def test_dataverse_paged_read_follows_every_page_with_exactly_the_selected_columns(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators
) -> None:
    endpoints = emulators.endpoints
    expected = {row["accountid"] for row in oracle_rows(endpoints, "dataverse", "accounts?$select=accountid")}
    select = ["accountid", "name", "accountnumber", "fax", "_primarycontactid_value"]
    transport = RecordingTransport(endpoints.ca_bundle)
    with DataverseHook(connect(monkeypatch, endpoints, "dataverse"), transport=transport) as hook:
        frames = frames_of(hook.iter_pages("accounts", select=select, page_size=7))

    assert len(expected) >= 60
    assert len(frames) == -(-len(expected) // 7)
    assert all(list(frame.columns) == select for frame in frames)
    assert all(1 <= len(frame) <= 7 for frame in frames)
    ids = pd.concat(frames)["accountid"].tolist()
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected

    reads = transport.reads_of("accounts")
    assert len(reads) == len(frames)
    assert all(query_of(e.url)["$select"] == ",".join(select) for e in reads)
    # The first request is the hook's, the rest are the server's next links, followed unchanged.
    assert all("$skiptoken" in query_of(e.url) for e in reads[1:])
    for exchange in reads:
        assert exchange.payload is not None
        for row in exchange.payload["value"]:
            assert {key for key in row if "@" not in key} <= set(select)
    # `fax` is null in the seed: the column is still there, full of missing values.
    assert pd.concat(frames)["fax"].isna().all()


def test_dataverse_read_with_a_filter_and_order(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators
) -> None:
    endpoints = emulators.endpoints
    expected = [
        row["productnumber"]
        for row in oracle_rows(
            endpoints,
            "dataverse",
            "products?$select=productnumber&$filter=msdynce_ismaintainedexternally eq true"
            "&$orderby=productnumber desc",
        )
    ]
    with DataverseHook(connect(monkeypatch, endpoints, "dataverse")) as hook:
        frames = frames_of(
            hook.iter_pages(
                "products",
                select=["productnumber", "name"],
                filter="msdynce_ismaintainedexternally eq true",
                orderby="productnumber desc",
                page_size=4,
            )
        )
    assert len(frames) > 3
    assert pd.concat(frames)["productnumber"].tolist() == expected


def test_an_empty_result_still_has_the_selected_columns(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators
) -> None:
    endpoints = emulators.endpoints
    with DataverseHook(connect(monkeypatch, endpoints, "dataverse")) as hook:
        frames = frames_of(
            hook.iter_pages("accounts", select=["accountid", "name"], filter="name eq 'no such account'")
        )
    assert len(frames) == 1
    assert frames[0].empty
    assert list(frames[0].columns) == ["accountid", "name"]


def fno_customers(endpoints: EmulatorEndpoints) -> dict[str, set[str]]:
    rows = oracle_rows(endpoints, "fno", "CustomersV3?cross-company=true&$select=dataAreaId,CustomerAccount")
    by_company: dict[str, set[str]] = {}
    for row in rows:
        by_company.setdefault(row["dataAreaId"], set()).add(row["CustomerAccount"])
    return by_company


@pytest.mark.parametrize(
    ("companies", "expected_companies"),
    [(None, ["usmf"]), (["demf"], ["demf"]), (["usmf", "demf"], ["usmf", "demf"]), ("*", ["usmf", "demf"])],
    ids=["connection-default", "one", "list", "all"],
)
def test_fno_company_context(
    monkeypatch: pytest.MonkeyPatch,
    emulators: RunningEmulators,
    companies: list[str] | str | None,
    expected_companies: list[str],
) -> None:
    endpoints = emulators.endpoints
    oracle = fno_customers(endpoints)
    assert set(oracle) == {"usmf", "demf"}
    select = ["dataAreaId", "CustomerAccount", "CustomerGroupId"]
    transport = RecordingTransport(endpoints.ca_bundle)
    with FinanceOperationsHook(connect(monkeypatch, endpoints, "fno"), transport=transport) as hook:
        frames = frames_of(hook.iter_pages("CustomersV3", select=select, companies=companies, page_size=5))

    rows = pd.concat(frames)
    assert all(list(frame.columns) == select for frame in frames)
    assert all(len(frame) <= 5 for frame in frames)
    wanted = {(company, account) for company in expected_companies for account in oracle[company]}
    got = list(zip(rows["dataAreaId"], rows["CustomerAccount"], strict=True))
    assert len(got) == len(set(got)) == len(wanted)
    assert set(got) == wanted
    reads = transport.reads_of("CustomersV3")
    assert len(reads) == len(frames) == -(-len(wanted) // 5)
    assert all(query_of(e.url).get("cross-company") == "true" for e in reads)


def test_fno_without_a_default_company_reads_the_accounts_own_company(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators, fno_admin: AdminClient
) -> None:
    """No ``default_company`` extra: no cross-company query, F&O answers for the app's company."""
    endpoints = emulators.endpoints
    oracle = fno_customers(endpoints)
    transport = RecordingTransport(endpoints.ca_bundle)
    conn_id = connect(monkeypatch, endpoints, "fno", "fno_no_company_it", default_company=None)
    with (
        fno_admin.overrides({"default_company": "demf"}),
        FinanceOperationsHook(conn_id, transport=transport) as hook,
    ):
        rows = pd.concat(frames_of(hook.iter_pages("CustomersV3", select=["dataAreaId", "CustomerAccount"])))
    assert set(rows["dataAreaId"]) == {"demf"}
    assert set(rows["CustomerAccount"]) == oracle["demf"]
    assert all("cross-company" not in query_of(e.url) for e in transport.reads_of("CustomersV3"))


def test_fno_server_driven_paging_smaller_than_asked(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators, fno_admin: AdminClient
) -> None:
    """The hook asks for 10,000 rows a page; the service pages at 4 and the hook follows."""
    endpoints = emulators.endpoints
    oracle = fno_customers(endpoints)
    total = sum(len(accounts) for accounts in oracle.values())
    with (
        fno_admin.overrides({"page_size": 4}),
        FinanceOperationsHook(connect(monkeypatch, endpoints, "fno")) as hook,
    ):
        frames = frames_of(
            hook.iter_pages(
                "CustomersV3",
                select=["dataAreaId", "CustomerAccount"],
                companies="*",
                orderby="CustomerAccount",
            )
        )
    assert len(frames) == -(-total // 4)
    rows = pd.concat(frames)
    assert len(rows) == total
    assert rows["CustomerAccount"].tolist() == sorted(rows["CustomerAccount"].tolist())


# ---------------------------------------------------------------------------- tokens during a read


def test_token_expiry_in_the_middle_of_a_paged_read_loses_and_repeats_nothing(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators, dataverse_admin: AdminClient
) -> None:
    """Tokens live 2 s and the consumer is slow: the read spans several tokens seamlessly."""
    endpoints = emulators.endpoints
    expected = {row["accountid"] for row in oracle_rows(endpoints, "dataverse", "accounts?$select=accountid")}
    with (
        dataverse_admin.overrides({"entra": {"token_lifetime_seconds": 2}}),
        DataverseHook(connect(monkeypatch, endpoints, "dataverse")) as hook,
    ):
        tokens = hook.session.tokens
        acquired_before = start_with_a_new_token(hook)
        issued_before = dataverse_admin.counters()["tokens_issued"]
        seen: list[str] = []
        for frame in hook.iter_pages("accounts", select=["accountid"], page_size=16):
            seen.extend(frame["accountid"])
            time.sleep(1.1)  # a slow consumer: the token of the last request is going stale
        counters = dataverse_admin.counters()

    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == expected
    assert tokens.tokens_acquired - acquired_before >= 2
    assert counters["tokens_issued"] - issued_before >= 2
    # A token the provider still trusted may have expired on the server first (exp is whole
    # seconds); that costs one 401 and one retry, never a failed read.
    assert counters["unauthorized"].get("expired", 0) <= tokens.tokens_acquired - acquired_before


def test_tokens_revoked_between_pages_are_replaced_once_each(
    monkeypatch: pytest.MonkeyPatch, emulators: RunningEmulators, dataverse_admin: AdminClient
) -> None:
    endpoints = emulators.endpoints
    expected = {row["accountid"] for row in oracle_rows(endpoints, "dataverse", "accounts?$select=accountid")}
    with DataverseHook(connect(monkeypatch, endpoints, "dataverse")) as hook:
        acquired_before = start_with_a_new_token(hook)
        before = dataverse_admin.counters()["unauthorized"].get("revoked", 0)
        seen: list[str] = []
        for number, frame in enumerate(hook.iter_pages("accounts", select=["accountid"], page_size=10), 1):
            seen.extend(frame["accountid"])
            if number == 2:
                dataverse_admin.revoke_tokens()
            if number == 4:
                # Entra revokes every token while the service is answering this very request.
                dataverse_admin.patch_config({"faults": {"revoke_token": {"next_n": 1}}})
        revoked = dataverse_admin.counters()["unauthorized"].get("revoked", 0) - before

    assert len(seen) == len(set(seen)) == len(expected)
    assert set(seen) == expected
    assert revoked == 2
    assert hook.session.tokens.tokens_acquired - acquired_before == 2


# ---------------------------------------------------------------------------- a large stream

LARGE_ROWS = 200_000
DESCRIPTION = "Large account stream " * 30  # ~630 characters: ~140 MB of rows in all
RSS_GROWTH_LIMIT = 40 * 1024 * 1024


def _large_accounts() -> Iterator[dict[str, Any]]:
    for number in range(LARGE_ROWS):
        yield {
            "accountid": str(uuid.UUID(int=number + 1)),
            "name": f"Large account {number:06d}",
            "accountnumber": f"ACC-{number:06d}",
            "description": DESCRIPTION,
            "statecode": 0,
            "statuscode": 1,
        }


@pytest.fixture
def large_dataverse(
    tmp_path: Path, start_emulators_factory: Callable[..., RunningEmulators]
) -> RunningEmulators:
    """An instance whose accounts table holds 200,000 rows, written straight into its store."""
    from emulators.server import open_stores

    state_dir = tmp_path / "large"
    stores = open_stores(state_dir)
    try:
        stores["dataverse"].insert_many("accounts", _large_accounts())
    finally:
        for store in stores.values():
            store.close()
    return start_emulators_factory(
        state_dir=state_dir, config={"dataverse": {"cost": {"request_latency_ms": 0.0, "operation_ms": 0.0}}}
    )


@pytest.mark.slow
def test_a_stream_larger_than_memory_comfortably_holds_keeps_rss_flat(
    monkeypatch: pytest.MonkeyPatch, large_dataverse: RunningEmulators
) -> None:
    """Count 200,000 rows page by page; the process must not keep what it already yielded.

    The cyclic garbage collector is off while streaming: it runs when Python feels like it
    (rarely, in a big worker process), so a page that only it could free would pile up.
    Every page must go as soon as the caller drops it, by reference counting alone.
    """
    endpoints = large_dataverse.endpoints
    process = psutil.Process()
    select = ["accountid", "name", "accountnumber", "description"]
    rows = pages = streamed_bytes = 0
    baseline = peak = 0
    gc.collect()
    gc.disable()
    try:
        with DataverseHook(connect(monkeypatch, endpoints, "dataverse", "dataverse_large_it")) as hook:
            for frame in hook.iter_pages("accounts", select=select, page_size=5000):
                pages += 1
                rows += len(frame)
                streamed_bytes += int(frame.memory_usage(deep=True).sum())
                rss = process.memory_info().rss
                if pages == 2:
                    # Measured once pandas, pyarrow and the TLS buffers have warmed up.
                    baseline = peak = rss
                peak = max(peak, rss)
                del frame
    finally:
        gc.enable()

    assert rows == LARGE_ROWS
    assert pages == LARGE_ROWS // 5000
    # The test can fail: everything streamed is several times the allowed growth.
    assert streamed_bytes > 3 * RSS_GROWTH_LIMIT
    growth = peak - baseline
    assert growth < RSS_GROWTH_LIMIT, (
        f"RSS grew {growth / 2**20:.0f} MiB while streaming {streamed_bytes / 2**20:.0f} MiB"
    )
