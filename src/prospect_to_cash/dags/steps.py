"""What each task of a P2C DAG does, as plain functions the DAG factory wraps in ``@task``.

They take explicit arguments (no Airflow context), so they can be tested without a
scheduler. Each calls one step of the sync engine for one company pair and returns a
small JSON-serializable dict: staging paths and counts, never rows, never secrets.
Configuration errors (a wrong mapping file, an unknown company, a mapping that no longer
matches the services' ``$metadata``) raise :class:`AirflowFailException`: retrying cannot
fix them, so the task fails at once with the engine's message.

Heavy imports (pandas, pyarrow, the engine) happen inside the functions so that parsing
a DAG file stays fast.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime

    from prospect_to_cash.sync.contracts import (
        CompanyPairDict,
        ExtractedXCom,
        LoadedXCom,
        ReportedXCom,
        SyncArgs,
        SyncOptions,
        TransformedXCom,
        WindowDict,
    )

log = logging.getLogger(__name__)

SYSTEM_LABELS = {"dataverse": "Sales (Dataverse)", "fno": "Finance and Operations"}


@dataclass(frozen=True)
class SyncStep:
    """One task of a mapping file, in the words of the DAG: which entity set feeds which.

    :param name: the task name in ``include/mappings/<template>.yaml``.
    :param source: the source entity set the task reads.
    :param target: the target entity set the task writes (its asset).
    """

    name: str
    source: str
    target: str


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

    def sync_options(self, run_id: str, *, dry_run: bool = False) -> SyncOptions:
        """The options every engine call of a run gets (connection ids, test overrides)."""
        from prospect_to_cash.sync.contracts import SyncOptions, resolve

        base = SyncOptions(
            run_id=run_id,
            dataverse_conn_id=self.dataverse_conn_id,
            fno_conn_id=self.fno_conn_id,
            dry_run=dry_run,
        )
        return resolve(base, None, self.extra_options)[0]


@contextlib.contextmanager
def fail_fast_on_configuration_errors() -> Iterator[None]:
    """Turn the engine's configuration errors into a no-retry task failure."""
    from prospect_to_cash.sync.errors import DataError, MappingError, MetadataMismatch

    try:
        yield
    except (MappingError, MetadataMismatch, DataError) as exc:
        raise AirflowFailException(str(exc)) from exc


def sync_window(
    data_interval_start: datetime | str | None,
    data_interval_end: datetime | str | None,
    window_start: datetime | str | None = None,
    window_end: datetime | str | None = None,
) -> WindowDict:
    """The change window a run reads: the Params' override where given, else the run's
    data interval. Both ends None (a manual run without a logical date) reads everything
    the template's filter allows."""
    from prospect_to_cash.sync.contracts import Window

    try:
        window = Window.of(data_interval_start, data_interval_end, start=window_start, end=window_end)
    except ValueError as exc:
        raise AirflowFailException(f"window_start/window_end: {exc}") from exc
    return window.to_dict()


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
    """Validate the mapping file offline, then against both services' ``$metadata``, before
    any company reads or writes a row."""
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
        hooks = SyncHooks(dataverse_conn_id=spec.dataverse_conn_id, fno_conn_id=spec.fno_conn_id)
        check_template(template, hooks, raise_on_problems=True)
    log.info("%s matches both services' $metadata (%d task(s))", template.path, len(names))
    return {"template": spec.template, "mapping": template.path, "tasks": names}


# -- per company pair: extract, transform, load, report -----------------------------------


def extract_step(
    spec: TemplateSpec,
    step: str,
    pair: CompanyPairDict,
    *,
    run_id: str,
    window: WindowDict,
    full_refresh: bool,
) -> ExtractedXCom:
    """Read the source rows of the window and a snapshot of the target into staging."""
    from prospect_to_cash.sync import runner
    from prospect_to_cash.sync.contracts import CompanyPair, Window

    with fail_fast_on_configuration_errors():
        extracted, snapped = runner.extract_and_snapshot(
            spec.template,
            step,
            legal_entity=CompanyPair.of(pair),
            options=spec.sync_options(run_id),
            window=Window(window["start"], window["end"], full_refresh),
        )
    return {
        "template": spec.template,
        "task": step,
        "legal_entity": pair["legal_entity"],
        "window": window,
        "full_refresh": full_refresh,
        "source": {"path": extracted["path"], "rows": extracted["read"]},
        "target": {"path": snapped["path"], "rows": snapped["rows"]},
        "staging": extracted["staging"],
    }


