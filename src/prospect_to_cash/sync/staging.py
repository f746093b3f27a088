"""The only place that writes staging files.

Layout (docs/design.md): ``<root>/<template>/<run folder>/<company>/<task>/<area>/<name>.parquet``
where the run folder is the run id (CLI, ``SyncOperator``) or, for the DAGs' runs, the data
interval's start and the run type (``2026-11-01T00-00-00Z__backfill``).
with areas ``source`` (rows read from the source system, plus source-side reference
tables), ``target`` (snapshot of the target, plus target-side reference tables),
``plan`` (transform output, load journal, per-row outcome), ``deadletter`` and ``work``
(the transform's own buckets while it runs, removed when it ends).

The root is an :class:`airflow.sdk.ObjectStoragePath`: a local folder by default
(``file://$AIRFLOW_HOME/p2c-staging``), Azure storage in production
(``abfs://<wasb connection id>@<container>/p2c``), set by ``P2C_STAGING_ROOT``.

Raw reads (source, target) are staged as text columns in one canonical spelling
(``true``/``false``, ``3.33``, ISO dates). A column's type is whatever the mapping
declares for it, applied in transform; staging the text keeps pages with differently
inferred pandas dtypes (all-null pages, ints that became floats) in one Parquet schema
so pages can stream into one file through a single ``ParquetWriter``.

Every staging file is written under a hidden temporary name in its folder and renamed into
place once complete (`AtomicFile`): a worker killed mid-write leaves the previous file or
none, never a torn one a retry would trip over. Load journals are read with
``drop_torn=True`` all the same, so a file torn by something else (a full disk, a copy)
costs a re-check of its writes, not every later retry.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from airflow.sdk import ObjectStoragePath

from prospect_to_cash.settings import NumberSetting
from prospect_to_cash.sync.values import is_blank, py

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from prospect_to_cash.sync.context import SyncContext

log = logging.getLogger(__name__)

STAGING_ROOT_VARIABLE = "P2C_STAGING_ROOT"
AREAS = ("source", "target", "plan", "deadletter", "work")

#: Bytes gathered before a write reaches a staging file. The file objects of
#: ``ObjectStoragePath`` record lineage on every ``write`` call, and Parquet writers make
#: many small ones (tens of thousands per plan), so they go through one buffer.
WRITE_BUFFER_BYTES = 1 << 20

#: Rows the transform holds at once (a chunk of the source, a bucket, a merge window).
CHUNK_ROWS_VARIABLE = "P2C_TRANSFORM_CHUNK_ROWS"
DEFAULT_CHUNK_ROWS = 50_000
CHUNK_ROWS = NumberSetting("chunk_rows", CHUNK_ROWS_VARIABLE, DEFAULT_CHUNK_ROWS, "rows", 1)


def default_staging_root() -> ObjectStoragePath:
    """``P2C_STAGING_ROOT``, else ``file://$AIRFLOW_HOME/p2c-staging``."""
    configured = os.environ.get(STAGING_ROOT_VARIABLE)
    if configured:
        return as_path(configured)
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return ObjectStoragePath(f"file://{Path(home).resolve()}/p2c-staging")


def as_path(value: str | ObjectStoragePath | Path | None) -> ObjectStoragePath:
    """An ObjectStoragePath from a URL, a local path or None (the default root)."""
    if value is None:
        return default_staging_root()
    if isinstance(value, ObjectStoragePath):
        return value
    text = str(value)
    if "://" not in text:
        text = f"file://{Path(text).resolve()}"
    return ObjectStoragePath(text)


