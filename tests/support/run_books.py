"""The template DAGs' run order as declared, read from the run books' source (no Airflow
import), for the tests that check the demo against it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_BOOKS = ROOT / "src" / "prospect_to_cash" / "dags" / "run_books.py"


def declared_upstreams() -> dict[str, list[str]]:
    """dag_id -> upstream DAG ids, for every run book whose DAG file is in ``dags/``."""
    found: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(RUN_BOOKS.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "TemplateSpec":
            keywords = {k.arg: k.value for k in node.keywords}
            dag_id = ast.literal_eval(keywords["dag_id"])
            if (ROOT / "dags" / f"{dag_id}.py").exists():
                found[dag_id] = list(ast.literal_eval(keywords.get("upstream", ast.Tuple(elts=[]))))
    return found
