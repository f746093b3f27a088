"""Export one entity set of either service to a Parquet file, page by page.

For the data a template does not move: an F&O entity to a lake, a Dataverse table for a
report. Which service is read follows the connection's type (``dynamics_dataverse`` or
``dynamics_fno``), the way `GenericTransfer` picks its hooks from connection ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from airflow.sdk import BaseOperator

from prospect_to_cash.operators.common import change_window, flag, hook_for_connection

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context, ObjectStoragePath

    from prospect_to_cash.sync.contracts import WindowDict


class ExportResult(TypedDict):
    """What the extract hands to XCom: where the file is and what went into it."""

    path: str
    rows: int
    entity_set: str
    filter: str | None
    window: WindowDict | None


class DynamicsExtractOperator(BaseOperator):
    """Read an entity set of Dataverse or F&O into one Parquet file at an ObjectStoragePath.

    Every column is written as text in one canonical spelling (``true``, ``3.5``, ISO
    dates), so pages whose values pandas would type differently still share one schema.

    :param conn_id: a ``dynamics_dataverse`` or ``dynamics_fno`` connection.
    :param entity_set: the entity set, spelled as the service spells it (``CustomersV3``).
    :param select: the columns to read, in file order.
    :param output_path: where the Parquet file goes (``file://``, ``abfs://``, ...; templated).
    :param filter: an OData ``$filter`` (templated).
    :param companies: F&O only: None reads the connection's default company, ``"*"`` every
        company (cross-company), a list those legal entities.
    :param change_field: the column that records a row's last change (``modifiedon``):
        with it, the rows changed in the window are read.
    :param window_start: start of the change window (ISO 8601; templated).
    :param window_end: end of the change window, exclusive (templated).
    :param incremental: without an explicit window, read the rows changed in the run's data
        interval (a delta per run); otherwise every row the filter allows.
    :param page_size: rows per page (the service's maximum when None).
    """

    template_fields: Sequence[str] = (
        "entity_set",
        "select",
        "filter",
        "companies",
        "window_start",
        "window_end",
        "output_path",
    )
    ui_color = "#e4f0e8"

    def __init__(
        self,
        *,
        conn_id: str,
        entity_set: str,
        select: Sequence[str],
        output_path: str | ObjectStoragePath,
        filter: str | None = None,
        companies: str | Sequence[str] | None = None,
        change_field: str | None = None,
        window_start: str | None = None,
        window_end: str | None = None,
        incremental: bool | str = False,
        page_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (window_start or window_end or incremental is True) and not change_field:
            raise ValueError(f"{self.task_id}: a change window needs change_field")
        self.conn_id = conn_id
        self.entity_set = entity_set
        self.select = select
        self.output_path = output_path
        self.filter = filter
        self.companies = companies
        self.change_field = change_field
        self.window_start = window_start
        self.window_end = window_end
        self.incremental = incremental
        self.page_size = page_size

    def _window_filter(self, context: Context) -> tuple[str | None, WindowDict | None]:
        from prospect_to_cash.hooks.odata import and_filters

        explicit = bool(self.window_start or self.window_end)
        if not self.change_field or not (explicit or flag(self.incremental, "incremental")):
            return self.filter or None, None
        window = change_window(
            None if explicit else context.get("data_interval_start"),
            None if explicit else context.get("data_interval_end"),
            self.window_start or None,
            self.window_end or None,
        )
        bounds = [
            *([f"{self.change_field} ge {window.start}"] if window.start else []),
            *([f"{self.change_field} lt {window.end}"] if window.end else []),
        ]
        return and_filters(self.filter or None, " and ".join(bounds) or None), window.to_dict()

    def execute(self, context: Context) -> ExportResult:
        from prospect_to_cash.hooks.fno import FinanceOperationsHook
        from prospect_to_cash.sync.staging import TextPageWriter, as_path

        hook = hook_for_connection(self.conn_id)
        query, window = self._window_filter(context)
        read: dict[str, Any] = {"select": list(self.select), "filter": query}
        if self.page_size:
            read["page_size"] = self.page_size
        if isinstance(hook, FinanceOperationsHook):
            read["companies"] = self.companies
        elif self.companies:
            raise ValueError(f"{self.task_id}: companies apply to F&O only, not to Dataverse")
        with TextPageWriter(as_path(self.output_path), self.select) as writer:
            for page in hook.iter_pages(self.entity_set, **read):
                writer.write(page)
        self.log.info("%s: %d rows (filter %s) -> %s", self.entity_set, writer.rows, query, writer.path)
        return {
            "path": str(writer.path),
            "rows": writer.rows,
            "entity_set": self.entity_set,
            "filter": query,
            "window": window,
        }
