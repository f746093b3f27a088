"""Which company a Dataverse row belongs to, for rows keyed by numbers that repeat across
legal entities (orders, invoices): its owning business unit, and the GUID it is created with.

Two legal entities may both number an order ``SO-000123``. In F&O the key carries
``dataAreaId``; in Sales the company is the business unit owning the row (a task whose
target says ``company_scope: owner`` creates its rows owned by the pair's ``owner``). So
those tasks read their target, and the references that find such rows, within the pair's
business unit, and give created rows a GUID that hashes in the legal entity too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prospect_to_cash.hooks.odata import and_filters, format_literal
from prospect_to_cash.sync.errors import MappingError, SyncError
from prospect_to_cash.sync.values import deterministic_id

if TYPE_CHECKING:
    from prospect_to_cash.sync.context import SyncContext
    from prospect_to_cash.sync.mapping import Lookup, Task, Template
    from prospect_to_cash.sync.sides import Reference

#: Target scopes read within the pair's business unit (Dataverse targets only).
BUSINESS_UNIT_SCOPES = frozenset({"owner", "business_unit"})


def business_unit_filter(ctx: SyncContext) -> str | None:
    """``_owningbusinessunit_value eq <id>`` of the pair's business unit (looked up by name
    when the environment gives a name); None when the pair names no business unit."""
    pair = ctx.pair
    if pair.business_unit_id:
        return f"_owningbusinessunit_value eq {pair.business_unit_id}"
    if not pair.business_unit:
        return None
    hook = ctx.hooks.for_system("dataverse")
    found: list[str] = []
    for page in hook.iter_pages(
        "businessunits",
        select=["businessunitid", "name"],
        filter=f"name eq {format_literal(pair.business_unit)}",
    ):
        found.extend(str(v) for v in page["businessunitid"].tolist())
    if len(found) != 1:
        raise SyncError(
            f"business unit {pair.business_unit!r} of legal entity {pair.legal_entity!r}: "
            f"found {len(found)} rows, expected 1"
        )
    return f"_owningbusinessunit_value eq {found[0]}"


def target_in_business_unit(task: Task) -> bool:
    """The task's Dataverse target rows belong to one company each (by business unit)."""
    return task.target_system == "dataverse" and task.target.company_scope in BUSINESS_UNIT_SCOPES


def target_filter(task: Task, business_unit: str | None) -> str | None:
    """The snapshot's filter: the mapping's own, within the pair's business unit where the
    target is company-scoped (``business_unit`` from `business_unit_filter`)."""
    return and_filters(task.target.filter, business_unit if target_in_business_unit(task) else None)


def reference_filter(reference: Reference, business_unit: str | None) -> str | None:
    """A reference's filter, within the pair's business unit when it says so."""
    scoped = reference.company_scope == "business_unit"
    return and_filters(reference.filter, business_unit if scoped else None)


def needs_business_unit(task: Task, side: str) -> bool:
    """Whether reading ``side`` of the task needs the business unit's filter at all (saves
    the ``businessunits`` lookup for every other task)."""
    if side == "target" and target_in_business_unit(task):
        return True
    return any(r.side == side and r.company_scope == "business_unit" for r in task.references)


def company_row_id(entity_set: str, legal_entity: str, ref: str) -> str:
    """The GUID of a company-scoped row: the natural key within its legal entity, so equal
    numbers of two legal entities get two rows (`deterministic_id` of ``<company>|<key>``)."""
    return deterministic_id(entity_set, f"{legal_entity.casefold()}|{ref}")


def created_row_id(task: Task, legal_entity: str, ref: str) -> str:
    """The GUID a create of ``task`` sends: company-scoped where its target is, else the
    natural key's own (rows of one company pair, or shared by all, like accounts)."""
    if target_in_business_unit(task):
        return company_row_id(task.target.entity_set, legal_entity, ref)
    return deterministic_id(task.target.entity_set, ref)


def created_by_scope_problems(task: Task, lookup: Lookup, earlier: list[Task]) -> list[str]:
    """A lookup that accepts rows an earlier task plans to create computes their GUIDs the
    way that task creates them: within the company exactly when that task's target is."""
    creator = next(t for t in earlier if t.name == lookup.created_by)
    scoped = target_in_business_unit(creator)
    names = {r.name for r in task.references}
    return [
        f"reference {c.reference!r} must say company_scope: business_unit exactly when "
        f"its created_by task {creator.name!r} has a company-scoped Dataverse target"
        for c in lookup.candidates
        if c.reference in names and (task.reference(c.reference).company_scope == "business_unit") != scoped
    ]


def missing_owner_problems(template: Template) -> list[str]:
    """Company pairs the template cannot serve for want of an ``owner``: a task whose target
    says ``company_scope: owner`` creates rows owned by the pair's owner and finds them again
    (snapshot, lookups) within the pair's business unit. A pair that names a business unit but
    no owner would create rows owned by the application user, outside that business unit, so
    every later lookup of them would fail as dangling, row after row, without an error."""
    environment = template.environment
    owned = [
        t.name for t in template.tasks if t.target_system == "dataverse" and t.target.company_scope == "owner"
    ]
    if environment is None or not owned:
        return []
    files = " + ".join(Path(source).name for source in environment.sources)
    return [
        f"{files}: company pair {pair.legal_entity!r} has no 'owner', which {Path(template.path).name} "
        f"(task {', '.join(repr(name) for name in owned)}: company_scope: owner) needs: its rows would be "
        f"created outside business unit {pair.business_unit or pair.business_unit_id!r} and never found "
        "there again; set company_pairs[].owner to a user or team of that business unit"
        for pair in environment.company_pairs
        if (pair.business_unit or pair.business_unit_id) and not pair.owner
    ]


def require_owners(template: Template) -> None:
    """Refuse the template (a :class:`MappingError`) when `missing_owner_problems` finds any."""
    problems = missing_owner_problems(template)
    if problems:
        raise MappingError("\n".join(problems))
