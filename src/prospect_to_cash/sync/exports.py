"""A windowed run of an F&O source reads its Data management incremental export.

F&O's standard entities carry no change timestamp, so without help a daily run reads them
whole. Microsoft's tool for exactly this is an export data project with change tracking
("Enable change tracking for entities"): its first export is a full push, each later one
carries only the records created or updated since the project's last successful export
("Data management package REST API", `hooks.dmf`). A mapping opts in per task and company
with ``source.incremental_export`` (`mapping.IncrementalExport`); a full refresh still
reads whole, and it alone detects deletes (packages carry none).

The export is consumed the moment F&O finishes it: a run that then fails must not lose
what it exported. So the execution id is written down before the export starts (a retried
task resumes it instead of starting another), and the rows downloaded are kept beside the
other task state until a load finishes with them:

    <root>/_fno_exports/<template>/<company>/<task>.json      the execution not yet read
    <root>/_fno_exports/<template>/<company>/<task>.parquet   rows exported, not yet loaded

The extract stages those rows (a newer export of a key wins), plus the rows the pending
ledger waits for, read by key; `source_digests` then drops the rows whose mapped columns
did not change, as it does for a whole read.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow.parquet as pq

from prospect_to_cash.hooks.dmf import STILL_RUNNING, ExportPolling, execution_status
from prospect_to_cash.hooks.odata import and_filters
from prospect_to_cash.sync.children import released_parent_filters
from prospect_to_cash.sync.limits import service_metadata
from prospect_to_cash.sync.pending import fingerprint, ledger_of
from prospect_to_cash.sync.staging import TaskStateFile, atomic_write, text_table
from prospect_to_cash.sync.target_scope import key_rows
from prospect_to_cash.sync.values import ConversionError, is_blank, natural_key, normalize, py

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from airflow.sdk import ObjectStoragePath

    from prospect_to_cash.hooks.fno import FinanceOperationsHook
    from prospect_to_cash.sync.context import SyncContext
    from prospect_to_cash.sync.contracts import Window
    from prospect_to_cash.sync.target_scope import RowScope

log = logging.getLogger(__name__)

FOLDER = "_fno_exports"


@dataclass(frozen=True)
class ExportExecution(TaskStateFile):
    """The execution an extract started and has not read yet (``execution_id``, ``definition_group``)."""

    folder = FOLDER
    suffix = ".json"


@dataclass(frozen=True)
class ExportedRows(TaskStateFile):
    """Rows exported by F&O that no finished load has taken yet (text, the task's source columns)."""

    folder = FOLDER
    suffix = ".parquet"


def applies(ctx: SyncContext, window: Window) -> bool:
    """A windowed run of a task whose source names an export project (for this company)."""
    return ctx.task.source.incremental_export is not None and not window.full_refresh


def _execution(ctx: SyncContext, definition_group: str) -> str:
    """The execution to read: the one an earlier attempt started, else a new id, written
    down before F&O hears of it."""
    state = ExportExecution.of(ctx).path
    if state.exists():
        with state.open("r") as handle:
            earlier = json.load(handle)
        if earlier.get("definition_group") == definition_group:
            log.info(
                "%s/%s [%s]: resuming export %s",
                ctx.template.name,
                ctx.task.name,
                ctx.pair.legal_entity,
                earlier["execution_id"],
            )
            return str(earlier["execution_id"])
    execution = f"P2C-{ctx.template.name}-{ctx.task.name}-{ctx.pair.legal_entity}-{uuid.uuid4().hex[:12]}"
    with atomic_write(state, "w") as handle:
        json.dump({"execution_id": execution, "definition_group": definition_group}, handle)
    return execution


def _carried(ctx: SyncContext, columns: list[str]) -> pd.DataFrame:
    path = ExportedRows.of(ctx).path
    if not path.exists():
        return pd.DataFrame(columns=columns, dtype=object)
    with path.open("rb") as handle:
        return pq.read_table(handle).to_pandas().reindex(columns=columns)


def _keys(frame: pd.DataFrame, key: tuple[str, ...]) -> list[str]:
    return [k.casefold() for k in _natural_keys(frame, key)]


def export_rows(ctx: SyncContext) -> pd.DataFrame:
    """Run (or resume) the task's export for the company pair; return what it exported
    together with the rows earlier exports left unloaded (the newer row of a key wins).

    :raises DataExportError: the execution failed or timed out; the next attempt starts a new
        one (F&O moves a project's baseline only on success).
    """
    spec = ctx.task.source.incremental_export
    assert spec is not None
    columns = list(ctx.task.source_columns)
    hook = ctx.hooks.for_system("fno")
    execution = _execution(ctx, spec.definition_group)
    state = ExportExecution.of(ctx).path
    try:
        frames = list(
            hook.iter_export(
                spec.definition_group,
                legal_entity=ctx.pair.legal_entity,
                execution_id=execution,
                select=columns,
                polling=ExportPolling(timeout=spec.timeout_minutes * 60.0),
            )
        )
    except Exception:
        if not _still_running(hook, execution):
            _forget(state)
        raise
    exported = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns, dtype=object)
    carried = _carried(ctx, columns)
    fresh = set(_keys(exported, ctx.task.source.key))
    older = carried.loc[[k not in fresh for k in _keys(carried, ctx.task.source.key)]]
    rows = pd.concat([exported, older], ignore_index=True) if len(older) else exported
    with atomic_write(ExportedRows.of(ctx).path) as handle:
        pq.write_table(text_table(rows), handle)
    _forget(state)  # its rows are kept until a load takes them
    log.info(
        "%s/%s [%s]: export %s of data project %s: %d row(s) created or changed, %d carried from "
        "earlier exports not loaded yet",
        ctx.template.name,
        ctx.task.name,
        ctx.pair.legal_entity,
        execution,
        spec.definition_group,
        len(exported),
        len(older),
    )
    return rows


