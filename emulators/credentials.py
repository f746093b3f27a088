"""The one app registration the emulated tenant knows: tenant id, client id and secret.

Made on first start and kept in `<state_dir>/credentials.json` (owner-only permissions) so
Airflow connections configured once keep working; `serve --client-id/--client-secret/
--tenant-id` pin them for reproducible set-ups. The token signing key lives here too.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class Credentials:
    tenant_id: str
    client_id: str
    client_secret: str
    signing_key: str  # HS256 secret for the access tokens, never leaves the emulator

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"Credentials(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, client_secret=***)"


def _new_secret() -> str:
    # Entra client secrets are 40 URL-safe characters with a `~` after a short prefix.
    body = secrets.token_urlsafe(30)[:36]
    return f"{body[:3]}8Q~{body[3:]}"


def ensure_credentials(
    state_dir: Path,
    *,
    tenant_id: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> Credentials:
    """Load (or create) the credentials, applying any explicitly given values."""
    path = state_dir / "credentials.json"
    if path.exists():
        creds = Credentials(**json.loads(path.read_text()))
    else:
        creds = Credentials(
            tenant_id=str(uuid.uuid4()),
            client_id=str(uuid.uuid4()),
            client_secret=_new_secret(),
            signing_key=secrets.token_urlsafe(48),
        )
    pinned = {
        key: value
        for key, value in {
            "tenant_id": tenant_id,
            "client_id": client_id,
            "client_secret": client_secret,
        }.items()
        if value is not None
    }
    for key in ("tenant_id", "client_id"):
        if key in pinned:
            pinned[key] = str(uuid.UUID(pinned[key]))  # GUIDs only, normalised lowercase
    updated = replace(creds, **pinned)
    if updated != creds or not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(updated), handle, indent=2)
        os.replace(tmp, path)
    return updated
