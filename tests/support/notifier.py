"""A notifier test double for DAG runs in another process: it appends what it was given to
a JSON-lines file, so a test can assert which callbacks fired, for which task, with what.

It stands for the SMTP or chat notifier a user configures in ``P2C_NOTIFIERS``: like them it
renders its ``message`` template (Jinja, against the task's context) and sends the result;
the file is its mailbox.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

#: What a mail subject and body built from the usual template variables would say.
MESSAGE = (
    "{{ dag.dag_id }} {{ ti.task_id }}[{{ ti.map_index }}] {{ ti.state }} run {{ run_id }}: "
    "{{ exception if exception is defined else '' }} params {{ params }}"
)


class FileNotifier(BaseNotifier):
    """Appends ``{"channel", "dag_id", "task_id", "map_index", "run_id", "message"}`` to ``path``."""

    template_fields = ("message",)

    def __init__(self, path: str, channel: str, message: str = MESSAGE) -> None:
        super().__init__()
        self.path = path
        self.channel = channel
        self.message = message

    def notify(self, context: Context) -> None:
        ti = context["ti"]
        record = {
            "channel": self.channel,
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "map_index": ti.map_index,
            "run_id": context["run_id"],
            "message": self.message,
        }
        with Path(self.path).open("a") as mailbox:
            mailbox.write(json.dumps(record) + "\n")


def received(path: Path) -> list[dict[str, object]]:
    """Everything the notifier was given, in order (none when it never fired)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