def safe_segment(value: str) -> str:
    """A path segment from an Airflow run id (``scheduled__2024-01-01T00:00:00+00:00``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._=-]+", "_", value).strip("._")
    return cleaned or "run"


def to_text(value: Any) -> str | None:
    """The canonical text of a raw value as staged (None stays None)."""
    cls = value.__class__
    if cls is str or value is None:
        return value
    if cls is bool:
        return "true" if value else "false"
    if cls is int:
        return str(value)
    if cls is float:
        if value != value:
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    value = py(value)
    if value is None or (not isinstance(value, str) and is_blank(value)):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def buffered(handle: Any) -> pa.NativeFile:
    """A writable staging file behind a :data:`WRITE_BUFFER_BYTES` buffer; closing it
    flushes and closes the file."""
    return pa.output_stream(handle, buffer_size=WRITE_BUFFER_BYTES)


class AtomicFile:
    """One staging file written under a hidden temporary name (``.<name>.<random>.tmp``,
    never matched by `TaskStaging.list` prefixes) and renamed over ``target`` on `commit`.

    A rename within one folder is atomic on a local disk and on ADLS Gen2 (hierarchical
    namespace); on a flat object store the final name still only ever holds a whole file.
    """

    def __init__(self, target: ObjectStoragePath) -> None:
        self.target = target
        self.temporary = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
        self._handle: Any = None

    def open(self, mode: str = "wb") -> Any:
        """The temporary file, buffered for binary writes; closed by `commit` or `discard`."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        raw = self.temporary.open(mode)
        self._handle = buffered(raw) if "b" in mode else raw
        return self._handle

    def commit(self) -> str:
        """Close the temporary file and put it in place; returns the path for XCom."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.temporary.rename(self.target)
        return str(self.target)

    def discard(self) -> None:
        """Close and remove the temporary file; ``target`` keeps whatever it held."""
        if self._handle is not None:
            with suppress(Exception):
                self._handle.close()
            self._handle = None
        with suppress(FileNotFoundError, OSError):
            self.temporary.unlink()


@contextmanager
def atomic_write(target: ObjectStoragePath, mode: str = "wb") -> Iterator[Any]:
    """Write ``target`` whole or not at all (`AtomicFile`): the handle's file replaces
    ``target`` when the block ends, and is removed if the block raises."""
    staged = AtomicFile(target)
    try:
        yield staged.open(mode)
    except BaseException:
        staged.discard()
        raise
    staged.commit()


_State = TypeVar("_State", bound="TaskStateFile")


@dataclass(frozen=True)
class TaskStateFile:
    """State one mapping task keeps between runs for one company pair (pending ledger,
    watermark, change-tracking token, source index, source digests): one file at
    ``<root>/<folder>/<template>/<company>/<task><suffix>``, outside every run's folder, so
    new run ids never lose it and staging retention (which skips ``_`` folders) never
    removes it. Subclasses name their ``folder`` and ``suffix``."""

    root: ObjectStoragePath
    template: str
    company: str
    task: str

    folder: ClassVar[str]
    suffix: ClassVar[str] = ".json"

    @property
    def path(self) -> ObjectStoragePath:
        return self.root / self.folder / self.template / self.company.lower() / f"{self.task}{self.suffix}"

    @classmethod
    def of(cls: type[_State], ctx: SyncContext) -> _State:
        """The state of a step's template, company pair and task."""
        return cls(ctx.staging.root, ctx.template.name, ctx.pair.legal_entity, ctx.task.name)


def text_array(values: Sequence[Any]) -> pa.Array:
    """A column of raw values as staged text (:func:`to_text` of each)."""
    return pa.array([to_text(v) for v in values], type=pa.string())


def text_table(frame: pd.DataFrame) -> pa.Table:
    """A frame as staging would have written it: every column as text."""
    names = [str(c) for c in frame.columns]
    arrays = [text_array(frame.iloc[:, i].tolist()) for i in range(len(names))]
    return pa.Table.from_arrays(arrays, names=names)


def chunk_rows(value: int | str | None = None) -> int:
    """How many rows the transform holds at once: ``value`` (the ``chunk_rows`` option),
    else ``P2C_TRANSFORM_CHUNK_ROWS``, else :data:`DEFAULT_CHUNK_ROWS` (:data:`CHUNK_ROWS`)."""
    return CHUNK_ROWS.read(value)


