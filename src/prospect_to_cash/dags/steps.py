"""The run book of a P2C DAG (`SyncStep`, `TemplateSpec`) and the DAG's own tasks around
the operators: the preflight (``check_mapping``, ``company_pairs``) and the per-company
``report``, as plain functions the DAG factory wraps in ``@task``.

The extract, transform and load of each step are the operators of
:mod:`prospect_to_cash.operators.mapping`. These functions take explicit arguments (no
Airflow context), so they can be tested without a scheduler; they return small
JSON-serializable dicts. Configuration errors (a wrong mapping file, an unknown company,
a mapping that no longer matches the services' ``$metadata``) raise
:class:`AirflowFailException`: retrying cannot fix them.

Heavy imports (pandas, pyarrow, the engine) happen inside the functions so that parsing
a DAG file stays fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from prospect_to_cash.operators.common import fail_fast_on_configuration_errors
from prospect_to_cash.sync.contracts import DEFAULT_MAX_FAILED, DEFAULT_MAX_REJECTED

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from prospect_to_cash.sync.contracts import CompanyPairDict, LoadedXCom, ReportedXCom, SyncArgs

log = logging.getLogger(__name__)

SYSTEM_LABELS = {"dataverse": "Sales (Dataverse)", "fno": "Finance and Operations"}


@dataclass(frozen=True)
class SyncStep:
    """One task of a mapping file, in the words of the DAG: which entity set feeds which.

    :param name: the task name in ``include/mappings/<template>.yaml``.
    :param source: the source entity set the task reads.
    :param target: the target entity set the task writes (its asset).
    :param source_lookups: other entity sets of the source system its lookups read.
    :param target_lookups: other entity sets of the target system its lookups read (the
        customers, products or headers other DAGs wrote): with ``source_lookups`` they are
        the load's inlets, so the asset graph links those DAGs to this one.
    """

    name: str
    source: str
    target: str
    source_lookups: tuple[str, ...] = ()
    target_lookups: tuple[str, ...] = ()


@dataclass(frozen=True)
class TemplateSpec:
    """Everything a P2C DAG needs to know about its template, fixed at parse time."""

    dag_id: str
    template: str
    title: str
    source_system: str
    target_system: str
    steps: tuple[SyncStep, ...]
    upstream: tuple[str, ...] = ()
    dataverse_conn_id: str = "dynamics_dataverse_default"
    fno_conn_id: str = "dynamics_fno_default"
    extra_options: SyncArgs = field(default_factory=dict)

    def conn_id(self, system: str) -> str:
        return self.dataverse_conn_id if system == "dataverse" else self.fno_conn_id


# -- preflight ----------------------------------------------------------------------------


def select_company_pairs(requested: Sequence[str] | None) -> list[CompanyPairDict]:
    """The company pairs of ``environment.yaml`` to run: all, or the ``companies`` Param's
    subset. An unknown legal entity fails the run rather than syncing less than asked."""
    from prospect_to_cash.sync.context import select_pairs

    with fail_fast_on_configuration_errors():
        pairs = select_pairs(requested)
    selected = [pair.to_dict() for pair in pairs]
    log.info(
        "Company pairs to sync: %s",
        ", ".join(f"{p['legal_entity']} <-> {p['business_unit'] or '(all of Sales)'}" for p in selected),
    )
    return selected


def check_mapping(spec: TemplateSpec) -> dict[str, Any]:
    """Validate the mapping file offline (with what it needs of every company pair), then
    against both services' ``$metadata``, before any company reads or writes a row."""
    from prospect_to_cash.sync.company_scope import require_owners
    from prospect_to_cash.sync.mapping import load_template
    from prospect_to_cash.sync.metadata_check import check_template
    from prospect_to_cash.sync.runner import SyncHooks

    with fail_fast_on_configuration_errors():
        template = load_template(spec.template)
        names = [task.name for task in template.tasks]
        declared = [step.name for step in spec.steps]
        if names != declared:
            raise AirflowFailException(
                f"{spec.dag_id} runs tasks {declared}, but {template.path} defines {names}; "
                "update the DAG file together with the mapping file"
            )
        require_owners(template)
        for pair in template.environment.company_pairs if template.environment else ():
            load_template(spec.template, legal_entity=pair.legal_entity)  # each pair's env values too
        hooks = SyncHooks(dataverse_conn_id=spec.dataverse_conn_id, fno_conn_id=spec.fno_conn_id)
        check_template(template, hooks, raise_on_problems=True)
    log.info("%s matches both services' $metadata (%d task(s))", template.path, len(names))
    return {"template": spec.template, "mapping": template.path, "tasks": names}


