"""Template mappings: the YAML files in ``include/mappings/`` as a checked model.

A mapping file says, per task, which entity is read and which is written, how rows are
identified on both sides, and how each target field gets its value (source column,
constant, environment setting, safe expression or lookup, then value map and default).
Loading validates the file twice: against the JSON schema (shape) and against the
model's own rules (one value per field, lookups name existing references, expressions
parse, keys are mapped). Every message names the file, the task and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from prospect_to_cash.sync.company_scope import BUSINESS_UNIT_SCOPES, created_by_scope_problems
from prospect_to_cash.sync.environment import (
    Environment,
    ValueMap,
    default_mappings_dir,
    load_environment,
    resolve_env_value,
)
from prospect_to_cash.sync.errors import MappingError, MappingProblems
from prospect_to_cash.sync.expressions import Expression, ExpressionError, lookup_path
from prospect_to_cash.sync.read_only import problems as read_only_problems
from prospect_to_cash.sync.read_only import reference_columns as read_only_reference_columns
from prospect_to_cash.sync.read_only import snapshot_columns as read_only_snapshot_columns
from prospect_to_cash.sync.sides import (
    DeletePolicy,
    ParentSpec,
    Reference,
    SourceSpec,
    TargetSpec,
    parse_delete_policy,
    parse_parent,
    parse_reference,
    parse_source,
    parse_target,
)
from prospect_to_cash.sync.values import FIELD_TYPES

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prospect_to_cash.sync.limits import CurrencyPlaces, FieldLimits

#: The seven templates, in run order (later ones need the rows earlier ones deliver).
TEMPLATES = (
    "accounts",
    "products",
    "contacts",
    "sales_quotations",
    "sales_orders_fno_to_sales",
    "sales_orders_sales_to_fno",
    "sales_invoices",
)

COMPANY_FIELD = "dataAreaId"
VALUE_KINDS = ("source", "constant", "env", "expr", "lookup")


@dataclass(frozen=True)
class Bind:
    """How a Dataverse lookup column is written: ``<navigation>@odata.bind: /<entity_set>(id)``."""

    navigation: str
    entity_set: str


@dataclass(frozen=True)
class LookupCandidate:
    """One table a lookup may find its row in (a customer lookup tries accounts, then contacts)."""

    reference: str
    match: dict[str, Expression]
    returns: str
    bind: Bind | None = None


@dataclass(frozen=True)
class Lookup:
    """Resolve a value by joining against a staged reference table (never per-row requests).

    :param on_missing: ``reject`` the row as a dangling lookup, write ``null``, or
        ``fail`` the whole task (price list for a currency: must not be silent).
    :param self_reference: also accept keys this task itself is about to write (the
        second pass of parent/invoice accounts).
    :param created_by: also accept keys that task of this run created or plans to
        create, even when the reference snapshot predates them (dry run, line → header).
    """

    candidates: tuple[LookupCandidate, ...]
    pick: str = "unique"
    sort_by: tuple[str, ...] = ()
    on_missing: str = "reject"
    self_reference: bool = False
    created_by: str | None = None


@dataclass(frozen=True)
class FieldMapping:
    """How one target field gets its value, and how it is checked and written."""

    target: str
    kind: str
    source: str | None = None
    constant: Any = None
    env_path: str | None = None
    expr: Expression | None = None
    lookup: Lookup | None = None
    value_map: ValueMap | None = None
    default: Any = None
    type: str = "string"
    scale: int | None = None
    max_length: int | None = None
    required: bool = False
    write_on: str = "always"
    second_pass: bool = False
    write: bool = True
    bind: Bind | None = None
    note: str = ""
    limits: FieldLimits | None = None  # what the target's $metadata accepts (sync.limits)
    #: places per row by the record's currency, for a column that follows it (sync.limits)
    currency_places: CurrencyPlaces | None = None

    @property
    def is_bind(self) -> bool:
        return self.bind is not None or (
            self.lookup is not None and any(c.bind is not None for c in self.lookup.candidates)
        )

    @property
    def snapshot_column(self) -> str:
        """The column holding this field's current value in a Dataverse/F&O read."""
        return f"_{self.target}_value" if self.is_bind else self.target

    @property
    def compared(self) -> bool:
        """Compared with the target on every run (create-only fields are not)."""
        return self.write and self.write_on == "always"


