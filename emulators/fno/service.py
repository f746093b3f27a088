"""The F&O OData service: one `dispatch` for direct requests and `$batch` parts alike.

Behaviour follows Microsoft's F&O OData article (`data-entities/odata.md`): service root
`/data/`, case-sensitive entity sets, keys given in full, `$filter` / `$count` /
`$orderby` / `$skip` / `$top` / `$expand` (first level) / `$select`, server-driven paging
of at most 10,000 rows, enum literals `Microsoft.Dynamics.DataEntities.NoYes'Yes'` with
`eq`/`ne` only, `contains` written as a wildcard `eq '*text*'`, company context with
`?cross-company=true`, atomic change sets in `$batch`. Where Microsoft says nothing, the
behaviour of captured real responses is emulated and marked *(3p)*:

* server-driven paging links are built from `$skip`/`$top` *(3p)*;
* empty strings are served as `""`, never `null` (X++ strings are never null) *(3p)*;
* a create of an existing key fails with 500 "The record already exists." *(3p)*;
* PATCH never creates: a missing row answers "No resources were found when selecting for
  update." (400), and so does PATCH / DELETE / GET by key of another company's row
  without `cross-company=true` *(3p)*;
* `$batch` answers 200 even when a change set failed; the failed change set is answered
  by its failing operation alone *(3p)*.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, quote, unquote

from emulators.fno import errors
from emulators.fno.dmf import ACTION_NAMESPACE, ACTION_SET, DataManagement
from emulators.fno.entities import EntityView, build_views, field_label
from emulators.fno.integrity import PARTY_STORAGE, Integrity
from emulators.fno.paths import UnroutableKey, key_literal, parse_key, parse_path
from emulators.odata.batch import (
    FNO_LIMITS,
    BatchRequest,
    BatchResponseWriter,
    ChangeSet,
    ChangeSetResponse,
    Headers,
    OperationResponse,
    parse_batch,
    relative_to_root,
    resolve_url,
)
from emulators.odata.csdl import build_csdl
from emulators.odata.dialect import FNO, query_error
from emulators.odata.errors import ODataError
from emulators.odata.filter_sql import ColumnRef
from emulators.odata.query import compile_query, parse_query_options
from emulators.schema.model import EdmType, Required
from emulators.schema.validate import to_storage, validate_record
from emulators.store import ROWID, KeyExists, NotFound
from emulators.store import quote as sql_quote

if TYPE_CHECKING:
    from collections.abc import Callable

    from emulators.config import FnoServiceConfig
    from emulators.context import ServiceContext
    from emulators.odata.query import QueryOptions
    from emulators.schema.model import Field

JSON_TYPE = "application/json; odata.metadata=minimal"
#: A query page costs one operation plus one per this many rows returned.
ROWS_PER_OPERATION = 100
ODL_PROBLEMS = ("unknown_property", "wrong_type", "invalid_enum")


@dataclass
class Reply:
    """One HTTP answer, direct or inside a batch."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return cls(status, body, [("Content-Type", JSON_TYPE), ("OData-Version", "4.0"), *(headers or [])])

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class _Rollback(Exception):
    """Undo a change set whose operation failed."""


