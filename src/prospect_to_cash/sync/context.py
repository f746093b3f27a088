"""What every engine step shares: the hooks, the compiled template and staging of one task
for one company pair, and the small OData helpers the steps read through."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from prospect_to_cash.hooks.odata import format_literal
from prospect_to_cash.sync.mapping import Task, Template, load_template
from prospect_to_cash.sync.staging import TaskStaging, as_path
from prospect_to_cash.sync.transform import REF, SOURCE_KEY
from prospect_to_cash.sync.values import py

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import pandas as pd

    from prospect_to_cash.sync.environment import CompanyPair

PLANNED, OUTCOME = "planned", "outcome"
OUTCOME_SCHEMA = pa.schema(
    [
        (REF, pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("id", pa.string()),
        (SOURCE_KEY, pa.string()),
    ]
)


# -- hooks and context -------------------------------------------------------------------------


@dataclass
class SyncHooks:
    """The two hooks the engine talks through (tests pass in-memory stand-ins).

    Made on first use, under a lock: company pairs running side by side must share one
    hook per service (one limiter, one token), not each make their own.
    """

    dataverse: Any = None
    fno: Any = None
    dataverse_conn_id: str = "dynamics_dataverse_default"
    fno_conn_id: str = "dynamics_fno_default"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SyncHooks:
        """The ``hooks`` option if given, else hooks on the options' connection ids."""
        return options.get("hooks") or cls(
            dataverse_conn_id=options.get("dataverse_conn_id", cls.dataverse_conn_id),
            fno_conn_id=options.get("fno_conn_id", cls.fno_conn_id),
        )

    def for_system(self, system: str) -> Any:
        if system not in ("dataverse", "fno"):
            raise ValueError(f"unknown system {system!r}")
        with self._lock:
            if system == "dataverse":
                if self.dataverse is None:
                    from prospect_to_cash.hooks.dataverse import DataverseHook

                    self.dataverse = DataverseHook(dataverse_conn_id=self.dataverse_conn_id)
                return self.dataverse
            if self.fno is None:
                from prospect_to_cash.hooks.fno import FinanceOperationsHook

                self.fno = FinanceOperationsHook(fno_conn_id=self.fno_conn_id)
            return self.fno


@dataclass
class SyncContext:
    template: Template
    task: Task
    pair: CompanyPair
    staging: TaskStaging
    hooks: SyncHooks
    run_id: str
    options: dict[str, Any] = field(default_factory=dict)


def resolve_template(template: str | Template, legal_entity: str, options: dict[str, Any]) -> Template:
    """The template compiled for this company (its pair's defaults and value maps)."""
    if not isinstance(template, str):
        environment = template.environment
        if environment is not None and (environment.legal_entity or "").casefold() == legal_entity.casefold():
            return template
        template = template.path
    return load_template(
        template,
        mappings_dir=options.get("mappings_dir"),
        environment_file=options.get("environment_file"),
        legal_entity=legal_entity,
    )


def make_context(
    template: str | Template, task: str, legal_entity: str, run_id: str, options: dict[str, Any]
) -> SyncContext:
    loaded = resolve_template(template, legal_entity, options)
    assert loaded.environment is not None
    pair = loaded.environment.company_pair(legal_entity)
    hooks = SyncHooks.from_options(options)
    staging = TaskStaging(
        root=as_path(options.get("staging_root")),
        template=loaded.name,
        run_id=run_id,
        company=pair.legal_entity,
        task=loaded.task(task).name,
    )
    return SyncContext(loaded, loaded.task(task), pair, staging, hooks, run_id, options)


def company_pairs(
    *, mappings_dir: str | None = None, environment_file: str | None = None
) -> list[dict[str, Any]]:
    """The company pairs of the environment, for the DAG layer to fan out over
    (``[{"legal_entity": "usmf", "business_unit": "Contoso US", ...}, ...]``)."""
    from prospect_to_cash.sync.environment import load_environment

    return [pair.to_dict() for pair in load_environment(mappings_dir, environment_file).company_pairs]


def select_pairs(
    requested: Sequence[str] | None = None,
    *,
    mappings_dir: str | None = None,
    environment_file: str | None = None,
) -> list[dict[str, Any]]:
    """The company pairs to run: all of the environment's, or the ``requested`` legal
    entities (any case). Asking for a legal entity without a pair is a `MappingError`:
    syncing less than asked must not pass for success."""
    from prospect_to_cash.sync.errors import MappingError

    pairs = company_pairs(mappings_dir=mappings_dir, environment_file=environment_file)
    if not pairs:
        raise MappingError("no company_pairs configured in environment.yaml (or its override)")
    if not requested:
        return pairs
    wanted = {name.strip().casefold() for name in requested}
    unknown = sorted(wanted - {pair["legal_entity"].casefold() for pair in pairs})
    if unknown:
        raise MappingError(
            f"companies {unknown} have no company pair; configured: "
            + ", ".join(pair["legal_entity"] for pair in pairs)
        )
    return [pair for pair in pairs if pair["legal_entity"].casefold() in wanted]


# -- reading helpers ---------------------------------------------------------------------------


def odata_literal(value: Any) -> str:
    """An OData literal for a value read from staging (numpy and pandas scalars included)."""
    return format_literal(py(value))


def read_pages(
    ctx: SyncContext, system: str, entity_set: str, select: Sequence[str], filter: str | None
) -> Iterator[pd.DataFrame]:
    hook = ctx.hooks.for_system(system)
    page_size = ctx.options.get("page_size")
    kwargs: dict[str, Any] = {"select": list(select), "filter": filter}
    if page_size:
        kwargs["page_size"] = page_size
    if system == "fno":
        kwargs["companies"] = [ctx.pair.legal_entity]
    return hook.iter_pages(entity_set, **kwargs)


def base_result(ctx: SyncContext, step: str) -> dict[str, Any]:
    return {
        "template": ctx.template.name,
        "task": ctx.task.name,
        "legal_entity": ctx.pair.legal_entity,
        "run_id": ctx.run_id,
        "step": step,
        "staging": str(ctx.staging.base),
    }
