"""``EntityDefinitions``: the metadata Web API over the catalogue (read only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from emulators.dataverse import errors, metadata
from emulators.dataverse.calls import Call, Reply
from emulators.dataverse.keys import Quoted, parse_key
from emulators.dataverse.records import CRM_TYPE_PREFIX
from emulators.odata.errors import ODataError
from emulators.odata.filter_sql import ColumnRef, compile_filter
from emulators.odata.query import QueryOptions, parse_query_options
from emulators.schema.model import Catalog
from emulators.store import Store, quote

if TYPE_CHECKING:
    from emulators.context import ServiceContext
    from emulators.schema.model import Table


class EntityDefinitions:
    """Answers ``EntityDefinitions`` requests from an in-memory table of the catalogue's entities."""

    def __init__(self, ctx: ServiceContext, catalog: Catalog) -> None:
        self.ctx = ctx
        self.catalog = catalog
        self.root = ctx.service_root
        self.definitions = self._build_definitions()

    def _build_definitions(self) -> Store:
        catalog = Catalog(service="dataverse")
        catalog.add(metadata.entity_definitions_table())
        store = Store(":memory:", catalog)
        rows = [
            metadata.entity_row(table, 10000 + index)
            for index, table in enumerate(self.catalog.tables.values())
        ]
        store.insert_many("EntityDefinitions", rows)
        return store

    def answer(self, call: Call, segments: list[Any]) -> Reply:
        """Serve ``EntityDefinitions[(key)][/Attributes|/Keys]``."""
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
