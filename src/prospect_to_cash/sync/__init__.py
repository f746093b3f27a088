"""The sync engine: mappings as data, extract → snapshot → transform → load (docs/sync.md).

Entry points for the DAG layer live in :mod:`prospect_to_cash.sync.runner`; they are also
reachable here lazily, so importing this package while a DAG file is parsed stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "company_pairs",
    "extract",
    "load",
    "run_company_pairs",
    "run_task",
    "run_template",
    "snapshot",
    "transform",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from prospect_to_cash.sync import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