@dataclass(frozen=True)
class Task:
    name: str
    source: SourceSpec
    target: TargetSpec
    fields: tuple[FieldMapping, ...]
    references: tuple[Reference, ...] = ()
    route: Expression | None = None
    parent: ParentSpec | None = None
    description: str = ""
    source_system: str = "dataverse"
    target_system: str = "fno"
    on_source_delete: DeletePolicy = field(default_factory=DeletePolicy)

    def field(self, target: str) -> FieldMapping | None:
        return self._fields_by_target.get(target)

    @cached_property
    def _fields_by_target(self) -> dict[str, FieldMapping]:
        """The first mapping of each target field (the engine asks per row and per cell)."""
        found: dict[str, FieldMapping] = {}
        for candidate in self.fields:
            found.setdefault(candidate.target, candidate)
        return found

    def reference(self, name: str) -> Reference:
        for candidate in self.references:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    @property
    def natural_key(self) -> tuple[str, ...]:
        """The target key without the company column: what a row is called in refs."""
        return tuple(k for k in self.target.key if k != COMPANY_FIELD)

    @cached_property
    def source_columns(self) -> tuple[str, ...]:
        """Every source column the task reads, in a stable order."""
        wanted: list[str] = [*self.source.key, *self.source.select]
        if self.source.primary_id:
            wanted.append(self.source.primary_id)
        defined: set[str] = set()
        for mapping in self.fields:
            names: Iterable[str] = ()
            if mapping.source:
                names = [mapping.source]
            elif mapping.expr is not None:
                names = mapping.expr.names
            elif mapping.lookup is not None:
                names = {n for c in mapping.lookup.candidates for e in c.match.values() for n in e.names}
            wanted.extend(sorted(n for n in names if n not in defined))
            defined.add(mapping.target)
        if self.route is not None:
            # the route runs after the fields, so it may use helper fields too
            wanted.extend(sorted(n for n in self.route.names if n not in defined))
        if self.source_system == "fno" and COMPANY_FIELD not in wanted:
            wanted.append(COMPANY_FIELD)
        return tuple(dict.fromkeys(wanted))

    @cached_property
    def snapshot_columns(self) -> tuple[str, ...]:
        """Every target column the snapshot needs: identity, keys and written fields."""
        wanted: list[str] = []
        if self.target.primary_id:
            wanted.append(self.target.primary_id)
        for key in self.target.key:
            mapping = self.field(key)
            wanted.append(mapping.snapshot_column if mapping else key)
        for mapping in self.fields:
            if mapping.write and (mapping.compared or mapping.second_pass):
                wanted.append(mapping.snapshot_column)
        wanted.extend(read_only_snapshot_columns(self))
        return tuple(dict.fromkeys(wanted))

    def reference_columns(self, name: str) -> tuple[str, ...]:
        """Columns a reference must carry: its own select plus whatever lookups use."""
        reference = self.reference(name)
        wanted = [*reference.key, *reference.select]
        for mapping in self.fields:
            if mapping.lookup is None:
                continue
            for candidate in mapping.lookup.candidates:
                if candidate.reference == name:
                    wanted.extend(candidate.match)
                    wanted.append(candidate.returns)
                    wanted.extend(mapping.lookup.sort_by)
        wanted.extend(read_only_reference_columns(self, name))
        return tuple(dict.fromkeys(wanted))


@dataclass(frozen=True)
class Template:
    name: str
    source_system: str
    target_system: str
    tasks: tuple[Task, ...]
    path: str
    title: str = ""
    description: str = ""
    environment: Environment | None = field(default=None, compare=False, repr=False)

    def task(self, name: str) -> Task:
        for candidate in self.tasks:
            if candidate.name == name:
                return candidate
        known = ", ".join(t.name for t in self.tasks)
        raise MappingError(f"{Path(self.path).name}: no task {name!r} (tasks: {known})")


# -- loading --------------------------------------------------------------------------------


def _schema() -> dict[str, Any]:
    text = resources.files("prospect_to_cash.sync").joinpath("schemas/mapping.schema.json").read_text()
    return json.loads(text)


