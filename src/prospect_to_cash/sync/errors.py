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
