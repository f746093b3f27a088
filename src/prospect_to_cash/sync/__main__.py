"""Command line: ``python -m prospect_to_cash.sync <command>``.

``validate``        check every mapping file and the environment offline (schema + rules)
``check-metadata``  compare the mappings with the live ``$metadata`` of both services,
                    through the Airflow connections (exit code 1 on any mismatch)
``run``             one template for its company pairs side by side, outside a DAG (an
                    initial load from a shell); a JSON report on stdout (counts per company
                    pair that finished, ``failed``: each pair that did not, with its error;
                    ``error`` when the run could not start), exit code 1 on any failure
``pending``         list a template's pending ledger (rows rejected or failed, not landed yet)
``dismiss``         drop entries from the pending ledger (they are not retried any more)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TypedDict

from prospect_to_cash.sync.contracts import (
    DEFAULT_MAX_FAILED,
    DEFAULT_MAX_REJECTED,
    DEFAULT_MAX_SOURCE_DELETES,
)
from prospect_to_cash.sync.errors import MappingError
from prospect_to_cash.sync.mapping import TEMPLATES, load_all

if TYPE_CHECKING:
    from prospect_to_cash.sync.contracts import PairsResult


class StartFailure(TypedDict):
    """The CLI's report when a run could not start (mapping, ``$metadata``, company, window)."""

    template: str
    run_id: str
    error: str
    companies: dict[str, object]
    failed: dict[str, str]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prospect_to_cash.sync", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--mappings-dir", help="directory of the mapping files (default: include/mappings)")
    parser.add_argument("--environment-file", help="override file layered on environment.yaml")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("validate", help="validate mapping files and environment offline")
    check = commands.add_parser("check-metadata", help="check mappings against both services' $metadata")
    check.add_argument("--template", action="append", choices=TEMPLATES, help="limit to these templates")
    check.add_argument("--dataverse-conn-id", default="dynamics_dataverse_default")
    check.add_argument("--fno-conn-id", default="dynamics_fno_default")
    run = commands.add_parser("run", help="run one template for its company pairs side by side")
    run.add_argument("template", choices=TEMPLATES)
    run.add_argument(
        "--company", action="append", dest="companies", help="legal entity to run (repeat; default all)"
    )
    run.add_argument("--run-id", help="names the staging folder (default cli-<UTC time>)")
    run.add_argument("--since", help="data interval start (ISO 8601) for templates with a change window")
    run.add_argument("--until", help="data interval end (ISO 8601)")
    run.add_argument("--full-refresh", action="store_true", help="ignore the change window")
    run.add_argument(
        "--from-watermark",
        action="store_true",
        help="read from each task's high-water mark (less the overlap) to --until: a scheduled run",
    )
    run.add_argument("--dry-run", action="store_true", help="plan and report, write nothing")
    run.add_argument("--max-parallel", type=int, help="company pairs at once (default all)")
    run.add_argument("--staging-root", help="staging URL (default P2C_STAGING_ROOT)")
    run.add_argument("--no-metadata-check", action="store_true", help="skip the $metadata check")
    run.add_argument(
        "--max-rejected",
        default=DEFAULT_MAX_REJECTED,
        help=f"rejected rows tolerated per company pair: a count or a percentage of the rows read "
        f"(default {DEFAULT_MAX_REJECTED.replace('%', '%%')})",  # argparse formats help with %
    )
    run.add_argument(
        "--max-failed",
        default=DEFAULT_MAX_FAILED,
        help=f"rows the target refused for their data, tolerated per company pair "
        f"(default {DEFAULT_MAX_FAILED.replace('%', '%%')})",
    )
    run.add_argument(
        "--max-source-deletes",
        default=DEFAULT_MAX_SOURCE_DELETES,
        help="target rows one run may deactivate or delete for source deletes, per task: a count or "
        f"a share of the rows the task put there (default {DEFAULT_MAX_SOURCE_DELETES.replace('%', '%%')})",
    )
    run.add_argument("--dataverse-conn-id", default="dynamics_dataverse_default")
    run.add_argument("--fno-conn-id", default="dynamics_fno_default")
    pending = commands.add_parser("pending", help="list the rows of a template still waiting to land")
    pending.add_argument("template", choices=TEMPLATES)
    dismiss = commands.add_parser("dismiss", help="drop rows from a template's pending ledger")
    dismiss.add_argument("template", choices=TEMPLATES)
    dismiss.add_argument("--company", required=True, help="legal entity of the entries")
    dismiss.add_argument("--task", required=True, help="mapping task of the entries")
    chosen = dismiss.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--key", action="append", dest="keys", help="source key to drop (repeat)")
    chosen.add_argument("--all", action="store_true", help="drop every entry of the task")
    for command in (pending, dismiss):
        command.add_argument("--staging-root", help="staging URL (default P2C_STAGING_ROOT)")
    return parser


