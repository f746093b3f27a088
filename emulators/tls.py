"""A local certificate authority and a server certificate for the emulators.

The emulators speak HTTPS only, like the real services, so clients keep TLS verification
on and trust the local CA through `verify=<ca.pem>`. The files are made once by trustme and
reused, so a client configured with the CA bundle keeps working across restarts.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

SERVER_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files under `<state_dir>/tls/`; `ca_bundle` is what clients pass as `verify=`."""

    ca_bundle: Path
    cert_chain: Path
    private_key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_chain, self.private_key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle))


def ensure_tls(state_dir: Path) -> TlsFiles:
    """Return the TLS files, creating the CA and a localhost certificate on first use."""
    tls_dir = state_dir / "tls"
    files = TlsFiles(
        ca_bundle=tls_dir / "ca.pem",
        cert_chain=tls_dir / "server.pem",
        private_key=tls_dir / "server-key.pem",
    )
    if all(path.exists() for path in (files.ca_bundle, files.cert_chain, files.private_key)):
        return files

    import trustme  # dev dependency of the emulators only

    tls_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Prospect-to-cash local emulators")
    cert = ca.issue_cert(*SERVER_NAMES)
    # Write the key first with owner-only permissions, then the public parts.
    key_tmp = files.private_key.with_suffix(".tmp")
    fd = os.open(key_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(cert.private_key_pem.bytes())
    os.replace(key_tmp, files.private_key)
    files.cert_chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    files.ca_bundle.write_bytes(ca.cert_pem.bytes())
    return files