def transform_step(spec: TemplateSpec, step: str, pair: CompanyPairDict, *, run_id: str) -> TransformedXCom:
    """Map, look up, validate and diff; rejected rows go to the dead-letter file."""
    from prospect_to_cash.sync import runner
    from prospect_to_cash.sync.contracts import CompanyPair

    with fail_fast_on_configuration_errors():
        planned = runner.transform(
            spec.template, step, legal_entity=CompanyPair.of(pair), options=spec.sync_options(run_id)
        )
    return {
        "template": spec.template,
        "task": step,
        "legal_entity": pair["legal_entity"],
        "counts": planned["counts"],
        "paths": planned["paths"],
    }


def load_step(
    spec: TemplateSpec,
    step: str,
    pair: CompanyPairDict,
    transformed: TransformedXCom,
    *,
    run_id: str,
    dry_run: bool,
    window: WindowDict | None = None,
    full_refresh: bool = False,
) -> LoadedXCom:
    """Write the plan (or, in a dry run, only report it). Returns counts and the paths of
    the dead-letter files: ``rejected`` (refused by the transform) and ``failed`` (refused
    by the service)."""
    from prospect_to_cash.sync import runner
    from prospect_to_cash.sync.contracts import CompanyPair

    with fail_fast_on_configuration_errors():
        loaded = runner.load(
            spec.template,
            step,
            legal_entity=CompanyPair.of(pair),
            options=spec.sync_options(run_id, dry_run=dry_run),
        )
    if dry_run:
        # the samples are row values: they go to the task log for review, not to XCom
        log.info(
            "Dry run sample of the plan (full plan under %s):\n%s",
            transformed["paths"].get("summary"),
            json.dumps(loaded.get("samples", {}), indent=2, default=str),
        )
    paths = loaded.get("paths", {})
    return {
        "template": spec.template,
        "task": step,
        "legal_entity": pair["legal_entity"],
        "run_id": run_id,
        "dry_run": dry_run,
        "window": window,
        "full_refresh": full_refresh,
        "counts": {name: int(value) for name, value in loaded["counts"].items()},
        "deadletter": {
            "rejected": transformed["paths"].get("rejected"),
            "failed": paths.get("failed"),
        },
        "plan": transformed["paths"].get("summary"),
        "outcome": paths.get("outcome"),
    }


def asset_event_extra(loaded: LoadedXCom) -> dict[str, Any]:
    """What the load task attaches to its target asset's event: enough to read the run's
    result from the asset view without opening the logs."""
    return {
        "template": loaded["template"],
        "task": loaded["task"],
        "legal_entity": loaded["legal_entity"],
        "run_id": loaded["run_id"],
        "dry_run": loaded["dry_run"],
        "window": loaded.get("window"),
        "full_refresh": loaded.get("full_refresh", False),
        "counts": loaded["counts"],
        "deadletter": loaded["deadletter"],
    }


def report_step(
    spec: TemplateSpec,
    pair: CompanyPairDict,
    loads: Sequence[LoadedXCom],
    *,
    run_id: str,
    dry_run: bool,
) -> ReportedXCom:
    """Sum the company's counts over the template's tasks, write ``summary.json`` next to
    the staging of the run and log one table an operator can read at a glance."""
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
    summary_path = write_summary(as_path(spec.extra_options.get("staging_root")), summary)
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
    return {
        "legal_entity": pair["legal_entity"],
        "dry_run": dry_run,
        "counts": totals,
        "summary": summary_path,
        "dead_letters": dead_letters,
    }
