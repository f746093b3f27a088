"""Orphan scopes: which target rows a mapping task answers for.

A target row with no source row is only an *orphan* when the integration put it there;
Dynamics holds plenty of rows of other origins (F&O-only customers, quotations entered
in F&O). The mapping files say how to write rows, not how to recognise them later, so
the markers live here (``scope.yaml`` beside this module), overridable per task with
``P2C_RECONCILE_SCOPES`` or an explicit file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from prospect_to_cash.sync.errors import MappingError

if TYPE_CHECKING:
    from prospect_to_cash.sync.mapping import Task

SCOPES_VARIABLE = "P2C_RECONCILE_SCOPES"
_KEYS = {"filter", "parent", "reason"}


@dataclass(frozen=True)
class OrphanScope:
    """How to find the target rows of one task.

    :param filter: OData ``$filter`` on the target entity set.
    :param parent: key column of a line naming its header (in the parent task's scope).
    :param reason: why the task is not checked, when it has neither.
    """

    filter: str | None = None
    parent: str | None = None
    reason: str | None = None

    @property
    def checked(self) -> bool:
        return bool(self.filter or self.parent)

    @property
    def specificity(self) -> int:
        """More conditions = a narrower scope; a row in two scopes belongs to the narrower."""
        return int(bool(self.filter)) + int(bool(self.parent))


def _read(path: Path | None) -> dict[str, Any]:
    if path is None:
        text = resources.files("prospect_to_cash.reconcile").joinpath("scope.yaml").read_text()
        name = "scope.yaml"
    else:
        text = Path(path).read_text()
        name = str(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise MappingError(f"{name}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise MappingError(f"{name}: expected template -> task -> scope mappings")
    for template, tasks in data.items():
        if not isinstance(tasks, dict):
            raise MappingError(f"{name}: {template}: expected task -> scope mappings")
        for task, spec in tasks.items():
            if not isinstance(spec, dict) or not set(spec) <= _KEYS:
                raise MappingError(
                    f"{name}: {template}/{task}: a scope takes only {sorted(_KEYS)}, got {spec!r}"
                )
    return data


def load_scopes(path: str | Path | None = None) -> dict[tuple[str, str], OrphanScope]:
    """The shipped scopes, overlaid task by task with ``path`` (or ``P2C_RECONCILE_SCOPES``)."""
    merged: dict[tuple[str, str], OrphanScope] = {}
    override = path or os.environ.get(SCOPES_VARIABLE) or None
    for data in (_read(None), _read(Path(override)) if override else {}):
        for template, tasks in data.items():
            for task, spec in tasks.items():
                merged[(str(template), str(task))] = OrphanScope(
                    filter=spec.get("filter") or None,
                    parent=spec.get("parent") or None,
                    reason=spec.get("reason") or None,
                )
    return merged


def scope_for(scopes: dict[tuple[str, str], OrphanScope], template: str, task: Task) -> OrphanScope:
    """The task's scope; update-only tasks never create rows, so they have none."""
    if "create" not in task.target.operations:
        return OrphanScope(reason="this task only updates rows it finds; it never creates any")
    found = scopes.get((template, task.name))
    if found is None:
        return OrphanScope(reason="no orphan scope configured for this task (see reconcile/scope.yaml)")
    if found.parent and task.parent is None:
        raise MappingError(f"orphan scope of {template}/{task.name}: 'parent' needs a task with a parent")
    if found.parent and task.field(found.parent) is None:
        raise MappingError(
            f"orphan scope of {template}/{task.name}: parent column {found.parent!r} is not a field"
        )
    return found