class TextPageWriter:
    """Streams DataFrame pages into one Parquet file whose columns are all text."""

    def __init__(self, path: ObjectStoragePath, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = list(dict.fromkeys(columns))
        self.schema = pa.schema([(name, pa.string()) for name in self.columns])
        self.rows = 0
        self._file = AtomicFile(path)
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> TextPageWriter:
        self._writer = pq.ParquetWriter(self._file.open(), self.schema)
        return self

    def write(self, page: pd.DataFrame) -> None:
        assert self._writer is not None, "use TextPageWriter as a context manager"
        arrays = []
        for name in self.columns:
            if name in page.columns:
                arrays.append(text_array(page[name].tolist()))
            else:
                arrays.append(pa.nulls(len(page), type=pa.string()))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += len(page)

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
        if exc_type is None:
            self._file.commit()
        else:
            self._file.discard()


@dataclass(frozen=True)
class TaskStaging:
    """The staging folder of one task of one template run for one company."""

    root: ObjectStoragePath
    template: str
    run_id: str
    company: str
    task: str
    #: the run's folder under the template when it is not named after the run id
    #: (the DAGs name it after the data interval, `prospect_to_cash.operators.common.run_folder`)
    folder: str | None = None

    @property
    def base(self) -> ObjectStoragePath:
        folder = safe_segment(self.folder or self.run_id)
        return self.root / self.template / folder / self.company.lower() / self.task

    def path(self, area: str, name: str, suffix: str = ".parquet") -> ObjectStoragePath:
        if area not in AREAS:
            raise ValueError(f"unknown staging area {area!r}")
        return self.base / area / f"{name}{suffix}"

    def sibling(self, task: str) -> TaskStaging:
        """The staging of another task of the same run (a header task for its lines)."""
        return TaskStaging(self.root, self.template, self.run_id, self.company, task, self.folder)

    def exists(self, area: str, name: str, suffix: str = ".parquet") -> bool:
        return self.path(area, name, suffix).exists()

    def page_writer(self, area: str, name: str, columns: Sequence[str]) -> TextPageWriter:
        return TextPageWriter(self.path(area, name), columns)

    def write_frame(self, area: str, name: str, frame: pd.DataFrame, schema: pa.Schema | None = None) -> str:
        """Write a whole (typed) frame; returns the path as a string for XCom."""
        return self.write_table(area, name, pa.Table.from_pandas(frame, schema=schema, preserve_index=False))

    def write_table(self, area: str, name: str, table: pa.Table) -> str:
        """Write a whole Arrow table; returns the path as a string for XCom."""
        target = self.path(area, name)
        with atomic_write(target) as handle:
            pq.write_table(table, handle)
        return str(target)

    def read_frame(self, area: str, name: str) -> pd.DataFrame:
        target = self.path(area, name)
        with target.open("rb") as handle:
            return pq.read_table(handle).to_pandas()

    def read_frame_if_exists(self, area: str, name: str) -> pd.DataFrame | None:
        return self.read_frame(area, name) if self.exists(area, name) else None

    def write_json(self, area: str, name: str, data: Any) -> str:
        target = self.path(area, name, ".json")
        with atomic_write(target, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
        return str(target)

    def read_json(self, area: str, name: str) -> Any:
        with self.path(area, name, ".json").open("r") as handle:
            return json.load(handle)

    def list(self, area: str, prefix: str) -> list[ObjectStoragePath]:
        """Files of ``area`` whose name starts with ``prefix``, sorted by name."""
        folder = self.base / area
        if not folder.exists():
            return []
        return sorted((p for p in folder.iterdir() if p.name.startswith(prefix)), key=lambda p: p.name)

    def read_many(
        self, paths: Sequence[ObjectStoragePath], *, drop_torn: bool = False
    ) -> pd.DataFrame | None:
        """The files' rows, concatenated. With ``drop_torn`` a file that is not whole Parquet
        is logged and removed instead of failing every later attempt (for files whose loss
        costs only work, such as load journals)."""
        frames = []
        for item in paths:
            try:
                with item.open("rb") as handle:
                    frames.append(pq.read_table(handle).to_pandas())
            except (pa.ArrowInvalid, OSError) as exc:
                if not drop_torn:
                    raise
                log.warning("staging file %s is torn (%s); removed, its rows are checked again", item, exc)
                item.unlink()
        frames = [f for f in frames if len(f.columns)]
        return pd.concat(frames, ignore_index=True) if frames else None


class Spill:
    """Parquet files one transform writes for itself and reads back (its buckets), by name.

    The transform never holds a whole task: it parks rows here bucket by bucket and
    merges them back in order. Two homes share this interface: the task's staging
    ``work`` area (:class:`StagingSpill`, so it works on Azure storage as on a local
    disk) and memory (:class:`MemorySpill`, for plans built from frames in memory).
    """

    def __init__(self) -> None:
        self._appending: dict[str, tuple[pq.ParquetWriter, Any]] = {}
        self._written: set[str] = set()

    # what a home provides ----------------------------------------------------------------
    def _open_write(self, name: str) -> Any:
        raise NotImplementedError

    def _close_write(self, name: str, handle: Any) -> None:
        raise NotImplementedError

    def _open_read(self, name: str) -> Any:
        raise NotImplementedError

    def _remove(self, name: str) -> None:
        raise NotImplementedError

    # the interface -----------------------------------------------------------------------
    def append(self, name: str, table: pa.Table) -> None:
        """Add ``table`` to file ``name`` as one more row group (the file stays open until
        :meth:`finish`; appending after that starts the file anew)."""
        entry = self._appending.get(name)
        if entry is None:
            handle = self._open_write(name)
            entry = (pq.ParquetWriter(handle, table.schema), handle)
            self._appending[name] = entry
            self._written.add(name)
        entry[0].write_table(table, row_group_size=max(1, table.num_rows))

    def finish(self) -> None:
        """Close every file :meth:`append` opened, so they can be read."""
        appending, self._appending = self._appending, {}
        for name, (writer, handle) in appending.items():
            writer.close()
            self._close_write(name, handle)

    def write(self, name: str, table: pa.Table, row_group_size: int | None = None) -> None:
        """Write file ``name`` at once, in row groups of at most ``row_group_size`` rows."""
        handle = self._open_write(name)
        try:
            pq.write_table(table, handle, row_group_size=row_group_size)
        finally:
            self._close_write(name, handle)
        self._written.add(name)

    def exists(self, name: str) -> bool:
        return name in self._written

    def row_groups(self, name: str) -> Iterator[pa.Table]:
        """File ``name`` one row group at a time (nothing when it was never written)."""
        if name not in self._written:
            return
        with self.open(name) as parquet:
            for group in range(parquet.num_row_groups):
                yield parquet.read_row_group(group)

    def read(self, name: str) -> pa.Table | None:
        """The whole file ``name``, or None when nothing was written under that name."""
        if name not in self._written:
            return None
        with self.open(name) as parquet:
            return parquet.read()

    @contextmanager
    def open(self, name: str) -> Iterator[pq.ParquetFile]:
        """File ``name`` for reading row group by row group."""
        handle = self._open_read(name)
        try:
            yield pq.ParquetFile(handle)
        finally:
            handle.close()

    def clear(self) -> None:
        """Remove every file this spill wrote."""
        for _, (writer, handle) in list(self._appending.items()):
            with suppress(Exception):
                writer.close()
            with suppress(Exception):
                handle.close()
        self._appending = {}
        for name in sorted(self._written):
            self._remove(name)
        self._written = set()

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()


class MemorySpill(Spill):
    """A spill held in memory (Arrow buffers): for plans of frames already in memory."""

    def __init__(self) -> None:
        super().__init__()
        self._files: dict[str, pa.Buffer] = {}

    def _open_write(self, name: str) -> Any:
        return pa.BufferOutputStream()

    def _close_write(self, name: str, handle: Any) -> None:
        self._files[name] = handle.getvalue()

    def _open_read(self, name: str) -> Any:
        return pa.BufferReader(self._files[name])

    def _remove(self, name: str) -> None:
        self._files.pop(name, None)


class StagingSpill(Spill):
    """A spill in the task's staging ``work`` area: ``<task>/work/<name>.parquet``."""

    def __init__(self, staging: TaskStaging) -> None:
        super().__init__()
        self.staging = staging

    def _open_write(self, name: str) -> Any:
        target = self.staging.path("work", name)
        target.parent.mkdir(parents=True, exist_ok=True)
        return buffered(target.open("wb"))

    def _close_write(self, name: str, handle: Any) -> None:
        handle.close()

    def _open_read(self, name: str) -> Any:
        return self.staging.path("work", name).open("rb")

    def _remove(self, name: str) -> None:
        with suppress(FileNotFoundError):
            self.staging.path("work", name).unlink()

    def clear(self) -> None:
        """Remove this run's files, and whatever an interrupted earlier attempt left."""
        super().clear()
        for leftover in self.staging.list("work", ""):
            with suppress(FileNotFoundError):
                leftover.unlink()
        with suppress(OSError):
            (self.staging.base / "work").rmdir()
