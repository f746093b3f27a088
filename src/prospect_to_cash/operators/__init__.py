"""Operators of the provider.

* `DynamicsExtractOperator`: an entity set of Dataverse or F&O -> a Parquet file;
* `DynamicsLoadOperator`: a Parquet file -> an entity set (create, update or upsert by key);
* `MappingExtractOperator`, `MappingTransformOperator`, `MappingLoadOperator`: one mapping
  task's steps for one company pair (what the seven template DAGs are made of);
* `TemplateSyncOperator`: a whole template for its company pairs in one task.
"""

from __future__ import annotations

from prospect_to_cash.operators.extract import DynamicsExtractOperator
from prospect_to_cash.operators.load import DynamicsLoadOperator
from prospect_to_cash.operators.mapping import (
    MappingExtractOperator,
    MappingLoadOperator,
    MappingTransformOperator,
)
from prospect_to_cash.operators.sync import TemplateSyncOperator

__all__ = [
    "DynamicsExtractOperator",
    "DynamicsLoadOperator",
    "MappingExtractOperator",
    "MappingLoadOperator",
    "MappingTransformOperator",
    "TemplateSyncOperator",
]
