"""Exceptions raised by the Dynamics hooks, and parsing of the services' error bodies.

Record-level failures never raise: they come back as ``WriteOutcome(ok=False)`` so the
caller can dead-letter them. What raises is what makes the whole call pointless to
continue: bad credentials, a service that stays unreachable after every retry, a
request the service rejects as a whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from airflow.sdk.exceptions import AirflowException

_MAX_MESSAGE = 2000
_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


class DynamicsError(AirflowException):
    """Base class of every error the Dynamics hooks raise."""


class DynamicsConnectionConfigError(DynamicsError, ValueError):
    """The Airflow connection lacks a field or holds an unusable value."""


class DynamicsAuthError(DynamicsError):
    """Entra ID refused to issue a token, or the service refused the token we had."""


class InvalidKeyError(DynamicsError, ValueError):
    """A key value cannot be expressed in a URL the service accepts."""


class DynamicsTransportError(DynamicsError):
    """The service stayed unreachable (connection errors, 5xx, throttling) after all retries."""


class AmbiguousWriteError(DynamicsTransportError):
    """A write failed in a way that leaves open whether the service applied it.

    Raised instead of retrying when a blind retry could apply the write twice; the write
    engine then reads the affected rows back before deciding what to resend.

    :param retry_after: the pause the service asked for (``Retry-After`` of a 503), if any,
        which the engine honours before it reads back and resends.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ServiceError:
    """The useful part of an error response: HTTP status, service code and message."""

    status: int
    code: str | None
    message: str


class DynamicsAPIError(DynamicsError):
    """The service answered a request with an error status.

    :param status: HTTP status of the response.
    :param code: the service's error code (Dataverse ``0x8004...``; often empty on F&O).
    :param message: the service's message, F&O inner messages included.
    :param url: the request URL, for the log (never carries credentials).
    """

    def __init__(self, status: int, code: str | None, message: str, url: str = "") -> None:
        self.status = status
        self.code = code
        self.message = message
        self.url = url
        where = f" ({url})" if url else ""
        code_text = f" {code}" if code else ""
        super().__init__(f"HTTP {status}{code_text}: {message}{where}")

    @classmethod
    def from_error(cls, error: ServiceError, url: str = "") -> DynamicsAPIError:
        return cls(error.status, error.code, error.message, url)


class DeltaTokenInvalidError(DynamicsAPIError):
    """Dataverse refused a change tracking ``$deltatoken``: expired (older than the
    organization's ExpireChangeTrackingInDays, ``0x80044352``) or never valid.

    The only way on is a full read, which starts a new token: callers catch this to fall
    back to one instead of failing the run.
    """

    @property
    def expired(self) -> bool:
        return self.code == EXPIRED_VERSION_STAMP


#: Dataverse's ErrorCodes.ExpiredVersionStamp: "Version stamp associated with the client has
#: expired. Please perform a full sync."
EXPIRED_VERSION_STAMP = "0x80044352"


def _truncate(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _inner_messages(inner: object) -> list[str]:
    """Collect F&O ``innererror`` / ``internalexception`` messages, outermost first."""
    messages: list[str] = []
    depth = 0
    while isinstance(inner, dict) and depth < 5:
        message = inner.get("message")
        if isinstance(message, str) and message.strip():
            messages.append(message.strip())
        inner = inner.get("internalexception") or inner.get("innererror")
        depth += 1
    return messages


def parse_error(status: int, body: bytes | str | None, content_type: str | None = None) -> ServiceError:
    """Turn an error response body into a `ServiceError`, whatever shape it has.

    Handles the OData JSON error of Dataverse (``{"error": {"code", "message"}}``), the
    F&O variant whose real reason sits in ``innererror`` (the outer message is the
    generic "An error has occurred."), Entra ID token errors (``error`` /
    ``error_description``) and non-JSON bodies such as gateway HTML pages.
    """
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body or ""
    payload: object = None
    if text.strip().startswith("{"):
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            outer = str(error.get("message") or "").strip()
            inner = _inner_messages(error.get("innererror"))
            parts = [outer] if outer else []
            parts.extend(m for m in inner if m != outer)
            message = " — ".join(parts) if parts else f"HTTP {status}"
            return ServiceError(status, str(code) if code else None, _truncate(message))
        if isinstance(error, str):
            description = payload.get("error_description")
            message = str(description) if description else error
            return ServiceError(status, error, _truncate(message))
    if content_type and "html" in content_type.lower():
        text = _TAGS.sub(" ", text)
    text = _truncate(text)
    return ServiceError(status, None, text or f"HTTP {status} with an empty body")
