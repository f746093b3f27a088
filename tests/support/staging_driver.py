"""Engine steps in a process of their own, for tests whose staging is on Azure storage.

adlfs reaches Azure storage through aiohttp, which builds its verified TLS context once, when
it is imported, from the CAs OpenSSL finds (``SSL_CERT_FILE``). A test that trusts a local CA
(Azurite's) therefore runs the steps in a child process started with that variable, as an
Airflow worker would be; the test process itself reads what was stored with the Azure SDK's
own client, which takes the CA per call.

``python -m tests.support.staging_driver '<request JSON>'`` prints the step's result as JSON
on its last stdout line. Requests (:class:`Request`): ``load`` (one task's load),
``crash_load`` (extract, transform and a load whose write stream dies after ``after``
outcomes, as a worker killed mid-load) and ``purge`` (the retention purge, once per ``ahead_days``).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, TypedDict

from airflow.sdk import ObjectStoragePath

from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.sync import runner
from prospect_to_cash.sync.retention import purge_staging
from prospect_to_cash.sync.runner import SyncHooks

CRASH_EXIT = 3


class Request(TypedDict, total=False):
    action: str  # load | crash_load | purge
    staging_root: str
    template: str
    task: str
    company: str
    run_id: str
    journal_every: int
    after: int  # crash_load: outcomes answered before the stream dies
    days: int  # purge: retention
    ahead_days: list[float]  # purge: one purge each, the age measured this many days from now
    dataverse_conn_id: str
    fno_conn_id: str


class _DyingStream:
    """A Dataverse hook whose first write stream dies after ``after`` answered outcomes."""

    def __init__(self, hook: DataverseHook, after: int) -> None:
        self.hook, self.after = hook, after

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hook, name)

    def write(self, operations: Any, **kwargs: Any) -> Any:
        outcomes = self.hook.write(operations, **kwargs)
        for answered, outcome in enumerate(outcomes):
            if answered == self.after:
                outcomes.close()
                raise ConnectionError("simulated crash during load")
            yield outcome


def _hooks(request: Request) -> SyncHooks:
    return SyncHooks(
        dataverse=DataverseHook(dataverse_conn_id=request["dataverse_conn_id"]),
        fno=FinanceOperationsHook(fno_conn_id=request["fno_conn_id"]),
    )


def handle(request: Request) -> dict[str, Any]:
    """Run one request; returns what the step returned (JSON-able)."""
    root = ObjectStoragePath(request["staging_root"])
    if request["action"] == "purge":
        today = datetime.now(timezone.utc)
        reports = [
            purge_staging(root, days=request["days"], now=today + timedelta(days=ahead))
            for ahead in request.get("ahead_days", [0])
        ]
        return {"reports": reports}
    hooks = _hooks(request)
    options: dict[str, Any] = {
        "legal_entity": request["company"],
        "run_id": request["run_id"],
        "journal_every": request.get("journal_every", 1000),
        "staging_root": root,
    }
    if request["action"] == "crash_load":
        dying = SyncHooks(dataverse=_DyingStream(hooks.dataverse, request["after"]), fno=hooks.fno)  # type: ignore[arg-type]
        runner.run_task(request["template"], request["task"], hooks=dying, **options)
        return {"crashed": False}
    if request["action"] == "load":
        return dict(runner.load(request["template"], request["task"], hooks=hooks, **options))
    raise ValueError(f"unknown action {request['action']!r}")


def main(argv: list[str]) -> int:
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every request at INFO
    request: Request = json.loads(argv[0])
    try:
        result = handle(request)
    except ConnectionError as exc:
        print(json.dumps({"crashed": True, "error": str(exc)}))
        return CRASH_EXIT
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
