"""An in-memory Dataverse / F&O stand-in for engine tests, as strict as the emulators.

Every table is an entity set of the emulators' schema catalogs (``emulators.schema``): a
table the catalog lacks, or a key that differs from the catalog's, is a test bug and
raises at once. Reads and writes are checked with the emulators' own code, and refused
with the emulators' own errors, rendered the way each service renders them and parsed
the way the hooks parse them (``DynamicsAPIError`` for a read, ``WriteOutcome`` for a
write), so a mapping typo fails at unit level exactly as it would against the service:

* ``$select`` and ``$filter`` go through the emulators' resolver and ``compile_filter``:
  an unknown property, an enum compared with ``gt``/``lt`` or an unqualified F&O enum
  literal is a 400 with the service's wording; only then is the filter evaluated here.
* write bodies go through the emulators' payload checks (Dataverse ``check_body``, F&O's
  ``_check_payload``): unknown or misspelled properties, wrong types, read-only columns,
  missing required F&O fields.
* Dataverse: a ``statuscode`` that is not one of the ``statecode``'s status reasons is
  refused (0x80048408), a ``statecode`` alone gets its DefaultStatus
  (``emulators.dataverse.states``).
* Dataverse: a closed document (an order in states 1-4, an invoice in 2-3, a quote in 1-3)
  refuses every write but SetState and Assign, and so do the lines under it
  (CannotUpdateBecauseItIsReadOnly 0x8004022e, ``emulators.dataverse.states.check_editable``).
* Dataverse: create of an existing id → 412 "A record with matching key values already
  exists."; update of a missing id → 404; ``nav@odata.bind`` must name an existing row of
  the navigation's target set, and is read back as ``_<column>_value``.
* F&O: create of an existing key → 500 "The record already exists."; PATCH of a missing
  key → 400 "No resources were found when selecting for update."

Rows are kept in their wire form (Dataverse booleans and ``_<lookup>_value`` columns, F&O
enum member names), so a test can read and seed ``MemoryTable.rows`` directly.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from emulators.dataverse import errors as dataverse_errors
from emulators.dataverse.records import check_body, property_map
from emulators.dataverse.states import check_editable, settle_state
from emulators.fno import errors as fno_errors
from emulators.fno.entities import EntityView, build_views
from emulators.fno.service import FnoService
from emulators.odata.errors import ODataError
from emulators.odata.filter_sql import ColumnRef, compile_filter
from emulators.odata.query import compile_select
from emulators.schema.dataverse import CATALOG as DATAVERSE_CATALOG
from emulators.schema.fno import CATALOG as FNO_CATALOG
from prospect_to_cash.hooks._writes import json_body
from prospect_to_cash.hooks.errors import DynamicsAPIError, parse_error
from prospect_to_cash.hooks.odata import key_filters, key_row_filters
from prospect_to_cash.hooks.operations import WriteKind, WriteOperation, WriteOutcome

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from emulators.schema.model import Catalog, Table

CATALOGS: dict[str, Catalog] = {"dataverse": DATAVERSE_CATALOG, "fno": FNO_CATALOG}
FNO_VIEWS: dict[str, EntityView] = build_views(FNO_CATALOG)


@dataclass
class MemoryTable:
    """The rows of one entity set (wire form); ``key`` must be the catalog's primary key."""

    key: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    # what the service fills in on create (F&O's party number sequence for customers)
    on_create: Callable[[dict[str, Any]], None] | None = None


class _FnoChecks(FnoService):
    """F&O's own checks (property resolution, body checks, the duplicate-key error) without
    a store behind them: they read only the catalog."""

    def __init__(self) -> None:
        self.catalog = FNO_CATALOG

    def resolver(self, entity_set: str) -> Callable[[str], ColumnRef]:
        """F&O's ``$select``/``$filter`` property resolution (unknown names are 400s)."""
        return self._resolver(FNO_VIEWS[entity_set])  # type: ignore[no-any-return]

    def infolog(self, entity_set: str, data: dict[str, Any], *, for_create: bool) -> list[str]:
        """ODL's payload errors raise; F&O's own Infolog lines (mandatory fields...) return."""
        return self._check_payload(FNO_VIEWS[entity_set], data, for_create=for_create)

    def already_exists(self, entity_set: str, row: dict[str, Any]) -> ODataError:
        """F&O's 500 for a create of an existing key."""
        return self._already_exists(FNO_VIEWS[entity_set], row)


