"""Data management incremental export: the package API's export actions and their packages.

Follows "Data management package REST API" (``data-entities/data-management-api.md``) and
"Enable change tracking for entities" (``data-entities/entity-change-track.md``):

* ``POST /data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.ExportToPackage``
  with ``definitionGroupId``, ``packageName``, ``executionId``, ``reExecute`` and
  ``legalEntityId`` answers the execution id (the project must exist, "If the project doesn't
  exist, a call to the API returns an error"; an empty execution id gets a new one);
* ``GetExecutionSummaryStatus`` answers ``Executing`` while the export runs, then
  ``Succeeded`` or ``Failed`` (``Unknown`` for an execution id it never saw);
* ``GetExportedPackageUrl`` answers a blob URL with an embedded SAS token of the zip package
  (a data file per entity, ``Manifest.xml``, ``PackageHeader.xml``); the file stays for
  seven days. ``GetExecutionErrors`` lists a failed execution's messages as a JSON list;
* change tracking ("Enable primary table"): only records created or updated since the
  project's last *successful* export are exported, the first export of a project is a full
  push, and deletions are not exported (the docs track them only for BYOD).

Where Microsoft says nothing the emulator decides, marked *(assumed)*: the two export
examples print ``"value": {"value": ...}`` under an ``Edm.String`` context, the emulator
answers the plain ``Edm.String``; the URL of an execution that did not succeed is ``""``;
an unknown project or a reused execution id answer 400 in F&O's error envelope. The data
file is CSV with a header row of the entity's field names (the data project's default
"CSV" source format). Versions come from SQLite triggers on the entity's storage table,
installed when a project first exports it: like SQL change tracking, changes made before it
was enabled are not tracked, which the first full push covers.

The package is served by the emulator itself over HTTPS at ``/dmf/<execution>/<name>.zip``
with a signed, expiring query (``se``, ``sig``) as Azure Storage serves a SAS: no bearer
token; a wrong signature or an expired one answers 403 ``AuthenticationFailed``.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import secrets
import time
import uuid
import zipfile
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote

from emulators.odata.errors import ODataError
from emulators.store import ROWID
from emulators.store import quote as sql_quote

if TYPE_CHECKING:
    from emulators.config import DmfConfig
    from emulators.fno.entities import EntityView
    from emulators.fno.service import FnoService, Reply

#: The bound collection the package API's actions hang off.
ACTION_SET = "DataManagementDefinitionGroups"
ACTION_NAMESPACE = "Microsoft.Dynamics.DataEntities."
#: Where packages are downloaded (outside ``/data/``: a blob URL needs no bearer token).
BLOB_PREFIX = "/dmf/"
STATUSES = ("Unknown", "NotRun", "Executing", "Succeeded", "PartiallySucceeded", "Failed", "Canceled")
FAILED_MESSAGE = "Export of entity '{entity}' failed: the data project execution was stopped."

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS _dmf_clock (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER)",
    "INSERT OR IGNORE INTO _dmf_clock VALUES (1, 0)",
    "CREATE TABLE IF NOT EXISTS _dmf_versions (storage TEXT, row INTEGER, version INTEGER,"
    " PRIMARY KEY (storage, row))",
    "CREATE TABLE IF NOT EXISTS _dmf_baselines (project TEXT PRIMARY KEY, version INTEGER)",
    "CREATE TABLE IF NOT EXISTS _dmf_executions (id TEXT PRIMARY KEY, project TEXT, entity TEXT,"
    " company TEXT, package TEXT, ready REAL, failed INTEGER, upto INTEGER, status TEXT,"
    " rows INTEGER, data BLOB)",
    "CREATE TABLE IF NOT EXISTS _dmf_secret (id INTEGER PRIMARY KEY CHECK (id = 1), key TEXT)",
)


def _action_error(message: str) -> ODataError:
    return ODataError(400, "", "An error has occurred.", inner={"message": message})


class DataManagement:
    """The export side of the package API over the F&O service's store."""

    def __init__(self, service: FnoService) -> None:
        self.service = service
        self.store = service.store
        with self.store.transaction():
            for statement in _SCHEMA:
                self.store.execute_write(statement)
            self.store.execute_write(
                "INSERT OR IGNORE INTO _dmf_secret VALUES (1, ?)", [secrets.token_hex(32)]
            )
        self._key = str(self.store.execute("SELECT key FROM _dmf_secret")[0][0]).encode("ascii")

    @property
    def settings(self) -> DmfConfig:
        return self.service.settings.dmf

    # -- actions ------------------------------------------------------------------------

    def action(self, name: str, body: bytes) -> Reply:
        """Answer one action of ``DataManagementDefinitionGroups`` (POST only)."""
        params = self.service._json_object(body)
        self.service.ctx.charge_operations(1)
        self._settle()
        handlers = {
            "ExportToPackage": self._export,
            "GetExecutionSummaryStatus": self._status,
            "GetExportedPackageUrl": self._package_url,
            "GetExecutionErrors": self._errors,
        }
        handler = handlers.get(name)
        if handler is None:
            raise _action_error(f"Action '{ACTION_NAMESPACE}{name}' is not available.")
        return handler(params)

    def _string(self, value: Any) -> Reply:
        return _reply_type().json(
            200, {"@odata.context": f"{self.service.root}$metadata#Edm.String", "value": value}
        )

    @staticmethod
    def _text(params: dict[str, Any], name: str, *, required: bool = True) -> str:
        value = params.get(name, "")
        if not isinstance(value, str) or (required and not value):
            raise _action_error(f"The parameter '{name}' must be a non-empty string.")
        return value

    def _export(self, params: dict[str, Any]) -> Reply:
        project = self._text(params, "definitionGroupId")
        package = self._text(params, "packageName")
        execution = self._text(params, "executionId", required=False)
        if not isinstance(params.get("reExecute", False), bool):
            raise _action_error("The parameter 'reExecute' must be a boolean.")
        company = (
            self._text(params, "legalEntityId", required=False) or self.service.caller_company()
        ).lower()
        entity = self.settings.projects.get(project)
        if entity is None:
            raise _action_error(f"Data project '{project}' was not found.")
        view = self.service.views[entity]
        execution = execution or f"{project}-{uuid.uuid4()}"
        if self.store.execute("SELECT 1 FROM _dmf_executions WHERE id = ?", [execution]):
            raise _action_error(f"Execution ID '{execution}' already exists.")
        failed = self._take_failure()
        with self.store.transaction():
            first = self._track(view)
            upto = int(self.store.execute("SELECT version FROM _dmf_clock")[0][0])
            baseline = self.store.execute("SELECT version FROM _dmf_baselines WHERE project = ?", [project])
            since = None if first or not baseline else int(baseline[0][0])
            rows = self._rows(view, company, since)
            data = b"" if failed else self._package(view, rows)
            self.store.execute_write(
                "INSERT INTO _dmf_executions VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'Executing', ?, ?)",
                [
                    execution,
                    project,
                    entity,
                    company,
                    package,
                    time.time() + self.settings.execution_seconds,
                    int(failed),
                    upto,
                    len(rows),
                    data,
                ],
            )
        return self._string(execution)

    def _take_failure(self) -> bool:
        """One of the next ``fail_next`` executions: counted down in the persisted config."""
        left = self.settings.fail_next
        if left <= 0:
            return False
        self.service.ctx.config_store.patch({"fno": {"dmf": {"fail_next": left - 1}}})
        return True

    def _status(self, params: dict[str, Any]) -> Reply:
        found = self.store.execute(
            "SELECT status FROM _dmf_executions WHERE id = ?", [self._text(params, "executionId")]
        )
        return self._string(str(found[0][0]) if found else "Unknown")

    def _package_url(self, params: dict[str, Any]) -> Reply:
        execution = self._text(params, "executionId")
        found = self.store.execute("SELECT status, package FROM _dmf_executions WHERE id = ?", [execution])
        if not found or found[0][0] != "Succeeded":
            return self._string("")
        expiry = int(time.time()) + self.settings.package_expiry_seconds
        path = f"{BLOB_PREFIX}{quote(execution, safe='')}/{quote(str(found[0][1]), safe='')}.zip"
        origin = self.service.root[: -len(self.service.ctx.root_path)]
        return self._string(
            f"{origin}{path}?sv=2020-08-04&sr=b&sp=r&se={expiry}&sig={self._sign(path, expiry)}"
        )

    def _errors(self, params: dict[str, Any]) -> Reply:
        found = self.store.execute(
            "SELECT status, entity FROM _dmf_executions WHERE id = ?", [self._text(params, "executionId")]
        )
        messages = [FAILED_MESSAGE.format(entity=found[0][1])] if found and found[0][0] == "Failed" else []
        return self._string(json.dumps(messages))

    # -- executions and change tracking -------------------------------------------------

    def _settle(self) -> None:
        """Executions whose time has come end; a successful one moves its project's baseline."""
        due = self.store.execute(
            "SELECT id, project, failed, upto FROM _dmf_executions WHERE status = 'Executing' AND ready <= ?",
            [time.time()],
        )
        if not due:
            return
        with self.store.transaction():
            for execution, project, failed, upto in due:
                self.store.execute_write(
                    "UPDATE _dmf_executions SET status = ? WHERE id = ?",
                    ["Failed" if failed else "Succeeded", execution],
                )
                if not failed:
                    self.store.execute_write(
                        "INSERT INTO _dmf_baselines VALUES (?, ?) ON CONFLICT (project) DO UPDATE"
                        " SET version = MAX(version, excluded.version)",
                        [project, upto],
                    )

    def _track(self, view: EntityView) -> bool:
        """Turn change tracking on for the entity's primary table; True when it was off."""
        storage = view.storage
        name = f"_dmf_track_{storage}"
        if self.store.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?", [f"{name}_i"]
        ):
            return False
        bump = (
            "UPDATE _dmf_clock SET version = version + 1; "
            f"INSERT OR REPLACE INTO _dmf_versions VALUES ('{storage}', NEW.{sql_quote(ROWID)}, "
            "(SELECT version FROM _dmf_clock)); END"
        )
        table = sql_quote(storage)
        self.store.execute_write(
            f"CREATE TRIGGER {sql_quote(name + '_i')} AFTER INSERT ON {table} BEGIN {bump}"
        )
        self.store.execute_write(
            f"CREATE TRIGGER {sql_quote(name + '_u')} AFTER UPDATE ON {table} BEGIN {bump}"
        )
        return True

    def _rows(self, view: EntityView, company: str, since: int | None) -> list[dict[str, Any]]:
        terms, params = self.service._scope(view, cross_company=True)
        if view.company_specific:
            terms.append(f"{sql_quote('dataAreaId')} = ?")
            params.append(company)
        if since is not None:
            terms.append(
                f"{sql_quote(ROWID)} IN (SELECT row FROM _dmf_versions WHERE storage = ? AND version > ?)"
            )
            params += [view.storage, since]
        rows = self.service._select(view, terms, params)
        return [self.service._render(view, row, None) for row in rows]

    def _package(self, view: EntityView, rows: list[dict[str, Any]]) -> bytes:
        names = [f.name for f in view.table.fields]
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow([_cell(row.get(name)) for name in names])
        label = view.table.logical_name
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
            package.writestr(f"{label}.csv", text.getvalue().encode("utf-8-sig"))
            package.writestr("Manifest.xml", _manifest(label, view.entity_set))
            package.writestr("PackageHeader.xml", _header())
        return buffer.getvalue()

    # -- the blob -----------------------------------------------------------------------

    def _sign(self, path: str, expiry: int) -> str:
        return hmac.new(self._key, f"{path}\n{expiry}".encode(), hashlib.sha256).hexdigest()

    def blob(self, path: str, query: str) -> Reply:
        """``GET /dmf/<execution>/<name>.zip?...&se=..&sig=..``: the package, as Blob storage
        serves a SAS URL (403 ``AuthenticationFailed`` for a bad or expired signature)."""
        pairs = dict(parse_qsl(query))
        try:
            expiry = int(pairs.get("se", ""))
        except ValueError:
            expiry = 0
        if not hmac.compare_digest(pairs.get("sig", ""), self._sign(path, expiry)):
            return _storage_error(403, "AuthenticationFailed", "Signature did not match.")
        if expiry < time.time():
            stamp = datetime.fromtimestamp(expiry, timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
            return _storage_error(
                403, "AuthenticationFailed", f"Signed expiry time [{stamp}] has to be after current time."
            )
        execution = path[len(BLOB_PREFIX) :].split("/", 1)[0]
        found = self.store.execute(
            "SELECT data, rows, entity FROM _dmf_executions WHERE id = ?", [unquote(execution)]
        )
        if not found or not found[0][0]:
            return _storage_error(404, "BlobNotFound", "The specified blob does not exist.")
        self.service.ctx.record_read(int(found[0][1]), f"{found[0][2]} (export)")  # rows handed out
        return _reply_type()(200, bytes(found[0][0]), [("Content-Type", "application/octet-stream")])


def _reply_type() -> type[Reply]:
    """`service.Reply` (the service module imports this one, so it is looked up late)."""
    from emulators.fno import service  # import cycle: the service module imports this one

    return service.Reply


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


def _manifest(label: str, entity_set: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<DataManagementPackageManifest>'
        f"<DefinitionGroupName>{entity_set}</DefinitionGroupName><PackageEntityList>"
        f"<DataManagementPackageEntityData><EntityName>{label}</EntityName>"
        f"<DefaultRefreshType>IncrementalPush</DefaultRefreshType><SourceFormat>CSV</SourceFormat>"
        f"<FileName>{label}.csv</FileName></DataManagementPackageEntityData>"
        "</PackageEntityList></DataManagementPackageManifest>\n"
    )


def _header() -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<DataManagementPackageHeader>'
        "<Description>Exported by the F&amp;O emulator</Description><ManifestType>"
        "Microsoft.Dynamics.AX.Framework.Tools.DataManagement.Serialization.DataManagementPackageManifest"
        "</ManifestType><PackageType>Export</PackageType><PackageVersion>2</PackageVersion>"
        "</DataManagementPackageHeader>\n"
    )


def _storage_error(status: int, code: str, message: str) -> Reply:
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error>"
    ).encode()
    return _reply_type()(status, body, [("Content-Type", "application/xml"), ("x-ms-error-code", code)])
