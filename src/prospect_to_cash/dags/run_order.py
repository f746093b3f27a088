"""Run order between the P2C DAGs: wait for the upstream DAGs' run of the same data interval.

Every P2C DAG runs on the same time-based schedule; a downstream DAG (contacts, quotations,
orders, invoices) starts with one :class:`RunOrderSensor` per prerequisite DAG. The sensor
is the standard provider's ExternalTaskSensor with three choices made for this project:

* it matches the upstream run by the *data interval* (the upstream run whose logical date
  is this run's ``data_interval_start``), so a manual run or a backfill of an interval
  waits for the scheduled run of that same interval;
* it fails at once, without retries, when that upstream run failed (``failed_states``),
  instead of waiting for its timeout: the order sync must not silently run without its
  customers;
* a run-time Param (``wait_for_upstream``) switches it off for ad-hoc runs. Rows whose
  parents are not in the target yet are then rejected by the engine as dangling lookups
  (dead-letter file), never written half-done.

It defers to the triggerer by default (no worker slot is held while waiting); with
``deferrable=False`` it reschedules instead. Why not asset-triggered schedules: a run
started by an asset event has no data interval and cannot be backfilled (see docs/dags.md).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.exceptions import ExternalDagFailedError
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import DagRunState
from airflow.sdk.exceptions import AirflowFailException

from prospect_to_cash.dags.params import WAIT_FOR_UPSTREAM, param_value

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Seconds between checks of the upstream run (environment override for tests and demos).
POKE_SECONDS_VARIABLE = "P2C_RUN_ORDER_POKE_SECONDS"
#: Seconds a downstream run waits for its upstream run before it fails.
TIMEOUT_SECONDS_VARIABLE = "P2C_RUN_ORDER_TIMEOUT_SECONDS"
DEFAULT_POKE_SECONDS = 60.0
DEFAULT_TIMEOUT = timedelta(hours=6)


def _seconds_from_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


def same_data_interval(
    logical_date: datetime, data_interval_start: datetime | None = None, **_: Any
) -> datetime:
    """The upstream logical date to wait for: the start of this run's data interval.

    Scheduled and backfill runs of a data-interval timetable have ``logical_date ==
    data_interval_start``; a manual run has ``logical_date`` at the interval's *end*, so
    matching on the interval start lines it up with the scheduled upstream run.
    """
    return data_interval_start or logical_date


class RunOrderSensor(ExternalTaskSensor):
    """Succeeds when ``upstream_dag_id`` has a successful run for this run's data interval.

    :param upstream_dag_id: the prerequisite DAG.
    :param switch_param: name of the boolean Param that, when false, makes the sensor
        succeed immediately (ad-hoc runs).
    :param deferrable: wait in the triggerer (default) instead of rescheduling.
    """

    ui_color = "#d7e9f7"

    def __init__(
        self,
        *,
        upstream_dag_id: str,
        switch_param: str = WAIT_FOR_UPSTREAM,
        deferrable: bool = True,
        poke_interval: float | None = None,
        timeout: float | timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        if timeout is None:
            timeout = _seconds_from_env(TIMEOUT_SECONDS_VARIABLE, DEFAULT_TIMEOUT.total_seconds())
        if isinstance(timeout, timedelta):
            timeout = timeout.total_seconds()
        kwargs.setdefault("mode", "reschedule")
        super().__init__(
            external_dag_id=upstream_dag_id,
            allowed_states=[DagRunState.SUCCESS.value],
            failed_states=[DagRunState.FAILED.value],
            execution_date_fn=same_data_interval,
            deferrable=deferrable,
            poke_interval=poke_interval or _seconds_from_env(POKE_SECONDS_VARIABLE, DEFAULT_POKE_SECONDS),
            timeout=timeout,
            **kwargs,
        )
        self.switch_param = switch_param

    def execute(self, context: Context) -> None:
        if not param_value(context.get("params"), self.switch_param, True):
            self.log.info(
                "Param %s is false: not waiting for %s (ad-hoc run; rows whose parents are missing "
                "in the target are dead-lettered, not written).",
                self.switch_param,
                self.external_dag_id,
            )
            return
        if context.get("data_interval_start") is None and context.get("logical_date") is None:
            raise AirflowFailException(
                f"This run has no logical date, so there is no {self.external_dag_id} run of the same "
                f"data interval to wait for. Trigger it with a logical date, or set "
                f"{self.switch_param}=false for an ad-hoc run."
            )
        self.log.info(
            "Waiting for %s to succeed for the data interval starting %s",
            self.external_dag_id,
            same_data_interval(context.get("logical_date"), context.get("data_interval_start")),
        )
        try:
            super().execute(context)
        except ExternalDagFailedError as exc:
            raise self._upstream_failed() from exc

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        try:
            super().execute_complete(context, event)
        except ExternalDagFailedError as exc:
            raise self._upstream_failed() from exc

    def _upstream_failed(self) -> AirflowFailException:
        # AirflowFailException: retrying cannot help until someone reruns the upstream DAG
        return AirflowFailException(
            f"{self.external_dag_id} failed for this data interval; rerun it (clear its failed tasks), "
            f"then clear this task."
        )
