"""Reading a Dynamics connection from Airflow's standard fields and extras.

Only standard Connection fields and extras are used, so a connection defined in the UI,
as an ``AIRFLOW_CONN_*`` JSON environment variable, or in a secrets backend (Azure Key
Vault in production) reads the same: ``host`` = environment URL, ``login`` = client id,
``password`` = client secret, extras ``tenant_id``, ``authority_host``, ``ca_bundle`` and
(F&O) ``default_company``. Extras are also accepted with the
``extra__<conn_type>__<name>`` prefix older UIs wrote.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk.log import mask_secret

from prospect_to_cash.hooks.errors import DynamicsConnectionConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
# Service-root suffixes people paste along with the environment URL.
_SERVICE_ROOTS = re.compile(r"/(api/data/v\d+(\.\d+)?|data)/?$", re.IGNORECASE)


@dataclass(frozen=True)
class DynamicsConnectionConfig:
    """Everything a hook needs from its connection.

    ``client_secret`` is excluded from ``repr`` so it cannot leak through a log line or a
    traceback that prints the object.
    """

    conn_id: str
    environment_url: str
    tenant_id: str
    client_id: str
    client_secret: str
    authority_host: str = DEFAULT_AUTHORITY_HOST
    ca_bundle: str | None = None
    default_company: str | None = None

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    def __repr__(self) -> str:
        return (
            f"DynamicsConnectionConfig(conn_id={self.conn_id!r}, environment_url={self.environment_url!r}, "
            f"tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, client_secret='***', "
            f"authority_host={self.authority_host!r}, ca_bundle={self.ca_bundle!r}, "
            f"default_company={self.default_company!r})"
        )


def extra_field(extras: Mapping[str, Any], conn_type: str, name: str) -> Any:
    """An extra by its plain name, else by its ``extra__<conn_type>__<name>`` form; blanks are None."""
    for key in (name, f"extra__{conn_type}__{name}"):
        value = extras.get(key)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return value.strip() if isinstance(value, str) else value
    return None


def normalize_https_url(value: str, what: str, *, port: int | None = None) -> str:
    """``scheme://host[:port]`` without path or trailing slash; https only (TLS stays on)."""
    text = value.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme.lower() != "https":
        raise DynamicsConnectionConfigError(f"{what} must be an https URL, got {value!r}")
    if not parts.hostname:
        raise DynamicsConnectionConfigError(f"{what} has no host: {value!r}")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if port and ":" not in netloc.rsplit("]", 1)[-1]:
        netloc = f"{netloc}:{port}"
    return f"https://{netloc}"


def environment_url_from(host: str, port: int | None, schema: str | None) -> str:
    """The environment URL from ``host`` (full URL or bare host name), dropping a pasted service root."""
    text = host.strip()
    if schema and "://" not in text:
        text = f"{schema}://{text}"
    if "://" in text:
        parts = urlsplit(text)
        path = _SERVICE_ROOTS.sub("", parts.path.rstrip("/") + "/").rstrip("/")
        if path:
            raise DynamicsConnectionConfigError(
                f"the environment URL must be the bare environment (e.g. https://org.crm.dynamics.com), "
                f"not a path below it: {host!r}"
            )
        text = f"{parts.scheme}://{parts.netloc}"
    return normalize_https_url(text, "environment URL (host)", port=port)


def config_from_connection(
    conn: Any, conn_type: str, *, needs_company: bool = False
) -> DynamicsConnectionConfig:
    """Validate an Airflow ``Connection`` and turn it into a `DynamicsConnectionConfig`.

    :param conn: the connection (anything with ``host``, ``login``, ``password``, ``port``,
        ``schema``, ``extra_dejson``, ``conn_id``).
    :param conn_type: the hook's connection type, for prefixed extras.
    :param needs_company: kept for symmetry; F&O works without a default company.
    """
    conn_id = getattr(conn, "conn_id", None) or "?"
    extras = getattr(conn, "extra_dejson", None) or {}
    missing = []
    if not conn.host:
        missing.append("host (environment URL)")
    if not conn.login:
        missing.append("login (client id)")
    if not conn.password:
        missing.append("password (client secret)")
    tenant_id = extra_field(extras, conn_type, "tenant_id")
    if not tenant_id:
        missing.append("extra tenant_id")
    default_company = extra_field(extras, conn_type, "default_company")
    if needs_company and not default_company:
        missing.append("extra default_company")
    if missing:
        raise DynamicsConnectionConfigError(f"connection {conn_id!r} is missing: {', '.join(missing)}")
    # Secrets backends mask what they hand out; a connection built any other way may not be.
    mask_secret(str(conn.password))
    schema = conn.schema if getattr(conn, "schema", None) in ("https", "http") else None
    environment_url = environment_url_from(conn.host, conn.port, schema)
    authority_host = normalize_https_url(
        str(extra_field(extras, conn_type, "authority_host") or DEFAULT_AUTHORITY_HOST), "authority_host"
    )
    ca_bundle = extra_field(extras, conn_type, "ca_bundle")
    if ca_bundle is not None:
        ca_bundle = os.path.expanduser(str(ca_bundle))
        if not os.path.isfile(ca_bundle):
            raise DynamicsConnectionConfigError(
                f"connection {conn_id!r}: ca_bundle {ca_bundle!r} is not a file"
            )
    return DynamicsConnectionConfig(
        conn_id=conn_id,
        environment_url=environment_url,
        tenant_id=str(tenant_id),
        client_id=str(conn.login),
        client_secret=str(conn.password),
        authority_host=authority_host,
        ca_bundle=ca_bundle,
        default_company=str(default_company) if default_company else None,
    )