def _still_running(hook: FinanceOperationsHook, execution: str) -> bool:
    """Whether a failed read left the execution running (a timeout): then it is resumed."""
    try:
        return execution_status(hook, execution) in STILL_RUNNING
    except Exception:
        return True  # cannot tell: keep the id, the next attempt asks again


#: The Edm types whose CSV text becomes an OData literal without guessing a format: text as
#: it is, whole numbers (``LineCreationSequenceNumber``), GUIDs. Dates are left out: a data
#: project's CSV writes them in its own format.
_TYPED_KEYS: dict[str, str] = {
    "Edm.String": "string",
    "Edm.Int16": "int",
    "Edm.Int32": "int",
    "Edm.Int64": "int",
    "Edm.Byte": "int",
    "Edm.Guid": "guid",
}


def reread_scope(
    columns: Sequence[str], types: Mapping[str, str], keys: Iterable[Sequence[str]]
) -> RowScope | None:
    """The OData read of ``keys`` (the source key's text, as the CSV and the pending ledger
    give it): every key column whose ``$metadata`` type (``types``) the text converts to
    for every key (`_TYPED_KEYS`), in `key_rows`'s order; the others are left out, a
    superset the digests narrow (an invoice's date). None (read the filter whole) when no
    column converts or above `SCOPED_READ_MAX_KEYS`."""
    keys = [tuple(key) for key in keys]
    typed: list[tuple[str, list[Any]]] = []
    for i, column in enumerate(columns):
        kind = _TYPED_KEYS.get(types.get(column, ""))
        if kind is None:
            continue
        try:
            values = [normalize(key[i], kind) if kind != "string" else str(key[i]) for key in keys]
        except (ConversionError, ArithmeticError):
            continue
        if all(value is not None for value in values):
            typed.append((column, [uuid.UUID(v) if kind == "guid" else v for v in values]))
    if not typed:
        return None
    return key_rows(tuple(c for c, _ in typed), zip(*(v for _, v in typed), strict=True))


