"""Hooks: the only code that speaks HTTP to Dynamics 365 (Dataverse and F&O).

`DataverseHook` (conn type ``dynamics_dataverse``) and `FinanceOperationsHook`
(``dynamics_fno``) share one design:

Connections
    ``host`` environment URL, ``login`` client id, ``password`` client secret; extras
    ``tenant_id``, ``authority_host`` (sovereign clouds), ``ca_bundle`` and, for F&O,
    ``default_company``. Only standard fields and extras, so the UI, ``AIRFLOW_CONN_*``
    JSON and secrets backends all work.

Tokens
    msal client credentials against ``<authority_host>/<tenant_id>`` for scope
    ``<environment URL>/.default``; one cache per credentials per process, refreshed before
    expiry and once more after a 401; the secret and every token go to Airflow's secrets
    masker and are never logged.

Transport
    One pooled httpx client per hook, TLS always verified (system trust or the CA bundle).
    429, 502, 503, 504 and connection errors are retried with exponential backoff and
    jitter, never before ``Retry-After``. Concurrency follows an adaptive limiter: it starts at
    2, doubles per round of successes until the first 429 (slow start), then grows by one
    per round; it never exceeds ``x-ms-dop-hint`` (nor ``max_concurrency``, by default the
    documented 52 concurrent requests per user), halves on 429 and pauses every request
    until ``Retry-After`` has passed.

Reads
    ``iter_pages`` sends an explicit ``$select``, ``Prefer: odata.maxpagesize`` and, on F&O,
    ``cross-company=true`` with ``dataAreaId`` filters; it follows ``@odata.nextLink`` (same
    origin only) to the end and yields one DataFrame per page with exactly the selected
    columns, so memory stays flat whatever the table size. ``DataverseHook.read_changes``
    reads through change tracking (``Prefer: odata.track-changes``, ``$select`` only):
    a first read returns every row and a delta token, later reads with that token the
    changed rows and the deleted ids (a `DeltaRead`); an expired or foreign token raises
    `DeltaTokenInvalidError`, the caller's cue for a full read.

Writes, and why a retry never applies a record twice
    ``write`` sends units of ``batch_size`` records as atomic ``$batch`` change sets (or the
    Dataverse bulk messages ``CreateMultiple``/``UpsertMultiple`` on tables whose
    ``sdkmessagefilters`` list them; account and contact do not) and yields one
    `WriteOutcome` per operation. A unit that fails because of one record is split (or the
    named record removed) until the bad record is isolated; the rest lands.

    * Dataverse create: the caller picks the primary key GUID (or an alternate key); it is
      sent as ``PATCH <set>(<key>)`` + ``If-None-Match: *`` or inside ``CreateMultiple``.
      No attempt can produce a row with another identity; creates without a key are refused.
    * Dataverse update (``PATCH`` + ``If-Match: *``), upsert (``PATCH``/``UpsertMultiple``)
      and F&O update (``PATCH`` on the full key, never creates): idempotent, retried freely.
    * F&O create (``POST``): not idempotent. Retried blindly only after a failure that
      proves nothing reached the service (429, connection refused). After an ambiguous
      failure (connection reset, timeout, 502/503/504) the row is read by its full key first:
      present means the earlier attempt landed (reported ok, "already present"); absent
      means it is sent again. The same read-back guards Dataverse creates and deletes of
      both services (a delete whose row is gone counts as done).
    * A unit interrupted again and again is given up after a few rounds: its records that
      the read-back cannot settle come back failed with ``error_code="interrupted"``, so
      every operation still has exactly one outcome; the sync engine counts them as failures
      the service may heal (`failed_retryable`), so the load task fails and is retried.
"""

from __future__ import annotations

from prospect_to_cash.hooks.dataverse import DataverseHook
from prospect_to_cash.hooks.delta import DeltaRead
from prospect_to_cash.hooks.errors import (
    AmbiguousWriteError,
    DeltaTokenInvalidError,
    DynamicsAPIError,
    DynamicsAuthError,
    DynamicsConnectionConfigError,
    DynamicsError,
    DynamicsTransportError,
    InvalidKeyError,
)
from prospect_to_cash.hooks.fno import FinanceOperationsHook
from prospect_to_cash.hooks.operations import WriteKind, WriteOperation, WriteOutcome

__all__ = [
    "AmbiguousWriteError",
    "DataverseHook",
    "DeltaRead",
    "DeltaTokenInvalidError",
    "DynamicsAPIError",
    "DynamicsAuthError",
    "DynamicsConnectionConfigError",
    "DynamicsError",
    "DynamicsTransportError",
    "FinanceOperationsHook",
    "InvalidKeyError",
    "WriteKind",
    "WriteOperation",
    "WriteOutcome",
]
