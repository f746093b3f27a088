"""``prospect_to_cash.sync`` exports its API under names no submodule has."""

from __future__ import annotations

import importlib
import pkgutil

import prospect_to_cash.sync as sync


def test_no_exported_name_is_a_submodule() -> None:
    submodules = {info.name for info in pkgutil.iter_modules(sync.__path__)}
    assert {"runner", "contracts", "planner", "rules"} <= submodules
    assert set(sync.__all__) & submodules == set()


def test_each_name_means_the_same_before_and_after_every_submodule_is_imported() -> None:
    before = {name: getattr(sync, name) for name in sync.__all__}
    for info in pkgutil.iter_modules(sync.__path__):
        if info.name != "__main__":
            importlib.import_module(f"{sync.__name__}.{info.name}")
    after = {name: getattr(sync, name) for name in sync.__all__}
    assert after == before
    assert all(callable(value) for value in after.values())
    assert sync.transform.__module__ == "prospect_to_cash.sync.runner"
    assert sync.load.__module__ == "prospect_to_cash.sync.loading"
