"""Operators over the sync engine (the shipped DAGs use the engine's steps directly)."""

from __future__ import annotations

from prospect_to_cash.operators.sync import TemplateSyncOperator

__all__ = ["TemplateSyncOperator"]
