"""``python -m bench``: run the benchmark and (re)write docs/benchmarks.md.

python -m bench [--scale 10000] [--scenarios products,accounts] [--contenders naive,sdk,ours]
                [--naive-limit 700] [--sdk-limit 0] [--sdk-batch 1000] [--cost-model scaled-limits]
                [--work-dir state/bench] [--no-dag-parse] [--dag-runs 3]
python -m bench memory --scale 1000000 --scenarios accounts     # this package only, no cost model
python -m bench profile --scale 10000 --scenarios products      # this package only, under cProfile
python -m bench report                                          # re-render from bench/results/
python -m bench daily [--scale 100000] [--templates accounts,sales_invoices]  # daily runs after 1 % changed

Every run stores its figures in ``bench/results/<name>.json`` and re-renders the report
from all stored results, so the document is always generated, never edited by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench import costmodel, dagparse, daily, measure, pycache, report
from bench.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
log = logging.getLogger("bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode", nargs="?", default="load", choices=["load", "memory", "profile", "report", "daily"]
    )
    parser.add_argument(
        "--scale", type=int, default=None, help="rows per large table (seed --scale; 10,000, daily 100,000)"
    )
    parser.add_argument(
        "--scenarios",
        "--templates",
        default=None,
        help=f"any of {', '.join(SCENARIOS)} (default both); daily: any of {', '.join(daily.TEMPLATES)} "
        "(default all seven; the templates they wait for are loaded too)",
    )
    parser.add_argument(
        "--contenders", default="naive,sdk,ours", help="naive, sdk, ours (the ceiling is computed)"
    )
    parser.add_argument(
        "--naive-limit",
        type=int,
        default=700,
        help="records the naive loader writes (0 = all); rest projected",
    )
    parser.add_argument(
        "--sdk-limit", type=int, default=0, help="products the SDK loads (0 = all); rest projected"
    )
    parser.add_argument("--sdk-batch", type=int, default=1000, help="records per SDK CreateMultiple call")
    parser.add_argument("--cost-model", default=None, choices=sorted(costmodel.MODELS))
    parser.add_argument("--work-dir", type=Path, default=ROOT / "state" / "bench")
    parser.add_argument(
        "--results-name", default=None, help="file name under bench/results/ (default from mode/scale)"
    )
    parser.add_argument("--no-rerun", action="store_true", help="skip the no-change rerun of this package")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="memory mode: plan without writing (extract, snapshot, transform)",
    )
    parser.add_argument(
        "--fno-incremental-export",
        action="store_true",
        help="daily: F&O-sourced tasks read a Data management incremental export (a data project "
        "per task and company in the F&O emulator) instead of the whole entity",
    )
    parser.add_argument("--no-dag-parse", action="store_true")
    parser.add_argument("--dag-runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where result files are stored")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (databases, staging, logs)"
    )
    parser.add_argument(
        "--pycache",
        default=str(ROOT / "state" / "bench" / "pycache"),
        help="bytecode cache every child reads (compiled once); 'none' to compile in every process",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s bench: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.scale is None:
        args.scale = 100_000 if args.mode == "daily" else 10_000
    results_dir: Path = args.results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    if args.mode == "report":
        report.write(args.output, results_dir)
        log.info("wrote %s", args.output)
        return 0
    if args.mode == "daily":
        templates = [name for name in (args.scenarios or ",".join(daily.TEMPLATES)).split(",") if name]
        unknown = sorted(set(templates) - set(daily.TEMPLATES))
        if unknown:
            build_parser().error(
                f"unknown template(s) {', '.join(unknown)}; any of {', '.join(daily.TEMPLATES)}"
            )
        templates = [name for name in daily.TEMPLATES if name in templates]
    scenarios = (
        []
        if args.mode == "daily"
        else [SCENARIOS[n] for n in (args.scenarios or "products,accounts").split(",") if n]
    )
    model_name = args.cost_model or ("free" if args.mode == "memory" else "scaled-limits")
    model = costmodel.MODELS[model_name]
    contenders = (
        ["ours"] if args.mode in ("memory", "profile") else [c for c in args.contenders.split(",") if c]
    )
    if args.pycache != "none":
        cache = Path(args.pycache)
        pycache.ensure(cache)
        os.environ.update(pycache.environment(cache))  # inherited by every child process
    variant = ("-dry-run" if args.dry_run else "") + ("-fno-export" if args.fno_incremental_export else "")
    work = args.work_dir / f"{args.mode}-{args.scale}{variant}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict[str, Any] = {
        "mode": args.mode,
        "command": command.strip(),
        "scale": args.scale,
        "cost_model": model.to_dict(),
        "machine": measure.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dry_run": args.dry_run,
        "options": {
            "naive_limit": args.naive_limit,
            "sdk_limit": args.sdk_limit,
            "sdk_batch": args.sdk_batch,
        },
        "scenarios": {},
    }
    if args.mode == "daily":
        log.info("daily: seeding %d rows per large table for %s", args.scale, ", ".join(templates))
        world = daily.run(
            templates, args.scale, work / "world", fno_incremental_export=args.fno_incremental_export
        )
        results["fno_incremental_export"] = args.fno_incremental_export
        results["seeded"], results["run_order"] = world["seeded"], world["run_order"]
        results["scenarios"] = world["templates"]
    for scenario in scenarios:
        log.info("%s: seeding %d rows per large table", scenario.template, args.scale)
        results["scenarios"][scenario.template] = measure.run_scenario(
            scenario,
            scale=args.scale,
            work=work / scenario.template,
            model=model,
            contenders=contenders,
            naive_limit=args.naive_limit,
            sdk_limit=args.sdk_limit,
            sdk_batch=args.sdk_batch,
            rerun=not args.no_rerun and args.mode == "load",
            profile=args.mode == "profile",
            dry_run=args.dry_run,
        )
    if args.mode == "load" and not args.no_dag_parse:
        log.info("timing DAG-file parsing (%d fresh interpreters per file)", args.dag_runs)
        results["dag_parse"] = dagparse.time_all(args.dag_runs, work / "airflow-home")
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    name = args.results_name or f"{args.mode}-{args.scale}{variant}"
    (results_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    report.write(args.output, results_dir)
    log.info("wrote %s and %s", results_dir / f"{name}.json", args.output)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
