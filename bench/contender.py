"""One contender's run, in its own process: ``python -m bench.contender SPEC OUT``.

The harness starts this module as a subprocess so that its peak memory (``ru_maxrss``
of exactly this child, read with ``os.wait4``) belongs to one contender alone. The spec
(JSON) names the contender, the scenario and the emulators' endpoints; the Airflow
connections come from ``AIRFLOW_CONN_*`` variables the harness set. The result (JSON)
holds the wall time of the load itself, measured after imports, and the contender's own
counts; the harness adds the emulators' counters.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.scenarios import SCENARIOS


def run_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """The template for every company pair through the real engine, hooks and connections:
    the pairs side by side on shared hooks (``run_company_pairs``), as the DAG's mapped task
    groups run them."""
    from airflow.sdk import ObjectStoragePath

    from prospect_to_cash.sync import runner
    from prospect_to_cash.sync.runner import SyncHooks, run_company_pairs

    scenario = SCENARIOS[spec["scenario"]]
    phases = _time_phases(runner)
    hooks = SyncHooks(dataverse_conn_id=spec["conn_ids"]["dataverse"], fno_conn_id=spec["conn_ids"]["fno"])
    root = ObjectStoragePath(f"file://{spec['staging']}")
    started = time.perf_counter()
    result = run_company_pairs(
        scenario.template,
        legal_entities=list(scenario.companies),
        run_id=spec["run_id"],
        hooks=hooks,
        staging_root=root,
        dry_run=bool(spec.get("dry_run")),
    )
    totals = {name: int(value) for name, value in result["counts"].items()}
    seconds = time.perf_counter() - started
    summed, covered = phase_times(phases)
    written = totals.get("created", 0) + totals.get("updated", 0) + totals.get("second_pass_updated", 0)
    throttles = sum(
        hook.session.limiter.stats.throttles
        for hook in (hooks.dataverse, hooks.fno)
        if hook is not None and "session" in hook.__dict__
    )
    return {
        "seconds": seconds,
        "counts": totals,
        "written": written,
        "client_throttled": throttles,
        "phases": summed,
        "phase_wall": covered,
        "timeline": sorted(
            (label, round(start - started, 2), round(end - started, 2))
            for label, spans in phases.items()
            for start, end in spans
        ),
    }


def _time_phases(runner: Any) -> dict[str, list[tuple[float, float]]]:
    """Wrap the engine's step functions to record when each step ran (extract, snapshot, ...).

    ``run_task`` calls the steps through the module's globals, so wrapping the module
    attributes sees every call, from every company pair's thread; the metadata check is
    timed the same way. `phase_times` turns the intervals into figures.
    """
    from prospect_to_cash.sync import metadata_check

    intervals: dict[str, list[tuple[float, float]]] = {}
    lock = threading.Lock()

    def wrap(module: Any, name: str, label: str) -> None:
        original = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                with lock:
                    intervals.setdefault(label, []).append((started, time.perf_counter()))

        setattr(module, name, timed)

    for step in ("extract", "snapshot", "transform", "load"):
        wrap(runner, step, step)
    wrap(metadata_check, "check_template", "metadata check")
    return intervals


def phase_times(intervals: dict[str, list[tuple[float, float]]]) -> tuple[dict[str, float], dict[str, float]]:
    """Per step: wall time summed over calls, and the wall time during which at least one
    call of it ran (calls of different company pairs overlap)."""
    summed: dict[str, float] = {}
    covered: dict[str, float] = {}
    for label, spans in intervals.items():
        summed[label] = round(sum(end - start for start, end in spans), 2)
        total, reach = 0.0, float("-inf")
        for start, end in sorted(spans):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        covered[label] = round(total, 2)
    return summed, covered


def run_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    """The naive loader or the SDK on the same rows (see `bench.loaders`)."""
    from bench import loaders

    scenario = SCENARIOS[spec["scenario"]]
    endpoints = spec["endpoints"]
    stats = loaders.Stats()
    http = loaders.Http(endpoints)
    started = time.perf_counter()
    try:
        records = loaders.LOADERS[scenario.template](http, stats, scenario.companies)
        available = len(records)
        limit = spec.get("limit")
        if limit:
            records = records[:limit]
        read_seconds = time.perf_counter() - started
        write_started = time.perf_counter()
        requests_before = stats.requests
        if spec["contender"] == "naive":
            if scenario.template == "products":
                loaders.naive_products(http, stats, records)
            else:
                loaders.naive_customers(http, stats, records)
        else:
            loaders.sdk_products(endpoints, stats, records, spec["sdk_batch"])
        write_seconds = time.perf_counter() - write_started
        write_requests = stats.requests - requests_before
    finally:
        http.close()
    return {
        "seconds": time.perf_counter() - started,
        "read_seconds": read_seconds,
        "write_seconds": write_seconds,
        "records_available": available,
        "records_loaded": len(records),
        "written": stats.written,
        "failed": stats.failed,
        "client_throttled": stats.throttled,
        "client_requests": stats.requests,
        "write_requests": write_requests,
        "throttle_wait_s": stats.throttle_wait_s,
        "first_errors": stats.first_errors,
    }


class _AllThreadsProfile:
    """cProfile for the main thread and every thread started while it runs.

    cProfile sees only the thread that enabled it, and the engine does its work in pools
    (company pairs, reads, write units); ``threading.setprofile`` starts one profiler in
    each new thread, and the report merges them all.
    """

    def __init__(self) -> None:
        import cProfile

        self._make = cProfile.Profile
        self.profiles: list[Any] = []
        self._lock = threading.Lock()

    def _start_in_thread(self, *_args: Any) -> None:
        profile = self._make()
        with self._lock:
            self.profiles.append(profile)
        profile.enable()  # replaces this hook for the rest of the thread

    def start(self) -> None:
        threading.setprofile(self._start_in_thread)
        self._start_in_thread()

    def stop(self) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]
        self.profiles[0].disable()


def _top_functions(profiler: _AllThreadsProfile, count: int) -> list[dict[str, Any]]:
    """The functions with the most own time (where the CPU went) over every thread."""
    import pstats

    stats = pstats.Stats(profiler.profiles[0])
    for profile in profiler.profiles[1:]:
        stats.add(profile)
    rows = []
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{filename}:{line}({function})",
                "calls": calls,
                "own_s": round(own, 3),
                "cumulative_s": round(cumulative, 3),
            }
        )
    rows.sort(key=lambda row: row["own_s"], reverse=True)
    return rows[:count]


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    for name in ("airflow", "prospect_to_cash", "httpx", "azure"):
        logging.getLogger(name).setLevel(logging.WARNING)
    run = run_ours if spec["contender"] == "ours" else run_baseline
    profiler = None
    if spec.get("profile"):
        profiler = _AllThreadsProfile()
        profiler.start()
    cpu_started = time.process_time()
    result = run(spec)
    result["load_cpu_s"] = time.process_time() - cpu_started
    if profiler is not None:
        profiler.stop()
        result["profile"] = _top_functions(profiler, 40)
    Path(argv[1]).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
