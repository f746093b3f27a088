"""Command line of the local stacks: ``python -m devstack demo|airflow``.

python -m devstack demo    [--state-dir state]               (make demo)
python -m devstack airflow [--state-dir state] [--port 8080] (make airflow)
python -m devstack backfill --from DATE --to DATE [--dag ID ...] [--one-at-a-time] [--port 8080]
                                       (next to a running make airflow; devstack/backfill.py)
python -m devstack airflow-celery [--state-dir state/celery] [--port 8080] (make airflow-celery)

Whatever happens, the terminal gets readable lines and never a traceback: a failure ends
in one line (what happened, what to do, which log holds the details and the traceback),
and Ctrl-C or SIGTERM stops everything the command started before it says so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import FrameType

    from devstack.state import DemoPaths

#: Exit code of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
INTERRUPTED = 130


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
    backfill = commands.add_parser(
        "backfill", help="backfill the P2C DAGs in run order on a running make airflow, safe on SQLite"
    )
    backfill.add_argument(
        "--from", dest="from_date", required=True, help="first logical date (interval start)"
    )
    backfill.add_argument("--to", dest="to_date", required=True, help="last logical date (interval start)")
    backfill.add_argument("--dag", dest="dags", action="append", help="only these DAGs (default: all seven)")
    backfill.add_argument(
        "--one-at-a-time", action="store_true", help="start each backfill after the previous one finished"
    )
    backfill.add_argument("--state-dir", type=Path, default=Path("state"))
    backfill.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("AIRFLOW_PORT") or 8080),
        help="port of the running make airflow (default: $AIRFLOW_PORT or 8080)",
    )
    celery = commands.add_parser(
        "airflow-celery",
        help="Airflow on Postgres with the CeleryExecutor, Redis and two workers, running until Ctrl-C",
    )
    celery.add_argument("--state-dir", type=Path, default=Path("state/celery"))
    celery.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT") or 8080))
    return parser


def run_backfill(arguments: argparse.Namespace) -> int:
    """``python -m devstack backfill``: 0 when every run in the range succeeded."""
    from devstack.backfill import SYNC_DAGS, backfill_dags, local_stack

    stack = local_stack(arguments.port)
    try:
        outcomes = backfill_dags(
            stack,
            arguments.from_date,
            arguments.to_date,
            dag_ids=arguments.dags or SYNC_DAGS,
            one_at_a_time=arguments.one_at_a_time,
        )
    finally:
        stack.stop()
    return 0 if outcomes and all(outcome.ok for outcome in outcomes) else 1


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """The first Ctrl-C or SIGTERM raises ``KeyboardInterrupt`` wherever the command is; later
    ones are ignored, so the stop that follows runs to its end (its waits are bounded)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for name in (signal.SIGINT, signal.SIGTERM):
            signal.signal(name, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {name: signal.signal(name, interrupt) for name in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)


def failure_line(command: str, exc: BaseException, paths: DemoPaths) -> str:
    """One line for the terminal: what happened, what to do next, where the details are."""
    from devstack.airflow_stack import StackError
    from devstack.state import DemoError, shown

    what = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if len(what) > 300:
        what = what[:297] + "..."
    if not isinstance(exc, (DemoError, StackError)):
        what = f"{type(exc).__name__}: {what}"
    hint = exc.hint if isinstance(exc, DemoError) and exc.hint else None
    if hint is None:
        hint = (
            f"run it again (it stops what this one left and keeps the data); if it fails the same way, "
            f"rm -rf {shown(paths.airflow)} rebuilds the Airflow database (the emulators' data stays)"
        )
    return f"make {command} failed: {what}. To do: {hint}. Details: {shown(paths.command_log)}"


def log_failure(paths: DemoPaths, command: str, exc: BaseException) -> None:
    """The whole message (log tails included) and the traceback, appended to the command's log."""
    with contextlib.suppress(OSError):
        paths.logs.mkdir(parents=True, exist_ok=True)
        with paths.command_log.open("a") as log:
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            log.write(f"--- {stamp} make {command} failed ---\n")
            log.write("".join(traceback.format_exception(exc)))


def still_running(paths: DemoPaths) -> list[str]:
    """What the command started and is still running (nothing, after a complete stop)."""
    from devstack.processes import PidFiles

    return sorted(PidFiles(paths.pids).alive())


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    from devstack.demo import format_summary, run_demo, serve
    from devstack.state import DemoPaths

    paths = DemoPaths(arguments.state_dir.resolve())
    try:
        with stop_on_signals():
            if arguments.command == "airflow":
                code = serve(arguments.state_dir, port=arguments.port)
            elif arguments.command == "backfill":
                return run_backfill(arguments)
            elif arguments.command == "airflow-celery":
                from devstack.celery_stack import serve as serve_celery

                code = serve_celery(arguments.state_dir, port=arguments.port)
            else:
                result = run_demo(arguments.state_dir, run_timeout=arguments.timeout)
                print(format_summary(result), flush=True)
                code = 0 if result.ok else 1
    except KeyboardInterrupt:
        code = INTERRUPTED
    except Exception as exc:
        log_failure(paths, arguments.command, exc)
        print(failure_line(arguments.command, exc, paths), file=sys.stderr, flush=True)
        return 1
    if code == INTERRUPTED or arguments.command in ("airflow", "airflow-celery"):
        left = still_running(paths)
        if left:
            again = f"the next make {arguments.command} stops them"
            print(f"Stopped, but still running: {', '.join(left)}; {again}.", file=sys.stderr)
        else:
            what = "Interrupted; e" if code == INTERRUPTED else "E"
            print(f"{what}verything make {arguments.command} started has stopped.", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