_FNO_CHECK = _FnoChecks()


def storage_names(schema: Table, row: dict[str, Any]) -> dict[str, Any]:
    """A wire-form Dataverse row under the emulator's storage names (``_x_value`` -> ``x``
    for the table's lookups), as the emulator's state rules read rows."""
    lookups = {f"_{lookup.column}_value": lookup.column for lookup in schema.lookups}
    return {lookups.get(name, name): value for name, value in row.items()}


@dataclass
class _StoredRows:
    """The memory tables as `emulators.dataverse.states.StoredRows`: rows by primary key,
    under storage names."""

    catalog: Catalog
    tables: dict[str, MemoryTable]

    def get(self, entity_set: str, key: Any, columns: Sequence[str] | None = None) -> dict[str, Any] | None:
        schema = self.catalog.tables[entity_set]
        table = self.tables.get(entity_set)
        wanted = str(key).lower()
        for row in table.rows if table is not None else ():
            if str(row.get(schema.key[0], "")).lower() == wanted:
                stored = storage_names(schema, row)
                return stored if columns is None else {c: stored.get(c) for c in columns}
        return None


def service_error(system: str, error: ODataError) -> tuple[int, str | None, str]:
    """(status, code, message) as a hook reads the error body this service sends."""
    if system == "fno":
        body = fno_errors.error_body(error)
    else:
        body = {"error": {"code": error.code, "message": error.message}}
    parsed = parse_error(error.status, json.dumps(body), "application/json")
    return parsed.status, parsed.code, parsed.message


