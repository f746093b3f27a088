"""Command line: ``python -m prospect_to_cash.sync <command>``.

``validate``        check every mapping file and the environment offline (schema + rules)
``check-metadata``  compare the mappings with the live ``$metadata`` of both services,
                    through the Airflow connections (exit code 1 on any mismatch)
"""

from __future__ import annotations

import argparse
import sys

from prospect_to_cash.sync.errors import MappingError
from prospect_to_cash.sync.mapping import TEMPLATES, load_all


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
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        templates = load_all(arguments.mappings_dir, arguments.environment_file)
    except MappingError as exc:
        print(exc, file=sys.stderr)
        return 1
    if arguments.command == "validate":
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
