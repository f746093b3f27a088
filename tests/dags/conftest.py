"""Fixtures for running the P2C DAGs against the emulators.

* ``airflow_template_home`` (session): one ``airflow db migrate``; each test copies the
  migrated SQLite file into its own ``AIRFLOW_HOME`` (milliseconds).

The demo world itself (emulators, Airflow home, the tests' HTTPS reader) is in
``tests/support/world.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from devstack.airflow_stack import migrate

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="session")
def airflow_template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AIRFLOW_HOME migrated once for the whole session."""
    return migrate(tmp_path_factory.mktemp("airflow-template"))