_TOKEN = re.compile(
    r"\s*(?:(?P<lparen>\()|(?P<rparen>\))|(?P<enum>[A-Za-z_][\w.]*'[^']*')|(?P<string>'(?:[^']|'')*')"
    r"|(?P<date>\d{4}-\d{2}-\d{2}T[\d:.]+Z)|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<number>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][\w]*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    position, found = 0, []
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"MemoryService cannot parse filter near {text[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


class _Filter:
    """Evaluates a ``$filter`` the emulators' compiler has already accepted.

    The subset the mappings use: ``eq ne gt ge lt le``, ``and``, ``or``, ``not``,
    parentheses, strings (F&O ``*`` wildcards in ``eq``/``ne``), numbers, booleans,
    ``null``, GUIDs, ISO dates and qualified F&O enum literals. Anything else raises, so
    a test can never pass on an ignored filter.
    """

    def __init__(self, text: str, *, wildcards: bool) -> None:
        self.wildcards = wildcards
        self.tokens = _tokens(text)
        self.position = 0
        self.tree = self._or()
        if self.position != len(self.tokens):
            raise ValueError(f"trailing tokens in filter {text!r}")

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _next(self) -> tuple[str, str]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == ("word", "or"):
            self._next()
            left = ("or", left, self._and())
        return left

    def _and(self) -> Any:
        left = self._not()
        while self._peek() == ("word", "and"):
            self._next()
            left = ("and", left, self._not())
        return left

    def _not(self) -> Any:
        if self._peek() == ("word", "not"):
            self._next()
            return ("not", self._not())
        return self._comparison()

    def _comparison(self) -> Any:
        if self._peek() == ("lparen", "("):
            self._next()
            inner = self._or()
            assert self._next() == ("rparen", ")")
            return inner
        kind, name = self._next()
        if kind != "word":
            raise ValueError(f"expected a property name, got {name!r}")
        _, operator = self._next()
        if operator not in ("eq", "ne", "gt", "ge", "lt", "le"):
            raise ValueError(f"unsupported operator {operator!r}")
        return ("cmp", operator, name, self._literal())

    def _literal(self) -> Any:
        kind, text = self._next()
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "enum":
            return text.split("'", 1)[1][:-1]
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind in ("date", "guid"):
            return text.lower() if kind == "guid" else text
        if kind == "word" and text in ("true", "false"):
            return text == "true"
        if kind == "word" and text == "null":
            return None
        raise ValueError(f"unsupported literal {text!r}")

    def matches(self, row: dict[str, Any]) -> bool:
        return bool(self._eval(self.tree, row))

    def _eval(self, node: Any, row: dict[str, Any]) -> bool:
        if node[0] == "or":
            return self._eval(node[1], row) or self._eval(node[2], row)
        if node[0] == "and":
            return self._eval(node[1], row) and self._eval(node[2], row)
        if node[0] == "not":
            return not self._eval(node[1], row)
        _, operator, name, literal = node
        value = row.get(name)  # a declared property the row omits is null, as on the service
        if isinstance(value, str) and isinstance(literal, str):
            value, literal = value.lower(), literal.lower()
            if self.wildcards and "*" in literal and operator in ("eq", "ne"):
                pattern = ".*".join(re.escape(part) for part in literal.split("*"))
                return (re.fullmatch(pattern, value, re.DOTALL) is not None) == (operator == "eq")
        if operator == "eq":
            return value == literal
        if operator == "ne":
            return value != literal
        if value is None or literal is None:
            return False
        return {"gt": value > literal, "ge": value >= literal, "lt": value < literal, "le": value <= literal}[
            operator
        ]


class MemoryService:
    """One service (``dataverse`` or ``fno``) with ``iter_pages`` and ``write``, like its hook."""

    def __init__(
        self,
        system: str,
        tables: dict[str, MemoryTable],
        *,
        fail_after_units: int | None = None,
        lose_answer_of_unit: int | None = None,
        unit_size: int = 1000,
        page_size: int = 2,
        outage: dict[str, int] | None = None,
    ) -> None:
        """``write`` sends operations in units of ``unit_size`` (a hook's change sets).

        :param tables: rows by entity set; every set must be in the emulators' catalog of
            ``system``, with the catalog's key.
        :param fail_after_units: units after this many raise before writing (a worker
            killed between units).
        :param lose_answer_of_unit: that unit (1-based) is applied, then the stream raises
            (the service did the work but the answer never arrived).
        :param outage: writes of these refs answer this HTTP status (what a hook returns
            once its retries are spent, e.g. 503); a test empties it when the service heals."""
        self.system = system
        self.catalog = CATALOGS[system]
        for entity_set, table in tables.items():
            schema = self.catalog.tables.get(entity_set)
            if schema is None:
                raise ValueError(f"{entity_set!r} is not an entity set of the {system} catalog")
            if tuple(table.key) != schema.key:
                raise ValueError(f"{entity_set} has the key {schema.key} in the catalog, not {table.key}")
        self.tables = tables
        self.writes: list[WriteOperation] = []
        self.units = 0
        self.unit_size = unit_size
        self.fail_after_units = fail_after_units
        self.lose_answer_of_unit = lose_answer_of_unit
        self.page_size = page_size  # small by default so tests exercise paging
        self.reads: list[tuple[str, str | None]] = []
        self.keys_per_read = 3  # small, so tests exercise several chunks
        self.outage = outage if outage is not None else {}

    def _schema(self, entity_set: str) -> Table:
        if entity_set not in self.tables:
            raise self._api_error(
                fno_errors.RouteNotFound(entity_set)
                if self.system == "fno"
                else dataverse_errors.segment_not_found(entity_set)
            )
        return self.catalog.tables[entity_set]

    def _api_error(self, error: ODataError) -> DynamicsAPIError:
        return DynamicsAPIError(*service_error(self.system, error))

    # reading ------------------------------------------------------------------------------
    def _resolver(self, table: Table) -> Callable[[str], ColumnRef]:
        """The emulator's property resolution: wire names only (``_x_value`` for lookups)."""
        if self.system == "fno":
            return _FNO_CHECK.resolver(table.entity_set)
        props = property_map(table)

        def resolve_dataverse(path: str) -> ColumnRef:
            prop = props.get(path)
            if prop is None:
                raise dataverse_errors.unknown_property(table.logical_name, path)
            return ColumnRef(path, prop.field, prop.kind)

        return resolve_dataverse

    def change_tracking_enabled(self, entity_set: str) -> bool:
        """No table of the memory service tracks changes: Sales sources read by window."""
        return False

    def iter_pages(
        self,
        entity_set: str,
        *,
        select: list[str],
        filter: str | None = None,
        orderby: str | None = None,
        companies: list[str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[pd.DataFrame]:
        schema = self._schema(entity_set)
        table = self.tables[entity_set]
        self.reads.append((entity_set, filter))
        resolver = self._resolver(schema)
        try:
            compile_select(select, resolver)
            if filter:
                compile_filter(filter, resolver, dialect=self.system, enums=self.catalog.enums)  # type: ignore[arg-type]
        except ODataError as error:
            raise self._api_error(error) from None
        condition = _Filter(filter, wildcards=self.system == "fno") if filter else None
        wanted = {c.lower() for c in companies or []}
        rows = [
            row
            for row in table.rows
            if not (
                schema.company_specific and wanted and str(row.get("dataAreaId", "")).lower() not in wanted
            )
            and (condition is None or condition.matches(row))
        ]
        if not rows:
            yield pd.DataFrame({c: pd.Series([], dtype=object) for c in select})
            return
        size = page_size or self.page_size
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            yield pd.DataFrame({c: [r.get(c) for r in chunk] for c in select}, columns=select)

    def iter_pages_by_keys(
        self,
        entity_set: str,
        *,
        select: list[str],
        column: str,
        values: Iterable[Any],
        filter: str | None = None,
        companies: list[str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[pd.DataFrame]:
        """The hooks' chunked key read, one ``iter_pages`` per chunk. Dataverse chunks are
        ``or`` chains here (this evaluator has no ``Microsoft.Dynamics.CRM.In``; the hook's
        ``In`` filters are tested against the emulator), F&O's the same as the hook's."""
        chunks = key_filters(column, values, use_in=False, budget=2000, most=self.keys_per_read)
        yield from self._iter_chunks(entity_set, select, chunks, filter, companies, page_size)

    def iter_pages_by_key_rows(
        self,
        entity_set: str,
        *,
        select: list[str],
        columns: list[str],
        rows: Iterable[tuple[Any, ...]],
        filter: str | None = None,
        companies: list[str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[pd.DataFrame]:
        """The hooks' composite key read: the hook's own ``or`` chains of ``and``-ed
        equalities, one ``iter_pages`` per chunk."""
        chunks = key_row_filters(columns, rows, budget=2000, most=self.keys_per_read)
        yield from self._iter_chunks(entity_set, select, chunks, filter, companies, page_size)

    def _iter_chunks(
        self,
        entity_set: str,
        select: list[str],
        chunks: list[str],
        filter: str | None,
        companies: list[str] | None,
        page_size: int | None,
    ) -> Iterator[pd.DataFrame]:
        """One ``iter_pages`` per key chunk, each and-ed with ``filter`` (no chunk: one empty frame)."""
        if not chunks:
            yield pd.DataFrame({c: pd.Series([], dtype=object) for c in select})
            return
        for chunk in chunks:
            where = f"({filter}) and ({chunk})" if filter else chunk
            yield from self.iter_pages(
                entity_set, select=select, filter=where, companies=companies, page_size=page_size
            )

    # writing ------------------------------------------------------------------------------
    def _find(self, table: MemoryTable, key: dict[str, Any]) -> dict[str, Any] | None:
        for row in table.rows:
            if all(str(row.get(k, "")).lower() == str(v).lower() for k, v in key.items()):
                return row
        return None

    def _bind(self, schema: Table, navigation: str, value: object) -> tuple[str, str | None]:
        """``nav@odata.bind`` → (lookup column, target id), checked like the emulator's ``_bind``."""
        lookup = next(lk for lk in schema.lookups if navigation in lk.targets)  # check_body vetted it
        if value is None:
            return lookup.column, None
        expected = lookup.targets[navigation]
        match = re.fullmatch(r"/?(\w+)\(([0-9a-fA-F-]{36})\)", str(value))
        if match is None:
            raise dataverse_errors.bind_not_a_reference(schema.entity_set, navigation, value)
        target_set, target_id = match.groups()
        if target_set != expected:
            raise dataverse_errors.bind_wrong_target(schema.entity_set, navigation, expected, target_set)
        target = self.catalog.tables[target_set]
        rows = self.tables.get(target_set)
        if rows is None or self._find(rows, {target.key[0]: target_id}) is None:
            raise dataverse_errors.row_not_found(target.logical_name, target_id.lower())
        return lookup.column, target_id.lower()

    def _dataverse_changes(self, schema: Table, body: dict[str, Any], *, for_create: bool) -> dict[str, Any]:
        check_body(schema, body, self.catalog, for_create=for_create)
        changes: dict[str, Any] = {}
        for name, value in body.items():
            if name.endswith("@odata.bind"):
                column, target_id = self._bind(schema, name[: -len("@odata.bind")], value)
                changes[f"_{column}_value"] = target_id
            elif "@" not in name:
                changes[name] = value
        return changes

    def _own(self, schema: Table, changes: dict[str, Any]) -> None:
        owner = changes.get("_ownerid_value")
        if owner and schema.field("owningbusinessunit") is not None:
            # the row lands in its owner's business unit, as in the emulator's ``_ownership``
            users = self.tables.get("systemusers")
            user = self._find(users, {"systemuserid": owner}) if users is not None else None
            changes["_owningbusinessunit_value"] = user.get("_businessunitid_value") if user else None

    def _check_editable(self, schema: Table, current: dict[str, Any] | None, changes: dict[str, Any]) -> None:
        """The emulator's read-only rule (closed documents and their lines), on storage names."""
        check_editable(
            _StoredRows(self.catalog, self.tables),
            schema,
            current=storage_names(schema, current) if current is not None else None,
            changes=storage_names(schema, changes),
        )

    def _fno_changes(self, entity_set: str, body: dict[str, Any], *, for_create: bool) -> dict[str, Any]:
        lines = _FNO_CHECK.infolog(entity_set, body, for_create=for_create)
        if lines:
            raise fno_errors.write_failed(FNO_VIEWS[entity_set], lines)
        return {name: value for name, value in body.items() if "@" not in name}

    def _apply(self, operation: WriteOperation) -> WriteOutcome:
        """One write as the service applies it; an ``ODataError`` is its refusal."""
        schema = self._schema(operation.entity_set)
        table = self.tables[operation.entity_set]
        key = dict(operation.key)
        body: dict[str, Any] = json.loads(json_body(dict(operation.body)))  # what the hook sends
        ref = operation.ref
        if ref in self.outage:
            return WriteOutcome(ref, False, self.outage[ref], message="Service Unavailable")
        if operation.kind not in (WriteKind.CREATE, WriteKind.UPDATE):
            return WriteOutcome(ref, False, 405, message=f"{operation.kind} not supported by MemoryService")
        existing = self._find(table, key)
        if self.system == "fno":
            if operation.kind == WriteKind.CREATE:
                changes = self._fno_changes(operation.entity_set, {**key, **body}, for_create=True)
                if existing is not None:
                    raise _FNO_CHECK.already_exists(operation.entity_set, changes)
                if table.on_create is not None:
                    table.on_create(changes)
                table.rows.append(changes)
                return WriteOutcome(ref, True, 201)
            changes = self._fno_changes(operation.entity_set, body, for_create=False)
            if existing is None:
                raise fno_errors.not_found_for_update()
            existing.update(changes)
            return WriteOutcome(ref, True, 204)
        changes = self._dataverse_changes(schema, body, for_create=operation.kind == WriteKind.CREATE)
        current = existing if operation.kind == WriteKind.UPDATE else None
        self._check_editable(schema, current, changes)
        settle_state(schema, changes, current)
        self._own(schema, changes)
        if operation.kind == WriteKind.CREATE:
            if existing is not None:
                raise dataverse_errors.record_exists()
            table.rows.append({**key, **changes})
            return WriteOutcome(ref, True, 204, entity_id=str(key[schema.key[0]]))
        if existing is None:
            raise dataverse_errors.row_not_found(schema.logical_name, str(key[schema.key[0]]).lower())
        existing.update(changes)
        return WriteOutcome(ref, True, 204)

    def _write_one(self, operation: WriteOperation) -> WriteOutcome:
        try:
            return self._apply(operation)
        except ODataError as error:
            status, code, message = service_error(self.system, error)
            return WriteOutcome(operation.ref, False, status, code, message)

    def write(
        self,
        operations: Iterable[WriteOperation],
        *,
        batch_size: int | None = None,
        bulk: bool = True,
        expected: int | None = None,
    ) -> Iterator[WriteOutcome]:
        """Outcomes unit by unit, like the hooks: operations are consumed lazily."""
        unit: list[WriteOperation] = []
        for operation in operations:
            unit.append(operation)
            if len(unit) >= (batch_size or self.unit_size):
                yield from self._write_unit(unit)
                unit = []
        if unit:
            yield from self._write_unit(unit)

    def _write_unit(self, operations: list[WriteOperation]) -> list[WriteOutcome]:
        self.units += 1
        if self.fail_after_units is not None and self.units > self.fail_after_units:
            raise ConnectionError("simulated crash between units")
        if self.units == self.lose_answer_of_unit:
            for operation in operations:
                self.writes.append(operation)
                self._write_one(operation)
            raise ConnectionError("simulated connection reset after the service applied the unit")
        outcomes = []
        for operation in operations:
            self.writes.append(operation)
            outcomes.append(self._write_one(operation))
        return outcomes


def guid() -> str:
    return str(uuid.uuid4())
