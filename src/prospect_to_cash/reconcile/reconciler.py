"""Source against target for every template and company pair, through the sync engine.

For each template (in run order), each company pair and each task, the engine runs its
own extract, snapshot and transform as a full-refresh dry run into a staging folder of
its own (``<root>/<template>/<run_id>/...``, the usual layout); nothing is ever loaded.
Its plan is then read back and classified (:mod:`.classify`). A second pass reads the
target rows in each task's orphan scope (:mod:`.scope`) and reports those no source row
of any reconciled task maps to.

Dataverse tables are not split by company (a product or order row carries no legal
entity), so orphans there are looked for once across all company pairs, and only when
every configured pair is reconciled: with a subset, another company's rows would all
look orphaned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from prospect_to_cash.reconcile.classify import (
    STATUSES,
    PlanFrames,
    add_counts,
    claimed_keys,
    classify_plan,
    count,
    orphan_rows,
)
from prospect_to_cash.reconcile.scope import OrphanScope, load_scopes, scope_for
from prospect_to_cash.sync import runner
from prospect_to_cash.sync.columns import ID, REF
from prospect_to_cash.sync.contracts import SyncHooks, SyncOptions, Window
from prospect_to_cash.sync.diff import fold
from prospect_to_cash.sync.environment import load_environment
from prospect_to_cash.sync.errors import MappingError, SyncError
from prospect_to_cash.sync.mapping import COMPANY_FIELD, TEMPLATES, Task, Template, load_template
from prospect_to_cash.sync.pending import PendingLedger
from prospect_to_cash.sync.staging import TaskStaging, as_path, safe_segment
from prospect_to_cash.sync.target_rows import snapshot_frame
from prospect_to_cash.sync.values import py

if TYPE_CHECKING:
    from collections.abc import Sequence

    from prospect_to_cash.sync.environment import Environment

log = logging.getLogger(__name__)

SCHEMA_ID = "p2c-reconciliation/1"
#: The section holding orphans of tables that are not split by company (Dataverse).
ALL_COMPANIES = "*"
_ENGINE_OPTIONS = ("staging_root", "mappings_dir", "environment_file", "page_size")


def _errors_caught() -> tuple[type[BaseException], ...]:
    """What stops one template for one company without stopping the report: the engine's
    own errors and the hooks' (service refused, unreachable, bad connection)."""
    from prospect_to_cash.hooks.errors import DynamicsError

    return (SyncError, DynamicsError)


@dataclass
class _TaskRun:
    template: Template
    task: Task
    company: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    read: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Orphan:
    template: str
    task: str
    company: str
    specificity: int
    order: int
    row: dict[str, Any]


def safe_url(value: Any) -> str | None:
    """A URL fit for a report: a password, query or fragment is dropped (a user name
    alone is kept: ``abfs://container@account...`` names a container, not a secret)."""
    if not value:
        return None
    parts = urlsplit(str(value))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username and parts.password is None:
        host = f"{parts.username}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _select_pairs(environment: Environment, companies: Sequence[str] | None) -> list[str]:
    pairs = [pair.legal_entity for pair in environment.company_pairs]
    if not companies:
        return pairs
    known = {name.casefold(): name for name in pairs}
    unknown = sorted({c for c in companies if c.casefold() not in known})
    if unknown:
        raise MappingError(f"companies {unknown} have no company pair; configured: {', '.join(pairs)}")
    wanted = {c.casefold() for c in companies}
    return [name for name in pairs if name.casefold() in wanted]


def _select_templates(templates: Sequence[str] | None) -> list[str]:
    if not templates:
        return list(TEMPLATES)
    unknown = sorted(set(templates) - set(TEMPLATES))
    if unknown:
        raise MappingError(f"unknown templates {unknown}; known: {', '.join(TEMPLATES)}")
    return [name for name in TEMPLATES if name in set(templates)]


