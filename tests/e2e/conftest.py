"""The LocalExecutor demo run, once per session: tests/e2e/test_demo_e2e.py checks it and
tests/e2e/test_celery_stack.py compares the Celery stack's end state with it, so a session
with both pays for one run, not two (about four minutes on two cores)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.demo_flow import LocalRun, local_run

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="session")
def local_executor_run(tmp_path_factory: pytest.TempPathFactory) -> LocalRun:
    state: Path = tmp_path_factory.mktemp("make-demo") / "state"
    return local_run(state)
