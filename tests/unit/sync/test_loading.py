"""Which failed writes a load reports as retryable (`loading.may_heal`)."""

from __future__ import annotations

import pytest

from prospect_to_cash.hooks.operations import INTERRUPTED
from prospect_to_cash.sync.loading import may_heal


@pytest.mark.parametrize(
    ("status", "error_code", "heals"),
    [
        (None, None, True),  # no answer at all
        (0, INTERRUPTED, True),  # the hook gave up after repeated interruptions (issue 15)
        (0, "invalid_key", False),  # refused before sending: the row's key is unusable
        (0, "missing_key", False),
        (503, "", True),
        (500, "", True),
        (429, "0x80072322", True),
        (408, None, True),
        (400, "0x80040203", False),  # the target refuses the row's data
        (404, None, False),
        (412, "0x80040237", False),
    ],
)
def test_may_heal_by_status_and_error_code(status: int | None, error_code: str | None, heals: bool) -> None:
    assert may_heal(status, error_code) is heals
