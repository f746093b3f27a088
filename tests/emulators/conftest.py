"""Fixtures shared by the emulator tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support.odata_tables import ACCOUNT_ROWS, CUSTOMER_ROWS, make_db

if TYPE_CHECKING:
    import sqlite3
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


@pytest.fixture(scope="module")
def accounts_db() -> sqlite3.Connection:
    """The Dataverse-like accounts table of the query-library tests, in memory."""
    return make_db("accounts", ACCOUNT_ROWS)


@pytest.fixture(scope="module")
def customers_db() -> sqlite3.Connection:
    """The F&O-like customers entity of the query-library tests, in memory."""
    return make_db("customers", CUSTOMER_ROWS)
