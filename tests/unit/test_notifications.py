"""Notifiers come from P2C_NOTIFIERS (no DAG file edited); the warning notifier fires only
for a successful task that still rejected or failed rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from airflow.sdk import BaseNotifier

from prospect_to_cash.notifications import (
    RowsPendingNotifier,
    configured,
    failure_callbacks,
    warning_callbacks,
)

SENT: list[tuple[str, str]] = []


class RecordingNotifier(BaseNotifier):
    """Stands for the SMTP notifier: records what it was asked to send."""

    def __init__(self, channel: str) -> None:
        super().__init__()
        self.channel = channel

    def notify(self, context: Any) -> None:
        SENT.append((self.channel, context["ti"].task_id))


@dataclass
class FinishedTask:
    """What a callback's context holds of the task instance: its id and its return value."""

    task_id: str
    map_index: int
    returned: Any

    def xcom_pull(self, task_ids: str, map_indexes: int) -> Any:
        assert (task_ids, map_indexes) == (self.task_id, self.map_index)
        return self.returned


PATH = f"{__name__}.RecordingNotifier"


@pytest.fixture(autouse=True)
def _sent() -> None:
    SENT.clear()


def test_notifiers_are_configured_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "P2C_NOTIFIERS",
        json.dumps(
            [
                {"notifier": PATH, "kwargs": {"channel": "ops"}, "on": ["failure"]},
                {"notifier": PATH, "kwargs": {"channel": "team"}},
            ]
        ),
    )
    assert [n.channel for n in failure_callbacks()] == ["ops", "team"]  # type: ignore[attr-defined]
    (warning,) = warning_callbacks()
    assert isinstance(warning, RowsPendingNotifier)
    assert warning.notifier.channel == "team"  # type: ignore[attr-defined]


def test_nothing_configured_means_no_callbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("P2C_NOTIFIERS", raising=False)
    assert (failure_callbacks(), warning_callbacks()) == ([], [])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("{", "is not JSON"),
        ('{"notifier": "x"}', "must be a JSON list"),
        ('[{"kwargs": {}}]', "needs a 'notifier'"),
        (json.dumps([{"notifier": PATH, "on": ["success"]}]), "takes 'kwargs'"),
        (json.dumps([{"notifier": PATH, "to": "x"}]), "takes 'kwargs'"),
    ],
)
def test_a_wrong_setting_says_what_is_wrong(setting: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configured(setting)


def test_a_notifier_must_be_a_base_notifier() -> None:
    (spec,) = configured(json.dumps([{"notifier": "json.JSONDecoder"}]))
    with pytest.raises(ValueError, match="is not a BaseNotifier"):
        spec.build()
    (missing,) = configured(json.dumps([{"notifier": "no_such_module.Notifier"}]))
    with pytest.raises(ValueError, match="cannot import"):
        missing.build()


@pytest.mark.parametrize(
    ("returned", "sent"),
    [
        ({"counts": {"read": 40, "rejected": 4, "failed": 0}}, [("team", "load")]),
        ({"counts": {"read": 40, "rejected": 0, "failed": 1}}, [("team", "load")]),
        ({"counts": {"read": 40, "rejected": 0, "failed": 0}}, []),
        (None, []),
    ],
)
def test_the_warning_fires_only_when_rows_were_rejected_or_failed(returned: Any, sent: list) -> None:
    notifier = RowsPendingNotifier(RecordingNotifier("team"))
    notifier({"ti": FinishedTask("load", 1, returned)})
    assert sent == SENT
