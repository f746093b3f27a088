"""What every engine step shares: the compiled template, the company pair, the hooks and
the staging of one task, and the environment's company pairs to choose from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prospect_to_cash.sync.compiled import compiled_template
from prospect_to_cash.sync.contracts import CompanyPair, SyncHooks, SyncOptions
from prospect_to_cash.sync.staging import TaskStaging, as_path

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from prospect_to_cash.sync.contracts import CompanyPairDict, StepResult
    from prospect_to_cash.sync.mapping import Task, Template


@dataclass
class SyncContext:
    """One task of one template for one company pair, as every step of it sees it."""

    template: Template
    task: Task
    pair: CompanyPair
    staging: TaskStaging
    hooks: SyncHooks
    options: SyncOptions

    @property
    def run_id(self) -> str:
        return self.options.run_id


def resolve_template(template: str | Template, legal_entity: str, options: SyncOptions) -> Template:
    """The template compiled for this company (its pair's defaults and value maps), once
    per process: every step of every task reuses it (`compiled_template`)."""
    if not isinstance(template, str):
        environment = template.environment
        if environment is not None and (environment.legal_entity or "").casefold() == legal_entity.casefold():
            return template
        template = template.path
    return compiled_template(
        template,
        mappings_dir=options.mappings_dir,
        environment_file=options.environment_file,
        legal_entity=legal_entity,
    )


def make_context(
    template: str | Template, task: str, pair: CompanyPair | str, options: SyncOptions
) -> SyncContext:
    """One task of ``template`` for one company pair: the template compiled for the pair,
    the pair as the environment declares it, its hooks and its staging."""
    legal_entity = CompanyPair.of(pair).legal_entity
    loaded = resolve_template(template, legal_entity, options)
    assert loaded.environment is not None
    declared = loaded.environment.company_pair(legal_entity)
    staging = TaskStaging(
        root=as_path(options.staging_root),
        template=loaded.name,
        run_id=options.run_id,
        company=declared.legal_entity,
        task=loaded.task(task).name,
        folder=options.staging_folder,
    )
    return SyncContext(loaded, loaded.task(task), declared, staging, SyncHooks.from_options(options), options)


def company_pairs(
    *, mappings_dir: str | Path | None = None, environment_file: str | Path | None = None
) -> list[CompanyPairDict]:
    """The company pairs of the environment in the form the DAG layer fans out over
    (``[{"legal_entity": "usmf", "business_unit": "Contoso US", ...}, ...]``)."""
    from prospect_to_cash.sync.environment import load_environment

    return [pair.to_dict() for pair in load_environment(mappings_dir, environment_file).company_pairs]


def select_pairs(
    requested: Sequence[str] | None = None,
    *,
    mappings_dir: str | Path | None = None,
    environment_file: str | Path | None = None,
) -> list[CompanyPair]:
    """The company pairs to run: all of the environment's, or the ``requested`` legal
    entities (any case). Asking for a legal entity without a pair is a `MappingError`:
    syncing less than asked must not pass for success."""
    from prospect_to_cash.sync.environment import load_environment
    from prospect_to_cash.sync.errors import MappingError

    pairs = load_environment(mappings_dir, environment_file).company_pairs
    if not pairs:
        raise MappingError("no company_pairs configured in environment.yaml (or its override)")
    if not requested:
        return pairs
    wanted = {name.strip().casefold() for name in requested}
    unknown = sorted(wanted - {pair.legal_entity.casefold() for pair in pairs})
    if unknown:
        raise MappingError(
            f"companies {unknown} have no company pair; configured: "
            + ", ".join(pair.legal_entity for pair in pairs)
        )
    return [pair for pair in pairs if pair.legal_entity.casefold() in wanted]


def base_result(ctx: SyncContext, step: str) -> StepResult:
    return {
        "template": ctx.template.name,
        "task": ctx.task.name,
        "legal_entity": ctx.pair.legal_entity,
        "run_id": ctx.run_id,
        "step": step,
        "staging": str(ctx.staging.base),
    }