def _plan_frames(staging: TaskStaging) -> PlanFrames:
    def frame(area: str, name: str) -> pd.DataFrame:
        found = staging.read_frame_if_exists(area, name)
        return pd.DataFrame() if found is None else found

    return PlanFrames(
        creates=frame("plan", "creates"),
        updates=frame("plan", "updates"),
        unchanged=frame("plan", "unchanged"),
        second_pass=frame("plan", "second_pass"),
        rejects=frame("deadletter", "rejected"),
    )


def _company_key(task: Task, company: str) -> str:
    return company if task.target_system == "fno" else ALL_COMPANIES


class _Reconciliation:
    def __init__(
        self,
        templates: list[str],
        companies: list[str],
        environment: Environment,
        run_id: str,
        hooks: SyncHooks,
        scopes: dict[tuple[str, str], OrphanScope],
        options: dict[str, Any],
        check_metadata: bool,
    ) -> None:
        self.templates = templates
        self.companies = companies
        self.environment = environment
        self.run_id = run_id
        self.hooks = hooks
        self.scopes = scopes
        self.options = options
        self.check_metadata = check_metadata
        self.root = as_path(options.get("staging_root"))
        self.runs: list[_TaskRun] = []
        self.errors: list[dict[str, Any]] = []
        self.claims: dict[tuple[str, str, str], set[str]] = {}
        #: target tables whose claims are incomplete (a task failed): no orphan check there
        self.incomplete: set[tuple[str, str, str]] = set()
        self.orphans: list[_Orphan] = []
        self.orphan_notes: dict[tuple[str, str, str], list[str]] = {}
        self._metadata: dict[str, Any] | None = None
        self._scoped_cache: dict[tuple[str, str, str], pd.DataFrame | None] = {}

    # -- engine dry run per template, company and task -----------------------------------
    def run(self) -> None:
        for name in self.templates:
            loaded = {
                company: load_template(
                    name,
                    mappings_dir=self.options.get("mappings_dir"),
                    environment_file=self.options.get("environment_file"),
                    legal_entity=company,
                )
                for company in self.companies
            }
            if self.check_metadata and loaded:
                try:
                    self._check(next(iter(loaded.values())))
                except _errors_caught() as exc:
                    # the mapping does not fit the services: no company can be reconciled
                    for company, template in loaded.items():
                        self._fail(template, company, None, exc, template.tasks)
                    continue
            for company, template in loaded.items():
                for position, task in enumerate(template.tasks):
                    try:
                        self.runs.append(self._task(template, task, company))
                    except _errors_caught() as exc:
                        # later tasks (lines) need this one's plan: stop this company here
                        self._fail(template, company, task, exc, template.tasks[position:])
                        break
        self._find_orphans()

    def _check(self, template: Template) -> None:
        from prospect_to_cash.sync.metadata_check import check_template, fetch_metadata

        if self._metadata is None:
            self._metadata = fetch_metadata(self.hooks, ("dataverse", "fno"))
        check_template(template, self.hooks, metadata=self._metadata, raise_on_problems=True)

    def _fail(
        self, template: Template, company: str, task: Task | None, exc: BaseException, lost: Sequence[Task]
    ) -> None:
        message = f"{type(exc).__name__}: {exc}"
        log.error("reconciliation of %s [%s] stopped: %s", template.name, company, message)
        self.errors.append(
            {
                "template": template.name,
                "company": company,
                "task": task.name if task else None,
                "message": message,
            }
        )
        for other in lost:
            self.incomplete.add((other.target_system, other.target.entity_set, _company_key(other, company)))

    def _task(self, template: Template, task: Task, company: str) -> _TaskRun:
        options = SyncOptions(run_id=self.run_id, hooks=self.hooks, **self.options)
        runner.extract(
            template, task.name, legal_entity=company, options=options, window=Window(full_refresh=True)
        )
        runner.snapshot(template, task.name, legal_entity=company, options=options)
        planned = runner.transform(template, task.name, legal_entity=company, options=options)
        staging = TaskStaging(self.root, template.name, self.run_id, company, task.name)
        plan = _plan_frames(staging)
        current = snapshot_frame(task, staging.read_frame("target", "rows"), company)
        result = _TaskRun(template, task, company)
        result.rows = classify_plan(plan, current)
        result.read = int(planned["counts"]["read"])
        result.skipped = int(planned["counts"]["skipped"])
        table = (task.target_system, task.target.entity_set, _company_key(task, company))
        self.claims.setdefault(table, set()).update(claimed_keys(plan))
        return result

    # -- orphans -----------------------------------------------------------------------------
    def _scoped_rows(self, template: Template, task: Task, scope: OrphanScope, company: str) -> pd.DataFrame:
        """Target rows in the task's scope: ``__ref``, ``__id`` and the normalized key fields."""
        columns: list[str] = []
        if task.target.primary_id:
            columns.append(task.target.primary_id)
        names = list(task.natural_key) + ([scope.parent] if scope.parent else [])
        for name in names:
            mapping = task.field(name)
            columns.append(mapping.snapshot_column if mapping else name)
        kwargs: dict[str, Any] = {"select": list(dict.fromkeys(columns)), "filter": scope.filter}
        if self.options.get("page_size"):
            kwargs["page_size"] = self.options["page_size"]
        if task.target_system == "fno":
            kwargs["companies"] = [company]
            if COMPANY_FIELD not in kwargs["select"]:
                kwargs["select"].append(COMPANY_FIELD)
        pages = list(self.hooks.for_system(task.target_system).iter_pages(task.target.entity_set, **kwargs))
        raw = pd.concat(pages, ignore_index=True) if pages else pd.DataFrame(columns=kwargs["select"])
        legal_entity = company if task.target_system == "fno" else ""
        frame = snapshot_frame(task, raw, legal_entity)
        if scope.parent:
            assert task.parent is not None
            parent_task = template.task(task.parent.task)
            parent = self._scoped(template, parent_task, company)
            if parent is None:
                raise _NotChecked(f"its parent task {parent_task.name!r} is not checked for orphans")
            wanted = {fold(v) for v in [*parent[REF].tolist(), *parent[ID].tolist()] if py(v) is not None}
            keep = [py(v) is not None and fold(py(v)) in wanted for v in frame[scope.parent].tolist()]
            frame = frame.loc[pd.Series(keep, index=frame.index, dtype=bool)].reset_index(drop=True)
        return frame

    def _scoped(self, template: Template, task: Task, company: str) -> pd.DataFrame | None:
        key = (template.name, task.name, _company_key(task, company))
        if key not in self._scoped_cache:
            scope = scope_for(self.scopes, template.name, task)
            self._scoped_cache[key] = (
                self._scoped_rows(template, task, scope, company) if scope.checked else None
            )
        return self._scoped_cache[key]

    def _note(self, template: str, task: str, company: str, text: str) -> None:
        self.orphan_notes.setdefault((template, task, company), []).append(text)

    def _find_orphans(self) -> None:
        every_pair = {c.casefold() for c in self.companies} == {
            p.legal_entity.casefold() for p in self.environment.company_pairs
        }
        done: set[tuple[str, str, str]] = set()
        order = 0
        for run in self.runs:
            template, task = run.template, run.task
            company = _company_key(task, run.company)
            if (template.name, task.name, company) in done:
                continue
            done.add((template.name, task.name, company))
            order += 1
            scope = scope_for(self.scopes, template.name, task)
            table = (task.target_system, task.target.entity_set, company)
            if not scope.checked:
                self._note(template.name, task.name, company, f"orphans not checked: {scope.reason}")
                continue
            if company == ALL_COMPANIES and not every_pair:
                self._note(
                    template.name,
                    task.name,
                    company,
                    f"orphans not checked: {task.target.entity_set} is shared by all companies, "
                    "so every company pair must be reconciled together",
                )
                continue
            if table in self.incomplete:
                self._note(
                    template.name,
                    task.name,
                    company,
                    f"orphans not checked: a task writing {task.target.entity_set} failed in this run",
                )
                continue
            try:
                scoped = self._scoped(template, task, run.company)
            except _NotChecked as exc:
                self._note(template.name, task.name, company, f"orphans not checked: {exc}")
                continue
            except _errors_caught() as exc:
                self.errors.append(
                    {
                        "template": template.name,
                        "company": company,
                        "task": task.name,
                        "message": f"orphan check: {type(exc).__name__}: {exc}",
                    }
                )
                continue
            assert scoped is not None
            for row in orphan_rows(scoped, self.claims.get(table, set())):
                self.orphans.append(_Orphan(template.name, task.name, company, scope.specificity, order, row))

    def orphan_assignment(self) -> list[_Orphan]:
        """One task per orphan: a row in two scopes (order lines and freight-tax lines)
        belongs to the narrower scope, then to the task earlier in run order."""
        tables = {(r.template.name, r.task.name): r.task.target.entity_set for r in self.runs}
        best: dict[tuple[str, str, str], _Orphan] = {}
        for orphan in self.orphans:
            identity = orphan.row["target_id"] or fold(orphan.row["key"] or "")
            key = (tables[(orphan.template, orphan.task)], orphan.company, fold(identity))
            current = best.get(key)
            if current is None or (orphan.specificity, -orphan.order) > (current.specificity, -current.order):
                best[key] = orphan
        chosen = {id(o) for o in best.values()}
        return [o for o in self.orphans if id(o) in chosen]


