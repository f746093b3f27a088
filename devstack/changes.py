"""What a second ``make demo`` will write, given the data: the Sales rows the templates read
that changed since the last demo's runs ended, counted over HTTPS before anything runs.

The templates read their Sales sources by a change field (``modifiedon``) and their F&O
sources whole (F&O entities have no change timestamp), so the Sales side can be counted
exactly and the F&O side cannot: a full refresh writes only rows that differ from their
target, so an unchanged F&O side writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import Mapping

    from emulators.client import EmulatorEndpoints


@dataclass(frozen=True)
class ChangeRead:
    """One Sales source a template reads by its change field, with the template's filter."""

    entity_set: str
    change_field: str
    filter: str | None
    identity: tuple[str, ...]  # the record id column, else the source key


def sales_change_reads() -> list[ChangeRead]:
    """Every (entity set, change field, filter) the seven templates read Sales rows by."""
    from prospect_to_cash.sync.mapping import TEMPLATES, load_template

    reads = {
        ChangeRead(
            task.source.entity_set,
            task.source.change_field,
            task.source.filter,
            (task.source.primary_id,) if task.source.primary_id else task.source.key,
        )
        for name in TEMPLATES
        for task in load_template(name).tasks
        if task.source_system == "dataverse" and task.source.change_field
    }
    return sorted(reads, key=lambda read: (read.entity_set, read.filter or ""))


def sales_changes_since(endpoints: EmulatorEndpoints, since: str) -> dict[str, int]:
    """Rows changed after ``since`` (UTC, ISO 8601) per Sales entity set the templates read
    (a set read by two templates with different filters counts the rows either reads)."""
    from prospect_to_cash.hooks._auth import TokenProvider

    tokens = TokenProvider(
        authority=endpoints.authority,
        client_id=endpoints.client_id,
        client_secret=endpoints.client_secret,
        resource=endpoints.resource("dataverse"),
        ca_bundle=endpoints.ca_bundle,
    )
    root = endpoints.service_root("dataverse").rstrip("/")
    changed: dict[str, set[str]] = {}
    with httpx.Client(verify=endpoints.ssl_context(), timeout=60) as http:
        for read in sales_change_reads():
            clause = f"{read.change_field} gt {since}"
            query = f"({read.filter}) and {clause}" if read.filter else clause
            url: str | None = f"{root}/{read.entity_set}"
            params: Mapping[str, str] | None = {"$filter": query, "$select": ",".join(read.identity)}
            ids = changed.setdefault(read.entity_set, set())
            while url:
                response = http.get(url, params=params, headers={"Authorization": f"Bearer {tokens.token()}"})
                response.raise_for_status()
                body = response.json()
                ids.update(repr([row.get(column) for column in read.identity]) for row in body["value"])
                url, params = body.get("@odata.nextLink"), None
    return {entity_set: len(ids) for entity_set, ids in changed.items()}
