"""What the Dataverse and F&O hooks have in common: connection, session, paged reads, metadata."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseHook

from prospect_to_cash.hooks._auth import shared_token_provider
from prospect_to_cash.hooks._connection import DynamicsConnectionConfig, config_from_connection
from prospect_to_cash.hooks._http import AdaptiveLimiter, ODataSession, RetryPolicy
from prospect_to_cash.hooks._writes import WriteEngine
from prospect_to_cash.hooks.errors import DynamicsAPIError, DynamicsError, parse_error
from prospect_to_cash.hooks.odata import key_filters, key_row_filters, page_to_frame

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    import httpx
    import pandas as pd

ODATA_HEADERS: Mapping[str, str] = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
}


SERVICE_CONCURRENCY_LIMIT = 52
"""Concurrent requests per user that Dataverse service protection (and F&O's user-based
limits) allow; one more fails at once with a 429."""


class DynamicsBaseHook(BaseHook):
    """Shared machinery of the Dynamics hooks; use `DataverseHook` or `FinanceOperationsHook`.

    :param conn_id: the Airflow connection to use.
    :param max_concurrency: most requests in flight at once; the adaptive limiter stays at
        or below it and below the service's ``x-ms-dop-hint``. The default is the services'
        documented per-user limit (52 concurrent requests): below it, the limiter follows
        the hint and the 429s, which know the environment's real capacity.
    :param initial_concurrency: where the adaptive limiter starts.
    :param retry: retry policy for every request.
    :param timeout: httpx timeout; the default allows long ``$batch`` requests.
    :param transport: a custom httpx transport (corporate proxies, tests).
    :param progress_interval: seconds between INFO progress lines of long reads and writes.
    """

    conn_type: ClassVar[str]
    service_root_path: ClassVar[str]
    service_name: ClassVar[str]

    def __init__(
        self,
        conn_id: str,
        *,
        max_concurrency: int = SERVICE_CONCURRENCY_LIMIT,
        initial_concurrency: int = 2,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
        progress_interval: float = 15.0,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.max_concurrency = max_concurrency
        self.initial_concurrency = initial_concurrency
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.transport = transport
        self.progress_interval = progress_interval

    # ------------------------------------------------------------------ connection

    @cached_property
    def config(self) -> DynamicsConnectionConfig:
        """The validated connection."""
        return config_from_connection(self.get_connection(self.conn_id), self.conn_type)

    @cached_property
    def service_root(self) -> str:
        return f"{self.config.environment_url}/{self.service_root_path}"

    @cached_property
    def session(self) -> ODataSession:
        """The hook's pooled, authenticated HTTP session (created on first use)."""
        config = self.config
        tokens = shared_token_provider(
            authority=config.authority,
            client_id=config.client_id,
            client_secret=config.client_secret,
            resource=config.environment_url,
            ca_bundle=config.ca_bundle,
        )
        return ODataSession(
            base_url=self.service_root,
            tokens=tokens,
            default_headers=ODATA_HEADERS,
            ca_bundle=config.ca_bundle,
            timeout=self.timeout,
            retry=self.retry,
            limiter=AdaptiveLimiter(initial=self.initial_concurrency, maximum=self.max_concurrency),
            transport=self.transport,
            logger=self.log,
        )

    @cached_property
    def _engine(self) -> WriteEngine:
        return WriteEngine(
            self.session,
            self.session.url("$batch"),
            logger=self.log,
            progress_interval=self.progress_interval,
        )

    def get_conn(self) -> ODataSession:
        """The session every request of this hook goes through."""
        return self.session

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]
            self.__dict__.pop("_engine", None)

    def __enter__(self) -> DynamicsBaseHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ service calls

    def _get(self, path: str, *, headers: Mapping[str, str] | None = None) -> httpx.Response:
        response = self.session.send("GET", path, headers=headers)
        if response.status_code != 200:
            error = parse_error(response.status_code, response.content, response.headers.get("Content-Type"))
            raise DynamicsAPIError.from_error(error, self.session.url(path).split("?", 1)[0])
        return response

    def get_metadata(self) -> str:
        """The service's CSDL ``$metadata`` document (XML), for schema checks before writing."""
        return self._get("$metadata", headers={"Accept": "application/xml"}).text

    def test_connection(self) -> tuple[bool, str]:
        """Get a token and read the service document; say plainly what failed if anything did.

        Airflow calls this from the connection form's Test button.
        """
        try:
            response = self._get("")
        except DynamicsError as exc:
            return False, f"{self.service_name} connection {self.conn_id!r} failed: {exc}"
        except Exception as exc:
            return (
                False,
                f"{self.service_name} connection {self.conn_id!r} failed: {type(exc).__name__}: {exc}",
            )
        return True, (
            f"Connected to {self.service_name} at {self.service_root} as client {self.config.client_id} "
            f"(HTTP {response.status_code})"
        )

    def _iter_frames(
        self, entity_set: str, url: str, select: Sequence[str], headers: Mapping[str, str]
    ) -> Iterator[pd.DataFrame]:
        """Follow the server's paging to the end, one DataFrame per page, logging progress."""
        started = time.monotonic()
        last_log = started
        pages = rows = 0
        throttles_before = self.session.limiter.stats.throttles
        for payload in self.session.get_json_pages(url, headers=headers):
            records = payload.get("value")
            if not isinstance(records, list):
                raise DynamicsAPIError(200, None, "collection response without a 'value' array", url)
            pages += 1
            rows += len(records)
            frame = page_to_frame(records, select)
            now = time.monotonic()
            if pages == 1 or now - last_log >= self.progress_interval:
                last_log = now
                self._log_read(entity_set, pages, rows, started, throttles_before, final=False)
            if records:
                yield frame
        self._log_read(entity_set, pages, rows, started, throttles_before, final=True)
        if rows == 0:
            # Callers still learn the columns of an empty result.
            yield page_to_frame([], select)

    #: Key-scoped reads (`iter_pages_by_keys`): whether ``Microsoft.Dynamics.CRM.In`` exists,
    #: the most values per request and the URL-encoded filter's budget (subclasses say).
    key_filter_in: ClassVar[bool] = False
    keys_per_read: ClassVar[int] = 50
    key_filter_budget: ClassVar[int] = 2000
    #: Key-scoped requests in flight at once; the limiter still caps the whole hook.
    key_read_parallelism: ClassVar[int] = 4

    def _key_chunks(self, column: str | Sequence[str], values: Iterable[Any]) -> list[str]:
        """The filters of a key read under this service's URL budget: ``values`` of one
        ``column``, or rows of values of several ``columns`` (a composite key)."""
        if isinstance(column, str):
            return key_filters(
                column,
                values,
                use_in=self.key_filter_in,
                budget=self.key_filter_budget,
                most=self.keys_per_read,
            )
        return key_row_filters(column, values, budget=self.key_filter_budget, most=self.keys_per_read)

    def _iter_key_chunks(
        self,
        column: str | Sequence[str],
        values: Iterable[Any],
        select: Sequence[str],
        read: Callable[[str], Iterator[pd.DataFrame]],
    ) -> Iterator[pd.DataFrame]:
        """Read the rows whose ``column`` is one of ``values`` (or whose ``column`` list
        equals one of the rows in ``values``): one filter per chunk of keys (under the URL
        limit), chunks side by side, each chunk's pages yielded together."""
        chunks = self._key_chunks(column, values)
        if not chunks:
            yield page_to_frame([], select)
            return
        with ThreadPoolExecutor(
            max_workers=min(self.key_read_parallelism, len(chunks)), thread_name_prefix="p2c-keys"
        ) as pool:
            for pages in pool.map(lambda chunk: list(read(chunk)), chunks):
                yield from pages

    def _log_read(
        self, entity_set: str, pages: int, rows: int, started: float, throttles_before: int, *, final: bool
    ) -> None:
        self.log.info(
            "Read %s %s: %d page(s), %d row(s) in %.1f s, %d throttled response(s)",
            entity_set,
            "done" if final else "progress",
            pages,
            rows,
            time.monotonic() - started,
            self.session.limiter.stats.throttles - throttles_before,
        )

    def _connection_summary(self) -> dict[str, Any]:
        """What the hook connects to, without secrets (for operators' logs)."""
        config = self.config
        return {
            "conn_id": self.conn_id,
            "service_root": self.service_root,
            "tenant_id": config.tenant_id,
            "client_id": config.client_id,
        }
