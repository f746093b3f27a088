"""Run `python -m emulators` with empty catalogs where a service catalogue is not written yet.

Test-only: the core's own tests must run before `emulators.schema.dataverse` / `fno` exist.
The server itself never falls back; this wrapper installs stand-in modules, then runs the
normal command line.
"""

from __future__ import annotations

import importlib
import sys
import types

from emulators.schema.model import Catalog


def install_missing_catalogs() -> list[str]:
    missing = []
    for service in ("dataverse", "fno"):
        name = f"emulators.schema.{service}"
        try:
            importlib.import_module(name)
        except ImportError:
            module = types.ModuleType(name)
            module.CATALOG = Catalog(service=service)  # type: ignore[attr-defined]
            sys.modules[name] = module
            missing.append(service)
    return missing


if __name__ == "__main__":
    install_missing_catalogs()
    from emulators.__main__ import main

    sys.exit(main())
