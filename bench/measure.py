"""Run the contenders of one scenario on copies of the same seeded data and read the counters."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from bench import costmodel, emulator, seeding

if TYPE_CHECKING:
    from bench.costmodel import CostModel
    from bench.scenarios import Scenario

ROOT = Path(__file__).resolve().parents[1]
CONN_IDS = {"dataverse": "bench_dataverse", "fno": "bench_fno"}
log = logging.getLogger("bench")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("apache-airflow", "pandas", "pyarrow", "httpx", "msal", "PowerPlatform-Dataverse-Client"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "nproc": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit,
    }


def _child_env(running: emulator.Emulators, work: Path, contender: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(running.connection_env(CONN_IDS))
    env["AIRFLOW_HOME"] = str(work / "airflow-home")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    if contender == "sdk":
        # The SDK's requests session trusts REQUESTS_CA_BUNDLE: point it at the emulators' CA
        # (verification stays on), and drop CURL_CA_BUNDLE which would take precedence.
        env["REQUESTS_CA_BUNDLE"] = running.ca_bundle
        env.pop("CURL_CA_BUNDLE", None)
    return env


def _run_child(spec: dict[str, Any], work: Path, env: dict[str, str], label: str) -> dict[str, Any]:
    """Run `bench.contender` and read exactly its own peak RSS and CPU time (``os.wait4``)."""
    spec_path, out_path = work / f"{label}-spec.json", work / f"{label}-result.json"
    spec_path.write_text(json.dumps(spec))
    log_path = work / f"{label}.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.contender", str(spec_path), str(out_path)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=emulator.die_with_parent,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"{label} failed with exit code {process.returncode}:\n{tail}")
    result = json.loads(out_path.read_text())
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # Linux reports KiB
    result["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    return result


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def run_contender(
    contender: str,
    scenario: Scenario,
    seeded: Path,
    work: Path,
    model: CostModel,
    *,
    limit: int = 0,
    sdk_batch: int = 1000,
    rerun: bool = False,
    profile: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """One contender on a private copy of the seeded data, under the cost model."""
    state = work / contender / "state"
    seeding.copy_state(seeded, state)
    running = emulator.start(state, model.emulator_config())
    try:
        env = _child_env(running, work / contender, contender)
        spec = {
            "contender": contender,
            "scenario": scenario.template,
            "conn_ids": CONN_IDS,
            "endpoints": running.endpoints,
            "staging": str(work / contender / "staging"),
            "run_id": "initial",
            "limit": limit,
            "sdk_batch": sdk_batch,
            "profile": profile,
            "dry_run": dry_run,
        }
        running.reset()
        emulator_cpu = _cpu(running.process.pid)
        started = time.perf_counter()
        result = _run_child(spec, work / contender, env, "initial")
        result["process_seconds"] = round(time.perf_counter() - started, 2)
        result["emulator_cpu_s"] = round(_cpu(running.process.pid) - emulator_cpu, 2)
        result["counters"] = running.counters()
        with running.admin(scenario.target_service) as admin:
            result["target_rows"] = admin.tables()
        if rerun:
            running.reset()
            spec["run_id"] = "rerun"
            again = _run_child(spec, work / contender, env, "rerun")
            again["counters"] = running.counters()
            result["rerun"] = again
    finally:
        running.stop()
    return result


def summarize(result: dict[str, Any], scenario: Scenario, source_rows: int) -> dict[str, Any]:
    """The per-contender figures of the report, from its own result and the emulators' counters."""
    counters = result["counters"]
    target, source = counters[scenario.target_service], counters[scenario.source_service]
    written = target["operations_written_total"]
    write_requests = sum(n for key, n in target["requests"].items() if not key.startswith("GET "))
    reads = {
        service: sum(n for k, n in c["requests"].items() if k.startswith("GET "))
        for service, c in counters.items()
    }
    seconds = result["seconds"]
    summary = {
        "seconds": round(seconds, 2),
        "written": written,
        "records_per_s": round(written / seconds, 1) if seconds else None,
        "write_requests": write_requests,
        "write_requests_per_record": round(write_requests / written, 4) if written else None,
        "read_requests": sum(reads.values()),
        "source_read_requests": reads[scenario.source_service],
        "read_requests_per_source_record": round(reads[scenario.source_service] / source_rows, 5)
        if source_rows
        else None,
        "throttled": sum(c["throttled_total"] for c in counters.values()),
        "throttled_by_code": {s: c["throttled"] for s, c in counters.items() if c["throttled_total"]},
        "max_in_flight": {s: c["max_in_flight"] for s, c in counters.items()},
        "execution_s": {s: round(c["execution_ms"] / 1000, 1) for s, c in counters.items()},
        "peak_rss_mb": result["peak_rss_mb"],
        "client_cpu_s": round(result["load_cpu_s"], 2),
        "process_cpu_s": result["cpu_s"],
        "emulator_cpu_s": result["emulator_cpu_s"],
        "failed_writes": result.get("failed", result.get("counts", {}).get("failed", 0)),
        "source_requests": source["requests_total"],
    }
    if "rerun" in result:
        rerun = result["rerun"]["counters"]
        summary["rerun"] = {
            "seconds": round(result["rerun"]["seconds"], 2),
            "requests": sum(c["requests_total"] for c in rerun.values()),
            "write_requests": sum(
                n for c in rerun.values() for key, n in c["requests"].items() if not key.startswith("GET ")
            ),
            "writes": sum(c["operations_written_total"] for c in rerun.values()),
            "counts": result["rerun"]["counts"],
            "peak_rss_mb": result["rerun"]["peak_rss_mb"],
        }
    return summary


