"""Run order between the P2C DAGs: wait for the upstream DAGs' run of the same data interval.

Every P2C DAG runs on the same time-based schedule; a downstream DAG (contacts, quotations,
orders, invoices) starts with one :class:`RunOrderSensor` per prerequisite DAG. The sensor
is the standard provider's ExternalTaskSensor (its configuration, UI link and reschedule
mode) with three choices made for this project:

* it looks for the upstream run of the *same data interval*. A scheduled or backfill run
  of the shared data-interval timetable has ``logical_date == data_interval_start``; a
  manual run has its logical date at the interval's *end* (Airflow infers the last
  complete interval before it). So the upstream run may carry either date: the sensor
  accepts a successful upstream run at this run's ``data_interval_start`` (the scheduled
  or backfilled upstream) or, for a manual run, at this run's own logical date (a manual
  upstream run of the same interval). The stock sensor would require *all* dates it is
  given; hence a small poke and trigger of its own;
* it fails at once, without retries, when that upstream run failed, instead of waiting
  for its timeout: the order sync must not silently run without its customers;
* a run-time Param (``wait_for_upstream``) switches it off for ad-hoc runs. Rows whose
  parents are not in the target yet are then rejected by the engine as dangling lookups
  (dead-letter file), never written half-done.

It defers to the triggerer by default (no worker slot is held while waiting); with
``deferrable=False`` it reschedules instead. Why not asset-triggered schedules: a run
started by an asset event has no data interval and cannot be backfilled (docs/dags.md).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import DagRunState
from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from prospect_to_cash.operators.common import param_value
from prospect_to_cash.settings import NumberSetting

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from airflow.sdk import Context

#: Seconds between checks of the upstream run (environment override for tests and demos).
POKE_SECONDS_VARIABLE = "P2C_RUN_ORDER_POKE_SECONDS"
#: Seconds a downstream run waits for its upstream run before it fails.
TIMEOUT_SECONDS_VARIABLE = "P2C_RUN_ORDER_TIMEOUT_SECONDS"
DEFAULT_POKE_SECONDS = 60.0
DEFAULT_TIMEOUT = timedelta(hours=6)
POKE_SECONDS = NumberSetting(
    "poke_interval", POKE_SECONDS_VARIABLE, DEFAULT_POKE_SECONDS, "seconds", 0.0, above=True
)
TIMEOUT_SECONDS = NumberSetting(
    "timeout", TIMEOUT_SECONDS_VARIABLE, DEFAULT_TIMEOUT.total_seconds(), "seconds", 0.0, above=True
)
SUCCESS, FAILED, WAITING = "success", "failed", "waiting"
#: The boolean Param that, when false, lets the sensor succeed at once (ad-hoc runs).
WAIT_FOR_UPSTREAM = "wait_for_upstream"


def same_data_interval(
    logical_date: datetime | None, data_interval_start: datetime | None = None, **_: Any
) -> datetime | None:
    """The logical date of the upstream's *scheduled* run of this run's data interval."""
    return data_interval_start or logical_date


def candidate_dates(logical_date: datetime | None, data_interval_start: datetime | None) -> list[datetime]:
    """Upstream logical dates that mean "the same data interval": the interval start (a
    scheduled or backfill upstream run), then this run's own logical date when it differs
    (a manual upstream run triggered with the same logical date infers the same interval
    from the shared timetable)."""
    dates = [d for d in (data_interval_start, logical_date) if d is not None]
    return list(dict.fromkeys(dates))


def upstream_status(count: Callable[..., int], dag_id: str, dates: Sequence[datetime]) -> str:
    """``success`` when any candidate run succeeded, else ``failed`` when one failed,
    else ``waiting``. ``count`` is the Task SDK's ``get_dr_count``."""
    for date in dates:
        if count(dag_id=dag_id, logical_dates=[date], states=[DagRunState.SUCCESS.value]):
            return SUCCESS
    for date in dates:
        if count(dag_id=dag_id, logical_dates=[date], states=[DagRunState.FAILED.value]):
            return FAILED
    return WAITING


