"""Notifications in Airflow's own idiom: notifiers (`BaseNotifier`) for the DAGs'
``on_failure_callback`` and, for runs that stayed under the error threshold but still
rejected or failed rows, the load tasks' ``on_success_callback``.

Which notifiers is configuration, not code: ``P2C_NOTIFIERS`` holds a JSON list read when
the DAG files are parsed, e.g.::

    P2C_NOTIFIERS='[{"notifier": "airflow.providers.smtp.notifications.smtp.SmtpNotifier",
                     "kwargs": {"to": "integration-team@example.com",
                                "from_email": "airflow@example.com",
                                "subject": "P2C {{ dag.dag_id }} {{ ti.task_id }}: {{ ti.state }}",
                                "smtp_conn_id": "smtp_default"},
                     "on": ["failure", "warning"]}]'

``notifier`` is the import path of any `BaseNotifier` (SMTP, Slack, Teams webhooks...),
``kwargs`` its arguments (credentials stay in the Airflow connection it names, never
here), ``on`` when it fires: ``failure`` (a task failed: a threshold crossed, a service
down) and/or ``warning`` (the run succeeded with rejected or failed rows pending).
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

NOTIFIERS_VARIABLE = "P2C_NOTIFIERS"
EVENTS = ("failure", "warning")


@dataclass(frozen=True)
class NotifierSpec:
    """One configured notifier: its class, its arguments and the events it fires on."""

    notifier: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    on: tuple[str, ...] = EVENTS

    def build(self) -> BaseNotifier:
        module, _, name = self.notifier.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ValueError(f"{NOTIFIERS_VARIABLE}: cannot import notifier {self.notifier!r}") from exc
        if not (isinstance(cls, type) and issubclass(cls, BaseNotifier)):
            raise ValueError(f"{NOTIFIERS_VARIABLE}: {self.notifier!r} is not a BaseNotifier")
        return cls(**self.kwargs)


def configured(text: str | None = None) -> list[NotifierSpec]:
    """The notifiers of ``P2C_NOTIFIERS`` (or ``text``); none when it is unset.

    :raises ValueError: when the setting is not a list of ``{"notifier", "kwargs", "on"}``.
    """
    raw = os.environ.get(NOTIFIERS_VARIABLE, "") if text is None else text
    if not raw.strip():
        return []
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{NOTIFIERS_VARIABLE} is not JSON: {exc}") from exc
    if not isinstance(items, list):
        raise ValueError(f"{NOTIFIERS_VARIABLE} must be a JSON list")
    specs = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("notifier"), str):
            raise ValueError(f"{NOTIFIERS_VARIABLE}: each entry needs a 'notifier' import path")
        unknown = set(item) - {"notifier", "kwargs", "on"}
        on = tuple(item.get("on", EVENTS))
        if unknown or not set(on) <= set(EVENTS) or not isinstance(item.get("kwargs", {}), dict):
            raise ValueError(
                f"{NOTIFIERS_VARIABLE}: entry for {item['notifier']!r} takes 'kwargs' (an object) "
                f"and 'on' (of {', '.join(EVENTS)}) only"
            )
        specs.append(NotifierSpec(item["notifier"], dict(item.get("kwargs", {})), on))
    return specs


class RowsPendingNotifier(BaseNotifier):
    """Fires its notifier when a successful sync task still rejected or failed rows: the
    task's return value (its XCom) has ``counts`` with ``rejected`` or ``failed`` above 0."""

    def __init__(self, notifier: BaseNotifier) -> None:
        super().__init__()
        self.notifier = notifier

    def notify(self, context: Context) -> None:
        ti = context["ti"]
        result = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index)
        counts = result.get("counts", {}) if isinstance(result, dict) else {}
        if int(counts.get("rejected", 0)) or int(counts.get("failed", 0)):
            self.notifier(context)


def failure_callbacks() -> list[BaseNotifier]:
    """For ``on_failure_callback``: every configured notifier that fires on failure."""
    return [spec.build() for spec in configured() if "failure" in spec.on]


def warning_callbacks() -> list[BaseNotifier]:
    """For a sync task's ``on_success_callback``: the warning notifiers, each firing only
    when the task succeeded with rejected or failed rows."""
    return [RowsPendingNotifier(spec.build()) for spec in configured() if "warning" in spec.on]
