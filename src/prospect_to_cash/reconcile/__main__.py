"""Command line: ``python -m prospect_to_cash.reconcile --output DIR [--templates ...] [--companies ...]``.

Reads both services through the Airflow connections (``AIRFLOW_CONN_*`` environment
variables work), writes ``report.html`` and ``report.json`` to DIR and under the staging
root. Exit code 0 when every template was reconciled, 2 when some could not be (the
report names them), 1 on a configuration error; with ``--fail-on-differences`` also 3
when any row is not in sync.
"""

from __future__ import annotations

import argparse
import logging
import sys

from prospect_to_cash.sync.errors import MappingError
from prospect_to_cash.sync.mapping import TEMPLATES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prospect_to_cash.reconcile", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--output", required=True, help="local folder for report.html and report.json")
    parser.add_argument("--templates", nargs="+", choices=TEMPLATES, help="default: all seven")
    parser.add_argument("--companies", nargs="+", help="F&O legal entities of company pairs (default: all)")
    parser.add_argument("--staging-root", help="URL or folder (default: P2C_STAGING_ROOT)")
    parser.add_argument("--mappings-dir", help="directory of the mapping files (default: include/mappings)")
    parser.add_argument("--environment-file", help="override file layered on environment.yaml")
    parser.add_argument("--scopes", help="orphan scopes overriding reconcile/scope.yaml per task")
    parser.add_argument("--run-id", help="names the staging folders (default: reconcile__<UTC time>)")
    parser.add_argument("--dataverse-conn-id", default="dynamics_dataverse_default")
    parser.add_argument("--fno-conn-id", default="dynamics_fno_default")
    parser.add_argument("--no-metadata-check", action="store_true", help="skip the $metadata comparison")
    parser.add_argument(
        "--fail-on-differences", action="store_true", help="exit 3 when any row is not in sync (for CI)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from prospect_to_cash.reconcile import run_reconciliation

    try:
        result = run_reconciliation(
            arguments.templates,
            arguments.companies,
            output_dir=arguments.output,
            staging_root=arguments.staging_root,
            run_id=arguments.run_id,
            mappings_dir=arguments.mappings_dir,
            environment_file=arguments.environment_file,
            scopes_file=arguments.scopes,
            dataverse_conn_id=arguments.dataverse_conn_id,
            fno_conn_id=arguments.fno_conn_id,
            check_metadata=not arguments.no_metadata_check,
        )
    except MappingError as exc:
        print(exc, file=sys.stderr)
        return 1
    totals = result["totals"]
    print(", ".join(f"{name}={value}" for name, value in totals.items()))
    print(f"report: {result['paths']['local_html']}")
    print(f"data:   {result['paths']['local_json']}")
    if result["errors"]:
        print(f"{result['errors']} template/company pair(s) could not be reconciled", file=sys.stderr)
        return 2
    if arguments.fail_on_differences and sum(v for k, v in totals.items() if k != "in_sync"):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
