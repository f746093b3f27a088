"""Fixtures shared by the emulator tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.support.emulators import EmulatorEndpoints


@pytest.fixture
def api(endpoints: EmulatorEndpoints, bearer_token: Callable[[str], str]) -> Iterator[httpx.Client]:
    """A Dataverse Web API client with the OData headers a real client sends (modules that
    test other header sets define their own ``api``)."""
    with httpx.Client(
        base_url=endpoints.dataverse_service_root,
        verify=endpoints.ssl_context(),
        headers={
            "Authorization": f"Bearer {bearer_token('dataverse')}",
            "Accept": "application/json",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
        },
        timeout=30,
    ) as client:
        yield client