def _texts(values: Iterable[Any]) -> list[str]:
    return ["" if is_blank(py(v)) else str(py(v)) for v in values]


def _key_types(ctx: SyncContext) -> dict[str, str]:
    """The source entity's property types from F&O's ``$metadata`` (read once per hook);
    empty when the hook cannot give it."""
    metadata = service_metadata(ctx.hooks, "fno")
    shape = metadata.entity_sets.get(ctx.task.source.entity_set) if metadata is not None else None
    return dict(shape.properties) if shape is not None else {}


def stage(ctx: SyncContext) -> tuple[str, int]:
    """Stage the export's rows as ``source/rows``, then the rows the export does not carry
    that the run still needs, read through OData: the pending ledger's (they did not
    change, so no export brings them back) and the lines of headers that landed after
    waiting (`children`).

    A data project exports its entity for the company, not within the task's OData
    ``source.filter``: a filtered source's exported rows are read again through OData, with
    the filter, so only rows within it are staged. Reads by key go by the whole key
    (`reread_scope`: the CSV's text typed by ``$metadata``), a changed order line reads
    that line, not every line of its order; above `SCOPED_READ_MAX_KEYS` keys (a project's
    first, full push) the filter is read whole, and the digests then narrow either."""
    task = ctx.task
    columns = list(task.source_columns)
    rows = export_rows(ctx)
    wanted = [tuple(key) for key in ledger_of(ctx).key_values(len(task.source.key), fingerprint(task))]
    seen: set[str] = set()
    if task.source.filter:
        wanted += list(zip(*(_texts(rows[c].tolist()) for c in task.source.key), strict=True))
    hook = ctx.hooks.for_system("fno")
    scope = {"select": columns, "filter": task.source.filter, "companies": [ctx.pair.legal_entity]}
    keys = reread_scope(task.source.key, _key_types(ctx), wanted) if wanted else None
    with ctx.staging.page_writer("source", "rows", columns) as writer:

        def stage_new(page: pd.DataFrame) -> None:
            found = _keys(page, task.source.key)
            writer.write(page.loc[[k not in seen for k in found]])
            seen.update(found)

        if not task.source.filter:
            stage_new(rows)
        if wanted and keys is None:
            for page in hook.iter_pages(task.source.entity_set, **scope):
                stage_new(page)
        elif keys is not None and len(keys.columns) == 1:
            values = [row[0] for row in keys.rows]
            for page in hook.iter_pages_by_keys(
                task.source.entity_set, column=keys.columns[0], values=values, **scope
            ):
                stage_new(page)
        elif keys is not None:
            for page in hook.iter_pages_by_key_rows(
                task.source.entity_set, columns=list(keys.columns), rows=list(keys.rows), **scope
            ):
                stage_new(page)
        for query in released_parent_filters(ctx):
            for page in hook.iter_pages(
                task.source.entity_set, **{**scope, "filter": and_filters(task.source.filter, query)}
            ):
                stage_new(page)
    log.info(
        "%s/%s [%s]: %d key(s) read again through OData: %s",
        ctx.template.name,
        task.name,
        ctx.pair.legal_entity,
        len(set(wanted)),
        "by " + ", ".join(keys.columns) if keys is not None else ("whole" if wanted else "none"),
    )
    return str(writer.path), writer.rows


def _natural_keys(frame: pd.DataFrame, key: tuple[str, ...]) -> list[str]:
    return [natural_key(parts) for parts in zip(*(frame[c].tolist() for c in key), strict=True)]


def loaded(ctx: SyncContext) -> None:
    """After a finished load: the exported rows it took are no longer kept."""
    if ctx.task.source.incremental_export is not None:
        _forget(ExportedRows.of(ctx).path)


def _forget(path: ObjectStoragePath) -> None:
    if path.exists():
        path.unlink()
