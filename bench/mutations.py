"""What ``python -m bench daily`` changes and deletes in each template's source, and how.

Every change goes through the services' OData APIs with this package's hooks (TLS
verified), as a user or another integration would make it. The rows come from the
mapping task's own source (entity set and filter from ``include/mappings``), so a change
always lands on a row the template reads; the field is one the mapping carries, so the
change reaches the target. Every 100th row is changed and every 1000th (another one) is
deleted, in the order the service returns them.

Sales keeps an active quote and its lines read-only (the Dataverse emulator refuses the
edit as the service does, ``CannotUpdateBecauseItIsReadOnly``), so the bench edits a quote
the way a salesperson revises one: the quote goes back to Draft (a state-only write, which
Sales allows), is edited, and returns to the state and status reason it had (active, or won
for a line the lines task still reads). The quote
header therefore changes too when only its lines were edited; the daily run's delta
returns it, and the report counts it among the rows changed besides the bench's own.
Posted F&O invoices are final in F&O, which the F&O emulator does not model; the edit of
an invoice header stands for what a day brings there (a new invoice): the cost of a daily
run depends on how many rows changed and how the source is read, not on why they changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from prospect_to_cash.hooks.operations import WriteKind, WriteOperation
from prospect_to_cash.sync.mapping import load_template

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from prospect_to_cash.sync.contracts import SyncHooks

#: Every 100th source row changes, every 1000th (another one) is deleted.
CHANGE_EVERY, DELETE_EVERY = 100, 1000


@dataclass(frozen=True)
class Reopen:
    """A Dataverse document Sales keeps read-only unless Draft: the headers of the rows to
    edit that are not in ``draft`` go there before the edit and back to the state and status
    reason they had after it (an active quote, or a won one whose lines a task still reads).

    :param entity_set: the header table (``quotes``) and ``header_id`` its GUID column.
    :param parent_column: the line's lookup of its header (``_quoteid_value``); None when the
        mutated rows are the headers themselves.
    """

    entity_set: str
    header_id: str
    parent_column: str | None
    draft: tuple[int, int]


@dataclass(frozen=True)
class Mutation:
    """How one mapping task's source rows are changed (and deleted) through the public API.

    :param task: the mapping task whose source is changed (its entity set and filter).
    :param field: a source field the task maps to the target.
    :param value: the new text (the row's position appended); None for a number, which
        grows by one.
    :param deletes: whether every 1000th row is deleted too. Off for headers whose lines
        would be left behind (the emulators do not cascade a header's delete to its lines)
        and for posted invoices.
    """

    task: str
    field: str
    value: str | None
    deletes: bool = True
    reopen: Reopen | None = None


#: Per template, its changes: headers and lines for documents (deletes on lines only).
MUTATIONS: dict[str, tuple[Mutation, ...]] = {
    "accounts": (Mutation("customers", "telephone1", "+1 555 0199"),),
    # contacts: the one source of both tasks (contact persons and contact customers, split
    # by route), so one pass changes rows of both
    "contacts": (Mutation("contact_persons", "description", "changed by bench daily"),),
    "products": (Mutation("products", "ProductDescription", "changed by bench daily"),),
    "sales_quotations": (
        Mutation(
            "quote_headers",
            "description",
            "changed by bench daily",
            deletes=False,
            reopen=Reopen("quotes", "quoteid", None, draft=(0, 1)),
        ),
        Mutation(
            "quote_lines",
            "description",
            "changed by bench daily",
            reopen=Reopen("quotes", "quoteid", "_quoteid_value", draft=(0, 1)),
        ),
    ),
    "sales_orders_sales_to_fno": (
        Mutation("order_headers", "description", "changed by bench daily", deletes=False),
        Mutation("order_lines", "description", "changed by bench daily"),
    ),
    "sales_orders_fno_to_sales": (
        Mutation("order_headers", "Email", "bench.daily@example.com", deletes=False),
        Mutation("order_lines", "SalesPrice", None),
    ),
    "sales_invoices": (
        Mutation("invoice_headers", "CustomersOrderReference", "changed by bench daily", deletes=False),
    ),
}


class Mutated(TypedDict):
    """What one mutation did: source rows it saw, and the changes the service accepted."""

    task: str
    entity_set: str
    field: str
    rows: int
    changed: int
    deleted: int
    refused: int
    first_refusal: str | None


_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def _key_value(value: Any) -> Any:
    """A key value as the URL wants it: F&O's DateTimeOffset key fields (an invoice's
    ``InvoiceDate``) are read as text but go into the key bare, as a datetime."""
    if isinstance(value, str) and _DATETIME.fullmatch(value):
        return datetime.fromisoformat(value[:-1] + "+00:00")
    return value


def _plan(
    rows: list[dict[str, Any]], key: Sequence[str], mutation: Mutation, entity_set: str
) -> list[WriteOperation]:
    """The writes for ``rows`` in the order read: every 100th an update, every 1000th a delete."""
    operations: list[WriteOperation] = []
    for index, row in enumerate(rows):
        identity = {column: _key_value(row[column]) for column in key}
        if mutation.deletes and index % DELETE_EVERY == DELETE_EVERY // 2:
            operations.append(WriteOperation(WriteKind.DELETE, entity_set, identity, {}, f"d{index}"))
        elif index % CHANGE_EVERY == 0:
            if mutation.value is None:
                value: Any = round(float(row[mutation.field]) + 1.0, 2)
            else:
                value = f"{mutation.value} {index}"
            operations.append(
                WriteOperation(WriteKind.UPDATE, entity_set, identity, {mutation.field: value}, f"u{index}")
            )
    return operations


def mutate(template: str, hooks: SyncHooks, companies: Sequence[str]) -> list[Mutated]:
    """Change 1 % and delete 0.1 % of each mutated task's source rows (disjoint rows)."""
    loaded = load_template(template)
    done: list[Mutated] = []
    for mutation in MUTATIONS[template]:
        task = next((t for t in loaded.tasks if t.name == mutation.task), None)
        if task is None:
            raise ValueError(f"{template} has no mapping task {mutation.task!r}")
        source = task.source
        service = loaded.source_system
        hook = hooks.for_system(service)
        if service == "fno":  # F&O writes name a row by its company and key fields
            key: tuple[str, ...] = ("dataAreaId", *source.key)
            extra: dict[str, Any] = {"companies": list(companies)}
        else:  # Dataverse writes name a row by its GUID
            key, extra = (source.primary_id or source.key[0],), {}
        reopen = mutation.reopen
        parent = [reopen.parent_column] if reopen is not None and reopen.parent_column else []
        select = [*key, *([mutation.field] if mutation.value is None else []), *parent]
        rows: list[dict[str, Any]] = []
        for page in hook.iter_pages(source.entity_set, select=select, filter=source.filter, **extra):
            rows.extend(page.to_dict("records"))
        operations = _plan(rows, key, mutation, source.entity_set)
        if reopen is None:
            outcomes = list(hook.write(operations))
        else:
            outcomes = _write_reopened(hook, reopen, rows, key[0], operations)
        ok = {outcome.ref for outcome in outcomes if outcome.ok}
        refusals = sorted(f"{o.status} {o.error_code}: {o.message}" for o in outcomes if not o.ok)
        done.append(
            Mutated(
                task=mutation.task,
                entity_set=source.entity_set,
                field=mutation.field,
                rows=len(rows),
                changed=sum(1 for o in operations if o.kind == WriteKind.UPDATE and o.ref in ok),
                deleted=sum(1 for o in operations if o.kind == WriteKind.DELETE and o.ref in ok),
                refused=len(operations) - len(ok),
                first_refusal=refusals[0][:300] if refusals else None,
            )
        )
    return done


def _write_reopened(
    hook: Any, reopen: Reopen, rows: list[dict[str, Any]], key: str, operations: list[WriteOperation]
) -> list[Any]:
    """``operations`` between taking their headers back to Draft and returning them to the
    state and status reason they had; the outcomes of ``operations`` only (a header Sales
    refuses to reopen or restore fails the bench: its rows would stay read-only or Draft)."""
    touched = {str(operation.key[key]) for operation in operations}
    column = reopen.parent_column or key
    headers = sorted({str(row[column]) for row in rows if str(row[key]) in touched})
    header_key = reopen.header_id
    states: dict[str, tuple[int, int]] = {}
    for page in hook.iter_pages_by_keys(
        reopen.entity_set, column=header_key, values=headers, select=[header_key, "statecode", "statuscode"]
    ):
        for r in page.to_dict("records"):
            states[str(r[header_key])] = (int(r["statecode"]), int(r["statuscode"]))
    draft_state, draft_status = reopen.draft
    headers = [h for h in headers if h in states and states[h][0] != draft_state]

    def set_state(step: str, changes: Callable[[str], dict[str, int]]) -> None:
        writes = [
            WriteOperation(WriteKind.UPDATE, reopen.entity_set, {header_key: h}, changes(h), f"{step} {h}")
            for h in headers
        ]
        refused = [o for o in hook.write(writes) if not o.ok]
        if refused:
            raise RuntimeError(
                f"{reopen.entity_set}: {step} refused: {refused[0].status} {refused[0].message}"
            )

    set_state("draft", lambda _h: {"statecode": draft_state, "statuscode": draft_status})
    outcomes = list(hook.write(operations))
    set_state("restore", lambda h: {"statecode": states[h][0], "statuscode": states[h][1]})
    return outcomes
