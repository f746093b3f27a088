"""Microsoft's official Python SDK (PowerPlatform-Dataverse-Client) against the emulator.

The SDK takes an azure-identity ``TokenCredential``; `MsalCredential` gets the token with
msal from the emulated Entra ID. The SDK's HTTP client is ``requests``, which trusts the
CA bundle named by ``REQUESTS_CA_BUNDLE``: the test points it at the emulators' CA, so TLS
verification stays on throughout.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from azure.core.credentials import AccessToken

from tests.support.emulators import msal_app

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.emulators import EmulatorEndpoints

pytestmark = pytest.mark.integration


class MsalCredential:
    """A minimal azure-core ``TokenCredential`` backed by an msal confidential client."""

    def __init__(self, endpoints: EmulatorEndpoints) -> None:
        self._app = msal_app(endpoints)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        result = self._app.acquire_token_for_client(scopes=list(scopes))
        if "access_token" not in result:
            raise RuntimeError(f"no token: {result.get('error')}: {result.get('error_description')}")
        return AccessToken(result["access_token"], int(time.time()) + int(result.get("expires_in", 3600)))


@pytest.fixture
def client(endpoints: EmulatorEndpoints, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from PowerPlatform.Dataverse.client import DataverseClient

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", endpoints.ca_bundle)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with DataverseClient(endpoints.dataverse_url, MsalCredential(endpoints)) as dataverse:
        yield dataverse


def test_sdk_round_trip_create_get_query_update_delete(client: Any) -> None:
    from PowerPlatform.Dataverse.core.errors import HttpError

    tag = uuid.uuid4().hex[:8]
    record_id = client.records.create("account", {"name": f"SDK {tag}", "telephone1": "555-0100"})
    record = client.records.retrieve("account", record_id, select=["name", "telephone1"])
    assert record is not None
    assert record.data["name"] == f"SDK {tag}"
    assert record.etag.startswith('W/"')

    ids = client.records.create(
        "quote", [{"name": f"SDK quote {tag} {n}"} for n in range(7)]
    )  # CreateMultiple under the hood
    assert len(ids) == 7

    pages = list(
        client.records.list_pages(
            "quote", select=["name"], filter=f"contains(name,'{tag}')", orderby=["name"], page_size=3
        )
    )
    assert [len(page) for page in pages] == [3, 3, 1]
    names = [row["name"] for page in pages for row in page]
    assert names == [f"SDK quote {tag} {n}" for n in range(7)]

    client.records.update("account", record_id, {"telephone1": "555-0199"})
    assert client.records.retrieve("account", record_id).data["telephone1"] == "555-0199"

    client.records.delete("account", record_id)
    assert client.records.retrieve("account", record_id) is None
    with pytest.raises(HttpError) as failure:
        client.records.update("account", record_id, {"telephone1": "x"})
    assert failure.value.status_code == 404
