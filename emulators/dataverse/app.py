"""The emulated Dataverse Web API (Dynamics 365 Sales), served at ``/api/data/v9.2/``.

Everything goes through one `DataverseService.dispatch(method, url, headers, body)`: the
Starlette route calls it for a direct request and the ``$batch`` handler calls it for
every part, so a batched request is validated, charged and counted exactly like a
direct one. Work is synchronous SQLite inside the event loop, which also makes a change
set (`Store.transaction()`) atomic without awaiting inside it.

Cost charging (``ctx.charge_operations``): one operation per single-row read or write,
one per record of a bulk message, one per query plus one per started 100 rows returned,
one per metadata request. A ``$batch`` charges what its parts charge; the core counts
it as one request.
"""

from __future__ import annotations

import json
import random
import re
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from emulators.dataverse import errors, metadata
from emulators.dataverse.keys import KeyPredicate, Quoted, RowKey, parse_key, resolve_row_key, split_path
from emulators.dataverse.paging import SortTerm, after_clause, decode_cookie, encode_cookie, next_link
from emulators.dataverse.prefer import TOTAL_COUNT_EXCEEDED, Preferences, parse_prefer
from emulators.dataverse.records import (
    BIND_SUFFIX,
    CRM_TYPE_PREFIX,
    Property,
    Renderer,
    check_body,
    is_lookup_field,
    property_map,
    set_column,
    storage_columns,
    wire_properties,
)
from emulators.odata.batch import (
    DATAVERSE_LIMITS,
    BatchRequest,
    BatchResponseWriter,
    ChangeSet,
    ChangeSetResponse,
    Headers,
    OperationResponse,
    parse_batch,
    relative_to_root,
    resolve_reference,
    resolve_url,
)
from emulators.odata.csdl import build_csdl
from emulators.odata.errors import ODataError
from emulators.odata.query import (
    ColumnRef,
    QueryOptions,
    compile_filter,
    parse_query_options,
)
from emulators.schema.model import EdmType
from emulators.schema.validate import to_storage
from emulators.store import KeyExists, NotFound, Store, format_datetime, quote

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.requests import Request

    from emulators.context import ServiceContext
    from emulators.schema.model import Catalog, Table

JSON_TYPE = "application/json; odata.metadata=minimal"
MAX_GET_URL = 32 * 1024
MAX_COUNT = 5000
ROWS_PER_OPERATION = 100
ALL_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS", "MERGE"]
BULK_ACTIONS = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")


