"""Where row values (names, e-mails, phones, codes) may appear: staging and dead letters, not logs.

Task logs are read by more people, and kept longer, than the staging area. Row values
reach a log only when ``P2C_LOG_ROW_VALUES`` is set to ``1`` (``true``/``yes``): a debug
setting for a person looking at one run, documented in docs/sync.md. Any other text keeps
them out: a mistyped debug switch must not leak row values, nor fail a run.
"""

from __future__ import annotations

from prospect_to_cash.settings import FlagSetting

ROW_VALUES_VARIABLE = "P2C_LOG_ROW_VALUES"
ROW_VALUES = FlagSetting(
    name="log_row_values", variable=ROW_VALUES_VARIABLE, default=False, unknown="default"
)


def log_row_values() -> bool:
    """Whether the debug setting asks for row values (rejected rows, dry-run samples) in logs."""
    return ROW_VALUES.read()
