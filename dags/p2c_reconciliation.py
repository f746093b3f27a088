"""
### Prospect to cash: Reconciliation report (Sales <-> Finance and Operations)

**Compares** source and target for every template and company pair, writing nothing to
Dynamics: the sync engine runs its extract, snapshot and transform as a full-refresh dry
run, and every row is classified as *in sync*, *missing in target*, *different* (with
the differing fields and both values), *orphaned in target* (a row the integration
maintains, e.g. an externally maintained customer, that no source row maps to any
more) or *rejected* (the templates cannot sync it; the engine's reason is shown).

**Result**: `report.html` (one self-contained page: totals, a chart per template, counts
per template and company, filterable drill-down tables) and `report.json` (the same
data, schema `prospect_to_cash/reconcile/report.schema.json`) under
`<staging>/reconciliation/<run_id>/`. The `reconcile` task publishes the asset
`p2c_reconciliation_report` with both paths and the totals in the event's `extra`.
`verdict` fails the run when a template could not be reconciled (service unreachable,
mapping out of date); differences do not fail it.

**Params**: `templates` and `companies` (empty: all), `output_dir` (an extra local copy).
Orphans in Sales tables are only looked for when every company pair is included, since
those tables are shared by all companies. See `docs/reconciliation.md`.
"""

from __future__ import annotations

# An Airflow DAG file: the DAG shape is prospect_to_cash.reconcile.dag.
from prospect_to_cash.reconcile.dag import reconciliation_dag

dag = reconciliation_dag(doc_md=__doc__)
