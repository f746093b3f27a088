"""SQLite storage of one emulated service: one table per entity set.

Columns come from the catalog (`emulators.schema.model`): one per field, one per Dataverse
lookup (the GUID) plus `<column>__set` (target entity set) for polymorphic lookups, and a
hidden `__rowid` that keeps insertion order (stable paging, tie-breaker of every ORDER BY).
Values are stored in a form that compares and sorts correctly in SQL, so the OData layer
can translate `$filter`/`$orderby` straight into WHERE / ORDER BY:

    strings TEXT · Int32/Int64/F&O enums INTEGER · Decimal/Double REAL · Boolean INTEGER 0/1
    DateTimeOffset TEXT `YYYY-MM-DDTHH:MM:SSZ` (UTC) · Date TEXT · Guid lowercase TEXT

The server is one asyncio loop and the store has one connection. A transaction that spans
an `await` (a `$batch` change set) must use `async with store.atomic()`, which serialises
such transactions; writing from another task while one is open raises `StoreBusy` instead
of silently joining (and maybe rolling back with) somebody else's change set.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from emulators.schema.model import Catalog, EdmType, Table

if TYPE_CHECKING:
    from pathlib import Path

ROWID = "__rowid"
_SQL_TYPES = {
    EdmType.STRING: "TEXT",
    EdmType.INT32: "INTEGER",
    EdmType.INT64: "INTEGER",
    EdmType.DECIMAL: "REAL",
    EdmType.DOUBLE: "REAL",
    EdmType.BOOLEAN: "INTEGER",
    EdmType.DATETIMEOFFSET: "TEXT",
    EdmType.DATE: "TEXT",
    EdmType.GUID: "TEXT",
    EdmType.ENUM: "INTEGER",
}
_LOOKUP = "lookup"  # pseudo type of a lookup GUID column
_LOOKUP_SET = "lookup_set"


class StoreError(Exception):
    """Base class of the store's errors."""


class KeyExists(StoreError):
    """A row with the same primary key (or alternate key `key_name`) already exists."""

    def __init__(self, entity_set: str, key: Mapping[str, Any], key_name: str = "primary") -> None:
        self.entity_set = entity_set
        self.key = dict(key)
        self.key_name = key_name
        super().__init__(f"{entity_set}: a row with {key_name} key {self.key} already exists")


class NotFound(StoreError):
    """No row has the given key."""

    def __init__(self, entity_set: str, key: Mapping[str, Any]) -> None:
        self.entity_set = entity_set
        self.key = dict(key)
        super().__init__(f"{entity_set}: no row with key {self.key}")


class UnknownColumn(StoreError):
    """A row names a column the entity set does not have."""


class StoreBusy(StoreError):
    """Another task holds an open transaction on this store (use `atomic()`)."""


@dataclass(frozen=True)
class _BulkPlan:
    names: tuple[str, ...]  # the row keys this plan was made for
    columns: tuple[str, ...]  # inserted columns (names, plus a generated key)
    converters: list[tuple[int, Callable[[Any], Any]]]
    sql: str
    auto_key_position: int | None


@dataclass(frozen=True)
class _TableInfo:
    table: Table
    columns: tuple[str, ...]  # storage order, without __rowid
    types: dict[str, Any]  # column -> EdmType or lookup pseudo type
    booleans: frozenset[str]


def quote(identifier: str) -> str:
    """SQL-quote a column or table name (entity sets and F&O fields are mixed case)."""
    return '"' + identifier.replace('"', '""') + '"'


