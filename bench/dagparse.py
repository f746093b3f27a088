"""How long the scheduler's DAG processor spends on each file in ``dags/``.

The DAG processor has Airflow imported already and re-parses every file again and
again, so each measurement starts a fresh interpreter (nothing of ours cached), imports
Airflow's DagBag there, then times ``DagBag`` on that one file: the file's own imports
(this package, the mappings it reads) plus building the DAG. The median of several runs
per file is reported, beside the one-off cost of importing Airflow itself.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"

_PROBE = """
import json, sys, time
started = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
airflow_import = time.perf_counter() - started
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
parse = time.perf_counter() - started
print(json.dumps({"airflow_import": airflow_import, "parse": parse, "dags": len(bag.dags),
                  "errors": {k: str(v)[:300] for k, v in bag.import_errors.items()}}))
"""


def time_file(path: Path, runs: int, env: dict[str, str]) -> dict[str, Any]:
    """Median parse time of one DAG file over ``runs`` fresh interpreters."""
    parses, imports, errors, dags = [], [], {}, 0
    for _ in range(runs):
        completed = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        parses.append(result["parse"])
        imports.append(result["airflow_import"])
        errors.update(result["errors"])
        dags = result["dags"]
    return {
        "file": path.name,
        "median_s": round(statistics.median(parses), 3),
        "max_s": round(max(parses), 3),
        "airflow_import_median_s": round(statistics.median(imports), 3),
        "runs": runs,
        "dags": dags,
        "errors": errors,
    }


def time_all(runs: int, airflow_home: Path) -> list[dict[str, Any]]:
    """Every ``dags/*.py`` file, in name order."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return [time_file(path, runs, env) for path in sorted(DAGS.glob("*.py"))]
