"""Hook for Dynamics 365 Finance and Operations OData data entities (``/data/``).

Why each write can be retried without applying it twice:

* **create** is ``POST <set>`` with every key field in the body. F&O creates are not
  idempotent (a second POST answers "The record already exists."), so a create is
  retried blindly only when the failure proves nothing reached the service (429,
  connection refused). After a failure that leaves it open (connection reset, timeout,
  502/503/504) the engine reads the row by its full key (``GET <set>(<every key
  field>)?cross-company=true``): present means the earlier attempt landed and the create
  is reported as done; absent means it is sent again.
* **update** is ``PATCH`` on the full key: idempotent. F&O never creates on PATCH.
* **delete** is ``DELETE`` on the full key; after an ambiguous failure a row already gone
  counts as deleted.
* **upsert** does not exist in F&O; such operations come back as failed outcomes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prospect_to_cash.hooks._writes import PreparedWrite, failure, json_body
from prospect_to_cash.hooks.base import DynamicsBaseHook
from prospect_to_cash.hooks.batch import BatchRequest
from prospect_to_cash.hooks.dmf import (
    ExportPolling,
    download_package,
    execution_status,
    package_frames,
    start_export,
    wait_for_export,
)
from prospect_to_cash.hooks.errors import InvalidKeyError
from prospect_to_cash.hooks.odata import and_filters, any_equals, entity_path, query_string, select_option
from prospect_to_cash.hooks.operations import WriteKind, WriteOperation, WriteOutcome

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    import pandas as pd

MAX_PAGE_SIZE = 10000
MAX_BATCH_REQUESTS = 5000
ALL_COMPANIES = "*"


class FinanceOperationsHook(DynamicsBaseHook):
    """Read and write F&O data entities through OData.

    :param fno_conn_id: connection of type ``dynamics_fno``; its ``default_company`` extra
        is the company read when ``companies`` is not given.
    :param kwargs: see `DynamicsBaseHook` (concurrency, retry policy, timeout, transport).
    """

    conn_name_attr = "fno_conn_id"
    default_conn_name = "dynamics_fno_default"
    conn_type = "dynamics_fno"
    hook_name = "Dynamics 365 Finance and Operations"
    service_root_path = "data/"
    service_name = "Finance and Operations"
    # No documented URL limit for F&O's /data (IIS defaults are 2 KB of query string and
    # 4 KB of URL): or-chains of at most 50 keys and 2,000 encoded characters.
    keys_per_read = 50
    key_filter_budget = 2_000

    def __init__(self, fno_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(fno_conn_id, **kwargs)
        self.fno_conn_id = fno_conn_id

    # ------------------------------------------------------------------ reads

    def company_filter(self, companies: Sequence[str] | str | None) -> tuple[str | None, bool]:
        """The ``dataAreaId`` filter and whether ``cross-company=true`` is needed.

        ``None`` reads the connection's default company (or, without one, whatever F&O
        treats as the account's default company); ``"*"`` reads every company the
        account may see; a list reads those companies.
        """
        if companies == ALL_COMPANIES:
            return None, True
        if companies is None:
            default = self.config.default_company
            if not default:
                return None, False
            companies = [default]
        if isinstance(companies, str):
            companies = [companies]
        wanted = list(dict.fromkeys(companies))
        if not wanted:
            raise ValueError("companies is empty; pass None for the default company or '*' for all")
        return any_equals("dataAreaId", wanted), True

    def iter_pages(
        self,
        entity_set: str,
        *,
        select: Sequence[str],
        filter: str | None = None,
        orderby: str | None = None,
        companies: Sequence[str] | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[pd.DataFrame]:
        """Yield an entity page by page as DataFrames.

        :param entity_set: entity set name, case-sensitive, e.g. ``CustomersV3``.
        :param select: columns to read, in frame order. Required.
        :param filter: an OData ``$filter`` expression (F&O dialect: no ``in``/``has``;
            enum literals qualified, see `odata.EnumLiteral`).
        :param orderby: an OData ``$orderby`` expression.
        :param companies: legal entities (``dataAreaId``) to read; see `company_filter`.
        :param page_size: ``Prefer: odata.maxpagesize``; F&O pages at 10,000 at most.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        company, cross_company = self.company_filter(companies)
        query = query_string(
            [
                ("cross-company", "true" if cross_company else None),
                ("$select", select_option(select)),
                ("$filter", and_filters(filter, company)),
                ("$orderby", orderby),
            ]
        )
        headers = {"Prefer": f"odata.maxpagesize={page_size}"}
        yield from self._iter_frames(entity_set, f"{entity_path(entity_set)}?{query}", select, headers)

    def iter_pages_by_keys(
        self,
        entity_set: str,
        *,
        select: Sequence[str],
        column: str,
        values: Iterable[Any],
        filter: str | None = None,
        companies: Sequence[str] | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[pd.DataFrame]:
        """The rows whose ``column`` is one of ``values`` (and match ``filter``) in
        ``companies``, page by page: F&O has no ``in``, so each request or-s at most
        `keys_per_read` equalities, its filter under `key_filter_budget` encoded characters;
        chunks are read side by side."""
        yield from self._iter_key_chunks(
            column,
            values,
            select,
            lambda chunk: self.iter_pages(
                entity_set,
                select=select,
                filter=and_filters(filter, chunk),
                companies=companies,
                page_size=page_size,
            ),
        )

    def iter_export(
        self,
        definition_group: str,
        *,
        legal_entity: str,
        execution_id: str,
        select: Sequence[str],
        polling: ExportPolling | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Run the Data management export project ``definition_group`` for ``legal_entity``
        and yield its rows (``select`` columns, text) in chunks: start it under
        ``execution_id`` unless F&O already knows that execution (a retried task resumes it),
        poll until it ends, download the package and read its data file (`hooks.dmf`).

        :raises DataExportError: the execution failed, was canceled or outlasted ``polling``.
        """
        if execution_status(self, execution_id) == "Unknown":
            start_export(self, definition_group, legal_entity=legal_entity, execution_id=execution_id)
        wait_for_export(self, execution_id, polling or ExportPolling())
        package = download_package(self, execution_id)
        yield from package_frames(package, select, fill={"dataAreaId": legal_entity.lower()})

    def iter_pages_by_key_rows(
        self,
        entity_set: str,
        *,
        select: Sequence[str],
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        filter: str | None = None,
        companies: Sequence[str] | str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[pd.DataFrame]:
        """The rows whose ``columns`` equal one of ``rows`` (a composite key: an order
        line by order number and line number), page by page: ``or`` chains of ``and``-ed
        equalities, chunked like `iter_pages_by_keys`."""
        yield from self._iter_key_chunks(
            columns,
            rows,
            select,
            lambda chunk: self.iter_pages(
                entity_set,
                select=select,
                filter=and_filters(filter, chunk),
                companies=companies,
                page_size=page_size,
            ),
        )

    # ------------------------------------------------------------------ writes

    def _prepare(self, op: WriteOperation) -> PreparedWrite | WriteOutcome:
        if op.kind is WriteKind.UPSERT:
            return failure(op, "unsupported_operation", "F&O has no upsert; send a create or an update")
        if not op.key:
            return failure(op, "missing_key", "F&O writes need every key field, dataAreaId included")
        try:
            key_path = entity_path(op.entity_set, op.key)
        except (InvalidKeyError, ValueError) as exc:
            return failure(op, "invalid_key", str(exc))
        # Rows of another company than the account's default are only reachable cross-company.
        key_url = self.session.url(f"{key_path}?cross-company=true")
        check_url = self.session.url(
            f"{key_path}?{query_string([('cross-company', 'true'), ('$select', next(iter(op.key)))])}"
        )
        body_headers = {"Content-Type": "application/json"}
        if op.kind is WriteKind.CREATE:
            conflicting = [k for k in op.key if k in op.body and op.body[k] != op.key[k]]
            if conflicting:
                return failure(op, "invalid_key", f"body contradicts the key in {', '.join(conflicting)}")
            body = {**op.key, **op.body}
            url = self.session.url(entity_path(op.entity_set))
            request = BatchRequest("POST", url, body_headers, json_body(body))
            return PreparedWrite(op, request, verify="exists", check_url=check_url)
        if op.kind is WriteKind.UPDATE:
            request = BatchRequest("PATCH", key_url, body_headers, json_body(dict(op.body)))
            return PreparedWrite(op, request)
        if op.kind is WriteKind.DELETE:
            return PreparedWrite(
                op, BatchRequest("DELETE", key_url, {}), verify="absent", check_url=check_url
            )
        return failure(op, "unsupported_operation", f"unknown write kind {op.kind!r}")

    def write(
        self,
        operations: Iterable[WriteOperation],
        *,
        batch_size: int = 200,
        expected: int | None = None,
    ) -> Iterator[WriteOutcome]:
        """Write operations and yield one `WriteOutcome` per operation, in no guaranteed order.

        Operations go in atomic ``$batch`` change sets of at most ``batch_size``; units run in
        parallel under the adaptive limiter; a change set that fails because of one record
        is split until that record is isolated, so the rest still lands. Order is not kept
        within one call: write parents and children in separate calls.

        :param operations: what to write; consumed lazily.
        :param batch_size: records per change set at most (F&O accepts up to 5000 per batch).
        :param expected: how many operations are coming, when known: the engine then
            spreads them over every parallel slot (see `WriteEngine.unit_size`).
        """
        if not 1 <= batch_size <= MAX_BATCH_REQUESTS:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_REQUESTS}")
        sender = self._engine.send_changeset
        units = self._engine.units(
            (self._prepare(op) for op in operations),
            lambda _item: ("changeset", sender),
            batch_size=batch_size,
            expected=expected,
        )
        yield from self._engine.run(units, label="F&O write")
