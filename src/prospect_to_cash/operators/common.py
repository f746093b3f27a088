"""What the operators and sensors share: failing fast on configuration errors, the change
window of a run, reading a run-time flag that may arrive as text, and the hook of a
connection by its type.

Imports nothing heavy: DAG files import the operators while they are parsed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from prospect_to_cash.settings import FlagSetting

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path

    from airflow.sdk import Context, ObjectStoragePath

    from prospect_to_cash.hooks.dataverse import DataverseHook
    from prospect_to_cash.hooks.fno import FinanceOperationsHook
    from prospect_to_cash.sync.contracts import CompanyPairDict, Window, WindowDict

#: A company as an operator accepts it: the legal entity (``usmf``), a company pair
#: (``{"legal_entity": "usmf", "business_unit": ...}``), or an upstream step's result,
#: which names its legal entity the same way. Lets a later step follow an earlier one's
#: XCom instead of drawing a second edge from the task that listed the pairs.
Company = str | Mapping[str, Any]


@contextlib.contextmanager
def fail_fast_on_configuration_errors() -> Iterator[None]:
    """Turn the engine's configuration errors (mapping, ``$metadata``, data rules) into a
    no-retry task failure: retrying cannot fix them."""
    from prospect_to_cash.sync.errors import DataError, MappingError, MetadataMismatch

    try:
        yield
    except (MappingError, MetadataMismatch, DataError) as exc:
        raise AirflowFailException(str(exc)) from exc


#: Run types whose logical date is their data interval's start, one run per interval and DAG.
_INTERVAL_RUN_TYPES = ("scheduled", "backfill")


def run_folder(
    context: Context, template: str, staging_root: str | Path | ObjectStoragePath | None = None
) -> str:
    """The staging folder of this run under its template, named so a person finds an
    interval's files: ``<interval start>__<run type>`` (``2026-11-01T00-00-00Z__backfill``
    holds the day 11-01, whose run id names the interval's *end*). A manual run keeps its
    run id after the start (two manual runs can share an interval). A run that already
    staged under its run id (started before this naming) keeps that folder, so its retries
    find their journal.
    """
    from prospect_to_cash.sync.staging import as_path, safe_segment

    run_id = str(context["run_id"])
    start = context.get("data_interval_start")
    if start is None:
        return run_id
    legacy = as_path(staging_root) / template / safe_segment(run_id)
    if legacy.exists():
        return run_id
    stamp = start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    run_type = getattr(context.get("dag_run"), "run_type", None)
    run_type = getattr(run_type, "value", run_type)  # a DagRunType or its text
    if run_type in _INTERVAL_RUN_TYPES and context.get("logical_date") == start:
        return f"{stamp}__{run_type}"
    return f"{stamp}__{run_id}"


def legal_entity_of(company: Company | CompanyPairDict) -> str:
    """The legal entity a `Company` names; anything else is a no-retry failure."""
    if isinstance(company, str) and company.strip():
        return company.strip()
    if isinstance(company, Mapping) and isinstance(company.get("legal_entity"), str):
        return str(company["legal_entity"])
    raise AirflowFailException(f"not a company (legal entity or company pair): {company!r}")


def flag(value: bool | str | None, name: str) -> bool:
    """A boolean operator argument, also when a template rendered it as text (``"True"``);
    unset is false, and other text fails the task without retries (a typo in ``dry_run``
    must not write)."""
    try:
        return FlagSetting(name=name, default=False, unknown="raise").read(value)
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None


def change_window(
    data_interval_start: datetime | str | None,
    data_interval_end: datetime | str | None,
    window_start: datetime | str | None = None,
    window_end: datetime | str | None = None,
    *,
    full_refresh: bool = False,
    since_watermark: bool = False,
) -> Window:
    """The change window a run reads: ``window_start`` / ``window_end`` where given, else
    the run's data interval; ``since_watermark`` (a scheduled run) starts it at the task's
    high-water mark when that is earlier, unless ``window_start`` is given. Both ends None
    (a run without a logical date) reads everything the filter allows, and so does a data
    interval of no length (the runs of a DAG without a time-based schedule). A bad or empty
    explicit window fails the task without retries."""
    from prospect_to_cash.sync.contracts import Window, iso_utc

    try:
        interval = (iso_utc(data_interval_start), iso_utc(data_interval_end))
        if interval[0] is not None and interval[0] == interval[1]:
            interval = (None, None)
        return Window.of(
            *interval,
            start=window_start,
            end=window_end,
            full_refresh=full_refresh,
            since_watermark=since_watermark,
        )
    except ValueError as exc:
        raise AirflowFailException(f"window_start/window_end: {exc}") from exc


def sync_window(
    data_interval_start: datetime | str | None,
    data_interval_end: datetime | str | None,
    window_start: datetime | str | None = None,
    window_end: datetime | str | None = None,
) -> WindowDict:
    """`change_window`'s ends as they go to XCom and asset events."""
    return change_window(data_interval_start, data_interval_end, window_start, window_end).to_dict()


def param_value(params: Any, name: str, default: Any = None) -> Any:
    """A Param from the task context's ``params`` (a mapping, or None in unit tests)."""
    if params is None:
        return default
    try:
        value = params[name]
    except KeyError:
        return default
    return default if value is None else value


def hook_for_connection(conn_id: str) -> DataverseHook | FinanceOperationsHook:
    """The provider's hook for a connection, by its type (Dataverse or F&O); another type
    fails the task without retries."""
    from airflow.sdk import BaseHook

    from prospect_to_cash.hooks.dataverse import DataverseHook
    from prospect_to_cash.hooks.fno import FinanceOperationsHook

    conn_type = BaseHook.get_connection(conn_id).conn_type
    if conn_type == DataverseHook.conn_type:
        return DataverseHook(dataverse_conn_id=conn_id)
    if conn_type == FinanceOperationsHook.conn_type:
        return FinanceOperationsHook(fno_conn_id=conn_id)
    raise AirflowFailException(
        f"connection {conn_id!r} has type {conn_type!r}; expected {DataverseHook.conn_type!r} "
        f"or {FinanceOperationsHook.conn_type!r}"
    )
