"""Error bodies of both services (and of Entra ID and gateways) become readable messages."""

from __future__ import annotations

import json

from prospect_to_cash.hooks.errors import DynamicsAPIError, parse_error


def test_dataverse_error() -> None:
    body = json.dumps(
        {"error": {"code": "0x80060891", "message": "A record with matching key values already exists."}}
    )
    error = parse_error(412, body.encode(), "application/json; odata.metadata=minimal")
    assert (error.status, error.code, error.message) == (
        412,
        "0x80060891",
        "A record with matching key values already exists.",
    )


def test_fno_inner_error_carries_the_reason() -> None:
    body = {
        "error": {
            "code": "",
            "message": "An error has occurred.",
            "innererror": {
                "message": "Write failed for table row of type 'CustCustomerV3Entity'. "
                "Infolog: Error: The record already exists.",
                "type": "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException",
                "stacktrace": "   at ...",
            },
        }
    }
    error = parse_error(500, json.dumps(body).encode(), "application/json")
    assert error.code is None
    assert error.message.startswith("An error has occurred. — Write failed for table row")
    assert "The record already exists." in error.message


def test_entra_error() -> None:
    body = {
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x",
        "error_codes": [7000215],
    }
    error = parse_error(401, json.dumps(body), "application/json")
    assert error.code == "invalid_client"
    assert error.message.startswith("AADSTS7000215: Invalid client secret provided.")


def test_gateway_html_is_reduced_to_text() -> None:
    error = parse_error(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
    assert error.message == "502 Bad Gateway"


def test_empty_body() -> None:
    assert parse_error(503, b"", None).message == "HTTP 503 with an empty body"


def test_api_error_text() -> None:
    exc = DynamicsAPIError(
        404, "0x80040217", "Entity 'account' Does Not Exist", "https://x/api/data/v9.2/accounts"
    )
    assert (
        str(exc) == "HTTP 404 0x80040217: Entity 'account' Does Not Exist (https://x/api/data/v9.2/accounts)"
    )
