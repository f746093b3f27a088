"""Imported by every Airflow process of the local stack (Airflow imports ``airflow_local_settings``
from ``sys.path`` at start-up); only the scheduler and Celery workers act on it.

The scheduler's LocalExecutor forks its workers and each worker forks the task processes,
so a library the scheduler has already imported costs nothing in a task (likewise a
Celery worker's pool processes, forked from the worker, and their task processes). A demo run has
about 130 task processes, and importing pandas, pyarrow, httpx and msal takes 1.5-2 s of
CPU in each on a small machine: preloading them here roughly halves the time a task takes.

Only third-party libraries: the project's own modules are imported by each task, so an
edit to the sync engine reaches the next task without restarting the stack. Nothing is
exported (``__all__`` is empty), so Airflow takes no settings or policies from here.
"""

from __future__ import annotations

import importlib
import sys

__all__: list[str] = []

PRELOADED = ("pandas", "pyarrow", "pyarrow.parquet", "httpx", "msal", "yaml", "jsonschema", "fsspec")


def _preload() -> None:
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library missing only costs the speed-up
            continue


if sys.argv[1:2] == ["scheduler"] or sys.argv[1:3] == ["celery", "worker"]:
    _preload()
