"""Fixtures shared by the integration tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.emulators import Oracle

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.emulators import EmulatorEndpoints


@pytest.fixture
def dv_oracle(endpoints: EmulatorEndpoints) -> Iterator[Oracle]:
    """Dataverse reads independent of the hooks (uses the requesting module's `endpoints`)."""
    oracle = Oracle(endpoints, "dataverse")
    yield oracle
    oracle.close()


@pytest.fixture
def fno_oracle(endpoints: EmulatorEndpoints) -> Iterator[Oracle]:
    """F&O reads independent of the hooks (uses the requesting module's `endpoints`)."""
    oracle = Oracle(endpoints, "fno")
    yield oracle
    oracle.close()