def format_datetime(value: datetime) -> str:
    """The stored DateTimeOffset form: UTC, second precision, `Z` suffix."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """SQLite-backed rows of every entity set of one service catalog.

    :param path: database file (created with the schema on first use), or ``":memory:"``.
    :param catalog: the service's tables; their fields, lookups and keys define the columns.
    """

    def __init__(self, path: Path | str, catalog: Catalog) -> None:
        self.path = str(path)
        self.catalog = catalog
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA temp_store=MEMORY")
        self._conn.execute("PRAGMA cache_size=-65536")
        self._tables: dict[str, _TableInfo] = {}
        self._depth = 0
        self._owner: object | None = None
        self._lock: asyncio.Lock | None = None
        for table in catalog.tables.values():
            self._tables[table.entity_set] = self._describe(table)
        self._create_schema()

    # -- schema ------------------------------------------------------------------------

    def _describe(self, table: Table) -> _TableInfo:
        types: dict[str, Any] = {f.name: f.type for f in table.fields}
        for lookup in table.lookups:
            # Catalogs may also declare the lookup column as a GUID field; it is one column.
            types.setdefault(lookup.column, _LOOKUP)
            if len(set(lookup.targets.values())) > 1:
                types[f"{lookup.column}__set"] = _LOOKUP_SET
        booleans = frozenset(name for name, kind in types.items() if kind == EdmType.BOOLEAN)
        return _TableInfo(table=table, columns=tuple(types), types=types, booleans=booleans)

    def _create_schema(self) -> None:
        with self.transaction():
            for info in self._tables.values():
                name = info.table.entity_set
                existing = {row["name"] for row in self._conn.execute(f"PRAGMA table_info({quote(name)})")}
                if not existing:
                    cols = ", ".join(f"{quote(c)} {self._sql_type(info.types[c])}" for c in info.columns)
                    self._conn.execute(
                        f"CREATE TABLE {quote(name)} ({quote(ROWID)} INTEGER PRIMARY KEY AUTOINCREMENT"
                        + (f", {cols}" if cols else "")
                        + ")"
                    )
                else:  # catalog grew since the file was made: add the new columns
                    for column in info.columns:
                        if column not in existing:
                            self._conn.execute(
                                f"ALTER TABLE {quote(name)} ADD COLUMN {quote(column)} "
                                f"{self._sql_type(info.types[column])}"
                            )
                self._create_indexes(info)

    def _create_indexes(self, info: _TableInfo) -> None:
        table = info.table
        base = re.sub(r"\W", "_", table.entity_set)
        if table.key:
            self._conn.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {quote(f'ux_{base}_key')} ON {quote(table.entity_set)} "
                f"({', '.join(quote(c) for c in table.key)})"
            )
        # Dataverse alternate keys are uniqueness constraints; F&O secondary indexes are not.
        unique = "UNIQUE " if self.catalog.service == "dataverse" else ""
        for alt in table.alternate_keys:
            index = f"ix_{base}_{re.sub(r'[^0-9A-Za-z_]', '_', alt.name)}"
            self._conn.execute(
                f"CREATE {unique}INDEX IF NOT EXISTS {quote(index)} "
                f"ON {quote(table.entity_set)} ({', '.join(quote(c) for c in alt.columns)})"
            )
        for lookup in table.lookups:
            self._conn.execute(
                f"CREATE INDEX IF NOT EXISTS {quote(f'ix_{base}_{lookup.column}')} "
                f"ON {quote(table.entity_set)} ({quote(lookup.column)})"
            )

    @staticmethod
    def _sql_type(kind: Any) -> str:
        return _SQL_TYPES.get(kind, "TEXT")

    def table(self, entity_set: str) -> Table:
        return self._info(entity_set).table

    def columns(self, entity_set: str) -> tuple[str, ...]:
        """Storage columns of an entity set, in storage order (without `__rowid`)."""
        return self._info(entity_set).columns

    def _info(self, entity_set: str) -> _TableInfo:
        try:
            return self._tables[entity_set]
        except KeyError:
            raise StoreError(f"unknown entity set {entity_set!r}") from None

    # -- values ------------------------------------------------------------------------

    def to_storage(self, entity_set: str, column: str, value: Any) -> Any:
        """Convert a Python or wire value to the stored form (also for SQL parameters)."""
        info = self._info(entity_set)
        if column == ROWID:
            return value
        try:
            kind = info.types[column]
        except KeyError:
            raise UnknownColumn(f"{entity_set} has no column {column!r}") from None
        return _to_storage(kind, value)

    def _row_out(self, info: _TableInfo, row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        for column in info.booleans:
            if out.get(column) is not None:
                out[column] = bool(out[column])
        return out

    def _key(self, info: _TableInfo, key: Any) -> dict[str, Any]:
        names = info.table.key
        if isinstance(key, Mapping):
            if set(key) != set(names):
                raise StoreError(
                    f"{info.table.entity_set}: key must give exactly {list(names)}, got {list(key)}"
                )
            values = [key[n] for n in names]
        elif isinstance(key, (tuple, list)):
            if len(key) != len(names):
                raise StoreError(f"{info.table.entity_set}: key must have {len(names)} parts")
            values = list(key)
        else:
            if len(names) != 1:
                raise StoreError(f"{info.table.entity_set}: composite key {list(names)} needs all parts")
            values = [key]
        return {n: _to_storage(info.types[n], v) for n, v in zip(names, values, strict=True)}

    @staticmethod
    def _where(columns: Mapping[str, Any]) -> tuple[str, list[Any]]:
        parts, params = [], []
        for column, value in columns.items():
            if value is None:
                parts.append(f"{quote(column)} IS NULL")
            else:
                parts.append(f"{quote(column)} = ?")
                params.append(value)
        return " AND ".join(parts) or "1=1", params

    # -- transactions ------------------------------------------------------------------

    @staticmethod
    def _current_task() -> object | None:
        try:
            return asyncio.current_task()
        except RuntimeError:  # no running loop: plain synchronous use (seeding, tests)
            return None

    def _check_writer(self) -> None:
        if self._depth and self._owner is not self._current_task():
            raise StoreBusy("another request holds an open transaction; use `async with store.atomic()`")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Atomic unit; nested calls become savepoints that roll back on their own.

        Never `await` inside it (use `atomic()` for that).
        """
        self._check_writer()
        depth = self._depth
        savepoint = f"sp{depth}"
        if depth == 0:
            self._conn.execute("BEGIN IMMEDIATE")
            self._owner = self._current_task()
        else:
            self._conn.execute(f"SAVEPOINT {savepoint}")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if depth == 0:
                self._owner = None
                self._conn.execute("ROLLBACK")
            else:
                self._conn.execute(f"ROLLBACK TO {savepoint}")
                self._conn.execute(f"RELEASE {savepoint}")
            raise
        else:
            self._depth -= 1
            if depth == 0:
                self._owner = None
                self._conn.execute("COMMIT")
            else:
                self._conn.execute(f"RELEASE {savepoint}")

    @contextlib.asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """Transaction that may span awaits; concurrent ones wait for each other.

        Nested use inside the same task becomes a savepoint.
        """
        if self._depth and self._owner is self._current_task():
            with self.transaction():
                yield
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            with self.transaction():
                yield

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    # -- writes ------------------------------------------------------------------------

    def _prepare(self, info: _TableInfo, row: Mapping[str, Any]) -> dict[str, Any]:
        unknown = [c for c in row if c not in info.types]
        if unknown:
            raise UnknownColumn(f"{info.table.entity_set} has no column(s) {unknown}")
        prepared = {c: _to_storage(info.types[c], v) for c, v in row.items()}
        key = info.table.key
        if len(key) == 1 and info.types.get(key[0]) == EdmType.GUID and prepared.get(key[0]) is None:
            prepared[key[0]] = str(uuid.uuid4())
        return prepared

    def insert(self, entity_set: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Insert one row; returns it with every column (missing ones None).

        A single GUID primary key left empty is generated. Raises `KeyExists`.
        """
        self._check_writer()
        info = self._info(entity_set)
        prepared = self._prepare(info, row)
        cols = list(prepared)
        sql = (
            f"INSERT INTO {quote(entity_set)} ({', '.join(quote(c) for c in cols)}) "
            f"VALUES ({', '.join('?' for _ in cols)})"
        )
        try:
            self._conn.execute(sql, [prepared[c] for c in cols])
        except sqlite3.IntegrityError as exc:
            raise self._conflict(info, prepared) from exc
        full = dict.fromkeys(info.columns)
        full.update(prepared)
        for column in info.booleans:
            if full[column] is not None:
                full[column] = bool(full[column])
        return full

    def _conflict(
        self, info: _TableInfo, prepared: Mapping[str, Any], exclude_rowid: int | None = None
    ) -> KeyExists:
        """Which key of `prepared` is taken by an existing row (other than `exclude_rowid`)."""
        table = info.table
        for name, columns in self._unique_keys(info):
            values = {c: prepared.get(c) for c in columns}
            if any(v is None for v in values.values()):
                continue
            where, params = self._where(values)
            if exclude_rowid is not None:
                where += f" AND {quote(ROWID)} != ?"
                params.append(exclude_rowid)
            sql = f"SELECT 1 FROM {quote(table.entity_set)} WHERE {where}"
            if self._conn.execute(sql, params).fetchone():
                return KeyExists(table.entity_set, values, name)
        return KeyExists(table.entity_set, {c: prepared.get(c) for c in table.key})

    def _unique_keys(self, info: _TableInfo) -> list[tuple[str, tuple[str, ...]]]:
        keys = [("primary", info.table.key)] if info.table.key else []
        if self.catalog.service == "dataverse":
            keys += [(a.name, a.columns) for a in info.table.alternate_keys]
        return keys

    def insert_many(self, entity_set: str, rows: Iterable[Mapping[str, Any]], chunk_size: int = 5000) -> int:
        """Bulk insert (seeding a million rows): `executemany` in chunks, one transaction.

        Consecutive rows naming the same columns share one statement, so only the columns
        the generator fills are bound. Inside another transaction it becomes a savepoint;
        a duplicate key raises `KeyExists` and nothing of this call is inserted.
        """
        self._check_writer()
        info = self._info(entity_set)
        key = info.table.key
        auto_key = key[0] if len(key) == 1 and info.types.get(key[0]) == EdmType.GUID else None
        total = 0
        with self.transaction():
            plan: _BulkPlan | None = None
            chunk: list[list[Any]] = []
            for row in rows:
                names = tuple(row)
                if plan is None or names != plan.names:
                    if chunk and plan is not None:
                        total += self._execute_many(info, plan, chunk)
                        chunk = []
                    plan = self._bulk_plan(info, names, auto_key)
                values = [row[name] for name in names]
                for position, convert in plan.converters:
                    if values[position] is not None:
                        values[position] = convert(values[position])
                if plan.auto_key_position is not None:
                    if plan.auto_key_position == len(values):
                        values.append(None)
                    if values[plan.auto_key_position] is None:
                        values[plan.auto_key_position] = str(uuid.uuid4())
                chunk.append(values)
                if len(chunk) >= chunk_size:
                    total += self._execute_many(info, plan, chunk)
                    chunk = []
            if chunk and plan is not None:
                total += self._execute_many(info, plan, chunk)
        return total

    def _bulk_plan(self, info: _TableInfo, names: tuple[str, ...], auto_key: str | None) -> _BulkPlan:
        unknown = [c for c in names if c not in info.types]
        if unknown:
            raise UnknownColumn(f"{info.table.entity_set} has no column(s) {unknown}")
        columns = list(names)
        auto_position = None
        if auto_key is not None:
            if auto_key not in names:
                columns.append(auto_key)
            auto_position = columns.index(auto_key)
        converters = [
            (i, convert) for i, name in enumerate(names) if (convert := _CONVERTERS.get(info.types[name]))
        ]
        sql = (
            f"INSERT INTO {quote(info.table.entity_set)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        return _BulkPlan(
            names=names,
            columns=tuple(columns),
            converters=converters,
            sql=sql,
            auto_key_position=auto_position,
        )

    def _execute_many(self, info: _TableInfo, plan: _BulkPlan, chunk: list[list[Any]]) -> int:
        self._conn.execute("SAVEPOINT bulk_chunk")
        try:
            self._conn.executemany(plan.sql, chunk)
        except sqlite3.IntegrityError as exc:
            self._conn.execute("ROLLBACK TO bulk_chunk")
            self._conn.execute("RELEASE bulk_chunk")
            raise self._bulk_conflict(info, plan, chunk) from exc
        self._conn.execute("RELEASE bulk_chunk")
        return len(chunk)

    def _bulk_conflict(self, info: _TableInfo, plan: _BulkPlan, chunk: list[list[Any]]) -> KeyExists:
        """Name the first row of a failed chunk that repeats a key (rare path, for the message)."""
        seen: dict[str, set[tuple[Any, ...]]] = {}
        for values in chunk:
            prepared = dict(zip(plan.columns, values, strict=True))
            for name, columns in self._unique_keys(info):
                key = tuple(prepared.get(c) for c in columns)
                if any(v is None for v in key):
                    continue
                if key in seen.setdefault(name, set()):
                    return KeyExists(info.table.entity_set, dict(zip(columns, key, strict=True)), name)
                seen[name].add(key)
            conflict = self._conflict(info, prepared)
            if conflict.key_name != "primary" or self.get(info.table.entity_set, conflict.key) is not None:
                return conflict
        return KeyExists(info.table.entity_set, {}, "unknown")

    def update(self, entity_set: str, key: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change columns of an existing row; returns the updated row. Raises `NotFound`."""
        self._check_writer()
        info = self._info(entity_set)
        key_values = self._key(info, key)
        prepared = self._prepare_changes(info, changes)
        if prepared:
            where, params = self._where(key_values)
            sets = ", ".join(f"{quote(c)} = ?" for c in prepared)
            try:
                cursor = self._conn.execute(
                    f"UPDATE {quote(entity_set)} SET {sets} WHERE {where}", [*prepared.values(), *params]
                )
            except sqlite3.IntegrityError as exc:
                current = self.get(entity_set, key, columns=[*info.columns, ROWID]) or {}
                rowid = current.pop(ROWID, None)
                raise self._conflict(info, {**current, **prepared}, exclude_rowid=rowid) from exc
            if cursor.rowcount == 0:
                raise NotFound(entity_set, key_values)
        row = self.get(entity_set, key)
        if row is None:
            raise NotFound(entity_set, key_values)
        return row

    def _prepare_changes(self, info: _TableInfo, changes: Mapping[str, Any]) -> dict[str, Any]:
        unknown = [c for c in changes if c not in info.types]
        if unknown:
            raise UnknownColumn(f"{info.table.entity_set} has no column(s) {unknown}")
        return {c: _to_storage(info.types[c], v) for c, v in changes.items()}

    def delete(self, entity_set: str, key: Any) -> None:
        """Delete one row. Raises `NotFound`."""
        self._check_writer()
        info = self._info(entity_set)
        key_values = self._key(info, key)
        where, params = self._where(key_values)
        cursor = self._conn.execute(f"DELETE FROM {quote(entity_set)} WHERE {where}", params)
        if cursor.rowcount == 0:
            raise NotFound(entity_set, key_values)

    def reset(self, entity_set: str | None = None) -> None:
        """Delete every row (of one entity set or all), keeping the schema."""
        self._check_writer()
        names = [entity_set] if entity_set else list(self._tables)
        with self.transaction():
            for name in names:
                self._info(name)
                self._conn.execute(f"DELETE FROM {quote(name)}")
                self._conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (name,))

    # -- reads -------------------------------------------------------------------------

    def get(self, entity_set: str, key: Any, columns: Sequence[str] | None = None) -> dict[str, Any] | None:
        """The row with this primary key (scalar, tuple in key order, or mapping), or None."""
        info = self._info(entity_set)
        where, params = self._where(self._key(info, key))
        rows = self._select(info, where, params, columns=columns, limit=1)
        return rows[0] if rows else None

    def find_by(
        self, entity_set: str, columns: Mapping[str, Any], limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Rows whose columns equal the given values (None matches NULL), insertion order."""
        info = self._info(entity_set)
        converted = {}
        for column, value in columns.items():
            if column not in info.types:
                raise UnknownColumn(f"{entity_set} has no column {column!r}")
            converted[column] = _to_storage(info.types[column], value)
        where, params = self._where(converted)
        return self._select(info, where, params, limit=limit)

    def query(
        self,
        entity_set: str,
        where_sql: str = "",
        params: Sequence[Any] = (),
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        columns: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Rows matching a WHERE fragment (with `?` params), ordered, paged, projected.

        `order_by` is SQL (`'"name" DESC'`) or a list of such terms; `__rowid` is always
        the last tie-breaker so pages are stable. `columns` may include `__rowid`.
        """
        info = self._info(entity_set)
        return self._select(info, where_sql or "1=1", list(params), order_by, limit, offset, columns)

    def count(self, entity_set: str, where_sql: str = "", params: Sequence[Any] = ()) -> int:
        self._info(entity_set)
        sql = f"SELECT COUNT(*) FROM {quote(entity_set)} WHERE {where_sql or '1=1'}"
        return int(self._conn.execute(sql, list(params)).fetchone()[0])

    def counts(self) -> dict[str, int]:
        """Row count of every entity set (admin endpoint, demo, tests)."""
        return {name: self.count(name) for name in self._tables}

    def _select(
        self,
        info: _TableInfo,
        where: str,
        params: Sequence[Any],
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        columns: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        if columns is None:
            projection = ", ".join(quote(c) for c in info.columns)
        else:
            bad = [c for c in columns if c != ROWID and c not in info.types]
            if bad:
                raise UnknownColumn(f"{info.table.entity_set} has no column(s) {bad}")
            projection = ", ".join(quote(c) for c in columns) or quote(ROWID)
        terms = [order_by] if isinstance(order_by, str) else list(order_by or [])
        terms.append(quote(ROWID))
        sql = (
            f"SELECT {projection} FROM {quote(info.table.entity_set)} WHERE {where} "
            f"ORDER BY {', '.join(terms)}"
        )
        args = list(params)
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            args += [-1 if limit is None else int(limit), int(offset)]
        return [self._row_out(info, row) for row in self._conn.execute(sql, args)]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Escape hatch for read-only SQL the typed methods cannot express (aggregates)."""
        return self._conn.execute(sql, list(params)).fetchall()

    def execute_write(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Escape hatch for a service's own bookkeeping tables (change tracking's deletions);
        joins the caller's transaction like the typed writes do."""
        self._check_writer()
        self._conn.execute(sql, list(params))

    def close(self) -> None:
        self._conn.close()


def _to_int(value: Any) -> Any:
    return int(value) if isinstance(value, (bool, Decimal, float)) else value


def _to_real(value: Any) -> Any:
    return float(value) if isinstance(value, (Decimal, int)) and not isinstance(value, bool) else value


def _to_bool(value: Any) -> Any:
    if isinstance(value, str):
        return 1 if value.lower() == "true" else 0
    return 1 if value else 0


def _to_datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, str):
        if len(value) == 20 and value.endswith("Z") and value[10] == "T":
            return value  # already the stored form
        try:
            return format_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value  # left for validation to reject
    return value


def _to_date(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat() if isinstance(value, date) else value


def _to_guid(value: Any) -> Any:
    return str(value).lower() if isinstance(value, (uuid.UUID, str)) else value


# Conversion to the stored form per column kind; strings need none.
_CONVERTERS: dict[Any, Callable[[Any], Any]] = {
    EdmType.INT32: _to_int,
    EdmType.INT64: _to_int,
    EdmType.ENUM: _to_int,
    EdmType.DECIMAL: _to_real,
    EdmType.DOUBLE: _to_real,
    EdmType.BOOLEAN: _to_bool,
    EdmType.DATETIMEOFFSET: _to_datetime,
    EdmType.DATE: _to_date,
    EdmType.GUID: _to_guid,
    _LOOKUP: _to_guid,
}


def _to_storage(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    convert = _CONVERTERS.get(kind)
    return convert(value) if convert is not None else value