def _pending(arguments: argparse.Namespace) -> int:
    """List (``pending``) or drop (``dismiss``) ledger entries; JSON on stdout."""
    from prospect_to_cash.sync.pending import PendingLedger, ledgers
    from prospect_to_cash.sync.staging import as_path

    root = as_path(arguments.staging_root or None)
    if arguments.command == "pending":
        listing = {
            f"{ledger.company}/{ledger.task}": ledger.read() for ledger in ledgers(root, arguments.template)
        }
        print(json.dumps(listing, indent=2))
        return 0
    ledger = PendingLedger(root, arguments.template, arguments.company, arguments.task)
    dropped = ledger.dismiss(None if arguments.all else arguments.keys)
    missing = sorted({k.casefold() for k in arguments.keys or ()} - {k.casefold() for k in dropped})
    print(json.dumps({"dismissed": dropped, "not_found": missing}, indent=2))
    return 1 if missing else 0


def _run(arguments: argparse.Namespace) -> int:
    """Run the template with stdout holding the JSON report only, so it can be piped
    (``| jq``): while it runs, file descriptor 1 points at stderr, which is where Airflow's
    console logging (configured to write to stdout) then lands."""
    sys.stdout.flush()
    report_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        report = _run_template(arguments)
    finally:
        sys.stdout.flush()
        os.dup2(report_fd, 1)
        os.close(report_fd)
    print(json.dumps(report, indent=2, default=str))
    return 1 if "error" in report or report["failed"] else 0


def _run_template(arguments: argparse.Namespace) -> PairsResult | StartFailure:
    from prospect_to_cash.sync.contracts import SyncOptions, Window
    from prospect_to_cash.sync.errors import SyncError
    from prospect_to_cash.sync.runner import run_company_pairs

    run_id = arguments.run_id or datetime.now(timezone.utc).strftime("cli-%Y%m%dT%H%M%SZ")
    try:
        options = SyncOptions(
            run_id=run_id,
            staging_root=arguments.staging_root or None,
            mappings_dir=arguments.mappings_dir or None,
            environment_file=arguments.environment_file or None,
            dataverse_conn_id=arguments.dataverse_conn_id,
            fno_conn_id=arguments.fno_conn_id,
            dry_run=arguments.dry_run,
            check_metadata=not arguments.no_metadata_check,
            max_rejected=arguments.max_rejected,
            max_failed=arguments.max_failed,
            max_source_deletes=arguments.max_source_deletes,
        )
        if arguments.from_watermark and arguments.since:
            raise ValueError("--from-watermark starts at the high-water mark: leave out --since")
        window = Window.of(
            None,
            arguments.until,
            start=arguments.since,
            full_refresh=arguments.full_refresh,
            since_watermark=arguments.from_watermark,
        )
        return run_company_pairs(
            arguments.template,
            legal_entities=arguments.companies,
            max_parallel=arguments.max_parallel,
            options=options,
            window=window,
            raise_on_failure=False,
        )
    except (SyncError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return {
            "template": arguments.template,
            "run_id": run_id,
            "error": f"{type(exc).__name__}: {exc}",
            "companies": {},
            "failed": {},
        }


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        templates = load_all(arguments.mappings_dir, arguments.environment_file)
    except MappingError as exc:
        print(exc, file=sys.stderr)
        return 1
    if arguments.command == "run":
        return _run(arguments)
    if arguments.command in ("pending", "dismiss"):
        return _pending(arguments)
    if arguments.command == "validate":
        from prospect_to_cash.sync.company_scope import missing_owner_problems

        problems = [
            problem for template in templates.values() for problem in missing_owner_problems(template)
        ]
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        for name, template in templates.items():
            print(f"{name}: {len(template.tasks)} task(s) valid")
        return 0
    from prospect_to_cash.sync.metadata_check import check_templates
    from prospect_to_cash.sync.runner import SyncHooks

    chosen = [templates[name] for name in (arguments.template or TEMPLATES)]
    hooks = SyncHooks(dataverse_conn_id=arguments.dataverse_conn_id, fno_conn_id=arguments.fno_conn_id)
    problems = check_templates(chosen, hooks)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} mismatch(es) between the mappings and $metadata", file=sys.stderr)
        return 1
    print(f"{len(chosen)} template(s) match both services' $metadata")
    return 0


if __name__ == "__main__":
    sys.exit(main())