class SameIntervalTrigger(BaseTrigger):
    """Polls (in the triggerer) until the upstream DAG has a finished run for one of the
    candidate logical dates; fires ``{"status": "success" | "failed"}``."""

    def __init__(self, upstream_dag_id: str, logical_dates: Sequence[datetime], poke_interval: float) -> None:
        super().__init__()
        self.upstream_dag_id = upstream_dag_id
        self.logical_dates = list(logical_dates)
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "upstream_dag_id": self.upstream_dag_id,
                "logical_dates": self.logical_dates,
                "poke_interval": self.poke_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
        from asgiref.sync import sync_to_async

        check = sync_to_async(upstream_status)
        while True:
            status = await check(RuntimeTaskInstance.get_dr_count, self.upstream_dag_id, self.logical_dates)
            if status != WAITING:
                yield TriggerEvent({"status": status})
                return
            self.log.info(
                "%s has no finished run for %s yet; next check in %ss",
                self.upstream_dag_id,
                ", ".join(d.isoformat() for d in self.logical_dates),
                self.poke_interval,
            )
            await asyncio.sleep(self.poke_interval)


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
            timeout = TIMEOUT_SECONDS.read()
        if isinstance(timeout, timedelta):
            timeout = timeout.total_seconds()
        kwargs.setdefault("mode", "reschedule")
        super().__init__(
            external_dag_id=upstream_dag_id,
            allowed_states=[DagRunState.SUCCESS.value],
            failed_states=[DagRunState.FAILED.value],
            execution_date_fn=same_data_interval,
            deferrable=deferrable,
            poke_interval=poke_interval or POKE_SECONDS.read(),
            timeout=timeout,
            **kwargs,
        )
        self.switch_param = switch_param

    def _candidates(self, context: Context) -> list[datetime]:
        return candidate_dates(context.get("logical_date"), context.get("data_interval_start"))

    def execute(self, context: Context) -> None:
        if not param_value(context.get("params"), self.switch_param, True):
            self.log.info(
                "Param %s is false: not waiting for %s (ad-hoc run; rows whose parents are missing "
                "in the target are dead-lettered, not written).",
                self.switch_param,
                self.external_dag_id,
            )
            return
        dates = self._candidates(context)
        if not dates:
            raise AirflowFailException(
                f"This run has no logical date, so there is no {self.external_dag_id} run of the same "
                f"data interval to wait for. Trigger it with a logical date, or set "
                f"{self.switch_param}=false for an ad-hoc run."
            )
        self.log.info(
            "Waiting for %s to succeed for this data interval (its run at %s)",
            self.external_dag_id,
            " or ".join(d.isoformat() for d in dates),
        )
        if not self.deferrable:
            super(ExternalTaskSensor, self).execute(context)  # BaseSensorOperator: poke / reschedule
            return
        if self.poke(context):
            return
        self.defer(
            trigger=SameIntervalTrigger(self.external_dag_id, dates, self.poke_interval),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def poke(self, context: Context) -> bool:
        status = upstream_status(context["ti"].get_dr_count, self.external_dag_id, self._candidates(context))
        if status == FAILED:
            raise self._upstream_failed()
        return status == SUCCESS

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        status = (event or {}).get("status")
        if status == SUCCESS:
            self.log.info("%s succeeded for this data interval", self.external_dag_id)
            return
        if status == FAILED:
            raise self._upstream_failed()
        raise AirflowFailException(f"unexpected event from the run-order trigger: {event!r}")

    def _upstream_failed(self) -> AirflowFailException:
        # AirflowFailException: retrying cannot help until someone reruns the upstream DAG
        return AirflowFailException(
            f"{self.external_dag_id} failed for this data interval; rerun it (clear its failed tasks), "
            f"then clear this task."
        )
