"""Dataverse writes: create, upsert (PATCH), delete, property PUT/DELETE and the bulk messages."""

from __future__ import annotations

import json
import re
import string
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from emulators.dataverse import errors
from emulators.dataverse.calls import Call, Reply
from emulators.dataverse.keys import KeyPredicate, parse_key, resolve_row_key, split_path
from emulators.dataverse.precision import round_kept
from emulators.dataverse.reads import DataverseReads
from emulators.dataverse.records import BIND_SUFFIX, CRM_TYPE_PREFIX, check_body, property_map, set_column
from emulators.dataverse.states import check_editable, settle_state
from emulators.odata.batch import relative_to_root, resolve_reference
from emulators.odata.errors import ODataError
from emulators.schema.validate import to_storage
from emulators.store import KeyExists, NotFound, format_datetime

#: What a row's owner decides; a line copies all three from its parent.
OWNER_COLUMNS = ("ownerid", "owninguser", "owningbusinessunit")

if TYPE_CHECKING:
    from emulators.dataverse.keys import RowKey
    from emulators.schema.model import Table


class DataverseWrites(DataverseReads):
    """Every request that changes rows (the routing lives in `DataverseService`)."""

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

    def _update_changes(
        self, call: Call, table: Table, existing: dict[str, Any], body: Any
    ) -> dict[str, Any]:
        """The storage values an update of ``existing`` writes: body checked, the row (or its
        header) editable, the state/status pair settled."""
        body = check_body(table, body, self.catalog, for_create=False)
        changes = self._changes(call, table, body)
        check_editable(self.store, table, current=existing, changes=changes)
        settle_state(table, changes, existing)
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
        check_editable(self.store, table, current=None, changes=row)
        settle_state(table, row, None)  # before the defaults: a lone state gets its own status
        for column in table.fields:
            if column.name in row or column.read_only:
                continue
            if column.default is not None:
                row[column.name] = to_storage(table, column, column.default, catalog=self.catalog)
            elif column.auto_number:
                row[column.name] = self._auto_number(table, column.name, column.auto_number)
        now = self._now()
        system = {"createdon": now, "modifiedon": now, "versionnumber": self.next_version()}
        if row.get("overriddencreatedon") is not None:
            # A migrated row: createdon takes the given date, the column the time of migration.
            system["createdon"], system["overriddencreatedon"] = row["overriddencreatedon"], now
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

    def _ownership(self, table: Table, row: dict[str, Any], current: dict[str, Any] | None) -> None:
        """Who owns a row being created (``current`` None) or changed.

        A line takes its parent's owner. Otherwise ``ownerid`` (the caller when a create leaves
        it out) decides, and ``owninguser`` and ``owningbusinessunit`` follow it on create and
        on assign (a PATCH of ``ownerid``): the row lands in its owner's business unit.
        """
        if table.field("ownerid") is None:
            return
        if table.owner_parent is not None:
            parent_id = row.get(table.owner_parent)
            if parent_id is not None:
                lookup = next(lk for lk in table.lookups if lk.column == table.owner_parent)
                parent_set = next(iter(lookup.targets.values()))
                parent = self.store.get(parent_set, parent_id, columns=list(OWNER_COLUMNS))
                if parent is not None:
                    row.update({column: parent.get(column) for column in OWNER_COLUMNS})
                    return
            if current is not None:
                return
        if current is None and row.get("ownerid") is None:
            user_id, business_unit_id = self.identity()
            row.update(ownerid=user_id, owninguser=user_id, owningbusinessunit=business_unit_id or None)
            return
        if "ownerid" in row and (current is None or row["ownerid"] != current.get("ownerid")):
            owner = row["ownerid"]
            user = self.store.get("systemusers", owner, columns=["businessunitid"]) if owner else None
            row["owninguser"] = owner
            row["owningbusinessunit"] = user.get("businessunitid") if user else None

    def _cascade_assign(self, table: Table, row_id: str, changes: dict[str, Any]) -> None:
        """An assigned parent takes its lines along (the parental relationship's cascade)."""
        if "owningbusinessunit" not in changes:
            return
        owner = {column: changes.get(column) for column in OWNER_COLUMNS}
        for child in self.catalog.tables.values():
            lookup = next((lk for lk in child.lookups if lk.column == child.owner_parent), None)
            if lookup is None or table.entity_set not in lookup.targets.values():
                continue
            pk = child.key[0]
            for line in self.store.find_by(child.entity_set, {lookup.column: row_id}):
                stamp = {"modifiedon": self._now(), "versionnumber": self.next_version()}
                self.store.update(child.entity_set, line[pk], {**owner, **stamp})

    def _derive(self, table: Table, row: dict[str, Any], current: dict[str, Any] | None = None) -> None:
        """Columns the platform computes from others: owners, full names, exchange rates, base amounts."""
        self._ownership(table, row, current)
        merged = {**(current or {}), **row}
        round_kept(self.store, table, row, merged)  # before the base amounts are derived from them
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
                self.selected(table, options),
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
        changes = self._update_changes(call, table, existing, body)
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
                self._cascade_assign(table, row_id, changes)
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
        check_editable(self.store, table, current=existing, changes=None)
        try:
            with self.store.transaction():
                self.store.delete(table.entity_set, existing[table.key[0]])
                self.deletions.record(table, existing[table.key[0]], self.next_version())
        except NotFound:
            raise self._missing(table, key) from None
        self.ctx.record_write("delete")
        return Reply.empty(204)

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
        changes = self._update_changes(call, table, existing, record)
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
            self._cascade_assign(table, existing[pk], changes)
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
