"""The sync engine: mappings as data, extract → snapshot → transform → load (docs/sync.md).

The public API is reachable here lazily, so importing this package while a DAG file is
parsed stays cheap: the steps and whole runs (from :mod:`~prospect_to_cash.sync.runner`)
and the typed contracts they take (from :mod:`~prospect_to_cash.sync.contracts`). No
name exported here is also the name of a submodule, so ``sync.<name>`` means one thing
whatever has been imported before.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Each exported name and the submodule that defines it.
_HOMES = {
    "CompanyPair": "contracts",
    "SyncHooks": "contracts",
    "SyncOptions": "contracts",
    "Window": "contracts",
    "company_pairs": "runner",
    "extract": "runner",
    "extract_and_snapshot": "runner",
    "load": "runner",
    "run_company_pairs": "runner",
    "run_task": "runner",
    "run_template": "runner",
    "snapshot": "runner",
    "transform": "runner",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{home}"), name)