class FnoService:
    """The emulated F&O OData service over the store of `ctx`."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.catalog = ctx.catalog
        self.root = ctx.service_root
        self.views = build_views(ctx.catalog)
        self.integrity = Integrity(self.store, self.views)
        self._metadata: str | None = None
        self._plans: dict[tuple[str, tuple[str, ...] | None], list[tuple[str, Callable[[Any], Any]]]] = {}
        self.dmf = DataManagement(self)  # the package API's export actions (`emulators.fno.dmf`)

    # -- context ------------------------------------------------------------------------

    @property
    def settings(self) -> FnoServiceConfig:
        return cast("FnoServiceConfig", self.ctx.settings)

    def caller_company(self) -> str:
        """The caller's default company: per client id (token `appid`), else the default."""
        settings = self.settings
        client = str(self.ctx.caller().get("appid") or "")
        return settings.client_companies.get(client, settings.default_company).lower()

    # -- entry point --------------------------------------------------------------------

    async def dispatch(
        self, method: str, target: str, headers: Headers, body: bytes, *, in_batch: bool = False
    ) -> Reply:
        """Answer one request. `target` is the percent-encoded path below the service root
        plus its query string (`CustomersV3?$top=1`)."""
        try:
            return await self._route(method.upper(), target, headers, body, in_batch)
        except ODataError as exc:
            return self.error_reply(exc)

    def error_reply(self, error: ODataError) -> Reply:
        return Reply.json(error.status, errors.error_body(error))

    async def _route(self, method: str, target: str, headers: Headers, body: bytes, in_batch: bool) -> Reply:
        path, _, query = target.partition("?")
        pairs = parse_qsl(query, keep_blank_values=True)
        url = self.root + target
        if path in ("", "/"):
            return self._only(method, "GET") or self.service_document()
        if path == "$metadata":
            return self._only(method, "GET") or self.metadata()
        if path == "$batch":
            if in_batch:
                raise ODataError(400, "", "Nested batch requests are not supported.")
            return self._only(method, "POST") or await self.batch(headers, body)
        action_prefix = f"{ACTION_SET}/{ACTION_NAMESPACE}"
        if path.startswith(action_prefix):
            return self._only(method, "POST") or self.dmf.action(path[len(action_prefix) :], body)
        try:
            resource = parse_path(path)
        except UnroutableKey:
            raise errors.RouteNotFound(url) from None
        view = self.views.get(resource.name)
        if view is None:
            raise errors.RouteNotFound(url)
        if resource.key_text is None:
            if resource.rest == ("$count",):
                return self._only(method, "GET") or self.count(view, pairs)
            if resource.rest:
                raise errors.RouteNotFound(url)
            if method == "GET":
                return self.read_collection(view, pairs, headers)
            if method == "POST":
                return await self.create(view, body)
            raise errors.MethodNotAllowed(method)
        key = self._key(view, resource.key_text)
        if resource.rest:
            if len(resource.rest) != 1:
                raise errors.RouteNotFound(url)
            return self._only(method, "GET") or self.read_property(view, key, resource.rest[0], pairs)
        if method == "GET":
            return self.read_entity(view, key, pairs)
        if method in ("PATCH", "PUT", "MERGE"):
            return await self.update(view, key, pairs, body)
        if method == "DELETE":
            return await self.delete(view, key, pairs)
        raise errors.MethodNotAllowed(method)

    @staticmethod
    def _only(method: str, allowed: str) -> Reply | None:
        if method != allowed:
            raise errors.MethodNotAllowed(method)
        return None

    def _key(self, view: EntityView, key_text: str) -> dict[str, Any]:
        key = parse_key(view, key_text)
        if "dataAreaId" in key:
            key["dataAreaId"] = str(key["dataAreaId"]).lower()
        return key

    # -- service document and metadata --------------------------------------------------

    def service_document(self) -> Reply:
        self.ctx.charge_operations(1)
        return Reply.json(
            200,
            {
                "@odata.context": f"{self.root}$metadata",
                "value": [{"name": name, "kind": "EntitySet", "url": name} for name in sorted(self.views)],
            },
        )

    def metadata(self) -> Reply:
        self.ctx.charge_operations(1)
        if self._metadata is None:
            self._metadata = build_csdl(self.catalog)
        return Reply(
            200,
            self._metadata.encode("utf-8"),
            [("Content-Type", "application/xml"), ("OData-Version", "4.0")],
        )

    # -- SQL building blocks ------------------------------------------------------------

    def _resolver(self, view: EntityView) -> Any:
        """Property name -> SQL, as F&O reads it: empty strings and F&O's fill-in defaults
        for unset numbers, dates and enums, computed flags from the customers."""

        def resolve(path: str) -> ColumnRef:
            column = view.field(path)
            if column is None:
                raise query_error(
                    FNO, f"Could not find a property named '{path}' on type '{view.type_name}'."
                )
            return ColumnRef(self._read_sql(view, column), column, column.type)

        return resolve

    def _read_sql(self, view: EntityView, column: Field) -> str:
        sql = view.column_sql(column.name)
        if column.name in view.table.key or column.name in view.computed:
            return sql
        if column.type is EdmType.STRING:
            return f"COALESCE({sql}, '')"
        if column.default is not None:
            stored = to_storage(view.table, column, column.default, catalog=self.catalog)
            literal = f"'{stored}'" if isinstance(stored, str) else str(stored)
            return f"COALESCE({sql}, {literal})"
        return sql

    def _scope(self, view: EntityView, cross_company: bool) -> tuple[list[str], list[Any]]:
        """WHERE terms every read of the view carries: its predicate and the company."""
        terms: list[str] = []
        params: list[Any] = []
        if view.predicate:
            terms.append(view.predicate)
        if view.company_specific and not cross_company:
            terms.append(f"{sql_quote('dataAreaId')} = ?")
            params.append(self.caller_company())
        return terms, params

    def _key_terms(self, view: EntityView, key: dict[str, Any]) -> tuple[list[str], list[Any]]:
        terms = [f"{sql_quote(name)} = ?" for name in key]
        params = [self.store.to_storage(view.storage, name, value) for name, value in key.items()]
        return terms, params

    def _select(
        self,
        view: EntityView,
        terms: list[str],
        params: list[Any],
        order_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        where = " AND ".join(f"({t})" for t in terms) or "1=1"
        order = ", ".join([t for t in (order_by, sql_quote(ROWID)) if t])
        sql = f"SELECT {view.projection_sql} FROM {sql_quote(view.storage)} WHERE {where} ORDER BY {order}"
        args = list(params)
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            args += [-1 if limit is None else limit, offset]
        return [dict(row) for row in self.store.execute(sql, args)]

    def _count(self, view: EntityView, terms: list[str], params: list[Any]) -> int:
        where = " AND ".join(f"({t})" for t in terms) or "1=1"
        rows = self.store.execute(f"SELECT COUNT(*) FROM {sql_quote(view.storage)} WHERE {where}", params)
        return int(rows[0][0])

    def _visible_row(
        self, view: EntityView, key: dict[str, Any], cross_company: bool
    ) -> dict[str, Any] | None:
        terms, params = self._scope(view, cross_company)
        key_terms, key_params = self._key_terms(view, key)
        rows = self._select(view, terms + key_terms, params + key_params, limit=1)
        return rows[0] if rows else None

    # -- JSON rendering -----------------------------------------------------------------

    def _converter(self, view: EntityView, column: Field) -> Callable[[Any], Any]:
        """Stored value -> JSON value of one property, with F&O's fill-ins for unset values
        (built once per property: a 10,000-row page renders hundreds of thousands)."""
        default = column.default
        kind = column.type
        if kind is EdmType.STRING:
            return lambda value: "" if value is None else value
        if kind in (EdmType.DECIMAL, EdmType.DOUBLE):
            return lambda value: default if value is None else float(value)
        if kind is EdmType.ENUM:
            names: dict[int, str] = {}
            for member, number in self.catalog.enums[column.enum_type or ""].members.items():
                names.setdefault(number, member)  # F&O's Timezone has two members sharing 255
            return lambda value: default if value is None else names.get(value, default)
        return lambda value: default if value is None else value

    def _wire(self, view: EntityView, column: Field, value: Any) -> Any:
        return self._converter(view, column)(value)

    def _render_plan(
        self, view: EntityView, select: tuple[str, ...] | None
    ) -> list[tuple[str, Callable[[Any], Any]]]:
        cache_key = (view.entity_set, select)
        plan = self._plans.get(cache_key)
        if plan is None:
            plan = [
                (column.name, self._converter(view, column))
                for column in view.table.fields
                if select is None or column.name in select
            ]
            self._plans[cache_key] = plan
        return plan

    @staticmethod
    def _etag(row: dict[str, Any]) -> str:
        """Weak ETag in F&O's form (base64 of a row version and the record id); it changes
        whenever a stored value of the row changes."""
        version = zlib.crc32(str(tuple(row.values())).encode("utf-8"))
        token = base64.b64encode(f"'{version},{row.get(ROWID, 0)}'".encode()).decode("ascii")
        return f'W/"{token}"'

    def _render(
        self, view: EntityView, row: dict[str, Any], select: tuple[str, ...] | None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": self._etag(row)}
        out.update({name: convert(row[name]) for name, convert in self._render_plan(view, select)})
        return out

    def _context(self, view: EntityView, select: tuple[str, ...] | None, suffix: str = "") -> str:
        columns = f"({','.join(select)})" if select else ""
        return f"{self.root}$metadata#{view.entity_set}{columns}{suffix}"

    # -- reads --------------------------------------------------------------------------

    def _options(self, view: EntityView, pairs: list[tuple[str, str]]) -> QueryOptions:
        options = parse_query_options(pairs, FNO)
        if options.expand is not None:
            self._refuse_expand(view, options.expand)
        return options

    def _refuse_expand(self, view: EntityView, expand: str) -> None:
        """The catalogue's entities declare no navigation properties, so any item is refused."""
        for item in expand.split(","):
            name = item.strip().split("(", 1)[0].split("/", 1)[0].strip()
            if not name:
                raise query_error(FNO, f"Syntax error at position 0 in '{expand}'.")
            if view.field(name) is None:
                raise query_error(
                    FNO, f"Could not find a property named '{name}' on type '{view.type_name}'."
                )
            raise query_error(
                FNO,
                f"Property '{name}' on type '{view.type_name}' is not a navigation property or complex "
                "property. Only navigation properties can be expanded.",
            )

    @staticmethod
    def _cross_company(pairs: list[tuple[str, str]]) -> bool:
        return any(name == "cross-company" and value.strip().lower() == "true" for name, value in pairs)

    @staticmethod
    def _prefer_page_size(headers: Headers) -> int | None:
        for value in headers.get_all("Prefer"):
            for preference in value.split(","):
                name, _, setting = preference.strip().partition("=")
                if name.strip().lower() == "odata.maxpagesize":
                    try:
                        size = int(setting.strip().strip('"'))
                    except ValueError:
                        return None
                    return size if size > 0 else None
        return None

    def read_collection(self, view: EntityView, pairs: list[tuple[str, str]], headers: Headers) -> Reply:
        options = self._options(view, pairs)
        compiled = compile_query(options, self._resolver(view), dialect=FNO, enums=self.catalog.enums)
        terms, params = self._scope(view, self._cross_company(pairs))
        if compiled.where:
            terms.append(compiled.where)
            params += compiled.params
        preferred = self._prefer_page_size(headers)
        page = min(preferred or self.settings.page_size, self.settings.page_size)
        skip = options.skip or 0
        top = options.top
        want = page if top is None else min(page, top)
        rows = self._select(view, terms, params, compiled.order_by, limit=want + 1, offset=skip)
        more = len(rows) > want and (top is None or top > want)
        rows = rows[:want]
        payload: dict[str, Any] = {"@odata.context": self._context(view, options.select)}
        if options.count:
            payload["@odata.count"] = self._count(view, terms, params)
        payload["value"] = [self._render(view, row, options.select) for row in rows]
        if more:
            payload["@odata.nextLink"] = self._next_link(
                view, pairs, skip + want, None if top is None else top - want
            )
        self.ctx.charge_operations(1 + len(rows) // ROWS_PER_OPERATION)
        self.ctx.record_read(len(rows), view.entity_set)
        extra = [("Preference-Applied", f"odata.maxpagesize={page}")] if preferred else []
        return Reply.json(200, payload, extra)

    def _next_link(self, view: EntityView, pairs: list[tuple[str, str]], skip: int, top: int | None) -> str:
        kept = [(k, v) for k, v in pairs if k not in ("$skip", "$top")]
        kept.append(("$skip", str(skip)))
        if top is not None:
            kept.append(("$top", str(top)))
        query = "&".join(f"{quote(k, safe='$')}={quote(v, safe=_QUERY_SAFE)}" for k, v in kept)
        return f"{self.root}{view.entity_set}?{query}"

    def count(self, view: EntityView, pairs: list[tuple[str, str]]) -> Reply:
        options = self._options(view, pairs)
        compiled = compile_query(options, self._resolver(view), dialect=FNO, enums=self.catalog.enums)
        terms, params = self._scope(view, self._cross_company(pairs))
        if compiled.where:
            terms.append(compiled.where)
            params += compiled.params
        total = self._count(view, terms, params)
        self.ctx.charge_operations(1)
        return Reply(
            200, str(total).encode("ascii"), [("Content-Type", "text/plain"), ("OData-Version", "4.0")]
        )

    def read_entity(self, view: EntityView, key: dict[str, Any], pairs: list[tuple[str, str]]) -> Reply:
        options = self._options(view, pairs)
        compile_query(options, self._resolver(view), dialect=FNO, enums=self.catalog.enums)  # checks $select
        row = self._visible_row(view, key, self._cross_company(pairs))
        self.ctx.charge_operations(1)
        if row is None:
            raise errors.entity_not_found(view.entity_set)
        self.ctx.record_read(1, view.entity_set)
        payload = {"@odata.context": self._context(view, options.select, "/$entity")}
        payload.update(self._render(view, row, options.select))
        return Reply.json(200, payload)

    def read_property(
        self, view: EntityView, key: dict[str, Any], name: str, pairs: list[tuple[str, str]]
    ) -> Reply:
        column = view.field(name)
        if column is None:
            raise errors.entity_not_found(name)
        row = self._visible_row(view, key, self._cross_company(pairs))
        self.ctx.charge_operations(1)
        if row is None:
            raise errors.entity_not_found(view.entity_set)
        self.ctx.record_read(1, view.entity_set)
        context = f"{self.root}$metadata#{view.entity_set}({key_literal(view, row)})/{name}"
        return Reply.json(200, {"@odata.context": context, "value": self._wire(view, column, row.get(name))})

    # -- writes -------------------------------------------------------------------------

    @staticmethod
    def _json_object(body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise errors.payload_error(f"The request body is not valid JSON: {exc.args[0]}") from None
        if not isinstance(data, dict):
            raise errors.payload_error(
                "A node of type 'StartArray' was read from the JSON reader when trying to read the start "
                "of an entry. A 'StartObject' node was expected."
                if isinstance(data, list)
                else "The request body must be a JSON object describing the entity."
            )
        return data

    def _check_payload(self, view: EntityView, data: dict[str, Any], *, for_create: bool) -> list[str]:
        """ODL's payload errors raise at once (400); returns F&O's own Infolog lines
        (mandatory fields, read-only fields) for the caller to report with the others."""
        problems = validate_record(view.table, data, catalog=self.catalog, for_create=for_create)
        for problem in problems:
            if problem.kind == "unknown_property":
                raise errors.payload_error(errors.unknown_property(view, problem.field))
            if problem.kind == "wrong_type":
                value = data.get(problem.field)
                text = (
                    errors.null_for_non_nullable(view, problem.field)
                    if value is None
                    else errors.cannot_convert(view, problem.field, value)
                )
                raise errors.payload_error(text)
            if problem.kind == "invalid_enum":
                raise errors.payload_error(errors.invalid_enum_member(data.get(problem.field)))
        lines: list[str] = []
        missing: list[str] = []
        for problem in problems:
            if problem.kind == "read_only":
                # Computed entity fields cannot be written (inferred wording).
                lines.append(f"Error: Field '{field_label(problem.field)}' cannot be edited.")
            elif problem.kind == "missing_required":
                missing.append(problem.field)
        reported = {p.field for p in problems}
        for column in view.table.fields:
            value = data.get(column.name)
            if (
                column.required is Required.SYSTEM
                and column.name not in reported
                and isinstance(value, str)
                and not value.strip()
            ):
                missing.append(column.name)
        if missing:
            lines += [f"Warning: Field '{field_label(name)}' must be filled in." for name in missing]
            lines.append(self._validate_write_line(view))
        return lines

    @staticmethod
    def _validate_write_line(view: EntityView) -> str:
        name = view.names.table_name
        return f"Warning: validateWrite failed on data source '{name} ({name})'."

    def _storage_values(self, view: EntityView, data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in data.items():
            column = view.field(name)
            if column is None or name.startswith("@") or "@" in name:
                continue
            out[name] = to_storage(view.table, column, value, catalog=self.catalog)
        return out

    async def create(self, view: EntityView, body: bytes) -> Reply:
        data = self._json_object(body)
        if view.company_specific:
            given = data.get("dataAreaId")
            if given is None or given == "":
                data["dataAreaId"] = self.caller_company()  # F&O writes into the caller's company
            elif isinstance(given, str):
                data["dataAreaId"] = given.lower()
        lines = self._check_payload(view, data, for_create=True)
        values = self._storage_values(view, data)
        storage_table = self.catalog.tables[view.storage]
        row = {
            column.name: to_storage(storage_table, column, column.default, catalog=self.catalog)
            for column in storage_table.fields
            if column.default is not None
        }
        row.update(values)
        async with self.store.atomic():
            if view.company_specific and not self.integrity.company_exists(row["dataAreaId"]):
                lines.insert(0, f"Error: Company '{row['dataAreaId']}' does not exist.")
            lines = self.integrity.reference_lines(view, row, set(values)) + lines
            self.ctx.charge_operations(1)
            if lines:
                raise errors.write_failed(view, lines)
            if view.storage == PARTY_STORAGE and not row.get("PartyNumber"):
                row["PartyNumber"] = self.integrity.next_party_number()
            try:
                self.store.insert(view.storage, row)
            except KeyExists:
                raise self._already_exists(view, row) from None
            key = {name: row[name] for name in view.table.key}
            key_terms, key_params = self._key_terms(view, key)
            stored = self._select(view, key_terms, key_params, limit=1)[0]
        self.ctx.record_write("create")
        location = f"{self.root}{view.entity_set}({key_literal(view, stored)})"
        payload = {"@odata.context": self._context(view, None, "/$entity")}
        payload.update(self._render(view, stored, None))
        return Reply.json(201, payload, [("Location", location)])

    def _already_exists(self, view: EntityView, row: dict[str, Any]) -> ODataError:
        key = [name for name in view.table.key if name != "dataAreaId"] or list(view.table.key)
        shown = ", ".join(str(row.get(name)) for name in key)
        names = view.names
        return errors.write_failed(
            view,
            [
                f"Info: Cannot create a record in {names.table_label} ({names.table_name}). "
                f"{field_label(key[-1])}: {shown}.\nThe record already exists."
            ],
            status=500,
        )

    async def update(
        self, view: EntityView, key: dict[str, Any], pairs: list[tuple[str, str]], body: bytes
    ) -> Reply:
        data = self._json_object(body)
        lines = self._check_payload(view, data, for_create=False)
        for name in view.table.key:
            if name in data:
                given = data.pop(name)
                if isinstance(given, str) and name == "dataAreaId":
                    given = given.lower()
                if given != key[name]:
                    # Key fields identify the record: no renaming through an update (inferred wording).
                    lines.append(f"Error: The key field '{field_label(name)}' cannot be changed.")
        changes = self._storage_values(view, data)
        async with self.store.atomic():
            current = self._visible_row(view, key, self._cross_company(pairs))
            self.ctx.charge_operations(1)
            if current is None:
                raise errors.not_found_for_update()
            merged = {**current, **changes}
            lines = self.integrity.reference_lines(view, merged, set(changes)) + lines
            if lines:
                raise errors.write_failed(view, lines)
            if changes:
                try:
                    self.store.update(view.storage, key, changes)
                except NotFound:
                    raise errors.not_found_for_update() from None
        self.ctx.record_write("update")
        return Reply(204, b"", [("OData-Version", "4.0")])

    async def delete(self, view: EntityView, key: dict[str, Any], pairs: list[tuple[str, str]]) -> Reply:
        async with self.store.atomic():
            current = self._visible_row(view, key, self._cross_company(pairs))
            self.ctx.charge_operations(1)
            if current is None:
                raise errors.not_found_for_update()
            try:
                self.store.delete(view.storage, key)
            except NotFound:
                raise errors.not_found_for_update() from None
        self.ctx.record_write("delete")
        return Reply(204, b"", [("OData-Version", "4.0")])

    # -- $batch -------------------------------------------------------------------------

    async def batch(self, headers: Headers, body: bytes) -> Reply:
        """Run every part through `dispatch`; change sets are atomic, the batch answers 200."""
        items = parse_batch(body, headers.get("Content-Type"), FNO_LIMITS)
        writer = BatchResponseWriter(continue_on_error=True)
        for item in items:
            if isinstance(item, ChangeSet):
                writer.add(await self._changeset(item))
            else:
                writer.add(await self._part(item, None))
        status, content_type, payload = writer.render()
        return Reply(status, payload, [("Content-Type", content_type), ("OData-Version", "4.0")])

    async def _changeset(self, changeset: ChangeSet) -> ChangeSetResponse:
        """Run a change set atomically. A failed one is answered by its failing operation
        alone, still wrapped in a change-set part, as captured from F&O *(3p)*."""
        references: dict[str, str] = {}
        responses: list[OperationResponse] = []
        failed: OperationResponse | None = None
        try:
            async with self.store.atomic():
                for request in changeset.requests:
                    response = await self._part(request, references)
                    if response.failed:
                        failed = response
                        raise _Rollback
                    responses.append(response)
                    location = next((v for k, v in response.headers if k.lower() == "location"), None)
                    if request.content_id is not None and location is not None:
                        references[request.content_id] = location
        except _Rollback:
            assert failed is not None
            return ChangeSetResponse([failed])
        return ChangeSetResponse(responses)

    async def _part(self, request: BatchRequest, references: dict[str, str] | None) -> OperationResponse:
        try:
            url = resolve_url(request.url, self.root, references)
            target = relative_to_root(url, self.root)
            if target is None:
                raise errors.RouteNotFound(url)
        except ODataError as exc:
            reply = self.error_reply(exc)
        else:
            name = unquote(target.split("?", 1)[0].split("/", 1)[0].split("(", 1)[0]) or "/"
            self.ctx.record_batch_part(request.method, name)
            reply = await self.dispatch(request.method, target, request.headers, request.body, in_batch=True)
        return OperationResponse(reply.status, reply.headers, reply.body, content_id=request.content_id)


_QUERY_SAFE = "$',()*:@/!;="
