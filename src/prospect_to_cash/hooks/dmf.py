"""F&O Data management incremental export: run a data project, read its package.

Microsoft's "Data management package REST API" (``data-entities/data-management-api.md``):
``ExportToPackage`` starts an execution of an export data project, ``GetExecutionSummaryStatus``
says when it has ended, ``GetExportedPackageUrl`` gives a blob URL with an embedded SAS token
of the zip package (a data file per entity beside ``Manifest.xml`` and ``PackageHeader.xml``),
``GetExecutionErrors`` says why an execution failed. With change tracking on the project's
entity ("Enable change tracking for entities", ``entity-change-track.md``) an export carries
only the records created or updated since the project's last successful export; never
deletions.

Why a module of its own: the calls are OData actions, but the package is a blob. The
download is a plain HTTPS GET with TLS verification and no bearer token (the SAS signs it);
the URL is a secret for as long as it lives, so no message here ever shows its query.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
import time
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd

from prospect_to_cash.hooks._http import ssl_context
from prospect_to_cash.hooks.errors import AmbiguousWriteError, DynamicsAPIError, DynamicsError, parse_error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from prospect_to_cash.hooks.fno import FinanceOperationsHook

ACTIONS = "DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
#: GetExecutionSummaryStatus values that end an execution (DMFExecutionSummaryStatus).
SUCCEEDED = "Succeeded"
ENDED_BADLY = ("PartiallySucceeded", "Failed", "Canceled")
STILL_RUNNING = ("NotRun", "Executing")
#: Rows per DataFrame yielded from a package's data file.
CHUNK_ROWS = 10_000


class DataExportError(DynamicsError):
    """An export execution ended without a package to read (its status and F&O's errors)."""

    def __init__(self, message: str, *, status: str, execution_id: str) -> None:
        super().__init__(message)
        self.status = status
        self.execution_id = execution_id


@dataclass(frozen=True)
class ExportPolling:
    """How long to wait for an execution: first poll after ``initial`` s, doubling up to
    ``ceiling`` s between polls, at most ``timeout`` s in all (a large first push takes minutes;
    a small daily export seconds, so the first polls come soon)."""

    initial: float = 0.25
    ceiling: float = 30.0
    timeout: float = 3600.0


def _string_value(body: dict[str, Any]) -> str:
    """An action's ``Edm.String`` answer; the docs print the export actions' as a nested
    ``{"value": {"value": ...}}``, so both shapes are read."""
    value = body.get("value")
    if isinstance(value, dict):
        value = value.get("value")
    if not isinstance(value, str):
        raise DynamicsError(f"unexpected answer of a Data management action: {type(value).__name__}")
    return value


def _action(
    hook: FinanceOperationsHook, name: str, params: dict[str, Any], *, idempotent: bool = True
) -> str:
    response = hook.session.send(
        "POST",
        ACTIONS + name,
        headers={"Content-Type": "application/json"},
        content=json.dumps(params).encode("utf-8"),
        idempotent=idempotent,
    )
    if response.status_code != 200:
        error = parse_error(response.status_code, response.content, response.headers.get("Content-Type"))
        raise DynamicsAPIError.from_error(error, hook.session.url(ACTIONS + name))
    return _string_value(response.json())


def execution_status(hook: FinanceOperationsHook, execution_id: str) -> str:
    """``GetExecutionSummaryStatus``: Unknown, NotRun, Executing, Succeeded, ... ."""
    return _action(hook, "GetExecutionSummaryStatus", {"executionId": execution_id})


def start_export(
    hook: FinanceOperationsHook, definition_group: str, *, legal_entity: str, execution_id: str
) -> str:
    """``ExportToPackage`` of ``definition_group`` for ``legal_entity`` under our own
    ``execution_id`` (so a caller that crashed can find the execution again). Starting is not
    idempotent: after an answer lost on the way, the status says whether it started."""
    params = {
        "definitionGroupId": definition_group,
        "packageName": execution_id,
        "executionId": execution_id,
        "reExecute": False,
        "legalEntityId": legal_entity,
    }
    try:
        return _action(hook, "ExportToPackage", params, idempotent=False)
    except AmbiguousWriteError:
        if execution_status(hook, execution_id) == "Unknown":
            raise
        return execution_id


def wait_for_export(
    hook: FinanceOperationsHook,
    execution_id: str,
    polling: ExportPolling = ExportPolling(),
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll until the execution ends; raise `DataExportError` unless it succeeded."""
    deadline = time.monotonic() + polling.timeout
    pause = polling.initial
    while True:
        status = execution_status(hook, execution_id)
        if status == SUCCEEDED:
            return
        if status not in STILL_RUNNING:
            raw = (
                _action(hook, "GetExecutionErrors", {"executionId": execution_id})
                if status != "Unknown"
                else ""
            )
            try:
                messages = json.loads(raw) if raw else []
            except json.JSONDecodeError:
                messages = [raw]
            detail = "; ".join(str(m) for m in messages) or "F&O gave no error message"
            raise DataExportError(
                f"Data management export {execution_id} ended {status}: {detail}",
                status=status,
                execution_id=execution_id,
            )
        if time.monotonic() + pause > deadline:
            raise DataExportError(
                f"Data management export {execution_id} still {status} after {polling.timeout:g} s",
                status=status,
                execution_id=execution_id,
            )
        sleep(pause)
        pause = min(polling.ceiling, pause * 2)


def _without_query(url: str) -> str:
    """The blob URL as it may be logged: its query is the SAS token."""
    return url.split("?", 1)[0]


class _HideSasTokens(logging.Filter):
    """httpx logs every request's full URL at INFO; a SAS URL's query is a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _without_query(str(arg)) if isinstance(arg, httpx.URL) and b"sig=" in arg.query else arg
                for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_HideSasTokens())


def download_package(
    hook: FinanceOperationsHook, execution_id: str, *, sleep: Callable[[float], None] = time.sleep
) -> bytes:
    """The execution's zip package, from the URL ``GetExportedPackageUrl`` gives, over HTTPS
    with TLS verification; transport errors, 5xx and 429 are retried by the hook's policy.
    An expired or refused SAS (403) is asked for once more (a new URL, a new token)."""
    policy = hook.retry
    with httpx.Client(
        verify=ssl_context(hook.config.ca_bundle),
        timeout=httpx.Timeout(connect=15.0, read=300.0, write=60.0, pool=60.0),
        transport=hook.transport,
        follow_redirects=False,
    ) as client:
        fresh_urls = 2
        attempt = 0
        while True:
            url = _action(hook, "GetExportedPackageUrl", {"executionId": execution_id})
            if not url:
                raise DataExportError(
                    f"Data management export {execution_id} has no package URL",
                    status="NoPackage",
                    execution_id=execution_id,
                )
            shown = _without_query(url)
            fresh_urls -= 1
            while True:
                attempt += 1
                try:
                    response = client.get(url)
                except httpx.TransportError as exc:
                    if not policy.should_retry(attempt, error=exc):
                        raise DynamicsError(f"GET {shown} failed: {type(exc).__name__}") from None
                    sleep(policy.delay(attempt, rng=random.Random()))
                    continue
                if response.status_code == 200:
                    hook.log.info(
                        "downloaded package of %s (%d bytes) from %s",
                        execution_id,
                        len(response.content),
                        shown,
                    )
                    return response.content
                if response.status_code == 403 and fresh_urls > 0:
                    break  # an expired SAS: ask for a new URL
                if policy.should_retry(attempt, status=response.status_code):
                    sleep(policy.delay(attempt, throttled=response.status_code == 429, rng=random.Random()))
                    continue
                code = response.headers.get("x-ms-error-code", "")
                raise DynamicsError(f"GET {shown} answered {response.status_code} {code}".rstrip())


def package_frames(
    package: bytes,
    columns: Sequence[str],
    *,
    fill: Mapping[str, str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """The rows of the package's data file as text DataFrames with exactly ``columns``
    (matched to the file's header case-insensitively: DMF writes field names in capitals).
    ``fill`` gives the value of a column the file may leave out (the company of an export
    run for one legal entity).

    :raises DataExportError: the package holds no data file, or more than one (a data project
        per task exports one entity), or the file lacks some of ``columns``.
    """
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        data_files = [n for n in archive.namelist() if not n.lower().endswith(".xml")]
        if len(data_files) != 1:
            raise DataExportError(
                f"the package holds {len(data_files)} data files ({data_files}); "
                "export one entity per data project",
                status="BadPackage",
                execution_id="",
            )
        text = archive.read(data_files[0]).decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    position = {name.casefold(): index for index, name in enumerate(header)}
    fill = {name.casefold(): value for name, value in (fill or {}).items()}
    missing = [c for c in columns if c.casefold() not in position and c.casefold() not in fill]
    if missing:
        raise DataExportError(
            f"the package's data file {data_files[0]} lacks the mapped fields {missing}",
            status="BadPackage",
            execution_id="",
        )
    indexes = [position.get(c.casefold()) for c in columns]
    fixed = [fill.get(c.casefold(), "") for c in columns]
    chunk: list[list[str]] = []
    for record in reader:
        chunk.append([fixed[n] if i is None else record[i] for n, i in enumerate(indexes)])
        if len(chunk) >= chunk_rows:
            yield pd.DataFrame(chunk, columns=list(columns), dtype=object)
            chunk = []
    if chunk:
        yield pd.DataFrame(chunk, columns=list(columns), dtype=object)
