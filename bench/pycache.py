"""Compiled bytecode for every process the benchmark starts.

This machine sets ``PYTHONDONTWRITEBYTECODE=1`` and the virtualenv holds no ``.pyc``
files, so every fresh interpreter compiles Airflow, pandas and the rest from source:
that alone doubles an interpreter's start and lands inside the timed load wherever a
module is imported lazily. A deployed Airflow has its bytecode. The harness compiles
everything once into a private cache (``PYTHONPYCACHEPREFIX``, nothing written into the
virtualenv) and points every child process at it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench")


def ensure(prefix: Path) -> float:
    """Fill ``prefix`` with bytecode of the interpreter's library, site-packages and this
    repository's code, unless done already; returns the seconds spent."""
    marker = prefix / f".complete-{sys.version_info.major}.{sys.version_info.minor}"
    if marker.exists():
        return 0.0
    started = time.perf_counter()
    paths = {sysconfig.get_paths()[name] for name in ("stdlib", "purelib", "platlib")}
    paths |= {str(ROOT / name) for name in ("src", "emulators", "bench", "dags")}
    log.info("compiling bytecode into %s (once)", prefix)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *sorted(p for p in paths if os.path.isdir(p))],
        env={**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,  # a few files in site-packages are deliberately not valid Python
    )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    return time.perf_counter() - started


def environment(prefix: Path) -> dict[str, str]:
    """Variables that make a child process read the cache."""
    return {"PYTHONPYCACHEPREFIX": str(prefix)}