def run_scenario(
    scenario: Scenario,
    *,
    scale: int,
    work: Path,
    model: CostModel,
    contenders: list[str],
    naive_limit: int,
    sdk_limit: int,
    sdk_batch: int,
    rerun: bool,
    profile: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Seed once, run every contender on a copy, compute the ceiling and the ratios."""
    seeded = work / "seeded"
    seeded.mkdir(parents=True)
    seed = seeding.seed_tables(seeded, scale, scenario.streams)
    source_rows = seed["rows"].get(scenario.source[1], 0)
    out: dict[str, Any] = {
        "title": scenario.title,
        "seed": seed,
        "source_rows": source_rows,
        "contenders": {},
    }
    raw: dict[str, Any] = {}
    for contender in contenders:
        if contender == "sdk" and not scenario.sdk:
            continue
        limit = naive_limit if contender == "naive" else sdk_limit if contender == "sdk" else 0
        log.info(
            "%s: running %s%s", scenario.template, contender, f" (first {limit} records)" if limit else ""
        )
        raw[contender] = run_contender(
            contender,
            scenario,
            seeded,
            work,
            model,
            limit=limit,
            sdk_batch=sdk_batch,
            rerun=rerun and contender == "ours",
            profile=profile,
            dry_run=dry_run,
        )
        summary = summarize(raw[contender], scenario, source_rows)
        summary["raw"] = {k: v for k, v in raw[contender].items() if k not in ("counters", "rerun")}
        out["contenders"][contender] = summary
        log.info(
            "%s/%s: %s",
            scenario.template,
            contender,
            {k: summary[k] for k in ("seconds", "written", "throttled")},
        )
    if "ours" in out["contenders"] and not dry_run:
        ours = out["contenders"]["ours"]
        workloads = [
            costmodel.Workload(scenario.target_service, written=ours["written"]),
            costmodel.Workload(scenario.source_service, read_rows=source_rows),
        ]
        out["ceiling"] = costmodel.ceiling(model, workloads)
        _project_baselines(out, scenario, model, ours["written"])
    return out


def _project_baselines(out: dict[str, Any], scenario: Scenario, model: CostModel, records: int) -> None:
    """Baselines that loaded a sample: project the time for all ``records`` this package wrote.

    The naive loader's pace is measured without its throttling waits and projected with
    `costmodel.naive_projection` (its waits for the request limit come back in); the SDK is
    sequential and stays far below every limit, so its time scales linearly.
    """
    cost = model.service(scenario.target_service)
    for name, summary in out["contenders"].items():
        if name == "ours":
            continue
        raw = summary["raw"]
        sampled = raw["records_loaded"] < raw["records_available"]
        written = summary["written"]
        if not written:
            continue
        if name == "naive":
            pace = (raw["write_seconds"] - raw["throttle_wait_s"]) / max(raw["write_requests"], 1)
            projected_write = costmodel.naive_projection(cost, records, pace)
            summary["seconds_per_request"] = round(pace, 4)
        else:
            projected_write = raw["write_seconds"] * records / written
        summary["sampled"] = sampled
        summary["projected_seconds"] = round(raw["read_seconds"] + projected_write, 1) if sampled else None
