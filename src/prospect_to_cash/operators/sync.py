"""An operator for users who want a whole template as one task in their own DAG.

The seven shipped DAGs run extract, transform and load as separate tasks per company pair;
`TemplateSyncOperator` runs the same engine (`run_company_pairs`) inside one task, for an
initial load, a one-off backfill or a DAG of the user's own design.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from prospect_to_cash.sync.contracts import PairsResult


class TemplateSyncOperator(BaseOperator):
    """Sync one Prospect-to-cash template for its company pairs, side by side, in one task.

    The run's data interval is the template's change window (templates without a change
    field read their source whole); the run id names the staging folder, so a retried task
    resumes its loads from their journals instead of writing twice. XCom gets counts and
    staging paths only.

    :param template: one of the seven templates (``accounts``, ``products``, ...).
    :param legal_entities: company pairs to run (all of ``environment.yaml``'s when None).
    :param dry_run: plan and report, write nothing.
    :param full_refresh: ignore the change window.
    :param max_parallel: company pairs at once (all when None).
    :param check_metadata: compare the mapping with both services' ``$metadata`` first.
    :param staging_root: staging URL (default ``P2C_STAGING_ROOT``).
    :param dataverse_conn_id: Airflow connection of the Dataverse environment.
    :param fno_conn_id: Airflow connection of the F&O environment.
    """

    template_fields: Sequence[str] = ("template", "legal_entities", "dry_run", "full_refresh", "staging_root")
    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        template: str,
        legal_entities: Sequence[str] | None = None,
        dry_run: bool = False,
        full_refresh: bool = False,
        max_parallel: int | None = None,
        check_metadata: bool = True,
        staging_root: str | None = None,
        dataverse_conn_id: str = "dynamics_dataverse_default",
        fno_conn_id: str = "dynamics_fno_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.template = template
        self.legal_entities = legal_entities
        self.dry_run = dry_run
        self.full_refresh = full_refresh
        self.max_parallel = max_parallel
        self.check_metadata = check_metadata
        self.staging_root = staging_root
        self.dataverse_conn_id = dataverse_conn_id
        self.fno_conn_id = fno_conn_id

    def execute(self, context: Context) -> PairsResult:
        from prospect_to_cash.operators.common import fail_fast_on_configuration_errors, run_folder
        from prospect_to_cash.sync.contracts import SyncOptions, Window
        from prospect_to_cash.sync.runner import run_company_pairs

        options = SyncOptions(
            run_id=context["run_id"],
            staging_folder=run_folder(context, self.template, self.staging_root or None),
            staging_root=self.staging_root or None,
            dataverse_conn_id=self.dataverse_conn_id,
            fno_conn_id=self.fno_conn_id,
            dry_run=bool(self.dry_run),
            check_metadata=self.check_metadata,
        )
        window = Window.of(
            context.get("data_interval_start"),
            context.get("data_interval_end"),
            full_refresh=bool(self.full_refresh),
        )
        with fail_fast_on_configuration_errors():
            result = run_company_pairs(
                self.template,
                legal_entities=list(self.legal_entities) if self.legal_entities else None,
                max_parallel=self.max_parallel,
                options=options,
                window=window,
            )
        self.log.info("%s: %s", result["template"], result["counts"])
        return result
