"""The one exception every emulator layer raises for a client-visible OData failure.

The protocol library never renders an error body: Dataverse answers
``{"error": {"code": "0x...", "message": ...}}`` while F&O wraps details in
``innererror``. Raising a neutral exception keeps that choice with each service app.
"""

from __future__ import annotations

from typing import Any


class ODataError(Exception):
    """A failure the service reports to the client with an HTTP status and an error body.

    :param status: HTTP status code of the response (400, 404, 412, 429, ...).
    :param code: service error code (Dataverse ``0x...`` strings, often empty on F&O).
    :param message: human-readable message, worded like the real service.
    :param inner: optional ``innererror`` payload (F&O puts the useful text there).
    """

    def __init__(self, status: int, code: str, message: str, inner: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner

    def __repr__(self) -> str:
        return f"ODataError(status={self.status!r}, code={self.code!r}, message={self.message!r})"