@dataclass
class Reply:
    """A service answer, before it becomes an HTTP response or a batch part."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    entity_url: str | None = None  # the row a write touched, for $<Content-ID> references

    @classmethod
    def json(cls, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Reply:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(status, [("Content-Type", JSON_TYPE), ("OData-Version", "4.0"), *headers], body)

    @classmethod
    def error(cls, exc: ODataError) -> Reply:
        return cls.json(exc.status, {"error": {"code": exc.code, "message": exc.message}})

    @classmethod
    def empty(cls, status: int = 204, headers: Iterable[tuple[str, str]] = ()) -> Reply:
        return cls(status, [("OData-Version", "4.0"), *headers])


@dataclass
class Call:
    """One request as the dispatcher sees it (direct or a batch part)."""

    method: str
    path: str  # decoded, relative to the service root
    query: list[tuple[str, str]]
    headers: Headers
    body: bytes
    in_batch: bool = False
    references: dict[str, str] | None = None

    @property
    def prefs(self) -> Preferences:
        return parse_prefer(self.headers.get_all("Prefer"))


@dataclass(frozen=True)
class Source:
    """Where an entity set lives: the business store, or the read-only system store."""

    store: Store
    catalog: Catalog
    writable: bool


class _Rollback(Exception):
    """Abort a change set; the failing part's answer becomes the change set's answer."""

    def __init__(self, answer: OperationResponse) -> None:
        self.answer = answer


class DataverseService:
    """The Web API over the catalogue and store of a `ServiceContext`."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.catalog = ctx.catalog
        self.store = ctx.store
        self.root = ctx.service_root
        self.system_store = metadata.build_system_store(self.catalog)
        self.system_catalog = self.system_store.catalog
        self.data = Source(self.store, self.catalog, writable=True)
        self.system = Source(self.system_store, self.system_catalog, writable=False)
        self.definitions = self._build_definitions()
        self._csdl: str | None = None
        self._props: dict[str, list[Property]] = {}
        self._version = self._max_version()
        self._sequences: dict[tuple[str, str], int] = {}
        self._random = random.Random()

    # -- bookkeeping -------------------------------------------------------------------

    def _max_version(self) -> int:
        highest = 0
        for table in self.catalog.tables.values():
            if table.field("versionnumber") is not None:
                row = self.store.execute(f'SELECT MAX("versionnumber") FROM {quote(table.entity_set)}')
                highest = max(highest, int(row[0][0] or 0))
        return highest

    def next_version(self) -> int:
        self._version += 1
        return self._version

    def _build_definitions(self) -> Store:
        from emulators.schema.model import Catalog as CatalogType

        catalog = CatalogType(service="dataverse")
        catalog.add(metadata.entity_definitions_table())
        store = Store(":memory:", catalog)
        rows = [
            metadata.entity_row(table, 10000 + index)
            for index, table in enumerate(self.catalog.tables.values())
        ]
        store.insert_many("EntityDefinitions", rows)
        return store

    def props(self, table: Table) -> list[Property]:
        cached = self._props.get(table.entity_set)
        if cached is None:
            cached = self._props[table.entity_set] = wire_properties(table)
        return cached

    def entity_url(self, table: Table, row_id: str) -> str:
        return f"{self.root}{table.entity_set}({row_id})"

    def source_of(self, entity_set: str) -> tuple[Source, Table] | None:
        if entity_set in self.catalog.tables:
            return self.data, self.catalog.tables[entity_set]
        if entity_set in self.system_catalog.tables:
            return self.system, self.system_catalog.tables[entity_set]
        return None

    # -- entry points ------------------------------------------------------------------

    async def dispatch(self, method: str, url: str, headers: Headers, body: bytes) -> Reply:
        """Serve one request addressed by a URL relative to the service root (with query)."""
        path, _, query = url.partition("?")
        call = Call(method.upper(), unquote(path), parse_qsl(query, keep_blank_values=True), headers, body)
        if call.path == "$batch" and call.method == "POST":
            return self.batch(call)
        return self.handle(call)

    def handle(self, call: Call) -> Reply:
        """Route a call; every client-visible failure becomes Dataverse's error body."""
        try:
            return self._route(call)
        except ODataError as exc:
            return Reply.error(exc)

    def _route(self, call: Call) -> Reply:
        path = call.path
        if path in ("", "/"):
            return self.service_document(call)
        if path == "$metadata":
            self._only(call, "GET", path)
            self.ctx.charge_operations(1)
            if self._csdl is None:
                self._csdl = build_csdl(metadata.csdl_catalog(self.catalog, self.system_catalog))
            return Reply(
                200, [("Content-Type", "application/xml"), ("OData-Version", "4.0")], self._csdl.encode()
            )
        if path == "$batch":
            raise errors.no_resource(self.root + path)  # a $batch inside a $batch
        segments = split_path(path)
        first = segments[0]
        if first.name == "WhoAmI" and len(segments) == 1 and first.key in (None, ""):
            self._only(call, "GET", path)
            return self.who_am_i()
        if first.name == "EntityDefinitions":
            self._only(call, "GET", path)
            return self.entity_definitions(call, segments)
        found = self.source_of(first.name)
        if found is None:
            raise errors.segment_not_found(first.name)
        source, table = found
        if len(segments) == 1 and first.key is None:
            if call.method == "GET":
                return self.query(call, source, table)
            if call.method == "POST":
                self._writable(source, call, path)
                return self.create(call, table)
            raise errors.method_not_allowed(call.method, "a collection")
        if len(segments) == 1:
            key = resolve_row_key(table, parse_key(first.key or ""))
            if call.method == "GET":
                return self.retrieve(call, source, table, key)
            self._writable(source, call, path)
            if call.method == "PATCH":
                return self.upsert(call, table, key)
            if call.method == "DELETE":
                return self.delete(call, table, key)
            if call.method == "PUT":
                raise errors.not_implemented("PUT on an entity (use PATCH)")
            raise errors.method_not_allowed(call.method, "an entity")
        if len(segments) == 2 and first.key is None:
            name = segments[1].name
            if name.startswith(CRM_TYPE_PREFIX) and name[len(CRM_TYPE_PREFIX) :] in BULK_ACTIONS:
                self._only(call, "POST", path)
                self._writable(source, call, path)
                return self.bulk(call, table, name[len(CRM_TYPE_PREFIX) :])
            if name == "$count":
                self._only(call, "GET", path)
                return self.count(call, source, table)
        if len(segments) == 2 and first.key is not None and segments[1].key is None:
            key = resolve_row_key(table, parse_key(first.key))
            if call.method in ("PUT", "DELETE"):
                self._writable(source, call, path)
                return self.put_property(call, table, key, segments[1].name)
            if call.method == "GET":
                return self.get_property(call, source, table, key, segments[1].name)
        raise errors.segment_not_found(segments[1].name if len(segments) > 1 else first.name)

    def _only(self, call: Call, method: str, path: str) -> None:
        if call.method != method:
            raise errors.no_resource(self.root + path)

    def _writable(self, source: Source, call: Call, path: str) -> None:
        if not source.writable:
            raise errors.method_not_allowed(call.method, f"'{path}' (a read-only system table)")

    # -- service document, WhoAmI ------------------------------------------------------

    def service_document(self, call: Call) -> Reply:
        self._only(call, "GET", "")
        self.ctx.charge_operations(1)
        names = sorted({*self.catalog.tables, *self.system_catalog.tables, "EntityDefinitions"})
        return Reply.json(
            200,
            {
                "@odata.context": f"{self.root}$metadata",
                "value": [{"name": name, "kind": "EntitySet", "url": name} for name in names],
            },
        )

    def identity(self) -> tuple[str, str]:
        """(systemuserid, businessunitid) of the caller: the user whose Entra object id
        matches the token, else the first (root) user, else ids derived from the app id."""
        claims = self.ctx.caller()
        users = self.catalog.tables.get("systemusers")
        if users is not None:
            oid = claims.get("oid")
            rows = []
            if oid:
                rows = self.store.find_by(
                    "systemusers", {"azureactivedirectoryobjectid": str(oid).lower()}, 1
                )
            if not rows:
                rows = self.store.query("systemusers", order_by=None, limit=1)
            if rows:
                return str(rows[0]["systemuserid"]), str(rows[0].get("businessunitid") or "")
        appid = str(claims.get("appid") or "anonymous")
        return metadata.stable_id("systemuser", appid), metadata.stable_id("businessunit", appid)

    def who_am_i(self) -> Reply:
        self.ctx.charge_operations(1)
        user_id, business_unit_id = self.identity()
        return Reply.json(
            200,
            {
                "@odata.context": f"{self.root}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                "BusinessUnitId": business_unit_id,
                "UserId": user_id,
                "OrganizationId": metadata.stable_id("organization", self.ctx.tenant_id),
            },
        )

    # -- query resolution --------------------------------------------------------------

    def resolver(self, source: Source, table: Table, *, navigation: bool = True) -> Any:
        """Map a property path to SQL; lookup paths (``primarycontactid/fullname``) become
        correlated subqueries on the target table."""
        props = {prop.name: prop for prop in self.props(table)}
        qualified = quote(table.entity_set)

        def resolve(path: str) -> ColumnRef:
            if "/" in path and navigation:
                return self._navigation_ref(source, table, path)
            prop = props.get(path)
            if prop is None:
                raise errors.unknown_property(table.logical_name, path)
            return ColumnRef(f"{qualified}.{quote(prop.column)}", prop.field, prop.kind)

        return resolve

    def _navigation_ref(self, source: Source, table: Table, path: str) -> ColumnRef:
        navigation, _, rest = path.partition("/")
        for lookup in table.lookups:
            if navigation in lookup.targets:
                target = source.catalog.tables.get(lookup.targets[navigation])
                if target is None or "/" in rest:
                    break
                prop = property_map(target).get(rest)
                if prop is None:
                    raise errors.unknown_property(target.logical_name, rest)
                condition = f"t.{quote(target.key[0])} = {quote(table.entity_set)}.{quote(lookup.column)}"
                if (extra := set_column(lookup)) is not None:
                    condition += f" AND {quote(table.entity_set)}.{quote(extra)} = '{target.entity_set}'"
                sql = f"(SELECT t.{quote(prop.column)} FROM {quote(target.entity_set)} t WHERE {condition})"
                return ColumnRef(sql, prop.field, prop.kind)
        raise errors.unknown_property(table.logical_name, navigation)

    def _options(self, call: Call) -> QueryOptions:
        options = parse_query_options(call.query, "dataverse")
        if options.expand is not None:
            raise errors.not_implemented("$expand")
        if options.apply is not None:
            raise errors.not_implemented("$apply")
        return options

    def _selected(self, table: Table, options: QueryOptions) -> list[Property]:
        if options.select is None:
            return self.props(table)
        props = property_map(table)
        chosen = []
        for name in options.select:
            prop = props.get(name)
            if prop is None:
                raise errors.unknown_property(table.logical_name, name)
            chosen.append(prop)
        key = props[table.key[0]]
        if key not in chosen:
            chosen.append(key)  # Dataverse always returns the primary key
        return chosen

    def _names(self, source: Source) -> Any:
        """Primary names of rows by id, for lookup FormattedValues."""

        def names(entity_set: str, ids: list[str]) -> dict[str, Any]:
            target = source.catalog.tables.get(entity_set)
            if target is None or target.primary_name is None:
                return {}
            found: dict[str, Any] = {}
            key = target.key[0]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                for row in source.store.query(
                    entity_set,
                    f"{quote(key)} IN ({marks})",
                    chunk,
                    columns=[key, target.primary_name],
                ):
                    found[row[key]] = row[target.primary_name]
            return found

        return names

    def _context(self, table: Table, options: QueryOptions, suffix: str = "") -> str:
        select = f"({','.join(options.select)})" if options.select else ""
        return f"{self.root}$metadata#{table.entity_set}{select}{suffix}"

    # -- reads -------------------------------------------------------------------------

    def query(self, call: Call, source: Source, table: Table) -> Reply:
        options = self._options(call)
        prefs = call.prefs
        if prefs.track_changes or options.deltatoken is not None:
            raise errors.not_implemented("change tracking (odata.track-changes)")
        selected = self._selected(table, options)
        resolve = self.resolver(source, table)
        where, params = "", []
        if options.filter is not None:
            where, params = compile_filter(
                options.filter, resolve, dialect="dataverse", enums=source.catalog.enums
            )
        plain = self.resolver(source, table, navigation=False)
        terms: list[SortTerm] = []
        for item in options.orderby:
            if "/" in item.path:
                raise errors.not_implemented("$orderby on a navigation path")
            ref = plain(item.path)
            column = ref.sql.rsplit(".", 1)[-1].strip('"')
            terms.append(SortTerm(ref.sql, column, ref.kind == EdmType.STRING, item.descending))
        key = table.key[0]
        terms.append(SortTerm(f"{quote(table.entity_set)}.{quote(key)}", key, False, False))

        page = 1
        page_where, page_params = where, list(params)
        if options.skiptoken is not None:
            cookie = decode_cookie(options.skiptoken, len(terms))
            page = cookie.page
            clause, clause_params = after_clause(terms, cookie.values)
            page_where = f"({where}) AND {clause}" if where else clause
            page_params = [*params, *clause_params]

        size = prefs.page_size
        limit = size if options.top is None else min(options.top, size)
        columns = list(dict.fromkeys([*storage_columns(table, selected), *(t.column for t in terms)]))
        order_sql = [
            f"{t.sql}{' COLLATE NOCASE' if t.is_string else ''} {'DESC' if t.descending else 'ASC'}"
            for t in terms
        ]
        rows = source.store.query(
            table.entity_set, page_where, page_params, order_by=order_sql, limit=limit + 1, columns=columns
        )
        more = len(rows) > limit
        rows = rows[:limit]
        if options.top is not None and options.top <= size:
            more = False  # $top smaller than a page: no server-driven paging

        renderer = Renderer(source.catalog, table, selected, prefs, self._names(source))
        payload: dict[str, Any] = {"@odata.context": self._context(table, options)}
        if options.count:
            total = source.store.count(table.entity_set, where, params)
            payload["@odata.count"] = min(total, MAX_COUNT)
            if prefs.wants(TOTAL_COUNT_EXCEEDED):
                payload[f"@{TOTAL_COUNT_EXCEEDED}"] = total > MAX_COUNT
        payload["value"] = renderer.render(rows)
        if more and rows:
            last = rows[-1]
            values = [last.get(t.column) for t in terms]
            link_query = list(call.query)
            if options.top is not None:
                link_query = [(n, v) for n, v in link_query if n != "$top"]
                link_query.append(("$top", str(options.top - limit)))
            payload["@odata.nextLink"] = next_link(
                f"{self.root}{table.entity_set}", link_query, encode_cookie(page + 1, values)
            )
        self.ctx.charge_operations(1 + -(-len(rows) // ROWS_PER_OPERATION))
        self.ctx.record_read(len(rows))
        return Reply.json(200, payload, self._applied(prefs, page_size=True))

    @staticmethod
    def _applied(
        prefs: Preferences, *, page_size: bool = False, representation: bool = False
    ) -> list[tuple[str, str]]:
        applied = []
        if page_size and prefs.max_page_size is not None:
            applied.append(f"odata.maxpagesize={prefs.page_size}")
        if prefs.annotations is not None:
            applied.append(f'odata.include-annotations="{prefs.annotations}"')
        if representation and prefs.return_representation:
            applied.append("return=representation")
        return [("Preference-Applied", ",".join(applied))] if applied else []

    def count(self, call: Call, source: Source, table: Table) -> Reply:
        options = self._options(call)
        where, params = "", []
        if options.filter is not None:
            where, params = compile_filter(
                options.filter, self.resolver(source, table), dialect="dataverse", enums=source.catalog.enums
            )
        self.ctx.charge_operations(1)
        total = min(source.store.count(table.entity_set, where, params), MAX_COUNT)
        return Reply(200, [("Content-Type", "text/plain"), ("OData-Version", "4.0")], str(total).encode())

    def find(
        self, source: Source, table: Table, key: RowKey, columns: list[str] | None = None
    ) -> dict[str, Any] | None:
        """The stored row a key addresses, or None."""
        if key.primary is not None:
            return source.store.get(table.entity_set, key.primary, columns=columns)
        wanted = {}
        for column, value in key.alternate.items():
            field = table.field(column)
            if field is None:
                raise errors.invalid_key(table.logical_name)
            wanted[column] = _key_value(table, column, value)
        rows = source.store.find_by(table.entity_set, wanted, limit=1)
        return rows[0] if rows else None

    def _missing(self, table: Table, key: RowKey) -> ODataError:
        if key.primary is not None:
            return errors.row_not_found(table.logical_name, key.primary)
        return errors.key_not_found(table.logical_name)

    def retrieve(self, call: Call, source: Source, table: Table, key: RowKey) -> Reply:
        options = self._options(call)
        prefs = call.prefs
        selected = self._selected(table, options)
        self.ctx.charge_operations(1)
        row = self.find(source, table, key)
        if row is None:
            raise self._missing(table, key)
        self.ctx.record_read(1)
        current = f'W/"{row.get("versionnumber")}"'
        if call.headers.get("If-None-Match") == current and prefs.annotations is None:
            return Reply.empty(304)
        return self._entity_reply(200, source, table, row, options, prefs, selected)

    def _entity_reply(
        self,
        status: int,
        source: Source,
        table: Table,
        row: dict[str, Any],
        options: QueryOptions,
        prefs: Preferences,
        selected: list[Property],
        headers: Iterable[tuple[str, str]] = (),
    ) -> Reply:
        entity = Renderer(source.catalog, table, selected, prefs, self._names(source)).render([row])[0]
        payload = {"@odata.context": self._context(table, options, "/$entity"), **entity}
        return Reply.json(status, payload, [*headers, *self._applied(prefs, representation=True)])

    # -- writes ------------------------------------------------------------------------

    def _body(self, call: Call, table: Table) -> Any:
        if not call.body.strip():
            return {}
        try:
            return json.loads(call.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise errors.payload_error(
                table.entity_set, f"Invalid JSON. A token was not recognized in the JSON content. ({exc})"
            ) from None

    def _bind(
        self, table: Table, navigation: str, value: Any, call: Call
    ) -> tuple[str, str | None, str | None]:
        """Resolve ``<nav>@odata.bind`` to (column, target id, target set); check the target exists."""
        lookup = next(lk for lk in table.lookups if navigation in lk.targets)
        expected = lookup.targets[navigation]
        if value is None:
            return lookup.column, None, None
        url = str(value)
        if url.startswith("$"):
            resolved = resolve_reference(url, call.references)
            url = resolved or url
        relative = relative_to_root(url, self.root) if "://" in url else url
        if relative is None:
            raise errors.bind_not_a_reference(table.entity_set, navigation, value)
        relative = unquote(relative.lstrip("/"))
        root_path = urlsplit(self.root).path.lstrip("/")
        if relative.startswith(root_path):
            relative = relative[len(root_path) :]
        try:
            segments = split_path(relative)
        except ODataError:
            raise errors.bind_not_a_reference(table.entity_set, navigation, value) from None
        if len(segments) != 1 or segments[0].key is None:
            raise errors.bind_not_a_reference(table.entity_set, navigation, value)
        target_set = segments[0].name
        if target_set != expected:
            raise errors.bind_wrong_target(table.entity_set, navigation, expected, target_set)
        target = self.catalog.tables[target_set]
        key = resolve_row_key(target, parse_key(segments[0].key))
        row = self.find(self.data, target, key, columns=[target.key[0]])
        if row is None:
            raise self._missing(target, key)
        return lookup.column, str(row[target.key[0]]), target_set

    def _changes(self, call: Call, table: Table, body: dict[str, Any]) -> dict[str, Any]:
        """Storage values of a validated body (binds resolved, annotations dropped)."""
        changes: dict[str, Any] = {}
        for name, value in body.items():
            if name.endswith(BIND_SUFFIX):
                navigation = name[: -len(BIND_SUFFIX)]
                column, target_id, target_set = self._bind(table, navigation, value, call)
                changes[column] = target_id
                lookup = next(lk for lk in table.lookups if lk.column == column)
                if (extra := set_column(lookup)) is not None:
                    changes[extra] = target_set
                continue
            if name.startswith("@") or "@" in name:
                continue
            changes[name] = to_storage(table, name, value, catalog=self.catalog)
        return changes

    def _now(self) -> str:
        return format_datetime(datetime.now(timezone.utc))

    def _new_row(self, call: Call, table: Table, body: Any, key: RowKey | None) -> dict[str, Any]:
        """A complete row to insert: body, URL key, defaults, system columns."""
        if isinstance(body, dict) and key is not None and key.alternate:
            body = {**{c: v for c, v in key.alternate.items()}, **body}
        body = check_body(table, body, self.catalog, for_create=True)
        row = self._changes(call, table, body)
        pk = table.key[0]
        if key is not None and key.primary is not None:
            if row.get(pk) not in (None, key.primary):
                raise errors.payload_error(
                    table.entity_set, f"The value of '{pk}' in the body does not match the key in the URL."
                )
            row[pk] = key.primary
        row[pk] = str(row.get(pk) or uuid.uuid4())
        for column in table.fields:
            if column.name in row or column.read_only:
                continue
            if column.default is not None:
                row[column.name] = to_storage(table, column, column.default, catalog=self.catalog)
            elif column.auto_number:
                row[column.name] = self._auto_number(table, column.name, column.auto_number)
        now = self._now()
        system = {"createdon": now, "modifiedon": now, "versionnumber": self.next_version()}
        if table.field("ownerid") is not None and row.get("ownerid") is None:
            user_id, business_unit_id = self.identity()
            system["ownerid"] = user_id
            if table.field("owningbusinessunit") is not None:
                system["owningbusinessunit"] = business_unit_id or None
        if table.field("owninguser") is not None:
            system["owninguser"] = row.get("ownerid") or system.get("ownerid")
        row.update({k: v for k, v in system.items() if table.field(k) is not None})
        self._derive(table, row)
        return row

    def _auto_number(self, table: Table, column: str, pattern: str) -> str:
        """Fill an AutoNumberFormat such as ``ACC-{SEQNUM:5}-{RANDSTRING:6}``."""
        sequence_key = (table.entity_set, column)
        if sequence_key not in self._sequences:
            self._sequences[sequence_key] = 1000 + self.store.count(table.entity_set)
        self._sequences[sequence_key] += 1
        number = self._sequences[sequence_key]

        def fill(match: re.Match[str]) -> str:
            kind, width = match.group(1), int(match.group(2))
            if kind == "SEQNUM":
                return str(number).zfill(width)
            return "".join(self._random.choice(string.ascii_uppercase + string.digits) for _ in range(width))

        return re.sub(r"\{(SEQNUM|RANDSTRING):(\d+)\}", fill, pattern)

    def _derive(self, table: Table, row: dict[str, Any], current: dict[str, Any] | None = None) -> None:
        """Columns the platform computes from others: full names, exchange rates, base amounts."""
        merged = {**(current or {}), **row}
        if table.field("fullname") is not None and ("firstname" in row or "lastname" in row):
            parts = [merged.get("firstname"), merged.get("lastname")]
            row["fullname"] = " ".join(p for p in parts if p) or None
        if table.field("exchangerate") is not None and table.field("exchangerate").read_only:  # type: ignore[union-attr]
            rate = merged.get("exchangerate") or 1.0
            currency = merged.get("transactioncurrencyid")
            if "transactioncurrencyid" in row and currency:
                found = self.store.get("transactioncurrencies", currency, columns=["exchangerate"])
                rate = float(found["exchangerate"]) if found and found.get("exchangerate") else 1.0
            row["exchangerate"] = rate
            for column in table.fields:
                base = table.field(f"{column.name}_base")
                if base is None or not base.read_only:
                    continue
                if column.name in row or "transactioncurrencyid" in row:
                    value = merged.get(column.name)
                    row[base.name] = None if value is None else round(float(value) / rate, 4)

    def create(self, call: Call, table: Table) -> Reply:
        body = self._body(call, table)
        row = self._new_row(call, table, body, None)
        self.ctx.charge_operations(1)
        stored = self._insert(table, row)
        self.ctx.record_write("create")
        return self._written(call, table, stored, created=True)

    def _insert(self, table: Table, row: dict[str, Any], *, bulk: bool = False) -> dict[str, Any]:
        try:
            with self.store.transaction():
                return self.store.insert(table.entity_set, row)
        except KeyExists as exc:
            raise self._conflict(table, exc, bulk=bulk) from None

    def _conflict(self, table: Table, exc: KeyExists, *, bulk: bool = False) -> ODataError:
        if exc.key_name == "primary":
            return errors.duplicate_insert() if bulk else errors.record_exists()
        return errors.duplicate_alternate_key(exc.key_name, list(exc.key.values()))

    def _written(self, call: Call, table: Table, row: dict[str, Any], *, created: bool) -> Reply:
        row_id = str(row[table.key[0]])
        url = self.entity_url(table, row_id)
        headers = [("Location", url), ("OData-EntityId", url)] if created else [("OData-EntityId", url)]
        prefs = call.prefs
        if prefs.return_representation:
            options = self._options(call)
            reply = self._entity_reply(
                201 if created else 200,
                self.data,
                table,
                row,
                options,
                prefs,
                self._selected(table, options),
                headers,
            )
        else:
            reply = Reply.empty(204, headers)
        reply.entity_url = url
        return reply

    def upsert(self, call: Call, table: Table, key: RowKey) -> Reply:
        body = self._body(call, table)
        if_match = call.headers.get("If-Match")
        if_none_match = call.headers.get("If-None-Match")
        self.ctx.charge_operations(1)
        existing = self.find(self.data, table, key)
        if if_none_match is not None and if_none_match.strip() == "*" and existing is not None:
            raise errors.record_exists()
        if if_match is not None:
            if existing is None:
                raise self._missing(table, key)
            if if_match.strip() != "*" and if_match.strip() != f'W/"{existing.get("versionnumber")}"':
                raise errors.version_mismatch()
        kind = "update" if if_match is not None else "create" if if_none_match == "*" else "upsert"
        if existing is None:
            row = self._new_row(call, table, body, key)
            stored = self._insert(table, row)
            self.ctx.record_write(kind)
            return self._written(call, table, stored, created=True)
        body = check_body(table, body, self.catalog, for_create=False)
        changes = self._changes(call, table, body)
        pk = table.key[0]
        row_id = str(existing[pk])
        if changes.get(pk) not in (None, row_id):
            raise errors.payload_error(
                table.entity_set, f"The value of '{pk}' in the body does not match the key in the URL."
            )
        changes.pop(pk, None)
        changes.update(
            {
                k: v
                for k, v in {"modifiedon": self._now(), "versionnumber": self.next_version()}.items()
                if table.field(k)
            }
        )
        self._derive(table, changes, existing)
        try:
            with self.store.transaction():
                stored = self.store.update(table.entity_set, row_id, changes)
        except KeyExists as exc:
            raise self._conflict(table, exc) from None
        self.ctx.record_write(kind)
        return self._written(call, table, stored, created=False)

    def delete(self, call: Call, table: Table, key: RowKey) -> Reply:
        self.ctx.charge_operations(1)
        existing = self.find(self.data, table, key)
        if existing is None:
            raise self._missing(table, key)
        if_match = call.headers.get("If-Match")
        if if_match is not None and if_match.strip() not in ("*", f'W/"{existing.get("versionnumber")}"'):
            raise errors.version_mismatch()
        try:
            with self.store.transaction():
                self.store.delete(table.entity_set, existing[table.key[0]])
        except NotFound:
            raise self._missing(table, key) from None
        self.ctx.record_write("delete")
        return Reply.empty(204)

    def get_property(self, call: Call, source: Source, table: Table, key: RowKey, name: str) -> Reply:
        """``GET <set>(<key>)/<property>`` → ``{"value": …}``."""
        prop = property_map(table).get(name)
        if prop is None:
            raise errors.segment_not_found(name)
        self.ctx.charge_operations(1)
        row = self.find(source, table, key)
        if row is None:
            raise self._missing(table, key)
        entity = Renderer(source.catalog, table, [prop], call.prefs, self._names(source)).render([row])[0]
        context = f"{self.root}$metadata#{table.entity_set}({row[table.key[0]]})/{name}"
        return Reply.json(200, {"@odata.context": context, "value": entity[name]})

    def put_property(self, call: Call, table: Table, key: RowKey, name: str) -> Reply:
        """``PUT <set>(<key>)/<property>`` with ``{"value": …}``, or ``DELETE`` to clear it."""
        prop = property_map(table).get(name)
        if prop is None or prop.lookup is not None:
            raise errors.segment_not_found(name)
        if call.method == "PUT":
            body = self._body(call, table)
            if not isinstance(body, dict) or "value" not in body:
                raise errors.payload_error(
                    table.entity_set, "A 'value' property was expected in the payload."
                )
            value = body["value"]
        else:
            value = None
        self.ctx.charge_operations(1)
        existing = self.find(self.data, table, key)
        if existing is None:
            raise self._missing(table, key)
        self._apply_update(call, table, existing, {name: value})
        self.ctx.record_write("update")
        return Reply.empty(204)

    # -- bulk messages -----------------------------------------------------------------

    def bulk(self, call: Call, table: Table, message: str) -> Reply:
        if not table.supports_multiple:
            raise errors.message_not_supported(message, table.logical_name)
        body = self._body(call, table)
        targets = body.get("Targets") if isinstance(body, dict) else None
        if not isinstance(targets, list) or not targets:
            raise errors.payload_error(
                table.entity_set,
                f"The parameter 'Targets' of the action '{message}' must be a non-empty collection.",
            )
        expected = f"{CRM_TYPE_PREFIX}{table.logical_name}"
        for target in targets:
            odata_type = target.get("@odata.type") if isinstance(target, dict) else None
            if not isinstance(odata_type, str):
                raise errors.payload_error(
                    table.entity_set,
                    "A type name was not provided for an instance of the abstract type "
                    f"'{CRM_TYPE_PREFIX}crmbaseentity'. Set '@odata.type' on every item of 'Targets'.",
                )
            if odata_type.lstrip("#") != expected:
                raise errors.payload_error(
                    table.entity_set,
                    f"All records of '{message}' on '{table.entity_set}' must be of type '{expected}'; "
                    f"found '{odata_type.lstrip('#')}'.",
                )
        self.ctx.charge_operations(len(targets))
        ids: list[str] = []
        with self.store.transaction():
            for target in targets:
                record = {k: v for k, v in target.items() if k not in ("@odata.type", "@odata.id")}
                if message == "CreateMultiple":
                    stored = self._insert(table, self._new_row(call, table, record, None), bulk=True)
                    ids.append(str(stored[table.key[0]]))
                elif message == "UpdateMultiple":
                    ids.append(self._update_one(call, table, record))
                else:
                    ids.append(self._upsert_one(call, table, target, record))
        kind = {"CreateMultiple": "create", "UpdateMultiple": "update", "UpsertMultiple": "upsert"}[message]
        self.ctx.record_write(kind, len(targets))
        if message == "UpdateMultiple":
            return Reply.empty(204)
        return Reply.json(
            200,
            {"@odata.context": f"{self.root}$metadata#Microsoft.Dynamics.CRM.{message}Response", "Ids": ids},
        )

    def _update_one(self, call: Call, table: Table, record: dict[str, Any]) -> str:
        pk = table.key[0]
        row_id = record.get(pk)
        if not isinstance(row_id, str):
            raise errors.payload_error(table.entity_set, f"Each record of UpdateMultiple must set '{pk}'.")
        existing = self.store.get(table.entity_set, row_id)
        if existing is None:
            raise errors.rows_not_found(table.logical_name, [row_id])
        return self._apply_update(call, table, existing, {k: v for k, v in record.items() if k != pk})

    def _apply_update(
        self, call: Call, table: Table, existing: dict[str, Any], record: dict[str, Any]
    ) -> str:
        body = check_body(table, record, self.catalog, for_create=False)
        changes = self._changes(call, table, body)
        pk = table.key[0]
        changes.pop(pk, None)
        changes.update(
            {
                k: v
                for k, v in {"modifiedon": self._now(), "versionnumber": self.next_version()}.items()
                if table.field(k)
            }
        )
        self._derive(table, changes, existing)
        try:
            self.store.update(table.entity_set, existing[pk], changes)
        except KeyExists as exc:
            raise self._conflict(table, exc, bulk=True) from None
        return str(existing[pk])

    def _upsert_one(self, call: Call, table: Table, target: dict[str, Any], record: dict[str, Any]) -> str:
        pk = table.key[0]
        address = target.get("@odata.id")
        if isinstance(address, str):
            relative = relative_to_root(address, self.root) if "://" in address else address.lstrip("/")
            segments = split_path(unquote(relative or ""))
            if len(segments) != 1 or segments[0].name != table.entity_set or segments[0].key is None:
                raise errors.payload_error(
                    table.entity_set, f"The '@odata.id' value '{address}' is not valid."
                )
            key = resolve_row_key(table, parse_key(segments[0].key))
        elif isinstance(record.get(pk), str):
            key = resolve_row_key(table, KeyPredicate(value=record[pk].lower()))
        else:
            raise errors.payload_error(
                table.entity_set, f"Each record of UpsertMultiple needs '@odata.id' or '{pk}' to identify it."
            )
        existing = self.find(self.data, table, key)
        if existing is None:
            stored = self._insert(table, self._new_row(call, table, record, key), bulk=True)
            return str(stored[pk])
        return self._apply_update(call, table, existing, {k: v for k, v in record.items() if k != pk})

    # -- $batch ------------------------------------------------------------------------

    def batch(self, call: Call) -> Reply:
        try:
            items = parse_batch(call.body, call.headers.get("Content-Type"), DATAVERSE_LIMITS)
        except ODataError as exc:
            return Reply.error(exc)
        writer = BatchResponseWriter(continue_on_error=call.prefs.continue_on_error)
        for item in items:
            if isinstance(item, ChangeSet):
                references: dict[str, str] = {}
                answers: list[OperationResponse] = []
                try:
                    with self.store.transaction():
                        for part in item.requests:
                            answer = self._part(part, references)
                            if answer.failed:
                                raise _Rollback(answer)
                            answers.append(answer)
                except _Rollback as failure:
                    keep_going = writer.add(failure.answer)
                else:
                    keep_going = writer.add(ChangeSetResponse(answers))
            else:
                keep_going = writer.add(self._part(item, None))
            if not keep_going:
                break
        status, content_type, body = writer.render()
        return Reply(status, [("Content-Type", content_type), ("OData-Version", "4.0")], body)

    def _part(self, part: BatchRequest, references: dict[str, str] | None) -> OperationResponse:
        """Run one batched request through the same routing as a direct request."""
        try:
            absolute = resolve_url(part.url, self.root, references)
        except ODataError as exc:
            return _operation(Reply.error(exc), part.content_id)
        relative = relative_to_root(absolute, self.root)
        if relative is None:
            return _operation(Reply.error(errors.no_resource(absolute)), part.content_id)
        path, _, query = relative.partition("?")
        call = Call(
            part.method,
            unquote(path),
            parse_qsl(query, keep_blank_values=True),
            part.headers,
            part.body,
            in_batch=True,
            references=references,
        )
        entity_set = path.split("/", 1)[0].split("(", 1)[0] or "/"
        self.ctx.record_batch_part(part.method, entity_set)
        reply = self.handle(call)
        if references is not None and part.content_id and reply.entity_url and reply.status < 400:
            references[part.content_id] = reply.entity_url
        return _operation(reply, part.content_id)

    # -- EntityDefinitions -------------------------------------------------------------

    def entity_definitions(self, call: Call, segments: list[Any]) -> Reply:
        self.ctx.charge_operations(1)
        options = parse_query_options(call.query, "dataverse")
        first = segments[0]
        if first.key is None:
            if len(segments) > 1:
                raise errors.segment_not_found(segments[1].name)
            return self._definitions_collection(options)
        table = self._definition_table(first.key)
        if len(segments) == 1:
            item = self._definition(table, options)
            return Reply.json(
                200, {"@odata.context": f"{self.root}$metadata#EntityDefinitions/$entity", **item}
            )
        part = segments[1]
        if part.name == "Attributes":
            return self._attributes(table, segments[1:], options)
        if part.name == "Keys" and len(segments) == 2 and part.key is None:
            keys = [metadata.key_metadata(table, key) for key in table.alternate_keys]
            context = f"{self.root}$metadata#EntityDefinitions('{table.logical_name}')/Keys"
            return Reply.json(200, {"@odata.context": context, "value": _project(keys, options)})
        raise errors.segment_not_found(part.name)

    def _definition_table(self, key_text: str) -> Table:
        predicate = parse_key(key_text)
        by_name = predicate.named.get("LogicalName") if predicate.named else None
        for table in self.catalog.tables.values():
            if by_name is not None and table.logical_name == by_name:
                return table
            if (
                predicate.is_positional
                and not isinstance(predicate.value, Quoted)
                and str(predicate.value).lower() == (table.metadata_id or "").lower()
            ):
                return table
        shown = by_name if by_name is not None else predicate.value
        raise ODataError(404, "0x80040217", f"Could not find entity with name or id '{shown}'.")

    def _definitions_collection(self, options: QueryOptions) -> Reply:
        table = self.definitions.catalog.tables["EntityDefinitions"]
        props = {f.name: f for f in table.fields}

        def resolve(path: str) -> ColumnRef:
            column = props.get(path)
            if column is None:
                raise errors.unknown_property("EntityMetadata", path)
            return ColumnRef(quote(path), column, column.type)

        where, params = "", []
        if options.filter is not None:
            where, params = compile_filter(options.filter, resolve, dialect="dataverse")
        rows = self.definitions.query("EntityDefinitions", where, params, columns=["MetadataId"])
        wanted = {row["MetadataId"] for row in rows}
        items = [
            self._definition(table_, options)
            for table_ in self.catalog.tables.values()
            if (table_.metadata_id or "") in wanted
        ]
        select = f"({','.join(options.select)})" if options.select else ""
        return Reply.json(
            200, {"@odata.context": f"{self.root}$metadata#EntityDefinitions{select}", "value": items}
        )

    def _definition(self, table: Table, options: QueryOptions) -> dict[str, Any]:
        index = list(self.catalog.tables).index(table.entity_set)
        item = metadata.entity_metadata(table, 10000 + index)
        if options.select is not None:
            for name in options.select:
                if name not in item and name not in ("Attributes", "Keys"):
                    raise errors.unknown_property("EntityMetadata", name)
            item = {k: v for k, v in item.items() if k in options.select or k == "MetadataId"}
        for name, nested in _expansions(options.expand):
            if name == "Attributes":
                attrs = [metadata.attribute_metadata(self.catalog, table, f) for f in table.fields]
                item["Attributes"] = _project(attrs, nested)
            elif name == "Keys":
                item["Keys"] = _project(
                    [metadata.key_metadata(table, k) for k in table.alternate_keys], nested
                )
            else:
                raise errors.unknown_property("EntityMetadata", name)
        return item

    def _attributes(self, table: Table, segments: list[Any], options: QueryOptions) -> Reply:
        if options.filter is not None:
            raise errors.not_implemented("$filter on Attributes")
        expansions = dict(_expansions(options.expand))
        with_options = any(name in expansions for name in ("OptionSet", "GlobalOptionSet"))
        unknown = [name for name in expansions if name not in ("OptionSet", "GlobalOptionSet")]
        if unknown:
            raise errors.not_implemented(f"$expand={unknown[0]} on Attributes")
        columns = list(table.fields)
        cast = None
        attribute = segments[0]
        if attribute.key is not None:
            predicate = parse_key(attribute.key)
            wanted = predicate.named.get("LogicalName", predicate.value)
            columns = [
                c
                for c in columns
                if c.name == wanted
                or metadata.stable_id("attribute", table.logical_name, c.name) == str(wanted).lower()
            ]
            if not columns:
                raise ODataError(
                    404,
                    "0x80040217",
                    f"Could not find attribute '{wanted}' on entity '{table.logical_name}'.",
                )
        if len(segments) == 2:
            cast = segments[1].name
            if not cast.startswith(CRM_TYPE_PREFIX):
                raise errors.segment_not_found(cast)
        elif len(segments) > 2:
            raise errors.segment_not_found(segments[2].name)
        attrs = [
            metadata.attribute_metadata(self.catalog, table, c, with_options=with_options) for c in columns
        ]
        if cast is not None:
            attrs = [a for a in attrs if a["@odata.type"] == f"#{cast}"]
        context = f"{self.root}$metadata#EntityDefinitions('{table.logical_name}')/Attributes"
        if attribute.key is not None and cast is None:
            return Reply.json(200, {"@odata.context": context + "/$entity", **_project(attrs, options)[0]})
        return Reply.json(200, {"@odata.context": context, "value": _project(attrs, options)})


def _key_value(table: Table, column: str, value: Any) -> Any:
    """An alternate-key URL value in storage form (lookup keys are GUIDs)."""
    field = table.field(column)
    if field is None or value is None:
        return value
    if is_lookup_field(field) or field.type == EdmType.GUID:
        return str(value).lower()
    try:
        return to_storage(table, field, value)
    except (ValueError, KeyError):
        raise errors.invalid_key(table.logical_name) from None


def _expansions(expand: str | None) -> list[tuple[str, QueryOptions]]:
    """``Attributes($select=LogicalName),Keys`` → [(name, options of the nested query)]."""
    if not expand:
        return []
    items: list[tuple[str, QueryOptions]] = []
    depth, current, parts = 0, [], []
    for ch in expand:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    for part in parts:
        name, _, rest = part.strip().partition("(")
        nested = rest[:-1] if rest.endswith(")") else rest
        pairs = parse_qsl(nested.replace(";", "&"), keep_blank_values=True) if nested else []
        items.append((name.strip(), parse_query_options(pairs, "dataverse")))
    return items


def _project(items: list[dict[str, Any]], options: QueryOptions) -> list[dict[str, Any]]:
    """Apply a metadata ``$select``, keeping ``@odata.type``, ``MetadataId`` and what ``$expand`` added."""
    if options.select is None:
        return items
    keep = {*options.select, "@odata.type", "MetadataId", *(name for name, _ in _expansions(options.expand))}
    return [{k: v for k, v in item.items() if k in keep} for item in items]


def _operation(reply: Reply, content_id: str | None) -> OperationResponse:
    return OperationResponse(reply.status, list(reply.headers), reply.body, content_id)


def create_app(ctx: ServiceContext) -> Starlette:
    """The Dataverse Web API as an ASGI app (the core wraps it in auth and protection)."""
    service = DataverseService(ctx)
    root_path = ctx.root_path

    async def endpoint(request: Request) -> Response:
        scope = request.scope
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query_string: bytes = scope.get("query_string", b"")
        if request.method == "GET" and len(raw_path) + len(query_string) + 1 > MAX_GET_URL:
            reply = Reply.error(errors.url_too_long(len(raw_path) + len(query_string) + 1))
            return _response(reply)
        path = raw_path.decode("latin-1")
        if not path.startswith(root_path) and path + "/" != root_path:
            return _response(Reply.error(errors.segment_not_found(unquote(path))))
        relative = path[len(root_path) :] if path.startswith(root_path) else ""
        query = query_string.decode("latin-1")
        headers = Headers((key, value) for key, value in request.headers.items())
        url = f"{relative}?{query}" if query else relative
        return _response(await service.dispatch(request.method, url, headers, await request.body()))

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=ALL_METHODS)])
    app.state.service = service
    return app


def _response(reply: Reply) -> Response:
    headers = {}
    media_type = None
    for name, value in reply.headers:
        if name.lower() == "content-type":
            media_type = value
        else:
            headers[name] = value
    return Response(content=reply.body, status_code=reply.status, headers=headers, media_type=media_type)