class _NotChecked(Exception):
    """A task's orphan scope cannot be evaluated (its parent's scope is not checked)."""


# -- the report document ---------------------------------------------------------------------


def _environment_url(hooks: SyncHooks, system: str) -> str | None:
    """The environment URL of a system's connection, for the report header only."""
    try:
        config = hooks.for_system(system).config
    except Exception:  # a stand-in hook or an unreadable connection: the report says unknown
        return None
    return safe_url(getattr(config, "environment_url", None))


def _task_entry(
    task: Task,
    rows: list[dict[str, Any]],
    notes: list[str],
    read: int | None,
    skipped: int | None,
    pending: int | None = None,
) -> dict:
    """One task's report entry; ``pending`` is its pending ledger's size (None: not per company)."""
    counts: dict[str, Any] = {"read": read, "skipped": skipped, "pending": pending, **count(rows)}
    return {
        "task": task.name,
        "description": task.description or None,
        "source_system": task.source_system,
        "source_entity_set": task.source.entity_set,
        "target_system": task.target_system,
        "target_entity_set": task.target.entity_set,
        "counts": counts,
        "notes": notes,
        "rows": rows,
    }


def _document(rec: _Reconciliation, generated_at: datetime, mappings_dir: Any) -> dict[str, Any]:
    orphans: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for orphan in rec.orphan_assignment():
        orphans.setdefault((orphan.template, orphan.task, orphan.company), []).append(orphan.row)
    templates = []
    totals = dict.fromkeys(STATUSES, 0)
    for name in rec.templates:
        runs = [r for r in rec.runs if r.template.name == name]
        template = runs[0].template if runs else load_template(name, mappings_dir=mappings_dir)
        sections = []
        template_totals = dict.fromkeys(STATUSES, 0)
        for company in [*rec.companies, ALL_COMPANIES]:
            entries = []
            if company == ALL_COMPANIES:
                seen: set[str] = set()
                for run in runs:
                    if run.task.target_system == "fno" or run.task.name in seen:
                        continue
                    seen.add(run.task.name)
                    key = (name, run.task.name, ALL_COMPANIES)
                    entries.append(
                        _task_entry(run.task, orphans.get(key, []), rec.orphan_notes.get(key, []), None, None)
                    )
            else:
                for run in runs:
                    if run.company != company:
                        continue
                    key = (name, run.task.name, company)
                    rows = [*run.rows, *orphans.get(key, [])]
                    ledger = PendingLedger(rec.root, name, company, run.task.name)
                    entries.append(
                        _task_entry(
                            run.task,
                            rows,
                            rec.orphan_notes.get(key, []),
                            run.read,
                            run.skipped,
                            len(ledger.read()),
                        )
                    )
            errors = [e["message"] for e in rec.errors if e["template"] == name and e["company"] == company]
            if not entries and not errors:
                continue
            section_totals = dict.fromkeys(STATUSES, 0)
            for entry in entries:
                add_counts(section_totals, {s: entry["counts"][s] for s in STATUSES})
            add_counts(template_totals, section_totals)
            sections.append(
                {"company": company, "totals": section_totals, "errors": errors, "tasks": entries}
            )
        add_counts(totals, template_totals)
        templates.append(
            {
                "template": name,
                "title": template.title or name,
                "source_system": template.source_system,
                "target_system": template.target_system,
                "totals": template_totals,
                "sections": sections,
            }
        )
    return {
        "schema": SCHEMA_ID,
        "generated_at": generated_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "run_id": rec.run_id,
        "statuses": list(STATUSES),
        "environment": {
            "dataverse": {
                "conn_id": rec.hooks.dataverse_conn_id,
                "url": _environment_url(rec.hooks, "dataverse"),
            },
            "fno": {"conn_id": rec.hooks.fno_conn_id, "url": _environment_url(rec.hooks, "fno")},
            "staging_root": safe_url(str(rec.root)),
            "company_pairs": [
                {"legal_entity": p.legal_entity, "business_unit": p.business_unit}
                for p in rec.environment.company_pairs
            ],
        },
        "selection": {"templates": list(rec.templates), "companies": list(rec.companies)},
        "totals": totals,
        "templates": templates,
        "errors": rec.errors,
    }


