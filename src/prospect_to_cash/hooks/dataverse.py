"""Hook for the Dataverse Web API (Dynamics 365 Sales and other model-driven apps).

Why each write can be retried without creating a second row:

* **create** needs a client-chosen primary key GUID (or an alternate key) and is sent as
  ``PATCH <set>(<key>)`` with ``If-None-Match: *`` (create-only; an existing row answers
  412), or inside ``CreateMultiple`` with the GUID in the record. The key is fixed before
  the first attempt, so no attempt can add a row with another identity; after an
  ambiguous failure the engine reads the row by key and reports it as created if it is
  there. Creates without a key are refused (a plain POST could be applied twice).
* **update** is ``PATCH`` with ``If-Match: *`` (update-only, 404 when the row is missing)
  and **upsert** is a plain ``PATCH`` or ``UpsertMultiple``: both idempotent.
* **delete** is ``DELETE``; after an ambiguous failure a row already gone counts as deleted.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prospect_to_cash.hooks._writes import (
    PreparedWrite,
    UnitResult,
    failure,
    json_body,
    outcome_for,
)
from prospect_to_cash.hooks.base import DynamicsBaseHook
from prospect_to_cash.hooks.batch import BatchRequest
from prospect_to_cash.hooks.delta import DeltaCollector, DeltaRead
from prospect_to_cash.hooks.errors import (
    EXPIRED_VERSION_STAMP,
    DeltaTokenInvalidError,
    DynamicsAPIError,
    InvalidKeyError,
    ServiceError,
    parse_error,
)
from prospect_to_cash.hooks.odata import (
    and_filters,
    entity_path,
    format_literal,
    is_guid,
    query_string,
    select_option,
)
from prospect_to_cash.hooks.operations import WriteKind, WriteOperation, WriteOutcome

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    import pandas as pd

MAX_PAGE_SIZE = 5000
MAX_BATCH_REQUESTS = 1000
_EDMX = "{http://docs.oasis-open.org/odata/ns/edm}"
_CRM_NAMESPACE = "Microsoft.Dynamics.CRM."


@dataclass(frozen=True)
class BulkSupport:
    """Which bulk messages a table supports, as the service reports them.

    :param logical_name: the table's logical name (for ``@odata.type``), None if unknown.
    :param create_multiple: ``CreateMultiple`` is available.
    :param upsert_multiple: ``UpsertMultiple`` is available (it needs both
        ``CreateMultiple`` and ``UpdateMultiple``).
    """

    logical_name: str | None
    create_multiple: bool = False
    upsert_multiple: bool = False


NO_BULK = BulkSupport(logical_name=None)


class DataverseHook(DynamicsBaseHook):
    """Read and write Dataverse tables through the Web API.

    Reads stream pages as DataFrames with exactly the selected columns; writes go through
    ``$batch`` change sets or the bulk messages ``CreateMultiple``/``UpsertMultiple`` where
    the table supports them, and return one `WriteOutcome` per operation.

    :param dataverse_conn_id: connection of type ``dynamics_dataverse``.
    :param kwargs: see `DynamicsBaseHook` (concurrency, retry policy, timeout, transport).
    """

    conn_name_attr = "dataverse_conn_id"
    default_conn_name = "dynamics_dataverse_default"
    conn_type = "dynamics_dataverse"
    hook_name = "Dynamics 365 Dataverse"
    service_root_path = "api/data/v9.2/"
    service_name = "Dataverse"
    # GET URLs end at 32 KB (query-data-web-api.md): each key filter stays under half of it.
    key_filter_in = True
    keys_per_read = 500
    key_filter_budget = 16_000

    def __init__(self, dataverse_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(dataverse_conn_id, **kwargs)
        self.dataverse_conn_id = dataverse_conn_id
        self._bulk_lock = threading.Lock()
        self._bulk_support: dict[str, BulkSupport] = {}
        self._entity_types: dict[str, str] | None = None
        self._tracking: dict[str, bool] = {}

    # ------------------------------------------------------------------ reads

    def iter_pages(
        self,
        entity_set: str,
        *,
        select: Sequence[str],
        filter: str | None = None,
        orderby: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[pd.DataFrame]:
        """Yield a table page by page as DataFrames.

        :param entity_set: entity set name, e.g. ``accounts``.
        :param select: columns to read, in the order the frames will have them (lookups as
            ``_<name>_value``). Required: reading every column is slow and fragile.
        :param filter: an OData ``$filter`` expression (build literals with `odata.format_literal`).
        :param orderby: an OData ``$orderby`` expression.
        :param page_size: ``Prefer: odata.maxpagesize``; at most 5000.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        path = entity_path(entity_set)
        query = query_string([("$select", select_option(select)), ("$filter", filter), ("$orderby", orderby)])
        headers = {"Prefer": f"odata.maxpagesize={page_size}"}
        yield from self._iter_frames(entity_set, f"{path}?{query}", select, headers)

    def iter_pages_by_keys(
        self,
        entity_set: str,
        *,
        select: Sequence[str],
        column: str,
        values: Iterable[Any],
        filter: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[pd.DataFrame]:
        """The rows whose ``column`` is one of ``values`` (and match ``filter``), page by page:
        ``Microsoft.Dynamics.CRM.In`` filters of at most `keys_per_read` values, each URL well
        under the 32 KB GET limit, read side by side. Rows come once per chunk they match."""
        yield from self._iter_key_chunks(
            column,
            values,
            select,
            lambda chunk: self.iter_pages(
                entity_set, select=select, filter=and_filters(filter, chunk), page_size=page_size
            ),
        )

    def iter_pages_by_key_rows(
        self,
        entity_set: str,
        *,
        select: Sequence[str],
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        filter: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[pd.DataFrame]:
        """The rows whose ``columns`` equal one of ``rows`` (a composite key: an order line
        by its order's id and its sequence number), page by page: ``In`` takes one column,
        so ``or`` chains of ``and``-ed equalities, chunked like `iter_pages_by_keys`."""
        yield from self._iter_key_chunks(
            columns,
            rows,
            select,
            lambda chunk: self.iter_pages(
                entity_set, select=select, filter=and_filters(filter, chunk), page_size=page_size
            ),
        )

    def read_changes(
        self,
        entity_set: str,
        *,
        select: Sequence[str],
        delta_token: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        on_page: Callable[[pd.DataFrame], None] | None = None,
    ) -> DeltaRead:
        """Read a table through change tracking: everything (no token) or what changed since
        ``delta_token``, following every next link; returns the rows, the deleted ids and the
        token for next time.

        The service refuses ``$filter``/``$orderby``/``$top`` on such reads, so a delta
        always covers the whole table: filter the result instead.

        :param entity_set: a table with ``ChangeTrackingEnabled`` (see `change_tracking_enabled`).
        :param select: columns to read; list the primary key to get it in ``changed``.
        :param delta_token: the ``delta_token`` of the previous `DeltaRead`, or None to start.
        :param page_size: ``Prefer: odata.maxpagesize``; at most 5000.
        :param on_page: called with each page's changed rows as it arrives, instead of
            holding them in ``changed`` (a first read is the whole table: stream it).
        :raises DeltaTokenInvalidError: the token expired or was never valid: read again
            without one (a full read) to start over.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        started = time.monotonic()
        options = [("$select", select_option(select)), ("$deltatoken", delta_token)]
        url = f"{entity_path(entity_set)}?{query_string(options)}"
        headers = {"Prefer": f"odata.track-changes,odata.maxpagesize={page_size}"}
        collector = DeltaCollector(select, initial=delta_token is None, on_page=on_page)
        try:
            for payload in self.session.get_json_pages(url, headers=headers):
                collector.add(payload, url)
        except DynamicsAPIError as exc:
            if delta_token is not None and _refuses_token(exc):
                raise DeltaTokenInvalidError(exc.status, exc.code, exc.message, exc.url) from exc
            raise
        result = collector.result(url)
        self.log.info(
            "Read %s %s: %d page(s), %d changed row(s), %d deleted in %.1f s",
            entity_set,
            "in full (change tracking started)" if result.initial else "changes",
            result.pages,
            result.rows,
            len(result.deleted_ids),
            time.monotonic() - started,
        )
        return result

    def change_tracking_enabled(self, entity_set: str) -> bool:
        """Whether the table behind ``entity_set`` has ``ChangeTrackingEnabled`` (asked once, cached)."""
        cached = self._tracking.get(entity_set)
        if cached is not None:
            return cached
        query = query_string(
            [
                ("$select", "LogicalName,ChangeTrackingEnabled"),
                ("$filter", f"EntitySetName eq {format_literal(entity_set)}"),
            ]
        )
        rows = [
            row for page in self.session.get_json_pages(f"EntityDefinitions?{query}") for row in page["value"]
        ]
        enabled = bool(rows and rows[0].get("ChangeTrackingEnabled"))
        with self._bulk_lock:
            self._tracking[entity_set] = enabled
        return enabled

    # ------------------------------------------------------------------ metadata

    def entity_logical_name(self, entity_set: str) -> str | None:
        """The logical name of the table behind ``entity_set``, from ``$metadata`` (cached)."""
        with self._bulk_lock:
            if self._entity_types is None:
                try:
                    self._entity_types = _entity_set_types(self.get_metadata())
                except Exception as exc:
                    self.log.warning("Cannot read $metadata (%s); bulk messages stay off", exc)
                    self._entity_types = {}
            return self._entity_types.get(entity_set)

    def _message_available(self, message: str, logical_name: str) -> bool:
        """Ask ``sdkmessagefilters`` whether ``message`` is registered for the table."""
        query = query_string(
            [
                ("$select", "sdkmessagefilterid"),
                (
                    "$filter",
                    f"sdkmessageid/name eq '{message}' and primaryobjecttypecode eq '{logical_name}'",
                ),
            ]
        )
        response = self.session.send("GET", f"sdkmessagefilters?{query}")
        if response.status_code != 200:
            error = parse_error(response.status_code, response.content, response.headers.get("Content-Type"))
            self.log.info(
                "Cannot tell whether %s supports %s (%s); using $batch", logical_name, message, error.message
            )
            return False
        return bool(response.json().get("value"))

    def bulk_support(self, entity_set: str) -> BulkSupport:
        """Whether ``entity_set`` supports ``CreateMultiple``/``UpsertMultiple`` (asked once, cached)."""
        cached = self._bulk_support.get(entity_set)
        if cached is not None:
            return cached
        logical_name = self.entity_logical_name(entity_set)
        support = NO_BULK
        if logical_name:
            create = self._message_available("CreateMultiple", logical_name)
            update = create and self._message_available("UpdateMultiple", logical_name)
            support = BulkSupport(logical_name, create_multiple=create, upsert_multiple=create and update)
        self.log.info(
            "%s: CreateMultiple %s, UpsertMultiple %s",
            entity_set,
            "available" if support.create_multiple else "unavailable",
            "available" if support.upsert_multiple else "unavailable",
        )
        with self._bulk_lock:
            self._bulk_support[entity_set] = support
        return support

    def _bulk_unavailable(self, entity_set: str) -> None:
        with self._bulk_lock:
            current = self._bulk_support.get(entity_set, NO_BULK)
            self._bulk_support[entity_set] = BulkSupport(current.logical_name)

    # ------------------------------------------------------------------ writes

    def _prepare(self, op: WriteOperation) -> PreparedWrite | WriteOutcome:
        """Turn an operation into its change-set request, or a failed outcome if it cannot be sent."""
        if not op.key:
            return failure(
                op,
                "missing_key",
                "Dataverse writes need a key; for a create, choose the primary key GUID up front "
                "so a retry cannot insert a second row",
            )
        try:
            path = entity_path(op.entity_set, op.key, dataverse=True)
        except (InvalidKeyError, ValueError) as exc:
            return failure(op, "invalid_key", str(exc))
        url = self.session.url(path)
        entity_id = (
            next(iter(op.key.values())) if len(op.key) == 1 and is_guid(next(iter(op.key.values()))) else None
        )
        entity_id = str(entity_id).lower() if entity_id else None
        check_url = f"{url}?{query_string([('$select', next(iter(op.key)))])}"
        body_headers = {"Content-Type": "application/json"}
        if op.kind is WriteKind.CREATE:
            request = BatchRequest(
                "PATCH", url, {**body_headers, "If-None-Match": "*"}, json_body(dict(op.body))
            )
            return PreparedWrite(op, request, verify="exists", check_url=check_url, entity_id=entity_id)
        if op.kind is WriteKind.UPDATE:
            request = BatchRequest("PATCH", url, {**body_headers, "If-Match": "*"}, json_body(dict(op.body)))
            return PreparedWrite(op, request, entity_id=entity_id)
        if op.kind is WriteKind.UPSERT:
            request = BatchRequest("PATCH", url, body_headers, json_body(dict(op.body)))
            return PreparedWrite(op, request, entity_id=entity_id)
        if op.kind is WriteKind.DELETE:
            request = BatchRequest("DELETE", url, {})
            return PreparedWrite(op, request, verify="absent", check_url=check_url, entity_id=entity_id)
        return failure(op, "unsupported_operation", f"unknown write kind {op.kind!r}")

    def _route(self, item: PreparedWrite, bulk: bool) -> str:
        """``"create:<set>"``/``"upsert:<set>"`` for the bulk messages, else ``"batch"``."""
        if not bulk:
            return "batch"
        op = item.op
        if op.kind is WriteKind.CREATE and item.entity_id:
            if self.bulk_support(op.entity_set).create_multiple:
                return f"create:{op.entity_set}"
        elif op.kind is WriteKind.UPSERT and self.bulk_support(op.entity_set).upsert_multiple:
            return f"upsert:{op.entity_set}"
        return "batch"

    def _send_bulk(self, items: list[PreparedWrite]) -> UnitResult:
        """Send ``items`` (same table, same kind) as one CreateMultiple or UpsertMultiple."""
        op = items[0].op
        support = self.bulk_support(op.entity_set)
        create = op.kind is WriteKind.CREATE
        if not (support.create_multiple if create else support.upsert_multiple):
            return self._engine.send_changeset(items)
        message = "CreateMultiple" if create else "UpsertMultiple"
        odata_type = _CRM_NAMESPACE + str(support.logical_name)
        targets = []
        for item in items:
            record: dict[str, Any] = {"@odata.type": odata_type, **item.op.body}
            if create:
                ((column, value),) = item.op.key.items()
                record[column] = str(value).lower()
            else:
                record["@odata.id"] = entity_path(item.op.entity_set, item.op.key, dataverse=True)
            targets.append(record)
            item.attempts += 1
        response = self.session.send(
            "POST",
            f"{entity_path(op.entity_set)}/Microsoft.Dynamics.CRM.{message}",
            headers={"Content-Type": "application/json; charset=utf-8"},
            content=json_body({"Targets": targets}),
            idempotent=not create,
        )
        if response.status_code < 300:
            ids: list[Any] = []
            if response.content:
                payload = response.json()
                ids = payload.get("Ids") or []
            outcomes = []
            for position, item in enumerate(items):
                reported = ids[position] if position < len(ids) and is_guid(str(ids[position])) else None
                outcomes.append(
                    outcome_for(
                        item,
                        response.status_code,
                        ok=True,
                        entity_id=str(reported).lower() if reported else None,
                    )
                )
            return UnitResult(outcomes=outcomes)
        error = parse_error(response.status_code, response.content, response.headers.get("Content-Type"))
        if _means_unsupported(error, message):
            self.log.info("%s refused %s (%s); falling back to $batch", op.entity_set, message, error.message)
            self._bulk_unavailable(op.entity_set)
            for item in items:
                item.attempts -= 1
            return self._engine.send_changeset(items)
        return UnitResult(error=error, splittable=True)

    def write(
        self,
        operations: Iterable[WriteOperation],
        *,
        batch_size: int = 100,
        bulk: bool = True,
        expected: int | None = None,
    ) -> Iterator[WriteOutcome]:
        """Write operations and yield one `WriteOutcome` per operation, in no guaranteed order.

        Operations are grouped into units of at most ``batch_size``: ``CreateMultiple`` for
        creates and ``UpsertMultiple`` for upserts on tables that support them (``bulk=True``),
        otherwise atomic ``$batch`` change sets. Units run in parallel under the adaptive
        limiter; a unit that fails because of one record is split until that record is
        isolated, so the rest still lands. Order between operations of one call is not
        kept: write parents and children in separate calls.

        :param operations: what to write; consumed lazily.
        :param batch_size: records per change set or bulk message at most (up to 1000).
        :param bulk: use the bulk messages where the table supports them.
        :param expected: how many operations are coming, when known: the engine then
            spreads them over every parallel slot (see `WriteEngine.unit_size`).
        """
        if not 1 <= batch_size <= MAX_BATCH_REQUESTS:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_REQUESTS}")
        units = self._engine.units(
            (self._prepare(op) for op in operations),
            lambda item: self._unit_route(item, bulk),
            batch_size=batch_size,
            expected=expected,
        )
        yield from self._engine.run(units, label="Dataverse write")

    def _unit_route(self, item: PreparedWrite, bulk: bool) -> tuple[str, Any]:
        route = self._route(item, bulk)
        return route, self._engine.send_changeset if route == "batch" else self._send_bulk


def _means_unsupported(error: ServiceError, message: str) -> bool:
    """Whether a bulk call failed because the table does not support the message at all.

    Dataverse answers 400 with "The 'CreateMultiple' method does not support entities of
    type 'account'. MessageProcessorCache returned MessageProcessor.Empty." for a table
    without the message; a bad record inside ``Targets`` is also a 400, so the text has
    to name the message and say it is unsupported for the table.
    """
    text = error.message.lower()
    if error.status in (404, 405, 501):
        return True
    return (
        error.status == 400
        and message.lower() in text
        and (
            "does not support entities of type" in text
            or "messageprocessor.empty" in text
            or "not supported" in text
            or "not enabled" in text
        )
    )


def _refuses_token(error: DynamicsAPIError) -> bool:
    """Whether an error answers the ``$deltatoken`` itself (expired or not valid)."""
    text = error.message.lower()
    return error.code == EXPIRED_VERSION_STAMP or (
        error.status == 400 and ("$deltatoken" in text or "version stamp" in text)
    )


def _entity_set_types(metadata: str) -> dict[str, str]:
    """Map entity set name → logical name from a CSDL document."""
    result: dict[str, str] = {}
    root = ET.fromstring(metadata)
    for element in root.iter(f"{_EDMX}EntitySet"):
        name = element.get("Name")
        entity_type = element.get("EntityType") or ""
        if name and entity_type:
            result[name] = entity_type.rsplit(".", 1)[-1]
    return result
