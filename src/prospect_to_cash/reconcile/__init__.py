"""Reconciliation: source against target for every template and company pair.

``reconcile()`` runs the sync engine's extract, snapshot and transform as a full-refresh
dry run and classifies every row (in sync, missing in target, different, orphaned in
target, rejected); ``write_report()`` writes the JSON document and its HTML rendering;
``run_reconciliation()`` does both and returns a small summary for XCom and the CLI.
See docs/reconciliation.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from prospect_to_cash.reconcile.classify import LABELS, STATUSES
    from prospect_to_cash.reconcile.reconciler import reconcile
    from prospect_to_cash.reconcile.report import render_html, validate, write_report

__all__ = [
    "LABELS",
    "STATUSES",
    "reconcile",
    "render_html",
    "run_reconciliation",
    "validate",
    "write_report",
]

#: Imported on first use, so that parsing the DAG file (which imports ``.dag``) stays
#: free of pandas and the engine.
_LAZY = {
    "LABELS": "classify",
    "STATUSES": "classify",
    "reconcile": "reconciler",
    "render_html": "report",
    "validate": "report",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"prospect_to_cash.reconcile.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_reconciliation(
    templates: Sequence[str] | None = None,
    companies: Sequence[str] | None = None,
    *,
    output_dir: str | Path | None = None,
    staging_root: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """Reconcile and write the report; returns ``run_id``, ``generated_at``, ``totals``,
    ``errors`` (count) and ``paths`` (strings) -- no row data, no secrets.

    :param output_dir: also write ``report.html`` and ``report.json`` to this local folder.
    :param options: passed to :func:`reconcile` (``run_id``, ``hooks``, ``mappings_dir``,
        ``environment_file``, ``dataverse_conn_id``, ``fno_conn_id``, ``scopes_file``, ...).
    """
    from prospect_to_cash.reconcile.reconciler import reconcile
    from prospect_to_cash.reconcile.report import write_report

    document = reconcile(templates, companies, staging_root=staging_root, **options)
    paths = write_report(document, staging_root=staging_root, output_dir=output_dir)
    return {
        "run_id": document["run_id"],
        "generated_at": document["generated_at"],
        "totals": document["totals"],
        "errors": len(document["errors"]),
        "paths": paths,
    }
