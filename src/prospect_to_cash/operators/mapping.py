"""One mapping task's extract, transform and load for one company pair, as three operators.

A mapping task (one ``tasks:`` entry of ``include/mappings/<template>.yaml``, or of a
mapping file of your own) says which entity set feeds which, with which fields, lookups
and keys. These operators run its three steps through the sync engine; the steps find
each other's files through the run's staging folder
(``<staging>/<template>/<run_id>/<company>/<task>/``), so only small dicts of paths and
counts go through XCom:

* `MappingExtractOperator`: the source rows of the change window and the source-side
  reference tables, and a snapshot of the target with its reference tables, into staging;
* `MappingTransformOperator`: the plan (map, look up, validate, diff with pandas/Arrow a
  chunk at a time); rejected rows go to the dead-letter file;
* `MappingLoadOperator`: writes the plan (creates, updates, second pass) with a journal,
  so a retry resumes; publishes counts and dead-letter paths on its outlets' asset events.

The seven template DAGs are these three operators per step and company pair.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from prospect_to_cash.operators.common import (
    change_window,
    fail_fast_on_configuration_errors,
    flag,
    legal_entity_of,
    run_folder,
)
from prospect_to_cash.sync.contracts import TransformedXCom, WindowDict
from prospect_to_cash.sync.deadletter import dead_letters
from prospect_to_cash.sync.privacy import ROW_VALUES_VARIABLE, log_row_values

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from prospect_to_cash.operators.common import Company
    from prospect_to_cash.sync.contracts import ExtractedXCom, LoadedXCom, SyncOptions

#: ``DagRun.run_type`` of a scheduler's run (``DagRunType.SCHEDULED`` is a str enum).
SCHEDULED = frozenset({"scheduled"})


class PlannedXCom(TransformedXCom, total=False):
    """The transform's answer, with the extract's change window passed on to the load (so
    the load needs no second edge from the extract to say what was read)."""

    window: WindowDict | None
    full_refresh: bool


class _MappingStepOperator(BaseOperator):
    """What the three step operators share: which mapping task, for which company, staged
    where, through which connections.

    :param template: the mapping file's name (``accounts``) or path.
    :param mapping_task: the task of the mapping file (``customers``).
    :param company: the legal entity, its company pair, or an upstream step's result.
    :param staging_root: staging URL (default ``P2C_STAGING_ROOT``).
    :param mappings_dir: folder of the mapping files and ``environment.yaml`` (default
        ``P2C_MAPPINGS_DIR``, else the project's ``include/mappings``).
    :param environment_file: an override laid over ``environment.yaml``.
    :param dataverse_conn_id: Airflow connection of the Dataverse environment.
    :param fno_conn_id: Airflow connection of the F&O environment.
    """

    template_fields: Sequence[str] = (
        "template",
        "mapping_task",
        "company",
        "staging_root",
        "mappings_dir",
        "environment_file",
    )

    def __init__(
        self,
        *,
        template: str,
        mapping_task: str,
        company: Company,
        staging_root: str | None = None,
        mappings_dir: str | None = None,
        environment_file: str | None = None,
        dataverse_conn_id: str = "dynamics_dataverse_default",
        fno_conn_id: str = "dynamics_fno_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.template = template
        self.mapping_task = mapping_task
        self.company = company
        self.staging_root = staging_root
        self.mappings_dir = mappings_dir
        self.environment_file = environment_file
        self.dataverse_conn_id = dataverse_conn_id
        self.fno_conn_id = fno_conn_id

    def _legal_entity(self, context: Context) -> str:
        legal_entity = legal_entity_of(self.company)
        # names a mapped instance after its company (``map_index_template="{{ p2c_company }}"``)
        context["p2c_company"] = legal_entity  # type: ignore[typeddict-unknown-key]
        return legal_entity

    def _options(self, context: Context, **changes: Any) -> SyncOptions:
        from prospect_to_cash.sync.contracts import SyncOptions

        return SyncOptions(
            run_id=context["run_id"],
            staging_folder=run_folder(context, self.template, self.staging_root or None),
            staging_root=self.staging_root or None,
            mappings_dir=self.mappings_dir or None,
            environment_file=self.environment_file or None,
            dataverse_conn_id=self.dataverse_conn_id,
            fno_conn_id=self.fno_conn_id,
            **changes,
        )


class MappingExtractOperator(_MappingStepOperator):
    """Stage a mapping task's inputs for one company: its source rows of the change window
    (with the source-side reference tables) and a snapshot of its target (with the
    target-side ones), read side by side.

    The window is ``window_start`` / ``window_end`` where given, else the run's data
    interval; templates without a change field read their source whole.

    :param window_start: start of the change window (ISO 8601; templated).
    :param window_end: end of the change window, exclusive (templated).
    :param full_refresh: read every row the filter allows, whatever the window.
    :param page_size: rows per OData page (the hook's default when None).
    """

    template_fields: Sequence[str] = (
        *_MappingStepOperator.template_fields,
        "window_start",
        "window_end",
        "full_refresh",
    )
    ui_color = "#e4f0e8"

    def __init__(
        self,
        *,
        window_start: str | None = None,
        window_end: str | None = None,
        full_refresh: bool | str = False,
        page_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.window_start = window_start
        self.window_end = window_end
        self.full_refresh = full_refresh
        self.page_size = page_size

    def execute(self, context: Context) -> ExtractedXCom:
        from prospect_to_cash.sync import runner

        legal_entity = self._legal_entity(context)
        window = change_window(
            context.get("data_interval_start"),
            context.get("data_interval_end"),
            self.window_start or None,
            self.window_end or None,
            full_refresh=flag(self.full_refresh, "full_refresh"),
            # a scheduled run reads from the last successful mark: a skipped or failed
            # interval leaves no gap; manual runs and backfills read their window exactly
            since_watermark=str(getattr(context.get("dag_run"), "run_type", "")) in SCHEDULED,
        )
        with fail_fast_on_configuration_errors():
            extracted, snapped = runner.extract_and_snapshot(
                self.template,
                self.mapping_task,
                legal_entity=legal_entity,
                options=self._options(context, page_size=self.page_size),
                window=window,
            )
        return {
            "template": extracted["template"],
            "task": self.mapping_task,
            "legal_entity": legal_entity,
            "window": extracted["window"],  # what was read, after the high-water mark
            "full_refresh": window.full_refresh,
            "source": {"path": extracted["path"], "rows": extracted["read"]},
            "target": {"path": snapped["path"], "rows": snapped["rows"]},
            "staging": extracted["staging"],
        }


class MappingTransformOperator(_MappingStepOperator):
    """Plan a mapping task for one company from what its extract staged: map the fields,
    resolve the lookups, validate, and diff against the target snapshot (pandas and Arrow,
    a chunk at a time). Rejected rows go to ``deadletter/rejected.parquet`` with reasons.

    :param extracted: the extract's result (XCom). Only its change window is used (passed
        on, so the load's asset event says what was read); leave it None otherwise.
    :param chunk_rows: rows held at once (``P2C_TRANSFORM_CHUNK_ROWS``, else 50,000).
    """

    template_fields: Sequence[str] = (*_MappingStepOperator.template_fields, "extracted")
    ui_color = "#fdf1d6"

    def __init__(
        self,
        *,
        extracted: ExtractedXCom | None = None,
        chunk_rows: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("company", extracted)
        if kwargs["company"] is None:
            raise ValueError("MappingTransformOperator needs company= or extracted= (the extract's XCom)")
        super().__init__(**kwargs)
        self.extracted = extracted
        self.chunk_rows = chunk_rows

    def execute(self, context: Context) -> PlannedXCom:
        from prospect_to_cash.sync import runner

        legal_entity = self._legal_entity(context)
        with fail_fast_on_configuration_errors():
            planned = runner.transform(
                self.template,
                self.mapping_task,
                legal_entity=legal_entity,
                options=self._options(context, chunk_rows=self.chunk_rows),
            )
        result: PlannedXCom = {
            "template": planned["template"],
            "task": self.mapping_task,
            "legal_entity": legal_entity,
            "counts": planned["counts"],
            "paths": planned["paths"],
        }
        if self.extracted:
            result["window"] = self.extracted.get("window")
            result["full_refresh"] = bool(self.extracted.get("full_refresh"))
        return result


class MappingLoadOperator(_MappingStepOperator):
    """Write a mapping task's plan for one company: creates and updates through the hook's
    batches, then the second pass (self-references), journaling every outcome so a retried
    task resumes instead of writing twice. Rows the service refuses go to
    ``deadletter/failed.parquet``. Each asset in ``outlets`` gets an event whose ``extra``
    carries the counts and dead-letter paths.

    :param transformed: the transform's result (XCom): the plan's files and the window.
    :param dry_run: report the plan (counts; row samples to the task log with
        ``P2C_LOG_ROW_VALUES=1``), write nothing.
    :param max_source_deletes: target rows this load may deactivate or delete for source
        deletes (count or percentage; templated; empty: the engine's default).
    """

    template_fields: Sequence[str] = (
        *_MappingStepOperator.template_fields,
        "transformed",
        "dry_run",
        "max_source_deletes",
    )
    ui_color = "#f6dcd6"

    def __init__(
        self,
        *,
        transformed: PlannedXCom,
        dry_run: bool | str = False,
        max_source_deletes: str = "",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("company", transformed)
        super().__init__(**kwargs)
        self.transformed = transformed
        self.dry_run = dry_run
        self.max_source_deletes = max_source_deletes

    def execute(self, context: Context) -> LoadedXCom:
        from prospect_to_cash.sync import runner

        legal_entity = self._legal_entity(context)
        dry_run = flag(self.dry_run, "dry_run")
        limit = str(self.max_source_deletes or "").strip()  # empty: the engine's default
        deletes = {"max_source_deletes": limit} if limit else {}
        with fail_fast_on_configuration_errors():
            loaded = runner.load(
                self.template,
                self.mapping_task,
                legal_entity=legal_entity,
                options=self._options(context, dry_run=dry_run, **deletes),
            )
        plan_paths = self.transformed["paths"]
        if dry_run and log_row_values():
            # the samples are row values: never to XCom, to the task log only when asked
            self.log.info(
                "Dry run sample of the plan (full plan under %s):\n%s",
                plan_paths.get("summary"),
                json.dumps(loaded.get("samples", {}), indent=2, default=str),
            )
        elif dry_run:
            self.log.info(
                "Dry run: the plan, with sample rows, is in %s (%s=1 logs the samples)",
                plan_paths.get("summary"),
                ROW_VALUES_VARIABLE,
            )
        paths = loaded.get("paths", {})
        result: LoadedXCom = {
            "template": loaded["template"],
            "task": self.mapping_task,
            "legal_entity": legal_entity,
            "run_id": context["run_id"],
            "dry_run": dry_run,
            "window": self.transformed.get("window"),
            "full_refresh": bool(self.transformed.get("full_refresh", False)),
            "counts": {name: int(value) for name, value in loaded.get("counts", {}).items()},
            "deadletter": dead_letters(plan_paths.get("rejected"), paths),
            "plan": plan_paths.get("summary"),
            "outcome": paths.get("outcome"),
        }
        outlet_events = context.get("outlet_events")
        if outlet_events is not None:
            for outlet in self.outlets:
                outlet_events[outlet].extra = asset_event_extra(result)
        retryable = result["counts"].get("failed_retryable", 0)
        if retryable and not dry_run:
            from prospect_to_cash.sync.errors import ServiceFailures

            # everything else is written and journaled: Airflow's retry resends only these
            raise ServiceFailures(
                f"{result['template']}/{self.mapping_task} [{legal_entity}]: {retryable} write(s) "
                "failed at the service (5xx, timeout, throttling or an ambiguous write)"
            )
        return result


def asset_event_extra(loaded: LoadedXCom) -> dict[str, Any]:
    """What a load attaches to its target asset's event: enough to read the run's result
    from the asset view without opening the logs."""
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