def _where(document: dict[str, Any], path: Iterable[Any]) -> str:
    """Turn a JSON path like ``tasks/0/fields/3/lookup`` into ``task 'x', field 'Y'``."""
    parts: list[str] = []
    steps = list(path)
    node: Any = document
    index = 0
    while index < len(steps):
        step = steps[index]
        if step in ("tasks", "fields", "references") and index + 1 < len(steps):
            position = steps[index + 1]
            try:
                item = node[step][position]
            except (KeyError, IndexError, TypeError):
                item = {}
            label = {"tasks": "task", "fields": "field", "references": "reference"}[step]
            name = item.get("target" if step == "fields" else "name") if isinstance(item, dict) else None
            parts.append(f"{label} {name!r}" if name else f"{label} #{position + 1}")
            node = item
            index += 2
            continue
        parts.append(str(step))
        node = node.get(step, {}) if isinstance(node, dict) else {}
        index += 1
    return ", ".join(parts) if parts else "(top level)"


def _compile(text: str, environment: Environment, problems: MappingProblems, where: str) -> Expression | None:
    try:
        return Expression(text, environment=environment.data)
    except ExpressionError as exc:
        problems.add(where, str(exc))
        return None


def _build_lookup(
    spec: dict[str, Any], environment: Environment, problems: MappingProblems, where: str
) -> Lookup | None:
    raw_candidates = spec.get("any_of")
    if raw_candidates is None:
        missing = [k for k in ("reference", "match", "return") if k not in spec]
        if missing:
            problems.add(
                where, f"lookup needs 'reference', 'match' and 'return' (or 'any_of'); missing {missing}"
            )
            return None
        raw_candidates = [{k: spec[k] for k in ("reference", "match", "return")}]
    elif any(k in spec for k in ("reference", "match", "return")):
        problems.add(where, "lookup takes either 'any_of' or 'reference'/'match'/'return', not both")
        return None
    candidates = []
    for raw in raw_candidates:
        match = {}
        for column, text in raw["match"].items():
            compiled = _compile(text, environment, problems, where)
            if compiled is not None:
                match[column] = compiled
        bind = Bind(**raw["bind"]) if raw.get("bind") else None
        candidates.append(LookupCandidate(raw["reference"], match, raw["return"], bind))
    return Lookup(
        candidates=tuple(candidates),
        pick=spec.get("pick", "unique"),
        sort_by=tuple(spec.get("sort_by", ())),
        on_missing=spec.get("on_missing", "reject"),
        self_reference=bool(spec.get("self_reference", False)),
        created_by=spec.get("created_by"),
    )


def _build_field(
    spec: dict[str, Any], environment: Environment, problems: MappingProblems, where: str
) -> FieldMapping | None:
    kinds = [k for k in VALUE_KINDS if k in spec]
    if len(kinds) != 1:
        problems.add(where, f"give exactly one of {', '.join(VALUE_KINDS)} (found {kinds or 'none'})")
        return None
    kind = kinds[0]
    binds = bool(spec.get("bind")) or any(c.get("bind") for c in spec.get("lookup", {}).get("any_of", []))
    field_type = spec.get("type", "guid" if binds else "string")
    if field_type not in FIELD_TYPES:
        problems.add(where, f"unknown type {field_type!r}")
    value_map = None
    raw_map = spec.get("value_map")
    if isinstance(raw_map, str):
        if environment.has_value_map(raw_map):
            value_map = environment.value_map(raw_map)
        else:
            problems.add(where, f"value map {raw_map!r} is not defined in the environment")
    elif isinstance(raw_map, dict):
        value_map = ValueMap.from_spec(f"{spec['target']} (inline)", raw_map)
    constant = spec.get("constant")
    if kind == "env":
        # resolved now: an unknown path fails at load time, and the value is fixed per run
        try:
            constant = lookup_path(environment.data, spec["env"])
        except ExpressionError as exc:
            problems.add(where, str(exc))
    expr = _compile(spec["expr"], environment, problems, where) if kind == "expr" else None
    lookup = _build_lookup(spec["lookup"], environment, problems, where) if kind == "lookup" else None
    bind = Bind(**spec["bind"]) if spec.get("bind") else None
    if bind is not None and lookup is not None and any(c.bind for c in lookup.candidates):
        problems.add(where, "give 'bind' on the field or on each lookup candidate, not both")
    return FieldMapping(
        target=spec["target"],
        kind=kind,
        source=spec.get("source"),
        constant=resolve_env_value(constant, environment, problems, where),
        env_path=spec.get("env"),
        expr=expr,
        lookup=lookup,
        value_map=value_map,
        default=resolve_env_value(spec.get("default"), environment, problems, where),
        type=field_type,
        scale=spec.get("scale"),
        max_length=spec.get("max_length"),
        required=bool(spec.get("required", False)),
        write_on=spec.get("write_on", "always"),
        second_pass=bool(spec.get("second_pass", False)),
        write=bool(spec.get("write", True)),
        bind=bind,
        note=spec.get("note", ""),
    )


