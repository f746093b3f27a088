"""Errors the sync engine raises on purpose, each meaning something different to the DAG."""

from __future__ import annotations


class SyncError(RuntimeError):
    """The run cannot go on (the task should fail, loudly)."""


class MappingError(SyncError):
    """A mapping or environment file is wrong; the message names the file, task and field."""


class DataError(SyncError):
    """The data makes the whole task impossible, e.g. no price list for a product currency."""


class MetadataMismatch(SyncError):
    """A mapped entity or field does not exist (or has another type) in the live service."""


class RowsRefused(SyncError):
    """More rows were rejected, or refused by the target for their data, than the run's
    threshold allows. Everything that could be written was; retrying the same rows
    unchanged cannot help, so the DAG layer fails the task without Airflow's retries."""


class ServiceFailures(SyncError):
    """Writes failed in ways the service may heal by itself (5xx, timeouts, throttling
    beyond the wait budget, ambiguous writes). Everything else was written; the task
    fails so that Airflow retries it (the pending ledger makes the retry re-read them)."""


class MappingProblems:
    """Collect every problem of one mapping file, then raise them together as one
    `MappingError`: a user fixes the whole file in one go, not a message at a time."""

    def __init__(self, file_name: str) -> None:
        self.file_name = file_name
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{self.file_name}: {where}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise MappingError("\n".join(self.items))
