"""The only place that writes staging files.

Layout (docs/design.md): ``<root>/<template>/<run_id>/<company>/<task>/<area>/<name>.parquet``
with areas ``source`` (rows read from the source system, plus source-side reference
tables), ``target`` (snapshot of the target, plus target-side reference tables),
``plan`` (transform output, load journal, per-row outcome) and ``deadletter``.

The root is an :class:`airflow.sdk.ObjectStoragePath`: a local folder by default
(``file://$AIRFLOW_HOME/p2c-staging``), Azure storage in production
(``abfs://container@account.dfs.core.windows.net/p2c``), set by ``P2C_STAGING_ROOT``.

Raw reads (source, target) are staged as text columns in one canonical spelling
(``true``/``false``, ``3.33``, ISO dates). A column's type is whatever the mapping
declares for it, applied in transform; staging the text keeps pages with differently
inferred pandas dtypes (all-null pages, ints that became floats) in one Parquet schema
so pages can stream into one file through a single ``ParquetWriter``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from airflow.sdk import ObjectStoragePath

from prospect_to_cash.sync.values import is_blank, py

if TYPE_CHECKING:
    from collections.abc import Sequence

STAGING_ROOT_VARIABLE = "P2C_STAGING_ROOT"
AREAS = ("source", "target", "plan", "deadletter")


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


class TextPageWriter:
    """Streams DataFrame pages into one Parquet file whose columns are all text."""

    def __init__(self, path: ObjectStoragePath, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = list(dict.fromkeys(columns))
        self.schema = pa.schema([(name, pa.string()) for name in self.columns])
        self.rows = 0
        self._handle: Any = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> TextPageWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("wb")
        self._writer = pq.ParquetWriter(self._handle, self.schema)
        return self

    def write(self, page: pd.DataFrame) -> None:
        assert self._writer is not None, "use TextPageWriter as a context manager"
        arrays = []
        for name in self.columns:
            values = page[name].tolist() if name in page.columns else [None] * len(page)
            arrays.append(pa.array([to_text(v) for v in values], type=pa.string()))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += len(page)

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._handle is not None:
            self._handle.close()


@dataclass(frozen=True)
class TaskStaging:
    """The staging folder of one task of one template run for one company."""

    root: ObjectStoragePath
    template: str
    run_id: str
    company: str
    task: str

    @property
    def base(self) -> ObjectStoragePath:
        return self.root / self.template / safe_segment(self.run_id) / self.company.lower() / self.task

    def path(self, area: str, name: str, suffix: str = ".parquet") -> ObjectStoragePath:
        if area not in AREAS:
            raise ValueError(f"unknown staging area {area!r}")
        return self.base / area / f"{name}{suffix}"

    def sibling(self, task: str) -> TaskStaging:
        """The staging of another task of the same run (a header task for its lines)."""
        return TaskStaging(self.root, self.template, self.run_id, self.company, task)

    def exists(self, area: str, name: str, suffix: str = ".parquet") -> bool:
        return self.path(area, name, suffix).exists()

    def page_writer(self, area: str, name: str, columns: Sequence[str]) -> TextPageWriter:
        return TextPageWriter(self.path(area, name), columns)

    def write_frame(self, area: str, name: str, frame: pd.DataFrame, schema: pa.Schema | None = None) -> str:
        """Write a whole (typed) frame; returns the path as a string for XCom."""
        target = self.path(area, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        with target.open("wb") as handle:
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
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w") as handle:
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

    def read_many(self, paths: Sequence[ObjectStoragePath]) -> pd.DataFrame | None:
        frames = []
        for item in paths:
            with item.open("rb") as handle:
                frames.append(pq.read_table(handle).to_pandas())
        frames = [f for f in frames if len(f.columns)]
        return pd.concat(frames, ignore_index=True) if frames else None


def write_run_summary(root: ObjectStoragePath, template: str, run_id: str, company: str, data: Any) -> str:
    """``<root>/<template>/<run_id>/<company>/summary.json``: the run's counts per task."""
    target = root / template / safe_segment(run_id) / company.lower() / "summary.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
    return str(target)