def reconcile(
    templates: Sequence[str] | None = None,
    companies: Sequence[str] | None = None,
    *,
    run_id: str | None = None,
    hooks: SyncHooks | None = None,
    scopes_file: str | None = None,
    check_metadata: bool = True,
    dataverse_conn_id: str = "dynamics_dataverse_default",
    fno_conn_id: str = "dynamics_fno_default",
    now: datetime | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Compare source and target for the templates and company pairs; returns the report
    document (see ``report.schema.json``). Reads only: nothing is written to Dynamics.

    :param templates: template names (default: all seven, in run order).
    :param companies: F&O legal entities of configured company pairs (default: all).
    :param run_id: names the engine's staging folders (default: ``reconcile__<UTC time>``).
    :param scopes_file: orphan scopes overriding ``scope.yaml`` per task.
    :param check_metadata: compare each mapping with the services' ``$metadata`` first;
        a mismatch is reported as that template's error instead of reading rows.
    :param options: ``staging_root``, ``mappings_dir``, ``environment_file``, ``page_size``.
    """
    unknown = sorted(set(options) - set(_ENGINE_OPTIONS))
    if unknown:
        raise TypeError(f"unknown options {unknown}")
    moment = now or datetime.now(timezone.utc)
    environment = load_environment(options.get("mappings_dir"), options.get("environment_file"))
    rec = _Reconciliation(
        templates=_select_templates(templates),
        companies=_select_pairs(environment, companies),
        environment=environment,
        run_id=safe_segment(run_id or f"reconcile__{moment.strftime('%Y%m%dT%H%M%SZ')}"),
        hooks=hooks or SyncHooks(dataverse_conn_id=dataverse_conn_id, fno_conn_id=fno_conn_id),
        scopes=load_scopes(scopes_file),
        options=options,
        check_metadata=check_metadata,
    )
    rec.run()
    document = _document(rec, moment, options.get("mappings_dir"))
    log.info(
        "reconciliation %s: %s",
        rec.run_id,
        ", ".join(f"{status}={value}" for status, value in document["totals"].items()),
    )
    return document
