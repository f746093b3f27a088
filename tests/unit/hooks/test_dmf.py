"""Reading a Data management package and the package API's answers (hooks/dmf.py), offline."""

from __future__ import annotations

import io
import logging
import zipfile

import httpx
import pytest

from prospect_to_cash.hooks.dmf import DataExportError, _string_value, package_frames


def _package(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text.encode("utf-8-sig"))
    return buffer.getvalue()


XML = {"Manifest.xml": "<Manifest/>", "PackageHeader.xml": "<Header/>"}


def test_rows_come_in_the_asked_columns_matched_case_insensitively() -> None:
    csv = 'PRODUCTNUMBER,PRODUCTNAME,SALESPRICE\r\nP1,"Chair, oak",12.5\r\nP2,,0\r\n'
    package = _package({**XML, "Released products.csv": csv})
    frames = list(
        package_frames(
            package, ["ProductNumber", "SalesPrice", "dataAreaId", "ProductName"], fill={"dataAreaId": "usmf"}
        )
    )
    assert [frame.to_dict("records") for frame in frames] == [
        [
            {"ProductNumber": "P1", "SalesPrice": "12.5", "dataAreaId": "usmf", "ProductName": "Chair, oak"},
            {"ProductNumber": "P2", "SalesPrice": "0", "dataAreaId": "usmf", "ProductName": ""},
        ]
    ]


def test_rows_are_chunked() -> None:
    csv = "ProductNumber\r\n" + "".join(f"P{n}\r\n" for n in range(5))
    sizes = [len(f) for f in package_frames(_package({**XML, "a.csv": csv}), ["ProductNumber"], chunk_rows=2)]
    assert sizes == [2, 2, 1]


def test_a_missing_field_or_a_second_data_file_is_refused() -> None:
    with pytest.raises(DataExportError, match=r"a.csv lacks the mapped fields \['SalesPrice'\]"):
        list(
            package_frames(
                _package({**XML, "a.csv": "ProductNumber\r\nP1\r\n"}), ["ProductNumber", "SalesPrice"]
            )
        )
    with pytest.raises(DataExportError, match="holds 2 data files"):
        list(package_frames(_package({**XML, "a.csv": "X\r\n", "b.csv": "X\r\n"}), ["X"]))


def test_both_documented_answer_shapes_are_read() -> None:
    """The docs print ExportToPackage's and GetExportedPackageUrl's answer nested."""
    assert _string_value({"value": "exec-1"}) == "exec-1"
    assert _string_value({"value": {"value": "exec-1"}}) == "exec-1"
    with pytest.raises(Exception, match="unexpected answer"):
        _string_value({"value": 3})


def test_httpx_request_logs_leave_out_a_sas_token(caplog: pytest.LogCaptureFixture) -> None:
    url = "https://blob.example/dmf/p.zip?sv=2020-08-04&se=1&sig=SECRET"
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    caplog.set_level(logging.INFO, logger="httpx")
    with httpx.Client(transport=transport) as client:
        client.get(url)
        client.get("https://service.example/data/Products?$top=1")
    assert "SECRET" not in caplog.text
    assert "https://blob.example/dmf/p.zip" in caplog.text
    assert "Products?$top=1" in caplog.text  # other URLs are logged whole
