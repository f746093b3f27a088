"""F&O emulator: the Data management package API's incremental export, line by line.

"Data management package REST API" (data-management-api.md): ExportToPackage on an existing
data project answers an execution id; GetExecutionSummaryStatus says Executing, then
Succeeded or Failed; GetExportedPackageUrl answers a blob URL with a SAS token of a zip
package; GetExecutionErrors lists a job's errors. "Enable change tracking for entities"
(entity-change-track.md): the first export is a full push, later ones carry only the
records created or updated since the last successful export, never deletions.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.emulators import acquire_token, start_emulators

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.emulators import RunningEmulators

pytestmark = pytest.mark.integration

PROJECT = "P2C-Products-USMF"
ACTIONS = "DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
CONFIG = {
    "fno": {
        "cost": {"request_latency_ms": 0.0, "operation_ms": 0.0},
        "dmf": {"projects": {PROJECT: "SellableReleasedProducts"}, "execution_seconds": 0.3},
    }
}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulators]:
    instance = start_emulators(tmp_path_factory.mktemp("fno-dmf") / "state", "--seed", "demo", config=CONFIG)
    try:
        yield instance
    finally:
        instance.stop()


class Dmf:
    """The package API as a client calls it, with plain httpx over HTTPS."""

    def __init__(self, running: RunningEmulators) -> None:
        self.root = running.endpoints.fno_service_root
        self.verify = running.endpoints.ssl_context()
        self.http = httpx.Client(
            verify=self.verify,
            base_url=self.root,
            headers={"Authorization": f"Bearer {acquire_token(running.endpoints, 'fno')}"},
            timeout=30,
        )

    def call(self, action: str, **body: Any) -> httpx.Response:
        return self.http.post(ACTIONS + action, json=body)

    def value(self, action: str, **body: Any) -> Any:
        response = self.call(action, **body)
        assert response.status_code == 200, response.text
        assert response.json()["@odata.context"] == f"{self.root}$metadata#Edm.String"
        return response.json()["value"]

    def export(self, execution: str = "") -> str:
        return str(
            self.value(
                "ExportToPackage",
                definitionGroupId=PROJECT,
                packageName="products",
                executionId=execution,
                reExecute=False,
                legalEntityId="USMF",
            )
        )

    def wait(self, execution: str) -> str:
        deadline = time.monotonic() + 10
        while (status := self.value("GetExecutionSummaryStatus", executionId=execution)) == "Executing":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return str(status)

    def package(self, execution: str) -> zipfile.ZipFile:
        url = self.value("GetExportedPackageUrl", executionId=execution)
        response = httpx.get(url, verify=self.verify, timeout=30)  # no bearer token: the SAS signs it
        assert response.status_code == 200, response.text
        return zipfile.ZipFile(io.BytesIO(response.content))

    def rows(self, execution: str, package: zipfile.ZipFile | None = None) -> list[dict[str, str]]:
        package = package or self.package(execution)
        text = package.read("SellableReleasedProduct.csv").decode("utf-8-sig")
        return list(csv.DictReader(io.StringIO(text)))

    def patch_product(self, number: str, description: str) -> None:
        response = self.http.patch(
            f"SellableReleasedProducts(dataAreaId='usmf',ProductNumber='{number}')",
            json={"ProductDescription": description},
        )
        assert response.status_code == 204, response.text


@pytest.fixture(scope="module")
def dmf(running: RunningEmulators) -> Iterator[Dmf]:
    client = Dmf(running)
    yield client
    client.http.close()


def _usmf_products(dmf: Dmf) -> list[str]:
    response = dmf.http.get("SellableReleasedProducts", params={"$select": "ProductNumber"})
    assert response.status_code == 200
    return sorted(row["ProductNumber"] for row in response.json()["value"])


def test_first_export_is_a_full_push_then_only_changes(dmf: Dmf, running: RunningEmulators) -> None:
    products = _usmf_products(dmf)
    first = dmf.export()
    assert first.startswith(f"{PROJECT}-")  # an empty execution id gets a new one
    assert dmf.value("GetExecutionSummaryStatus", executionId=first) == "Executing"
    assert dmf.value("GetExportedPackageUrl", executionId=first) == ""  # no package yet
    assert dmf.wait(first) == "Succeeded"
    package = dmf.package(first)
    assert sorted(package.namelist()) == ["Manifest.xml", "PackageHeader.xml", "SellableReleasedProduct.csv"]
    rows = dmf.rows(first, package)
    assert sorted(r["ProductNumber"] for r in rows) == products  # usmf's, every field named
    assert {"ProductNumber", "ProductName", "SalesPrice", "dataAreaId"} <= set(rows[0])
    assert {r["dataAreaId"] for r in rows} == {"usmf"}

    dmf.patch_product(products[0], "changed for the export")
    dmf.patch_product(products[1], "changed too")
    second = dmf.export("P2C-second")
    assert second == "P2C-second"
    assert dmf.wait(second) == "Succeeded"
    changed = dmf.rows(second)
    assert sorted(r["ProductNumber"] for r in changed) == products[:2]
    assert {r["ProductDescription"] for r in changed} == {"changed for the export", "changed too"}

    third = dmf.export()
    assert dmf.wait(third) == "Succeeded"
    assert dmf.rows(third) == []  # nothing changed since the last successful export
    with running.admin("fno") as admin:
        counters = admin.counters()
    # rows count as read when a package is downloaded: the full push, then the two changes
    assert counters["rows_read_by_set"]["SellableReleasedProducts (export)"] == len(products) + 2
    assert counters["rows_read"] >= len(products) + 2


def test_a_failed_execution_does_not_move_the_baseline(dmf: Dmf, running: RunningEmulators) -> None:
    settled = dmf.export()
    assert dmf.wait(settled) == "Succeeded"
    number = _usmf_products(dmf)[2]
    dmf.patch_product(number, "changed before a failed export")
    with running.admin("fno") as admin:
        admin.patch_config({"dmf": {"fail_next": 1}})
    failed = dmf.export()
    assert dmf.wait(failed) == "Failed"
    assert dmf.value("GetExportedPackageUrl", executionId=failed) == ""
    assert json.loads(dmf.value("GetExecutionErrors", executionId=failed)) == [
        "Export of entity 'SellableReleasedProducts' failed: the data project execution was stopped."
    ]
    retried = dmf.export()
    assert dmf.wait(retried) == "Succeeded"
    assert [r["ProductNumber"] for r in dmf.rows(retried)] == [number]


def test_refusals(dmf: Dmf) -> None:
    unknown = dmf.call(
        "ExportToPackage",
        definitionGroupId="No such project",
        packageName="x",
        executionId="",
        reExecute=False,
        legalEntityId="usmf",
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["innererror"]["message"] == "Data project 'No such project' was not found."
    reused = dmf.export()
    again = dmf.call(
        "ExportToPackage",
        definitionGroupId=PROJECT,
        packageName="products",
        executionId=reused,
        reExecute=False,
        legalEntityId="usmf",
    )
    assert again.status_code == 400
    assert dmf.value("GetExecutionSummaryStatus", executionId="never-started") == "Unknown"
    assert dmf.http.get(ACTIONS + "ExportToPackage").status_code == 405


def test_the_package_url_is_signed_and_expires(dmf: Dmf, running: RunningEmulators) -> None:
    execution = dmf.export()
    assert dmf.wait(execution) == "Succeeded"
    url = dmf.value("GetExportedPackageUrl", executionId=execution)
    tampered = url.replace("se=", "se=1")
    refused = httpx.get(tampered, verify=dmf.verify, timeout=30)
    assert (refused.status_code, refused.headers["x-ms-error-code"]) == (403, "AuthenticationFailed")
    with running.admin("fno") as admin:
        admin.patch_config({"dmf": {"package_expiry_seconds": 1}})
        try:
            short = dmf.value("GetExportedPackageUrl", executionId=execution)
            time.sleep(1.1)
            expired = httpx.get(short, verify=dmf.verify, timeout=30)
        finally:
            admin.patch_config({"dmf": {"package_expiry_seconds": 7 * 24 * 3600}})
    assert expired.status_code == 403
    assert "Signed expiry time" in expired.text


def test_deletions_are_not_exported(dmf: Dmf) -> None:
    """ "Change tracking will track record deletion only for bring your own database (BYOD)"."""
    settled = dmf.export()
    assert dmf.wait(settled) == "Succeeded"
    gone, changed = _usmf_products(dmf)[3:5]
    response = dmf.http.delete(f"SellableReleasedProducts(dataAreaId='usmf',ProductNumber='{gone}')")
    assert response.status_code == 204, response.text
    dmf.patch_product(changed, "changed beside a delete")
    execution = dmf.export()
    assert dmf.wait(execution) == "Succeeded"
    assert [r["ProductNumber"] for r in dmf.rows(execution)] == [changed]