# -- per company pair: the report after the steps' loads --------------------------------


def report_label(legal_entity: str, counts: Mapping[str, int]) -> str:
    """The report task's name in the grid (its rendered map index): the company, plus the rows
    left behind when there are any, so a run with rejected or failed rows does not look clean.
    (The Task SDK offers a task no way to set the run's note; the map index is what it names.)"""
    pending = [f"{counts.get(kind, 0)} {kind}" for kind in ("rejected", "failed") if counts.get(kind, 0)]
    return f"{legal_entity}: {', '.join(pending)}" if pending else legal_entity


def report_step(
    spec: TemplateSpec,
    pair: CompanyPairDict,
    loads: Sequence[LoadedXCom],
    *,
    run_id: str,
    dry_run: bool,
    max_rejected: str = DEFAULT_MAX_REJECTED,
    max_failed: str = DEFAULT_MAX_FAILED,
    staging_folder: str | None = None,
) -> ReportedXCom:
    """Sum the company's counts over the template's tasks, write ``summary.json`` next to
    the staging of the run and log one table an operator can read at a glance; then the
    error threshold decides the run (above it: a failure without retries, since every load
    already wrote what it could and a retry would refuse the same rows)."""
    from prospect_to_cash.sync.contracts import CompanyPair
    from prospect_to_cash.sync.staging import as_path
    from prospect_to_cash.sync.summary import count_order, summarize, write_summary

    summary = summarize(
        spec.template,
        CompanyPair.of(pair),
        run_id,
        {
            loaded["task"]: {
                "counts": loaded["counts"],
                "deadletter": loaded["deadletter"],
                "paths": {name: path for name in ("plan", "outcome") if (path := loaded.get(name))},
            }
            for loaded in loads
        },
        dry_run=dry_run,
        window=loads[0].get("window") if loads else None,
        dag_id=spec.dag_id,
    )
    summary_path = write_summary(as_path(spec.extra_options.get("staging_root")), summary, staging_folder)
    order, totals, dead_letters = count_order(dry_run), summary["counts"], summary["dead_letters"]
    header = ["task", *order]
    rows = [[loaded["task"], *(str(loaded["counts"].get(c, 0)) for c in order)] for loaded in loads]
    rows.append(["TOTAL", *(str(totals.get(c, 0)) for c in order)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    table = "\n".join("  ".join(cell.rjust(widths[i]) for i, cell in enumerate(r)) for r in [header, *rows])
    log.info(
        "%s%s for %s:\n%s\nsummary: %s",
        spec.title,
        " (DRY RUN, nothing written)" if dry_run else "",
        pair["legal_entity"],
        table,
        summary_path,
    )
    for item in dead_letters:
        log.warning("%s: %d %s row(s) in %s", item["task"], item["rows"], item["kind"], item["path"])
    if not dry_run:
        from prospect_to_cash.sync.errors import RowsRefused
        from prospect_to_cash.sync.thresholds import enforce

        try:
            enforce(
                f"{spec.template} [{pair['legal_entity']}]",
                totals,
                max_rejected=max_rejected,
                max_failed=max_failed,
            )
        except (RowsRefused, ValueError) as exc:
            raise AirflowFailException(str(exc)) from exc
    return {
        "legal_entity": pair["legal_entity"],
        "dry_run": dry_run,
        "counts": totals,
        "summary": summary_path,
        "dead_letters": dead_letters,
    }
