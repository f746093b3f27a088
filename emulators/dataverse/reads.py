"""The Dataverse service's state and reads: query, count, retrieve, property, WhoAmI.

Cost charging (``ctx.charge_operations``): one operation per single-row read or write,
one per record of a bulk message, one per query plus one per started 100 rows returned,
one per metadata request. A ``$batch`` charges what its parts charge; the core counts
it as one request.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from emulators.dataverse import errors, metadata, tracking
from emulators.dataverse.calls import MAX_COUNT, ROWS_PER_OPERATION, Call, Reply, Source
from emulators.dataverse.definitions import EntityDefinitions
from emulators.dataverse.paging import SortTerm, after_clause, decode_cookie, encode_cookie, next_link
from emulators.dataverse.precision import ORGANIZATIONS, ensure_organization
from emulators.dataverse.prefer import TOTAL_COUNT_EXCEEDED, Preferences
from emulators.dataverse.records import (
    Property,
    Renderer,
    is_lookup_field,
    property_map,
    set_column,
    storage_columns,
    wire_properties,
)
from emulators.odata.filter_sql import ColumnRef, compile_filter
from emulators.odata.query import QueryOptions, parse_query_options
from emulators.schema.model import EdmType
from emulators.schema.validate import to_storage
from emulators.store import quote

if TYPE_CHECKING:
    from collections.abc import Iterable

    from emulators.context import ServiceContext
    from emulators.dataverse.keys import RowKey
    from emulators.odata.errors import ODataError
    from emulators.schema.model import Table


class DataverseReads:
    """The Web API's state over a `ServiceContext`, and every request that only reads."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.catalog = ctx.catalog
        self.store = ctx.store
        self.root = ctx.service_root
        if ORGANIZATIONS in self.catalog.tables:
            ensure_organization(self.store, "Prospect to cash")
        self.system_store = metadata.build_system_store(self.catalog)
        self.system_catalog = self.system_store.catalog
        self.data = Source(self.store, self.catalog, writable=True)
        self.system = Source(self.system_store, self.system_catalog, writable=False)
        self.definitions = EntityDefinitions(ctx, self.catalog)
        self.deletions = tracking.Deletions(self.store)
        self._csdl: dict[bool, str] = {}  # $metadata without / with annotations=true
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
        return max(highest, self.deletions.max_version())

    def current_version(self) -> int:
        """The version of the latest change (write or delete); delta tokens point at one."""
        return self._version

    def next_version(self) -> int:
        self._version += 1
        return self._version

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

    def selected(self, table: Table, options: QueryOptions) -> list[Property]:
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

    def lookup_names(self, source: Source) -> Any:
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

    def context_url(self, table: Table, options: QueryOptions, suffix: str = "") -> str:
        select = f"({','.join(options.select)})" if options.select else ""
        return f"{self.root}$metadata#{table.entity_set}{select}{suffix}"

    # -- reads -------------------------------------------------------------------------

    def query(self, call: Call, source: Source, table: Table) -> Reply:
        if call.prefs.track_changes or any(name == "$deltatoken" for name, _ in call.query):
            tracking.refuse_options(call)
        options = self._options(call)
        prefs = call.prefs
        if tracking.is_tracked(call, options):
            return tracking.tracked_query(self, call, source, table, options)
        selected = self.selected(table, options)
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

        renderer = Renderer(source.catalog, table, selected, prefs, self.lookup_names(source))
        payload: dict[str, Any] = {"@odata.context": self.context_url(table, options)}
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
        self.ctx.record_read(len(rows), table.entity_set)
        return Reply.json(200, payload, self.applied(prefs, page_size=True))

    @staticmethod
    def applied(
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
        if options.deltatoken is not None:
            raise errors.not_implemented("$count of changes ($deltatoken)")
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
        selected = self.selected(table, options)
        self.ctx.charge_operations(1)
        row = self.find(source, table, key)
        if row is None:
            raise self._missing(table, key)
        self.ctx.record_read(1, table.entity_set)
        current = f'W/"{row.get("versionnumber")}"'
        if call.headers.get("If-None-Match") == current and prefs.annotations is None:
            return Reply.empty(304)
        return self._entity_reply(200, source, table, row, options, prefs, selected)

    def get_property(self, call: Call, source: Source, table: Table, key: RowKey, name: str) -> Reply:
        """``GET <set>(<key>)/<property>`` → ``{"value": …}``."""
        prop = property_map(table).get(name)
        if prop is None:
            raise errors.segment_not_found(name)
        self.ctx.charge_operations(1)
        row = self.find(source, table, key)
        if row is None:
            raise self._missing(table, key)
        entity = Renderer(source.catalog, table, [prop], call.prefs, self.lookup_names(source)).render([row])[
            0
        ]
        context = f"{self.root}$metadata#{table.entity_set}({row[table.key[0]]})/{name}"
        return Reply.json(200, {"@odata.context": context, "value": entity[name]})

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
        entity = Renderer(source.catalog, table, selected, prefs, self.lookup_names(source)).render([row])[0]
        payload = {"@odata.context": self.context_url(table, options, "/$entity"), **entity}
        return Reply.json(status, payload, [*headers, *self.applied(prefs, representation=True)])


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