def _check_task(task: Task, problems: MappingProblems, where: str) -> None:
    targets = [f.target for f in task.fields]
    duplicates = sorted({t for t in targets if targets.count(t) > 1})
    if duplicates:
        problems.add(where, f"fields mapped twice: {duplicates}")
    references = {r.name for r in task.references}
    if len(references) != len(task.references):
        problems.add(where, "reference names must be unique")
    for key in task.natural_key:
        mapping = task.field(key)
        if mapping is None:
            problems.add(f"{where}, field {key!r}", "target key field is not mapped")
        elif not mapping.write:
            problems.add(f"{where}, field {key!r}", "target key field must be written")
        elif mapping.write_on != "always" or mapping.second_pass:
            problems.add(f"{where}, field {key!r}", "target key field cannot be create-only or second-pass")
    if task.target.company_scope in BUSINESS_UNIT_SCOPES and task.target_system != "dataverse":
        problems.add(where, f"company_scope {task.target.company_scope!r} is for Dataverse targets")
    for reference in task.references:
        system = task.target_system if reference.side == "target" else task.source_system
        if reference.company_scope == "business_unit" and system != "dataverse":
            problems.add(f"{where}, reference {reference.name!r}", "company_scope business_unit: Dataverse")
    if task.target_system == "dataverse" and not task.target.primary_id:
        problems.add(where, "a Dataverse target needs 'primary_id' (the GUID column)")
    if (
        task.target_system == "fno"
        and task.target.key[0] != "dataAreaId"
        and task.target.company_scope == "company"
    ):
        problems.add(where, "an F&O company-specific target key starts with dataAreaId")
    defined: set[str] = set()
    for mapping in task.fields:
        field_where = f"{where}, field {mapping.target!r}"
        if mapping.lookup is not None:
            for candidate in mapping.lookup.candidates:
                if candidate.reference not in references:
                    problems.add(field_where, f"lookup names unknown reference {candidate.reference!r}")
            if mapping.lookup.self_reference and not mapping.second_pass:
                problems.add(field_where, "a self-referencing lookup must be loaded in the second pass")
        if mapping.is_bind and task.target_system != "dataverse":
            problems.add(field_where, "'bind' only exists on Dataverse targets")
        if mapping.second_pass and mapping.write_on != "always":
            problems.add(field_where, "a second-pass field is written by update, so it cannot be create-only")
        if mapping.type == "bool" and task.target_system == "fno" and mapping.write:
            problems.add(field_where, "F&O has no booleans: write the NoYes enum (type: enum, 'Yes'/'No')")
        defined.add(mapping.target)
    if task.source.incremental_export is not None and (
        task.source_system != "fno" or task.source.change_field
    ):
        problems.add(where, "incremental_export is for F&O sources without a change_field")
    if task.on_source_delete.policy == "deactivate" and not task.on_source_delete.deactivate:
        problems.add(where, "on_source_delete: deactivate needs the 'deactivate' values of the target")
    if task.parent is not None:
        for name in task.parent.match:
            if name not in defined:
                problems.add(f"{where}, parent", f"match field {name!r} is not a field of this task")
    for problem in read_only_problems(task):
        problems.add(f"{where}, target", problem)


