"""Write the rows of a Parquet file into an entity set of either service, by key.

The counterpart of `DynamicsExtractOperator` for data no template moves: each row becomes
one create, update or upsert through the hook's batches (retries, throttling, idempotent
creates); rows the service refuses go to a dead-letter Parquet file with the service's
reason, and the counts go to XCom.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from prospect_to_cash.operators.common import flag, hook_for_connection

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import pandas as pd
    from airflow.sdk import Context, ObjectStoragePath

    from prospect_to_cash.hooks.operations import WriteOperation

Operation = Literal["create", "update", "upsert"]
OPERATIONS: tuple[Operation, ...] = ("create", "update", "upsert")


class LoadCounts(TypedDict):
    read: int
    written: int
    failed: int


class LoadResult(TypedDict):
    """What the load hands to XCom: counts and the dead-letter file (None when empty)."""

    entity_set: str
    operation: Operation
    dry_run: bool
    counts: LoadCounts
    deadletter: str | None


class DynamicsLoadOperator(BaseOperator):
    """Create, update or upsert the rows of a Parquet file in a Dataverse or F&O entity set.

    Each row is one record: the ``key`` columns identify it (Dataverse: the primary id
    column or the columns of an alternate key; F&O: every key field, ``dataAreaId``
    included), the other columns are its body, sent with the values the file holds (a
    null is sent as null). ``columns`` renames file columns to the entity's names first.
    The file is read whole, as `GenericTransfer` reads its rows: for files that fit in
    memory (the mapping operators stream any size).

    :param conn_id: a ``dynamics_dataverse`` or ``dynamics_fno`` connection.
    :param input_path: the Parquet file (``file://``, ``abfs://``, ...; templated).
    :param entity_set: the target entity set (``accounts``, ``CustomersV3``).
    :param key: the columns (after renaming) that identify a record.
    :param operation: ``create``, ``update`` or ``upsert`` (Dataverse only: F&O has none).
    :param columns: file column -> entity column; columns not named are dropped when given.
    :param batch_size: records per ``$batch`` change set or bulk request (hook default).
    :param dry_run: read and check the file, count what would be written, write nothing.
    :param deadletter_path: where refused rows go (templated); default beside the input,
        ``<input>.deadletter.parquet``.
    """

    template_fields: Sequence[str] = ("input_path", "entity_set", "key", "dry_run", "deadletter_path")
    ui_color = "#f6dcd6"

    def __init__(
        self,
        *,
        conn_id: str,
        input_path: str | ObjectStoragePath,
        entity_set: str,
        key: Sequence[str],
        operation: Operation = "upsert",
        columns: Mapping[str, str] | None = None,
        batch_size: int | None = None,
        dry_run: bool | str = False,
        deadletter_path: str | ObjectStoragePath | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if operation not in OPERATIONS:
            raise ValueError(f"{self.task_id}: operation must be one of {OPERATIONS}, got {operation!r}")
        if not key:
            raise ValueError(f"{self.task_id}: a load needs the key columns that identify a record")
        self.conn_id = conn_id
        self.input_path = input_path
        self.entity_set = entity_set
        self.key = key
        self.operation = operation
        self.columns = dict(columns) if columns else None
        self.batch_size = batch_size
        self.dry_run = dry_run
        self.deadletter_path = deadletter_path

    def _frame(self) -> pd.DataFrame:
        import pyarrow.parquet as pq

        from prospect_to_cash.sync.staging import as_path

        with as_path(self.input_path).open("rb") as handle:
            frame = pq.read_table(handle).to_pandas()
        if self.columns:
            missing = sorted(set(self.columns) - set(frame.columns))
            if missing:
                raise AirflowFailException(f"{self.input_path} has no column(s) {missing}")
            frame = frame[list(self.columns)].rename(columns=self.columns)
        missing_keys = sorted(set(self.key) - set(frame.columns))
        if missing_keys:
            raise AirflowFailException(f"key column(s) {missing_keys} are not in the rows to load")
        return frame

    def _operations(self, frame: pd.DataFrame) -> Iterator[WriteOperation]:
        from prospect_to_cash.hooks.operations import WriteKind, WriteOperation
        from prospect_to_cash.sync.values import py

        kind = WriteKind(self.operation)
        body_columns = [c for c in frame.columns if c not in self.key]
        for index, row in enumerate(frame.itertuples(index=False, name=None)):
            values = {name: py(value) for name, value in zip(frame.columns, row, strict=True)}
            yield WriteOperation(
                kind=kind,
                entity_set=self.entity_set,
                key={name: values[name] for name in self.key},
                body={name: values[name] for name in body_columns},
                ref=str(index),
            )

    def _deadletter(self, frame: pd.DataFrame, refused: dict[int, dict[str, Any]]) -> str:
        """Each refused row with the service's answer: its key and the row as JSON."""
        import pandas as pd

        from prospect_to_cash.sync.staging import as_path, buffered
        from prospect_to_cash.sync.values import py

        target = as_path(self.deadletter_path or f"{self.input_path}.deadletter.parquet")
        order = sorted(refused)
        rows = [{name: py(value) for name, value in frame.iloc[i].items()} for i in order]
        records = pd.DataFrame(
            {
                "key": [json.dumps({k: row[k] for k in self.key}, default=str) for row in rows],
                "status": [refused[i]["status"] for i in order],
                "error_code": [refused[i]["error_code"] for i in order],
                "reason": [refused[i]["message"] for i in order],
                "row": [json.dumps(row, default=str) for row in rows],
            }
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        with buffered(target.open("wb")) as handle:
            records.to_parquet(handle, index=False)
        return str(target)

    def execute(self, context: Context) -> LoadResult:
        from prospect_to_cash.hooks.fno import FinanceOperationsHook

        dry_run = flag(self.dry_run, "dry_run")
        hook = hook_for_connection(self.conn_id)
        if self.operation == "upsert" and isinstance(hook, FinanceOperationsHook):
            raise AirflowFailException("F&O OData has no upsert: load with operation='create' or 'update'")
        frame = self._frame()
        operations = list(self._operations(frame))
        if dry_run:
            self.log.info(
                "Dry run: %d %s(s) into %s, nothing written", len(operations), self.operation, self.entity_set
            )
            return self._result(dry_run, len(frame), 0, 0, None)
        write: dict[str, Any] = {"expected": len(operations)}
        if self.batch_size:
            write["batch_size"] = self.batch_size
        refused = {
            int(outcome.ref): {
                "status": outcome.status,
                "error_code": outcome.error_code,
                "message": outcome.message,
            }
            for outcome in hook.write(operations, **write)
            if not outcome.ok
        }
        deadletter = self._deadletter(frame, refused) if refused else None
        self.log.info(
            "%s: %d %s(s) written, %d refused%s",
            self.entity_set,
            len(operations) - len(refused),
            self.operation,
            len(refused),
            f" (reasons in {deadletter})" if deadletter else "",
        )
        return self._result(dry_run, len(frame), len(operations) - len(refused), len(refused), deadletter)

    def _result(
        self, dry_run: bool, read: int, written: int, failed: int, deadletter: str | None
    ) -> LoadResult:
        return {
            "entity_set": self.entity_set,
            "operation": self.operation,
            "dry_run": dry_run,
            "counts": {"read": read, "written": written, "failed": failed},
            "deadletter": deadletter,
        }
