"""Hooks: the only code that speaks HTTP to Dynamics 365 (Dataverse and F&O)."""

from __future__ import annotations

from prospect_to_cash.hooks.dataverse import DataverseHook
from prospect_to_cash.hooks.errors import (
    AmbiguousWriteError,
    DynamicsAPIError,
    DynamicsAuthError,
    DynamicsConnectionConfigError,
    DynamicsError,
    DynamicsTransportError,
    InvalidKeyError,
)
from prospect_to_cash.hooks.fno import FinanceOperationsHook
from prospect_to_cash.hooks.operations import WriteKind, WriteOperation, WriteOutcome

__all__ = [
    "AmbiguousWriteError",
    "DataverseHook",
    "DynamicsAPIError",
    "DynamicsAuthError",
    "DynamicsConnectionConfigError",
    "DynamicsError",
    "DynamicsTransportError",
    "FinanceOperationsHook",
    "InvalidKeyError",
    "WriteKind",
    "WriteOperation",
    "WriteOutcome",
]