def template_file(name_or_path: str | Path, mappings_dir: str | Path | None) -> tuple[Path, Path]:
    """The mapping file of a template name or path, and the directory of its environment."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        path = candidate
        directory = Path(mappings_dir) if mappings_dir else path.parent
    else:
        directory = Path(mappings_dir) if mappings_dir else default_mappings_dir()
        path = directory / f"{name_or_path}.yaml"
    if not path.is_file():
        raise MappingError(f"no mapping file {path}")
    return path, directory


def load_template(
    name_or_path: str | Path,
    *,
    mappings_dir: str | Path | None = None,
    environment: Environment | None = None,
    environment_file: str | Path | None = None,
    legal_entity: str | None = None,
) -> Template:
    """Load, validate and compile one template mapping.

    :param name_or_path: a template name (``accounts``) or a YAML path.
    :param environment: already loaded settings; otherwise ``environment.yaml`` of the
        mapping directory plus ``environment_file`` / ``P2C_ENVIRONMENT_FILE``.
    :param legal_entity: compile for this company: its pair's defaults and value maps
        override the shared ones (``env:`` values are fixed when the mapping compiles).
    """
    path, directory = template_file(name_or_path, mappings_dir)
    if environment is None:
        environment = load_environment(directory, environment_file)
    if legal_entity is not None and (environment.legal_entity or "").casefold() != legal_entity.casefold():
        environment = environment.for_company(legal_entity)
    problems = MappingProblems(path.name)
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise MappingError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise MappingError(f"{path.name}: expected a mapping at the top level")
    validator = jsonschema.Draft202012Validator(_schema())
    for error in sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]):
        problems.add(_where(document, error.absolute_path), error.message)
    problems.raise_if_any()

    source_system, target_system = document["source_system"], document["target_system"]
    if source_system == target_system:
        problems.add("(top level)", "source_system and target_system must differ")
    tasks: list[Task] = []
    for raw in document["tasks"]:
        where = f"task {raw['name']!r}"
        fields = []
        for raw_field in raw["fields"]:
            built = _build_field(raw_field, environment, problems, f"{where}, field {raw_field['target']!r}")
            if built is not None:
                fields.append(built)
        route = _compile(raw["route"], environment, problems, f"{where}, route") if raw.get("route") else None
        task = Task(
            name=raw["name"],
            description=raw.get("description", ""),
            source=parse_source(raw["source"], source_system, environment, problems, where),
            target=parse_target(raw["target"], target_system),
            fields=tuple(fields),
            references=tuple(parse_reference(r) for r in raw.get("references", ())),
            route=route,
            parent=parse_parent(raw.get("parent")),
            source_system=source_system,
            target_system=target_system,
            on_source_delete=parse_delete_policy(raw.get("on_source_delete", "report")),
        )
        _check_task(task, problems, where)
        earlier = {t.name for t in tasks}
        if task.parent is not None and task.parent.task not in earlier:
            problems.add(
                f"{where}, parent", f"parent task {task.parent.task!r} must come earlier in the file"
            )
        for mapping in task.fields:
            if mapping.lookup and mapping.lookup.created_by and mapping.lookup.created_by not in earlier:
                problems.add(
                    f"{where}, field {mapping.target!r}",
                    f"created_by task {mapping.lookup.created_by!r} must come earlier in the file",
                )
            elif mapping.lookup and mapping.lookup.created_by:
                for problem in created_by_scope_problems(task, mapping.lookup, tasks):
                    problems.add(f"{where}, field {mapping.target!r}", problem)
        tasks.append(task)
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        problems.add("(top level)", "task names must be unique")
    problems.raise_if_any()
    return Template(
        name=document["template"],
        source_system=source_system,
        target_system=target_system,
        tasks=tuple(tasks),
        path=str(path),
        title=document.get("title", ""),
        description=document.get("description", ""),
        environment=environment,
    )


def load_all(
    mappings_dir: str | Path | None = None, environment_file: str | Path | None = None
) -> dict[str, Template]:
    """Every template of the directory, validated, in run order."""
    directory = Path(mappings_dir) if mappings_dir else default_mappings_dir()
    environment = load_environment(directory, environment_file)
    return {name: load_template(name, mappings_dir=directory, environment=environment) for name in TEMPLATES}
