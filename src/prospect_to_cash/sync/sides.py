"""What a mapping task reads and where it writes: its source and target options, the
reference tables staged beside them, the header of a line task and the source-delete
policy, each parsed from its YAML part.

The task and template model that holds them, the fields and the loading of a whole file
are :mod:`prospect_to_cash.sync.mapping`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prospect_to_cash.sync.environment import resolve_env_value
from prospect_to_cash.sync.read_only import ReadOnlyWhen, read_only_when

if TYPE_CHECKING:
    from prospect_to_cash.sync.environment import Environment
    from prospect_to_cash.sync.errors import MappingProblems


@dataclass(frozen=True)
class IncrementalExport:
    """An F&O source read from a Data management export project with change tracking
    (`sync.exports`): ``definition_group`` is the data project (one per company and task),
    ``timeout_minutes`` how long a run waits for its execution."""

    definition_group: str
    timeout_minutes: int = 60


@dataclass(frozen=True)
class SourceSpec:
    entity_set: str
    key: tuple[str, ...]
    filter: str | None = None
    change_field: str | None = None
    company_scope: str = "company"
    select: tuple[str, ...] = ()
    #: The source record's own id (a Dataverse GUID column), read so that a dead letter
    #: or a pending entry names the record even when its business key is blank.
    primary_id: str | None = None
    #: Scheduled runs read this export instead of the whole entity (None: off).
    incremental_export: IncrementalExport | None = None


@dataclass(frozen=True)
class TargetSpec:
    entity_set: str
    key: tuple[str, ...]
    primary_id: str | None = None
    filter: str | None = None
    operations: tuple[str, ...] = ("create", "update")
    company_scope: str = "company"
    #: states in which Sales keeps the row (or its header) read-only (`sync.read_only`)
    read_only_when: ReadOnlyWhen | None = None


@dataclass(frozen=True)
class Reference:
    """A table staged beside the snapshot so lookups can join against it."""

    name: str
    side: str
    entity_set: str
    select: tuple[str, ...] = ()
    filter: str | None = None
    key: tuple[str, ...] = ()
    #: ``business_unit``: a Dataverse table read only within the company pair's business
    #: unit (rows F&O -> Sales templates created per company, e.g. orders by number).
    company_scope: str = "none"


@dataclass(frozen=True)
class ParentSpec:
    """Lines name their header task and the fields that form the header's natural key."""

    task: str
    match: tuple[str, ...]
    label: str = "header"


@dataclass(frozen=True)
class DeletePolicy:
    """What a source delete does to the task's target row (`prospect_to_cash.sync.deletes`):
    ``ignore``, ``report`` (default), ``deactivate`` (write ``deactivate``'s values) or ``delete``."""

    policy: str = "report"
    deactivate: tuple[tuple[str, Any], ...] = ()


def parse_source(
    raw: dict[str, Any],
    source_system: str,
    environment: Environment,
    problems: MappingProblems,
    where: str,
) -> SourceSpec:
    """A task's ``source`` (F&O sources are company-scoped unless they say otherwise)."""
    return SourceSpec(
        entity_set=raw["entity_set"],
        key=tuple(raw["key"]),
        filter=raw.get("filter"),
        change_field=raw.get("change_field"),
        primary_id=raw.get("primary_id"),
        company_scope=raw.get("company_scope", "company" if source_system == "fno" else "none"),
        select=tuple(raw.get("select", ())),
        incremental_export=parse_incremental_export(
            raw.get("incremental_export"), environment, problems, where
        ),
    )


def parse_target(raw: dict[str, Any], target_system: str) -> TargetSpec:
    """A task's ``target`` (F&O targets are company-scoped unless they say otherwise)."""
    return TargetSpec(
        entity_set=raw["entity_set"],
        key=tuple(raw["key"]),
        primary_id=raw.get("primary_id"),
        filter=raw.get("filter"),
        operations=tuple(raw.get("operations", ("create", "update"))),
        company_scope=raw.get("company_scope", "company" if target_system == "fno" else "none"),
        read_only_when=read_only_when(raw.get("read_only_when")),
    )


def parse_reference(raw: dict[str, Any]) -> Reference:
    return Reference(
        name=raw["name"],
        side=raw["side"],
        entity_set=raw["entity_set"],
        select=tuple(raw.get("select", ())),
        filter=raw.get("filter"),
        key=tuple(raw.get("key", ())),
        company_scope=raw.get("company_scope", "none"),
    )


def parse_parent(raw: dict[str, Any] | None) -> ParentSpec | None:
    if not raw:
        return None
    return ParentSpec(task=raw["task"], match=tuple(raw["match"]), label=raw.get("label", "header"))


def parse_delete_policy(raw: str | dict[str, Any]) -> DeletePolicy:
    if isinstance(raw, str):
        return DeletePolicy(raw)
    return DeletePolicy(raw.get("policy", "report"), tuple(raw.get("deactivate", {}).items()))


def parse_incremental_export(
    raw: dict[str, Any] | None, environment: Environment, problems: MappingProblems, where: str
) -> IncrementalExport | None:
    """The source's export project as this company's environment names it (None: off)."""
    if not raw:
        return None
    group = resolve_env_value(raw["definition_group"], environment, problems, f"{where}, incremental_export")
    if group is None:
        return None
    if not isinstance(group, str) or not group.strip():
        problems.add(
            f"{where}, incremental_export", f"definition_group must be a data project name, got {group!r}"
        )
        return None
    return IncrementalExport(group.strip(), int(raw.get("timeout_minutes", 60)))
