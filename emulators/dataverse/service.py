"""The emulated Dataverse Web API (Dynamics 365 Sales), served at ``/api/data/v9.2/``.

Everything goes through one `DataverseService.dispatch(method, url, headers, body)`: the
ASGI route calls it for a direct request and the ``$batch`` handler calls it for
every part, so a batched request is validated, charged and counted exactly like a
direct one. Work is synchronous SQLite inside the event loop, which also makes a change
set (`Store.transaction()`) atomic without awaiting inside it. Reads are in `reads.py`,
writes in `writes.py`, ``EntityDefinitions`` in `definitions.py`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote

from emulators.dataverse import errors, metadata
from emulators.dataverse.calls import BULK_ACTIONS, Call, Reply, Rollback, Source, operation
from emulators.dataverse.keys import parse_key, resolve_row_key, split_path
from emulators.dataverse.records import CRM_TYPE_PREFIX
from emulators.dataverse.writes import DataverseWrites
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
    resolve_url,
)
from emulators.odata.csdl import build_csdl
from emulators.odata.errors import ODataError


class DataverseService(DataverseWrites):
    """The Web API over the catalogue and store of a `ServiceContext`: routing and ``$batch``."""

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
            annotated = any(n == "annotations" and v.lower() == "true" for n, v in call.query)
            if annotated not in self._csdl:
                catalog = metadata.csdl_catalog(self.catalog, self.system_catalog)
                self._csdl[annotated] = build_csdl(catalog, annotations=annotated)
            return Reply(
                200,
                [("Content-Type", "application/xml"), ("OData-Version", "4.0")],
                self._csdl[annotated].encode(),
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
            return self.definitions.answer(call, segments)
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
                                raise Rollback(answer)
                            answers.append(answer)
                except Rollback as failure:
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
            return operation(Reply.error(exc), part.content_id)
        relative = relative_to_root(absolute, self.root)
        if relative is None:
            return operation(Reply.error(errors.no_resource(absolute)), part.content_id)
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
        return operation(reply, part.content_id)
