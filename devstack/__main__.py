"""Command line of the local stacks: ``python -m devstack demo|airflow``.

python -m devstack demo    [--state-dir state]               (make demo)
python -m devstack airflow [--state-dir state] [--port 8080] (make airflow)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="the whole Prospect-to-cash flow through a local Airflow, then a summary"
    )
    demo.add_argument(
        "--state-dir", type=Path, default=Path("state"), help="kept between runs (default: state)"
    )
    demo.add_argument(
        "--timeout", type=float, default=1800, help="seconds the DAG runs may take together (default: 1800)"
    )
    airflow = commands.add_parser("airflow", help="the same stack on the same state, running until Ctrl-C")
    airflow.add_argument("--state-dir", type=Path, default=Path("state"))
    airflow.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("AIRFLOW_PORT") or 8080),
        help="port of the Airflow UI and API (default: $AIRFLOW_PORT or 8080)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    from devstack.airflow_stack import StackError
    from devstack.demo import DemoError, format_summary, run_demo, serve, terminate_as_interrupt

    try:
        if arguments.command == "airflow":
            return serve(arguments.state_dir, port=arguments.port)
        with terminate_as_interrupt():
            result = run_demo(arguments.state_dir, run_timeout=arguments.timeout)
        print(format_summary(result), flush=True)
        return 0 if result.ok else 1
    except KeyboardInterrupt:
        print("Interrupted; everything the demo started has been stopped.", file=sys.stderr)
        return 130
    except (DemoError, StackError) as exc:
        print(f"The demo could not finish: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
